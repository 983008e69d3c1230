"""Live tallies: debounced, set-based aggregation of the committed votes.

Live results are never counted on the write path. A committed vote marks its sticker's tally
dirty and schedules a refresh; at most one refresh task is enqueued at a time (a Redis flag),
and the tallies worker recomputes the whole tally of every dirty sticker with one GROUP BY over
their counted votes. Votes committed while a refresh runs schedule the next one, so live
results trail the committed votes by about one aggregation (plus the task's wait in its queue).
A periodic sweep refreshes any open sticker whose newest vote is newer than its tally, so
nothing depends on the flag or the broker being there at commit time.

Final results are polls.services.finalizing's; both rank by the same tie rule
(`TIE_RULE_ORDER`).
"""

import logging
import time
from datetime import datetime
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django.utils import timezone
from django_redis import get_redis_connection

from core.db import sql_literals
from core.enqueue import enqueue_flag_clear, enqueue_flag_key, enqueue_now, task_send
from engagement.models import Comment
from polls.models import VOTABLE_KINDS, Sticker, StickerOption, StickerTally, Vote
from polls.services.results_cache import tallies_store
from polls.state import TERMINAL

logger = logging.getLogger(__name__)

LEADERBOARD_SIZE = 10
REFRESH_FLAG_TTL = 10

# Stickers whose live tally is due for a refresh: a sorted set, sticker id -> time of its latest
# mark. A mark may be made before the vote it announces commits (it is sent in the request's
# throttle round trip): a sticker stays in the set, refreshed every cycle, until a refresh has
# started TALLY_MARK_GRACE_SECONDS after its latest mark, so a vote committing within that grace
# of its mark is always counted.
DIRTY_SET = "polls:tally-marks"
REFRESH_FLAG = "polls:tally-refresh-queued"  # the once-key of core.enqueue
# Enqueued by name (core.enqueue): services do not import the tasks that call them.
REFRESH_TASK = "polls.tasks.refresh_dirty_tallies"

# The tie rule, over an aggregate `t` (votes, reached_at) of the options `o`: among options with
# the same count, the one that reached it first wins (its last counted vote is oldest); if that
# is equal too, the lower position.
TIE_RULE_ORDER = "COALESCE(t.votes, 0) DESC, t.reached_at ASC NULLS LAST, o.position ASC"

# Every option of many stickers with its counted votes, in rank order per sticker:
# (sticker, option, votes, reached_at).
RANKED_OPTIONS_MANY_SQL = f"""
    SELECT o.sticker_id, o.id, COALESCE(t.votes, 0), t.reached_at
    FROM {StickerOption._meta.db_table} o
    LEFT JOIN (
        SELECT v.sticker_id, choice.option_id, count(*) AS votes, max(v.voted_at) AS reached_at
        FROM {Vote._meta.db_table} v
        CROSS JOIN LATERAL unnest(v.option_ids) AS choice(option_id)
        WHERE v.sticker_id = ANY(%(stickers)s) AND v.counted
        GROUP BY v.sticker_id, choice.option_id
    ) t ON t.option_id = o.id
    WHERE o.sticker_id = ANY(%(stickers)s)
    ORDER BY o.sticker_id, {TIE_RULE_ORDER}
"""
# How many users' votes count, per sticker: (sticker, voters).
VOTERS_MANY_SQL = f"""
    SELECT sticker_id, count(*) FROM {Vote._meta.db_table}
    WHERE sticker_id = ANY(%(stickers)s) AND counted GROUP BY sticker_id
"""
# Open or closed (not yet final) votable stickers with a vote newer than their live tally.
STALE_TALLIES_SQL = f"""
    SELECT s.id FROM {Sticker._meta.db_table} s
    LEFT JOIN {StickerTally._meta.db_table} t ON t.sticker_id = s.id
    WHERE s.state IN ({sql_literals([Sticker.State.OPEN, Sticker.State.CLOSED])})
      AND s.kind IN ({sql_literals(VOTABLE_KINDS)})
      AND EXISTS (
        SELECT 1 FROM {Vote._meta.db_table} v
        WHERE v.sticker_id = s.id AND (t.as_of IS NULL OR v.voted_at > t.as_of)
      )
"""


def iso_time(value: datetime | None) -> str | None:
    """A tally's times as the API shows them (ISO 8601, `Z`)."""
    return value.isoformat().replace("+00:00", "Z") if value else None


def _redis_key(name: str) -> str:
    return cache.make_key(name)


def tally_mark_stage(pipe: Any, sticker_id: int) -> None:
    """Stage the mark of a sticker on a Redis pipeline (its replies: see `tally_mark_sent`)."""
    pipe.zadd(_redis_key(DIRTY_SET), {str(sticker_id): time.time()}, gt=True)
    pipe.set(enqueue_flag_key(REFRESH_FLAG), 1, nx=True, ex=REFRESH_FLAG_TTL)


def tally_mark_sent(replies: list[Any]) -> None:
    """After the pipeline ran, with its two replies: enqueue a refresh if none was enqueued.

    Sent now, not after commit: the vote path has no transaction (the vote is one statement,
    which may not even have run yet); the mark's grace (TALLY_MARK_GRACE_SECONDS) is what
    makes a refresh see it. The flag was set on the pipeline, so this costs no round trip.
    """
    if replies[1]:
        _refresh_send()


def tally_refresh_schedule(*, sticker_id: int) -> None:
    """Mark the sticker's live tally dirty in a round trip of its own (call after commit).

    At most one refresh task is enqueued at a time, a short debounce later, and it refreshes
    every dirty sticker with one aggregation. A burst of votes on one sticker, or on thousands,
    costs one refresh per cycle.
    """
    try:
        pipe = get_redis_connection("default").pipeline(transaction=False)
        tally_mark_stage(pipe, sticker_id)
        replies = pipe.execute()
    except Exception:  # Redis down: the periodic sweep catches up
        logger.warning("could not flag tally refresh for sticker %s", sticker_id)
        return
    tally_mark_sent(replies)


def _refresh_send() -> None:
    """Send the refresh whose flag the caller set (cleared again if the broker is down)."""
    task_send(REFRESH_TASK, countdown=settings.TALLY_DEBOUNCE_SECONDS, once_key=REFRESH_FLAG)


def tallies_refresh_dirty() -> list[int]:
    """Refresh every dirty sticker (the task behind the marks); enqueue the next cycle while
    some are still within their grace."""
    connection_ = get_redis_connection("default")
    key = _redis_key(DIRTY_SET)
    started = time.time()
    # Clear the flag before reading the set: a mark made after this enqueues the next run.
    enqueue_flag_clear(REFRESH_FLAG)
    sticker_ids = sorted(int(value) for value in connection_.zrange(key, 0, -1))
    tallies_refresh(sticker_ids)
    # Marks older than the grace before this run started: every vote they announced was
    # committed when the aggregation took its snapshot. Newer marks stay for another cycle.
    connection_.zremrangebyscore(key, "-inf", started - settings.TALLY_MARK_GRACE_SECONDS)
    if connection_.zcard(key):
        enqueue_now(
            REFRESH_TASK,
            countdown=settings.TALLY_DEBOUNCE_SECONDS,
            once_key=REFRESH_FLAG,
            once_ttl=REFRESH_FLAG_TTL,
        )
    return sticker_ids


def sticker_tally_refresh(*, sticker_id: int) -> dict[str, Any] | None:
    """Recompute one sticker's live tally now."""
    return tallies_refresh([sticker_id]).get(sticker_id)


def tallies_refresh(
    sticker_ids: list[int], *, store_on_commit: bool = False
) -> dict[int, dict[str, Any]]:
    """Recompute the live tallies of these stickers from the rows, with one aggregation for all
    votable ones; store them in PostgreSQL (StickerTally) and Redis. Stickers in a terminal
    state (final, canceled, moderated) are skipped.

    `store_on_commit`: for a caller whose transaction changed the rows (a flip of `counted`), the
    Redis copies are stored once it commits, so a rollback leaves no tally nobody committed.
    """
    stickers = list(
        Sticker.objects.filter(pk__in=sticker_ids)
        .exclude(state__in=TERMINAL)
        .only("id", "kind", "video_id", "state")
    )
    if not stickers:
        return {}
    as_of = timezone.now()
    votable = [sticker.pk for sticker in stickers if sticker.kind in VOTABLE_KINDS]
    rows: dict[int, list[tuple[int, int, datetime | None]]] = {}
    totals: dict[int, int] = {}
    if votable:
        with transaction.atomic(), connection.cursor() as cursor:
            # Small aggregations: starting parallel workers costs more than it saves.
            cursor.execute("SET LOCAL max_parallel_workers_per_gather = 0")
            cursor.execute(RANKED_OPTIONS_MANY_SQL, {"stickers": votable})
            for sticker_id, option_id, votes, reached_at in cursor.fetchall():
                rows.setdefault(sticker_id, []).append((option_id, votes, reached_at))
            cursor.execute(VOTERS_MANY_SQL, {"stickers": votable})
            totals = dict(cursor.fetchall())
    for sticker in stickers:
        if sticker.kind == Sticker.Kind.COMMENT_PICK:
            leaders = list(
                Comment.objects.filter(video_id=sticker.video_id, counted=True, like_count__gt=0)
                .order_by("-like_count", "id")
                .values_list("id", "like_count")[:LEADERBOARD_SIZE]
            )
            rows[sticker.pk] = [(comment_id, likes, None) for comment_id, likes in leaders]
            totals[sticker.pk] = sum(likes for _, likes in leaders)
    tallies: dict[int, dict[str, Any]] = {}
    for sticker_id, entries in rows.items():
        tallies[sticker_id] = {
            "as_of": iso_time(as_of),
            "total_votes": totals.get(sticker_id, 0),
            "entries": [
                {"id": target, "votes": votes, "reached_at": iso_time(reached_at)}
                for target, votes, reached_at in entries
            ],
            "final": False,
        }
    StickerTally.objects.bulk_create(
        [
            StickerTally(
                sticker_id=sticker_id,
                as_of=as_of,
                total_votes=tally["total_votes"],
                entries=tally["entries"],
            )
            for sticker_id, tally in tallies.items()
        ],
        update_conflicts=True,
        unique_fields=["sticker"],
        update_fields=["as_of", "total_votes", "entries"],
    )
    if store_on_commit:
        transaction.on_commit(lambda: tallies_store(tallies))
    else:
        tallies_store(tallies)
    return tallies


def tallies_sweep() -> list[int]:
    """Refresh every open votable sticker whose newest vote is newer than its tally."""
    with connection.cursor() as cursor:
        cursor.execute(STALE_TALLIES_SQL)
        stale = [row[0] for row in cursor.fetchall()]
    for sticker_id in stale:
        tally_refresh_schedule(sticker_id=sticker_id)
    return stale
