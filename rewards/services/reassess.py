"""Grants that follow a change of `counted` (an integrity decision), docs/rewards.md.

A rule never takes a grant back by itself (an unlike keeps the perk). A decision that flips
rows is different: it says those rows should never have counted, or should have. The caller
(integrity) takes a snapshot of which (rule, user, period) qualify before its flips, then asks
for a reassessment after them, in the same transaction:

- a live grant that qualified before and does not now is revoked with the caller's reason
  (prefixed "reassessed: "; its unredeemed entitlement goes with it, a redeemed one stays
  spent). A grant already undercut before the decision (an unlike) is left alone: it did not
  qualify before either;
- a grant revoked by an earlier reassessment that qualifies now is restored, with the
  entitlement revoked with it; grants revoked by staff (any other reason) stay revoked;
- whoever qualifies now and has no grant gets one (rule_apply), e.g. the voters of an ending
  that becomes the winner once bot votes stop counting.

Each step is one statement per rule or one for all rules; the snapshots are temporary tables
(dropped at commit), so nothing is held in Python but the users in scope.
"""

from collections.abc import Sequence
from dataclasses import dataclass

from django.db import connection, transaction

from rewards.locks import grants_for_update_sql
from rewards.models import Entitlement, Grant, RewardRule
from rewards.services.rules import Scope, qualifying_sql, rule_apply

REASSESSED_PREFIX = "reassessed: "
SOURCE = "reassess"

_BEFORE = "rewards_qualified_before"
_AFTER = "rewards_qualified_after"
_GRANT = Grant._meta.db_table
_ENTITLEMENT = Entitlement._meta.db_table


@dataclass(frozen=True)
class Reassessment:
    revoked: list[int]
    restored: list[int]
    granted: int


def _rules() -> list[RewardRule]:
    return list(
        RewardRule.objects.filter(is_active=True).select_related("badge", "perk").order_by("pk")
    )


def _qualified_fill(table: str, user_ids: list[int]) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {table} "
            f"(rule_id bigint NOT NULL, user_id bigint NOT NULL, period_key text NOT NULL) "
            f"ON COMMIT DROP"
        )
        cursor.execute(f"TRUNCATE {table}")
        if not user_ids:
            return
        for rule in _rules():
            qualified, params = qualifying_sql(rule, Scope(user_ids=user_ids))
            params["reassessed_rule"] = rule.pk
            cursor.execute(
                f"INSERT INTO {table} (rule_id, user_id, period_key) "
                f"SELECT DISTINCT %(reassessed_rule)s, q.user_id, q.period_key "
                f"FROM ({qualified}) q",
                params,
            )


@transaction.atomic
def grants_qualification_snapshot(*, user_ids: Sequence[int]) -> None:
    """Record which (rule, user, period) of these users qualify now, for `grants_reassess` later
    in the same transaction."""
    _qualified_fill(_BEFORE, sorted(set(user_ids)))


def _matches(alias: str, table: str) -> str:
    return (
        f"SELECT 1 FROM {table} q WHERE q.rule_id = {alias}.rule_id "
        f"AND q.user_id = {alias}.user_id AND q.period_key = {alias}.period_key"
    )


@transaction.atomic
def grants_reassess(*, user_ids: Sequence[int], reason: str) -> Reassessment:
    """After a change of `counted` for these users' rows (or rows their grants depend on):
    revoke the grants it undercut, restore the ones an earlier reassessment revoked that qualify
    again, and grant what newly qualifies. Needs `grants_qualification_snapshot` of the same
    users earlier in the transaction."""
    users = sorted(set(user_ids))
    _qualified_fill(_AFTER, users)
    if not users:
        return Reassessment(revoked=[], restored=[], granted=0)
    with connection.cursor() as cursor:
        # Lock order: grants in id order, then their entitlements (as grants_revoke).
        cursor.execute(
            f"""
            WITH lost AS ({
                grants_for_update_sql(
                    columns="g.id",
                    where=f"g.revoked_at IS NULL AND g.user_id = ANY(%(users)s) "
                    f"AND EXISTS ({_matches('g', _BEFORE)}) "
                    f"AND NOT EXISTS ({_matches('g', _AFTER)})",
                )
            }),
            revoked AS (
                UPDATE {_GRANT} g SET revoked_at = now(), revoke_reason = %(reason)s
                FROM lost WHERE g.id = lost.id
                RETURNING g.id
            ),
            entitlements AS (
                UPDATE {_ENTITLEMENT} e SET revoked_at = now()
                FROM revoked
                WHERE e.grant_id = revoked.id AND e.redeemed_at IS NULL AND e.revoked_at IS NULL
                RETURNING e.id
            )
            SELECT coalesce(array_agg(id ORDER BY id), '{{}}'),
                   (SELECT count(*) FROM entitlements)
            FROM revoked
            """,
            {"users": users, "reason": f"{REASSESSED_PREFIX}{reason}"},
        )
        revoked = list(cursor.fetchone()[0])
        # An entitlement revoked with its grant carries the grant's revocation time.
        cursor.execute(
            f"""
            WITH back AS ({
                grants_for_update_sql(
                    columns="g.id, g.revoked_at",
                    where=f"g.revoked_at IS NOT NULL AND g.user_id = ANY(%(users)s) "
                    f"AND starts_with(g.revoke_reason, %(prefix)s) "
                    f"AND EXISTS ({_matches('g', _AFTER)})",
                )
            }),
            entitlements AS (
                UPDATE {_ENTITLEMENT} e SET revoked_at = NULL
                FROM back
                WHERE e.grant_id = back.id AND e.revoked_at = back.revoked_at
                RETURNING e.id
            ),
            restored AS (
                UPDATE {_GRANT} g SET revoked_at = NULL, revoke_reason = ''
                FROM back WHERE g.id = back.id
                RETURNING g.id
            )
            SELECT coalesce(array_agg(id ORDER BY id), '{{}}'),
                   (SELECT count(*) FROM entitlements)
            FROM restored
            """,
            {"users": users, "prefix": REASSESSED_PREFIX},
        )
        restored = list(cursor.fetchone()[0])
    granted = sum(rule_apply(rule, Scope(user_ids=users), source=SOURCE) for rule in _rules())
    return Reassessment(revoked=revoked, restored=restored, granted=granted)
