"""Backfill, revocation and the rule lifecycle."""

from django.db import transaction
from django.utils import timezone

from core.enqueue import enqueue_on_commit
from rewards.models import Entitlement, Grant, RewardRule
from rewards.services.rules import Scope, rule_apply

BACKFILL_TASK = "rewards.tasks.backfill_rule"


@transaction.atomic
def rule_backfill(*, rule_id: int) -> int:
    """Apply the rule to all history (one set-based statement). Returns the grants written."""
    rule = RewardRule.objects.select_related("badge", "perk").filter(pk=rule_id).first()
    if rule is None:
        return 0
    granted = rule_apply(rule, Scope(), source="backfill")
    RewardRule.objects.filter(pk=rule_id).update(backfilled_at=timezone.now())
    return granted


def backfill_enqueue(*, rule_id: int) -> None:
    """Enqueue a backfill after commit. If the broker is down, the pending-rules sweep runs it."""
    enqueue_on_commit(BACKFILL_TASK, rule_id)


def rules_backfill_pending() -> int:
    """Backfill every active rule that has not been applied to history yet."""
    pending = RewardRule.objects.filter(is_active=True, backfilled_at__isnull=True).order_by("pk")
    return sum(rule_backfill(rule_id=rule_id) for rule_id in pending.values_list("pk", flat=True))


@transaction.atomic
def grants_revoke(*, grant_ids: list[int], reason: str) -> int:
    """Revoke grants (staff). Their unredeemed entitlements go too; a redeemed one stays spent.

    The grant row stays (with revoked_at), so the same rule does not grant it again.
    """
    now = timezone.now()
    revoked = Grant.objects.filter(pk__in=grant_ids, revoked_at__isnull=True).update(
        revoked_at=now, revoke_reason=reason
    )
    Entitlement.objects.filter(
        grant_id__in=grant_ids, redeemed_at__isnull=True, revoked_at__isnull=True
    ).update(revoked_at=now)
    return revoked
