"""Rule evaluation as set-based SQL: one INSERT … SELECT … ON CONFLICT per rule.

Each trigger is a query of the users that qualify (with the period they qualify in), over
counted rows only. The same query serves three callers:
- the event consumer, restricted to the users (or stickers) that new rows touched;
- backfill, unrestricted: a rule created or activated later applies to history;
- the admin preview, which only counts.
A grant is written at most once per (rule, user, period) by the unique constraint; the perk
entitlement and the feed entry of a new grant are written in the same statement.
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import connection
from django.utils import timezone

from core.db import sql_literals
from engagement.models import Comment, CommentLike, Like, Video
from polls.models import Answer, Checkpoint, Sticker, Vote
from rewards.models import ActivityEvent, Entitlement, Grant, RewardRule

# Sticker kinds and states in the rules' SQL, as the polls models spell them.
_UNLOCK = sql_literals([Sticker.Kind.UNLOCK])
_COMMENT_PICK = sql_literals([Sticker.Kind.COMMENT_PICK])
_ENDING = sql_literals([Sticker.Kind.ENDING])
_FINAL = sql_literals([Sticker.State.FINAL])

_PERIOD_SQL = {
    RewardRule.Period.NONE: "''",
    RewardRule.Period.DAY: "to_char({ts} AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
    RewardRule.Period.WEEK: "to_char({ts} AT TIME ZONE 'UTC', 'IYYY-\"W\"IW')",
    RewardRule.Period.MONTH: "to_char({ts} AT TIME ZONE 'UTC', 'YYYY-MM')",
}

LIKE = Like._meta.db_table
COMMENT = Comment._meta.db_table
COMMENT_LIKE = CommentLike._meta.db_table
VIDEO = Video._meta.db_table
VOTE = Vote._meta.db_table
ANSWER = Answer._meta.db_table
STICKER = Sticker._meta.db_table
CHECKPOINT = Checkpoint._meta.db_table


@dataclass(frozen=True)
class Scope:
    """Restrict evaluation to these users and/or stickers (None: everything, i.e. backfill)."""

    user_ids: list[int] | None = None
    sticker_ids: list[int] | None = None


def _window(rule: RewardRule, ts: str, params: dict[str, Any]) -> str:
    clauses = []
    if rule.starts_at is not None:
        clauses.append(f"{ts} >= %(starts_at)s")
        params["starts_at"] = rule.starts_at
    if rule.ends_at is not None:
        clauses.append(f"{ts} < %(ends_at)s")
        params["ends_at"] = rule.ends_at
    return "".join(f" AND {clause}" for clause in clauses)


def _users(column: str, scope: Scope, params: dict[str, Any]) -> str:
    if scope.user_ids is None:
        return ""
    params["scope_users"] = scope.user_ids
    return f" AND {column} = ANY(%(scope_users)s)"


def _stickers(column: str, scope: Scope, params: dict[str, Any]) -> str:
    if scope.sticker_ids is None:
        return ""
    params["scope_stickers"] = scope.sticker_ids
    return f" AND {column} = ANY(%(scope_stickers)s)"


def _rule_sticker(column: str, rule: RewardRule, params: dict[str, Any]) -> str:
    """The rule's own sticker restriction (a rule about one given sticker)."""
    if rule.sticker_id is None:
        return ""
    params["sticker"] = rule.sticker_id
    return f" AND {column} = %(sticker)s"


def qualifying_sql(rule: RewardRule, scope: Scope) -> tuple[str, dict[str, Any]]:
    """SELECT user_id, period_key of every (user, period) the rule grants to, within scope."""
    params: dict[str, Any] = {"threshold": rule.threshold}
    period = _PERIOD_SQL[RewardRule.Period(rule.period)]
    trigger = rule.trigger
    if trigger == RewardRule.Trigger.TOTAL_LIKES:
        ts = "l.created_at"
        sql = (
            f"SELECT l.user_id, {period.format(ts=ts)} AS period_key FROM {LIKE} l "
            f"WHERE l.counted{_window(rule, ts, params)}{_users('l.user_id', scope, params)} "
            f"GROUP BY 1, 2 HAVING count(*) >= %(threshold)s"
        )
    elif trigger == RewardRule.Trigger.CREATOR_LIKES:
        ts = "l.created_at"
        params["creator"] = rule.creator_id
        sql = (
            f"SELECT l.user_id, {period.format(ts=ts)} AS period_key FROM {LIKE} l "
            f"JOIN {VIDEO} v ON v.id = l.video_id "
            f"WHERE l.counted AND v.creator_id = %(creator)s"
            f"{_window(rule, ts, params)}{_users('l.user_id', scope, params)} "
            f"GROUP BY 1, 2 HAVING count(*) >= %(threshold)s"
        )
    elif trigger == RewardRule.Trigger.VIDEO_LIKES:
        ts = "l.created_at"
        sql = (
            f"SELECT DISTINCT per_video.creator_id AS user_id, per_video.period_key FROM ("
            f"SELECT v.creator_id, {period.format(ts=ts)} AS period_key FROM {LIKE} l "
            f"JOIN {VIDEO} v ON v.id = l.video_id "
            f"WHERE l.counted{_window(rule, ts, params)}{_users('v.creator_id', scope, params)} "
            f"GROUP BY v.creator_id, v.id, 2 HAVING count(*) >= %(threshold)s) per_video"
        )
    elif trigger == RewardRule.Trigger.STICKER_PARTICIPATION:
        ts = "p.created_at"
        filters = _rule_sticker("s.id", rule, params)
        if rule.sticker_kind:
            params["kind"] = rule.sticker_kind
            filters += " AND s.kind = %(kind)s"
        # Taking part: a vote (poll, ending), an answer (quiz), a like of the video while an
        # unlock sticker is on it, a like of one of its comments while a comment_pick is open.
        sql = (
            f"SELECT p.user_id, {period.format(ts=ts)} AS period_key FROM ("
            f"SELECT user_id, sticker_id, created_at FROM {VOTE} WHERE counted "
            f"UNION ALL SELECT user_id, sticker_id, created_at FROM {ANSWER} WHERE counted "
            f"UNION ALL SELECT l.user_id, us.id, l.created_at FROM {LIKE} l "
            f"JOIN {STICKER} us ON us.video_id = l.video_id AND us.kind = {_UNLOCK} "
            f"WHERE l.counted AND l.created_at >= us.opens_at "
            f"AND (us.closes_at IS NULL OR l.created_at < us.closes_at) "
            f"UNION ALL SELECT cl.user_id, cs.id, cl.created_at FROM {COMMENT_LIKE} cl "
            f"JOIN {COMMENT} c ON c.id = cl.comment_id "
            f"JOIN {STICKER} cs ON cs.video_id = c.video_id AND cs.kind = {_COMMENT_PICK} "
            f"WHERE cl.counted AND cl.created_at >= cs.opens_at "
            f"AND cl.created_at < coalesce(cs.closed_at, cs.closes_at)"
            f") p JOIN {STICKER} s ON s.id = p.sticker_id "
            f"WHERE true{filters}"
            f"{_window(rule, ts, params)}{_users('p.user_id', scope, params)}"
            f"{_stickers('s.id', scope, params)} "
            f"GROUP BY 1, 2 HAVING count(DISTINCT p.sticker_id) >= %(threshold)s"
        )
    elif trigger == RewardRule.Trigger.WINNING_ENDING:
        ts = "s.finalized_at"
        filters = _rule_sticker("s.id", rule, params)
        # One winning vote qualifies; scoped to stickers that just became final, only their
        # winning voters are looked at (a user's earlier wins were granted when they happened).
        sql = (
            f"SELECT v.user_id, {period.format(ts=ts)} AS period_key FROM {VOTE} v "
            f"JOIN {STICKER} s ON s.id = v.sticker_id "
            f"WHERE v.counted AND s.kind = {_ENDING} AND s.state = {_FINAL} "
            f"AND s.winner_option_id = ANY(v.option_ids){filters}"
            f"{_window(rule, ts, params)}{_users('v.user_id', scope, params)}"
            f"{_stickers('s.id', scope, params)} "
            f"GROUP BY 1, 2"
        )
    elif trigger == RewardRule.Trigger.QUIZ_SCORE:
        ts = "done.completed_at"
        filters = _rule_sticker("a.sticker_id", rule, params)
        sql = (
            f"SELECT done.user_id, {period.format(ts=ts)} AS period_key FROM ("
            f"SELECT a.user_id, a.sticker_id, max(a.created_at) AS completed_at FROM {ANSWER} a "
            f"WHERE a.counted{filters}{_users('a.user_id', scope, params)}"
            f"{_stickers('a.sticker_id', scope, params)} "
            f"GROUP BY a.user_id, a.sticker_id "
            f"HAVING count(*) = "
            f"(SELECT count(*) FROM {CHECKPOINT} c WHERE c.sticker_id = a.sticker_id) "
            f"AND count(*) FILTER (WHERE a.is_correct) >= %(threshold)s"
            f") done WHERE true{_window(rule, ts, params)} GROUP BY 1, 2"
        )
    else:
        raise ValueError(f"unknown trigger {trigger!r}")
    return sql, params


def rule_is_live(rule: RewardRule, now: datetime | None = None) -> bool:
    """Whether the rule can grant at all now (active, its badge or perk still available)."""
    now = now or timezone.now()
    badge_expires = rule.badge.expires_at if rule.badge is not None else None
    perk_valid_until = rule.perk.valid_until if rule.perk is not None else None
    return (
        rule.is_active
        and (badge_expires is None or badge_expires > now)
        and (perk_valid_until is None or perk_valid_until > now)
    )


def _reward_name(rule: RewardRule) -> str:
    if rule.badge is not None:
        return rule.badge.name
    return rule.perk.name if rule.perk is not None else ""


def rule_apply(rule: RewardRule, scope: Scope, *, source: str) -> int:
    """Grant the rule to everyone in scope who qualifies and has no grant yet. Returns how many."""
    if not rule_is_live(rule):
        return 0
    qualified, params = qualifying_sql(rule, scope)
    params.update(
        {
            "rule": rule.pk,
            "badge": rule.badge_id,
            "perk": rule.perk_id,
            "source": source,
            "activity_kind": (
                ActivityEvent.Kind.EARNED_BADGE if rule.badge_id else ActivityEvent.Kind.EARNED_PERK
            ),
            "reward_name": _reward_name(rule),
            "rule_name": rule.name,
        }
    )
    sql = f"""
        WITH qualified AS ({qualified}),
        new_grants AS (
            INSERT INTO {Grant._meta.db_table}
                (rule_id, user_id, period_key, badge_id, granted_at, source, revoke_reason)
            SELECT %(rule)s, q.user_id, q.period_key, %(badge)s, now(), %(source)s, ''
            FROM qualified q
            -- One insertion order for every caller: concurrent evaluations of a rule (the
            -- consumer's scope, a backfill) wait on each other's rows instead of deadlocking.
            ORDER BY q.user_id, q.period_key
            ON CONFLICT (rule_id, user_id, period_key) DO NOTHING
            RETURNING id, user_id, granted_at
        ),
        new_entitlements AS (
            INSERT INTO {Entitlement._meta.db_table} (grant_id, user_id, perk_id, created_at)
            SELECT id, user_id, %(perk)s, granted_at FROM new_grants
            WHERE %(perk)s::bigint IS NOT NULL
            RETURNING id
        ),
        new_activity AS (
            INSERT INTO {ActivityEvent._meta.db_table}
                (user_id, kind, source_id, video_id, data, created_at)
            SELECT user_id, %(activity_kind)s, id, NULL,
                   jsonb_build_object('reward', %(reward_name)s::text, 'rule', %(rule_name)s::text,
                                      'grant_id', id),
                   granted_at
            FROM new_grants
            ON CONFLICT (kind, source_id) DO NOTHING
            RETURNING id
        )
        SELECT (SELECT count(*) FROM new_grants), (SELECT count(*) FROM new_entitlements),
               (SELECT count(*) FROM new_activity)
    """
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        granted = cursor.fetchone()[0]
    return int(granted)


def rule_preview(rule: RewardRule) -> int:
    """How many grants a backfill of the rule would write now."""
    if not rule_is_live(rule):
        return 0
    qualified, params = qualifying_sql(rule, Scope())
    params["rule"] = rule.pk
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT count(*) FROM ({qualified}) q WHERE NOT EXISTS ("
            f"SELECT 1 FROM {Grant._meta.db_table} g WHERE g.rule_id = %(rule)s "
            f"AND g.user_id = q.user_id AND g.period_key = q.period_key)",
            params,
        )
        return int(cursor.fetchone()[0])
