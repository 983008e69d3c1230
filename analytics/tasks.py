"""Analytics consumers (queue `analytics`): creator-centre rollups, heat and trending, the
nightly reconciliation, and the creator-centre documents' refresh-ahead. All safe to run twice;
each consumer runs one pass at a time."""

from celery import shared_task

from analytics.services.consumer import analytics_events_process
from analytics.services.heat import heat_events_process
from analytics.services.reconcile import analytics_rollups_reconcile
from analytics.services.refresh_ahead import documents_refresh_ahead
from analytics.services.trending import trending_events_process
from core.enqueue import enqueue_now
from core.wakeups import woken


@shared_task(acks_late=True)
def process_heat_events() -> int:
    woken("analytics.tasks.process_heat_events")
    report = heat_events_process()
    if report.more:
        enqueue_now(process_heat_events.name)
    return report.videos


@shared_task(acks_late=True)
def process_trending_events() -> int:
    woken("analytics.tasks.process_trending_events")
    report = trending_events_process()
    if report.more:
        enqueue_now(process_trending_events.name)
    return report.buckets


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


@shared_task(acks_late=True)
def refresh_analytics_documents(token: str | None = None) -> int:
    """Recompute the active creator-centre documents that would expire before the next run, then
    queue the next run a tick later while some are active. Armed by the serves (with the token
    of the flag they set), and by beat as a safety net (without one)."""
    return documents_refresh_ahead(token=token).refreshed
