"""The rewards consumer: reads the interaction and vote tables past its watermarks.

Written with the event-log kit (core.eventlog, docs/events.md). Woken after commits
(core.wakeups) and run by a periodic sweep, so a broker outage or a killed worker delays grants
but never loses them. Each run, per source table:
1. reads rows with id > watermark (bounded batch), collects the users they touch;
2. evaluates the rules that such a row can affect, restricted to those users (rules.rule_apply);
3. writes feed entries for new likes and winning ending votes (ON CONFLICT DO NOTHING);
4. advances the watermark, but only past rows older than SAFETY_LAG: a transaction that took an
   id earlier may commit a little later, so recent rows are read again next run. Re-reading is
   harmless (grants and feed entries are idempotent); skipping would not be.
Stickers that became final are read by `finalized_at` with the same lag. One consumer runs at a
time across all workers (an advisory lock); the others skip the pass.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from django.db import connection, transaction
from django.db.models import Model
from django.utils import timezone

from core.db import sql_literals
from core.eventlog import (
    EventBatch,
    consumer_lock,
    event_batch_read,
    time_safe,
    watermark_advance,
    watermark_advance_time,
    watermark_time,
)
from engagement.models import CommentLike, Like, User, Video
from polls.models import Answer, Sticker, StickerOption, Vote
from rewards.models import ActivityEvent, RewardRule
from rewards.services.rules import Scope, rule_apply

logger = logging.getLogger(__name__)

SAFETY_LAG = timedelta(seconds=5)
BATCH = 20_000

# The event tables read by id, by source; `finals` is the fifth source, read by time. Each has
# a watermark named "rewards:<source>" (core.models.Watermark). rewards.metrics reports how far
# each one trails.
EVENT_TABLES: dict[str, type[Model]] = {
    "likes": Like,
    "comment_likes": CommentLike,
    "votes": Vote,
    "answers": Answer,
}
FINALS = "finals"
# (the lock's name from before the kit: old and new workers keep excluding each other in a deploy)
CONSUMER_LOCK = "rewards-consumer"


def watermark_name(source: str) -> str:
    return f"rewards:{source}"


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


def _read(source: str) -> EventBatch:
    """The source's rows past its watermark, with the distinct users who wrote them."""
    return event_batch_read(
        table=EVENT_TABLES[source]._meta.db_table,
        watermark=watermark_name(source),
        columns=["user_id"],
        safety_lag=SAFETY_LAG,
        limit=BATCH,
    )


def _likes(report: RunReport) -> None:
    batch = _read("likes")
    report.rows["likes"] = batch.rows
    if not batch.rows:
        return
    users = batch.distinct["user_id"]
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(
                f"""
                INSERT INTO {ActivityEvent._meta.db_table}
                    (user_id, kind, source_id, video_id, data, created_at)
                SELECT l.user_id, {sql_literals([ActivityEvent.Kind.LIKED_VIDEO])}, l.id,
                       l.video_id,
                       jsonb_build_object('video_title', v.title, 'creator_id', v.creator_id,
                                          'creator', u.username),
                       l.created_at
                FROM {Like._meta.db_table} l
                JOIN {Video._meta.db_table} v ON v.id = l.video_id
                JOIN {User._meta.db_table} u ON u.id = v.creator_id
                WHERE l.id > %s AND l.id <= %s AND l.counted
                ON CONFLICT (kind, source_id) DO NOTHING
                """,
                [batch.start, batch.top],
            )
        for rule in _rules(LIKE_TRIGGERS):
            report.grants += rule_apply(rule, Scope(user_ids=users), source="event")
        creators = _creators_of_liked_videos(batch.start, batch.top)
        for rule in _rules((RewardRule.Trigger.VIDEO_LIKES,)):
            report.grants += rule_apply(rule, Scope(user_ids=creators), source="event")
        watermark_advance(watermark_name("likes"), batch.safe)


def _creators_of_liked_videos(low: int, high: int) -> list[int]:
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT coalesce(array_agg(DISTINCT v.creator_id), '{{}}') "
            f"FROM {Like._meta.db_table} l JOIN {Video._meta.db_table} v ON v.id = l.video_id "
            f"WHERE l.id > %s AND l.id <= %s",
            [low, high],
        )
        return list(cursor.fetchone()[0])


def _rows_touching_users(source: str, triggers: tuple[str, ...]) -> Callable[[RunReport], None]:
    """A source whose new rows affect only the rules of `triggers`, for the users who wrote them."""

    def step(report: RunReport) -> None:
        batch = _read(source)
        report.rows[source] = batch.rows
        if not batch.rows:
            return
        scope = Scope(user_ids=batch.distinct["user_id"])
        with transaction.atomic():
            for rule in _rules(triggers):
                report.grants += rule_apply(rule, scope, source="event")
            watermark_advance(watermark_name(source), batch.safe)

    return step


# Liking comments under a video with a comment_pick sticker is taking part in it.
_comment_likes = _rows_touching_users("comment_likes", PARTICIPATION_TRIGGERS)
_votes = _rows_touching_users("votes", PARTICIPATION_TRIGGERS)
_answers = _rows_touching_users("answers", ANSWER_TRIGGERS)


def _finals(report: RunReport) -> None:
    """Stickers that became final: winning ending voters (feed + winning_ending rules)."""
    since = watermark_time(watermark_name(FINALS))
    read_at = timezone.now()
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
                SELECT vt.user_id, {sql_literals([ActivityEvent.Kind.VOTE_CHOSE_ENDING])}, vt.id,
                       s.video_id,
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
        times = [at for _, at in finals if at is not None]
        safe = time_safe(times, safety_lag=SAFETY_LAG, read_at=read_at)
        if safe is not None:
            watermark_advance_time(watermark_name(FINALS), safe)


def reward_events_process() -> RunReport:
    """One pass of the consumer over every source. Safe to run concurrently and twice."""
    report = RunReport()
    # One consumer at a time (across all workers); a second one simply skips this pass.
    with consumer_lock(CONSUMER_LOCK) as taken:
        if not taken:
            return report
        for step in (_likes, _comment_likes, _votes, _answers, _finals):
            step(report)
            if any(rows >= BATCH for rows in report.rows.values()):
                report.more = True
    return report
