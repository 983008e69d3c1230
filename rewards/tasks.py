"""Reward evaluation tasks (queue `rewards`). All safe to run twice."""

from celery import shared_task

from core.enqueue import enqueue_now
from core.wakeups import woken
from rewards.services.events import reward_events_process
from rewards.services.grants import rule_backfill, rules_backfill_pending


@shared_task(acks_late=True)
def process_reward_events() -> int:
    woken("rewards.tasks.process_reward_events")
    report = reward_events_process()
    if report.more:
        enqueue_now(process_reward_events.name)
    return report.grants


@shared_task(acks_late=True)
def backfill_rule(rule_id: int) -> int:
    return rule_backfill(rule_id=rule_id)


@shared_task(acks_late=True)
def backfill_pending_rules() -> int:
    """Sweep: rules activated while the broker was down still get their backfill."""
    return rules_backfill_pending()
