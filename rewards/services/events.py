"""The rewards consumer: reads the interaction and vote tables past its watermarks.

Woken after commits (core.wakeups) and run by a periodic sweep, so a broker outage or a killed
worker delays grants but never loses them. Each run, per source table:
1. reads rows with id > watermark (bounded batch), collects the users they touch;
2. evaluates the rules that such a row can affect, restricted to those users (rules.rule_apply);
3. writes feed entries for new likes and winning ending votes (ON CONFLICT DO NOTHING);
4. advances the watermark, but only past rows older than SAFETY_LAG: a transaction that took an
   id earlier may commit a little later, so recent rows are read again next run. Re-reading is
   harmless (grants and feed entries are idempotent); skipping would not be.
Stickers that became final are read by `finalized_at` with the same lag.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.db import connection, transaction
from django.db.models import Model
from django.utils import timezone

from engagement.models import CommentLike, Like, User, Video
from polls.models import Answer, Sticker, StickerOption, Vote
from rewards.models import ActivityEvent, ConsumerCursor, RewardRule
from rewards.services.rules import Scope, rule_apply

logger = logging.getLogger(__name__)

SAFETY_LAG = timedelta(seconds=5)
BATCH = 20_000

# The event tables read by id, by the name of their watermark (ConsumerCursor); `finals` is
# the fifth watermark, a time. rewards.metrics reports how far each one trails.
EVENT_TABLES: dict[str, type[Model]] = {
    "likes": Like,
    "comment_likes": CommentLike,
    "votes": Vote,
    "answers": Answer,
}
FINALS = "finals"

LIKE_TRIGGERS = (
    RewardRule.Trigger.TOTAL_LIKES,
    RewardRule.Trigger.CREATOR_LIKES,
    RewardRule.Trigger.STICKER_PARTICIPATION,  # liking a video with an unlock sticker
)
PARTICIPATION_TRIGGERS = (RewardRule.Trigger.STICKER_PARTICIPATION,)
ANSWER_TRIGGERS = (RewardRule.Trigger.STICKER_PARTICIPATION, RewardRule.Trigger.QUIZ_SCORE)


@dataclass
class RunReport:
    grants: int = 0
    rows: dict[str, int] = field(default_factory=dict)
    # A source had a full batch: run again soon.
    more: bool = False


def _rules(triggers: tuple[str, ...]) -> list[RewardRule]:
    return list(
        RewardRule.objects.filter(is_active=True, trigger__in=triggers)
        .select_related("badge", "perk")
        .order_by("pk")  # the order grants are written in, the same in every transaction
    )


def _read(table: str, cursor_name: str, user_column: str) -> tuple[list[int], int, int, int]:
    """(distinct users, max id read, safe watermark, rows) for rows past the cursor."""
    position = ConsumerCursor.objects.get_or_create(name=cursor_name)[0].position
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            WITH batch AS (
                SELECT id, {user_column} AS user_id, created_at FROM {table}
                WHERE id > %s ORDER BY id LIMIT %s
            )
            SELECT coalesce(array_agg(DISTINCT user_id), '{{}}'), coalesce(max(id), 0),
                   coalesce(max(id) FILTER (WHERE created_at < %s), 0), count(*)
            FROM batch
            """,
            [position, BATCH, timezone.now() - SAFETY_LAG],
        )
        users, top, safe, rows = cursor.fetchone()
    safe = int(safe)
    if rows >= BATCH and safe <= position:
        # A full batch of rows younger than the lag: move on rather than re-read it forever.
        safe = int(top)
    return list(users), int(top), max(safe, position), int(rows)


def _advance(cursor_name: str, position: int) -> None:
    ConsumerCursor.objects.filter(name=cursor_name, position__lt=position).update(position=position)


def _likes(report: RunReport) -> None:
    users, top, safe, rows = _read(EVENT_TABLES["likes"]._meta.db_table, "likes", "user_id")
    report.rows["likes"] = rows
    if not rows:
        return
    position = ConsumerCursor.objects.get(name="likes").position
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(
                f"""
                INSERT INTO {ActivityEvent._meta.db_table}
                    (user_id, kind, source_id, video_id, data, created_at)
                SELECT l.user_id, 'liked_video', l.id, l.video_id,
                       jsonb_build_object('video_title', v.title, 'creator_id', v.creator_id,
                                          'creator', u.username),
                       l.created_at
                FROM {Like._meta.db_table} l
                JOIN {Video._meta.db_table} v ON v.id = l.video_id
                JOIN {User._meta.db_table} u ON u.id = v.creator_id
                WHERE l.id > %s AND l.id <= %s AND l.counted
                ON CONFLICT (kind, source_id) DO NOTHING
                """,
                [position, top],
            )
        for rule in _rules(LIKE_TRIGGERS):
            report.grants += rule_apply(rule, Scope(user_ids=users), source="event")
        creators = _creators_of_liked_videos(position, top)
        for rule in _rules((RewardRule.Trigger.VIDEO_LIKES,)):
            report.grants += rule_apply(rule, Scope(user_ids=creators), source="event")
        _advance("likes", safe)


def _creators_of_liked_videos(low: int, high: int) -> list[int]:
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT coalesce(array_agg(DISTINCT v.creator_id), '{{}}') "
            f"FROM {Like._meta.db_table} l JOIN {Video._meta.db_table} v ON v.id = l.video_id "
            f"WHERE l.id > %s AND l.id <= %s",
            [low, high],
        )
        return list(cursor.fetchone()[0])


def _rows_touching_users(
    table: str, name: str, triggers: tuple[str, ...]
) -> Callable[[RunReport], None]:
    """A source whose new rows affect only the rules of `triggers`, for the users who wrote them."""

    def step(report: RunReport) -> None:
        users, _top, safe, rows = _read(table, name, "user_id")
        report.rows[name] = rows
        if not rows:
            return
        with transaction.atomic():
            for rule in _rules(triggers):
                report.grants += rule_apply(rule, Scope(user_ids=users), source="event")
            _advance(name, safe)

    return step


# Liking comments under a video with a comment_pick sticker is taking part in it.
_comment_likes = _rows_touching_users(
    EVENT_TABLES["comment_likes"]._meta.db_table, "comment_likes", PARTICIPATION_TRIGGERS
)
_votes = _rows_touching_users(EVENT_TABLES["votes"]._meta.db_table, "votes", PARTICIPATION_TRIGGERS)
_answers = _rows_touching_users(EVENT_TABLES["answers"]._meta.db_table, "answers", ANSWER_TRIGGERS)


def _finals(report: RunReport) -> None:
    """Stickers that became final: winning ending voters (feed + winning_ending rules)."""
    cursor_row = ConsumerCursor.objects.get_or_create(name=FINALS)[0]
    since = datetime.fromtimestamp(cursor_row.position / 1_000_000, tz=UTC)
    now = timezone.now()
    finals = list(
        Sticker.objects.filter(
            state=Sticker.State.FINAL, kind=Sticker.Kind.ENDING, finalized_at__gt=since
        )
        .exclude(finalized_at__isnull=True)
        .values_list("id", "finalized_at")
    )
    report.rows[FINALS] = len(finals)
    if not finals:
        return
    sticker_ids = [sticker_id for sticker_id, _ in finals]
    # The feed entries first ("your vote chose the ending" comes before "you earned …"), then
    # the grants, in one transaction with the watermark.
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(
                f"""
                INSERT INTO {ActivityEvent._meta.db_table}
                    (user_id, kind, source_id, video_id, data, created_at)
                SELECT vt.user_id, 'vote_chose_ending', vt.id, s.video_id,
                       jsonb_build_object('video_title', v.title, 'sticker_id', s.id,
                                          'ending', o.label),
                       s.finalized_at
                FROM {Vote._meta.db_table} vt
                JOIN {Sticker._meta.db_table} s ON s.id = vt.sticker_id
                JOIN {Video._meta.db_table} v ON v.id = s.video_id
                JOIN {StickerOption._meta.db_table} o ON o.id = s.winner_option_id
                WHERE s.id = ANY(%s) AND vt.counted AND s.winner_option_id = ANY(vt.option_ids)
                ON CONFLICT (kind, source_id) DO NOTHING
                """,
                [sticker_ids],
            )
        for rule in _rules((RewardRule.Trigger.WINNING_ENDING,)):
            report.grants += rule_apply(rule, Scope(sticker_ids=sticker_ids), source="event")
        safe = [at for _, at in finals if at is not None and at < now - SAFETY_LAG]
        if safe:
            position = int(max(safe).timestamp() * 1_000_000)
            _advance(FINALS, position)


def reward_events_process() -> RunReport:
    """One pass of the consumer over every source. Safe to run concurrently and twice."""
    report = RunReport()
    with connection.cursor() as cursor:
        # One consumer at a time (across all workers); a second one simply skips this pass.
        cursor.execute("SELECT pg_try_advisory_lock(hashtext('rewards-consumer'))")
        if not cursor.fetchone()[0]:
            return report
    try:
        for step in (_likes, _comment_likes, _votes, _answers, _finals):
            step(report)
            if any(rows >= BATCH for rows in report.rows.values()):
                report.more = True
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(hashtext('rewards-consumer'))")
    return report
