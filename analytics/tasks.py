"""Analytics tasks (queue `analytics`). All safe to run twice."""

from celery import shared_task

from analytics.services.consumer import analytics_events_process
from analytics.services.reconcile import analytics_rollups_reconcile
from core.enqueue import enqueue_now
from core.wakeups import woken


@shared_task(acks_late=True)
def process_analytics_events() -> int:
    woken("analytics.tasks.process_analytics_events")
    report = analytics_events_process()
    if report.more:
        enqueue_now(process_analytics_events.name)
    return report.rows


@shared_task(acks_late=True)
def reconcile_analytics_rollups() -> int:
    """Nightly: recount a sample of the videos' rollups from the rows and repair differences."""
    return analytics_rollups_reconcile(sample=500).differences
