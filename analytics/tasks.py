"""Discovery consumers (queue `analytics`). Safe to run twice; one pass at a time."""

from celery import shared_task

from analytics.services.heat import heat_events_process
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
