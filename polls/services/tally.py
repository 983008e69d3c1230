"""Tallies: live (debounced set-based aggregation), final (exact, once) and recounts.

Live results are never counted on the write path. A committed vote asks for a refresh; at most
one refresh per sticker is queued at a time (a Redis flag), and the tallies worker recomputes
the whole tally with one GROUP BY over the sticker's counted votes. Votes committed while a
refresh runs queue the next one, so live results trail the committed votes by about one
aggregation (plus queueing). A periodic sweep refreshes any open sticker whose newest vote is
newer than its tally, so nothing depends on the flag or the broker being there at commit time.

Final results are computed when a sticker closes: in one transaction holding the sticker's row
lock, one INSERT … SELECT writes the ranked StickerResult rows from the vote rows, and the
sticker becomes `final`. Running it again on a final sticker does nothing; a crash rolls it back.

Tie rule: among options (or comments) with the same count, the one that reached that count first
wins, i.e. the one whose last counted vote (like) is oldest; if that is equal too, the lower
option position (or comment id) wins.
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

from core.enqueue import (
    enqueue_flag_clear,
    enqueue_flag_key,
    enqueue_now,
    enqueue_on_commit,
    task_send,
)
from core.wakeups import wake
from engagement.models import Comment, CommentLike
from polls.models import Sticker, StickerOption, StickerResult, StickerTally, Vote
from polls.services.cache import sticker_cache_forget, tallies_store, tally_store

logger = logging.getLogger(__name__)

LEADERBOARD_SIZE = 10
FINAL_LEADERBOARD_SIZE = 100
REFRESH_FLAG_TTL = 10

VOTABLE = (Sticker.Kind.POLL, Sticker.Kind.ENDING)

_OPTION_AGGREGATE = f"""
    SELECT choice.option_id, count(*) AS votes, max(v.voted_at) AS reached_at
    FROM {Vote._meta.db_table} v
    CROSS JOIN LATERAL unnest(v.option_ids) AS choice(option_id)
    WHERE v.sticker_id = %(sticker)s AND v.counted
    GROUP BY choice.option_id
"""
_RANKED_OPTIONS = f"""
    SELECT o.id AS option_id, COALESCE(t.votes, 0) AS votes, t.reached_at,
           row_number() OVER (
               ORDER BY COALESCE(t.votes, 0) DESC, t.reached_at ASC NULLS LAST, o.position ASC
           ) AS rank
    FROM {StickerOption._meta.db_table} o
    LEFT JOIN ({_OPTION_AGGREGATE}) t ON t.option_id = o.id
    WHERE o.sticker_id = %(sticker)s
"""
_RANKED_COMMENTS = f"""
    SELECT c.id AS comment_id, count(*) AS votes, max(cl.created_at) AS reached_at,
           row_number() OVER (ORDER BY count(*) DESC, max(cl.created_at) ASC, c.id ASC) AS rank
    FROM {CommentLike._meta.db_table} cl
    JOIN {Comment._meta.db_table} c ON c.id = cl.comment_id
    WHERE c.video_id = %(video)s AND c.counted AND cl.counted
      AND cl.created_at < %(cutoff)s AND c.created_at < %(cutoff)s
    GROUP BY c.id
"""
_VOTERS = f"SELECT count(*) FROM {Vote._meta.db_table} WHERE sticker_id = %(sticker)s AND counted"
# The same for many stickers at once: (sticker, option, votes, reached_at) in rank order.
_RANKED_OPTIONS_MANY = f"""
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
    ORDER BY o.sticker_id, COALESCE(t.votes, 0) DESC, t.reached_at ASC NULLS LAST, o.position ASC
"""
_VOTERS_MANY = f"""
    SELECT sticker_id, count(*) FROM {Vote._meta.db_table}
    WHERE sticker_id = ANY(%(stickers)s) AND counted GROUP BY sticker_id
"""


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


# --- live ------------------------------------------------------------------------------------
def _redis_key(name: str) -> str:
    return cache.make_key(name)


# Stickers whose live tally is due for a refresh: a sorted set, sticker id -> time of its latest
# mark. A mark may be made before the vote it announces commits (it rides on the request's
# throttle round trip): a sticker stays in the set, refreshed every cycle, until a refresh has
# started TALLY_MARK_GRACE_SECONDS after its latest mark, so a vote committing within that grace
# of its mark is always counted.
DIRTY_SET = "polls:tally-marks"
REFRESH_FLAG = "polls:tally-refresh-queued"  # the once-key of core.enqueue
# Queued by name (core.enqueue): services do not import the tasks that call them.
REFRESH_TASK = "polls.tasks.refresh_dirty_tallies"
FINALIZE_TASK = "polls.tasks.finalize_sticker"


def tally_mark_queue(pipe: Any, sticker_id: int) -> None:
    """Add the mark of a sticker to a Redis pipeline (its replies: see `tally_mark_sent`)."""
    pipe.zadd(_redis_key(DIRTY_SET), {str(sticker_id): time.time()}, gt=True)
    pipe.set(enqueue_flag_key(REFRESH_FLAG), 1, nx=True, ex=REFRESH_FLAG_TTL)


def tally_mark_sent(replies: list[Any]) -> None:
    """After the pipeline ran, with its two replies: queue a refresh if none was queued.

    Sent now, not after commit: the vote path has no transaction (the vote is one statement,
    which may not even have run yet); the mark's grace (TALLY_MARK_GRACE_SECONDS) is what
    makes a refresh see it. The flag was claimed on the pipeline, so this costs no round trip.
    """
    if replies[1]:
        _refresh_queue()


def tally_request(*, sticker_id: int) -> None:
    """Ask for a live refresh in a round trip of its own (call after commit).

    The sticker is marked dirty; at most one refresh task is queued at a time, a short debounce
    later, and it refreshes every dirty sticker with one aggregation. A burst of votes on one
    sticker, or on thousands, costs one refresh per cycle.
    """
    try:
        pipe = get_redis_connection("default").pipeline(transaction=False)
        tally_mark_queue(pipe, sticker_id)
        replies = pipe.execute()
    except Exception:  # Redis down: the periodic sweep catches up
        logger.warning("could not flag tally refresh for sticker %s", sticker_id)
        return
    tally_mark_sent(replies)


def _refresh_queue() -> None:
    """Send the refresh whose flag the caller claimed (cleared again if the broker is down)."""
    task_send(REFRESH_TASK, countdown=settings.TALLY_DEBOUNCE_SECONDS, once_key=REFRESH_FLAG)


def tallies_refresh_dirty() -> list[int]:
    """Refresh every dirty sticker (the task behind the marks); queue the next cycle while
    some are still within their grace."""
    connection_ = get_redis_connection("default")
    key = _redis_key(DIRTY_SET)
    started = time.time()
    # Clear the flag before reading the set: a mark made after this queues the next run.
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
    votable ones; store them in PostgreSQL (StickerTally) and Redis. Final stickers are skipped.

    `store_on_commit`: for a caller whose transaction changed the rows (a flip of `counted`), the
    Redis copies are stored once it commits, so a rollback leaves no tally nobody committed.
    """
    stickers = list(
        Sticker.objects.filter(pk__in=sticker_ids)
        .exclude(state__in=[Sticker.State.FINAL, Sticker.State.CANCELED, Sticker.State.MODERATED])
        .only("id", "kind", "video_id", "state")
    )
    if not stickers:
        return {}
    as_of = timezone.now()
    votable = [sticker.pk for sticker in stickers if sticker.kind in VOTABLE]
    rows: dict[int, list[tuple[int, int, datetime | None]]] = {}
    totals: dict[int, int] = {}
    if votable:
        with transaction.atomic(), connection.cursor() as cursor:
            # Small aggregations: starting parallel workers costs more than it saves.
            cursor.execute("SET LOCAL max_parallel_workers_per_gather = 0")
            cursor.execute(_RANKED_OPTIONS_MANY, {"stickers": votable})
            for sticker_id, option_id, votes, reached_at in cursor.fetchall():
                rows.setdefault(sticker_id, []).append((option_id, votes, reached_at))
            cursor.execute(_VOTERS_MANY, {"stickers": votable})
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
            "as_of": _iso(as_of),
            "total_votes": totals.get(sticker_id, 0),
            "entries": [
                {"id": target, "votes": votes, "reached_at": _iso(reached_at)}
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
        cursor.execute(
            f"""
            SELECT s.id FROM {Sticker._meta.db_table} s
            LEFT JOIN {StickerTally._meta.db_table} t ON t.sticker_id = s.id
            WHERE s.state IN ('open', 'closed') AND s.kind IN ('poll', 'ending')
              AND EXISTS (
                SELECT 1 FROM {Vote._meta.db_table} v
                WHERE v.sticker_id = s.id AND (t.as_of IS NULL OR v.voted_at > t.as_of)
              )
            """
        )
        stale = [row[0] for row in cursor.fetchall()]
    for sticker_id in stale:
        tally_request(sticker_id=sticker_id)
    return stale


def tally_load(*, sticker: Sticker, version: int | None = None) -> dict[str, Any]:
    """The tally a results read shows: final rows when final, else the live tally."""
    if sticker.state == Sticker.State.FINAL:
        results = list(StickerResult.objects.filter(sticker=sticker).order_by("rank"))
        tally = {
            "as_of": _iso(sticker.finalized_at),
            "total_votes": sticker.total_votes or 0,
            "entries": [
                {
                    "id": result.option_id or result.comment_id,
                    "votes": result.votes,
                    "reached_at": _iso(result.reached_at),
                }
                for result in results
            ],
            "final": True,
        }
        tally_store(sticker.pk, tally, version)
        return tally
    live = StickerTally.objects.filter(sticker=sticker).first()
    if live is None:
        tally_request(sticker_id=sticker.pk)
        return {"as_of": None, "total_votes": 0, "entries": [], "final": False}
    tally = {
        "as_of": _iso(live.as_of),
        "total_votes": live.total_votes,
        "entries": live.entries,
        "final": False,
    }
    tally_store(sticker.pk, tally, version)
    return tally


# --- closing and final results ---------------------------------------------------------------
def stickers_open_due() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            UPDATE {Sticker._meta.db_table} SET state = 'open', updated_at = now()
            WHERE state = 'scheduled' AND opens_at <= now()
              AND (closes_at IS NULL OR closes_at > now())
            RETURNING id
            """
        )
        opened = [row[0] for row in cursor.fetchall()]
    for sticker_id in opened:
        sticker_cache_forget(sticker_id)
    return len(opened)


def stickers_close_due() -> list[int]:
    """Close every sticker whose closes_at has passed; returns the ids awaiting finalization."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            UPDATE {Sticker._meta.db_table}
            SET state = 'closed', closed_at = closes_at, updated_at = now()
            WHERE state IN ('scheduled', 'open') AND closes_at <= now()
            RETURNING id
            """
        )
        for (sticker_id,) in cursor.fetchall():
            sticker_cache_forget(sticker_id)
        cursor.execute(f"SELECT id FROM {Sticker._meta.db_table} WHERE state = 'closed'")
        return [row[0] for row in cursor.fetchall()]


@transaction.atomic
def sticker_finalize(*, sticker_id: int) -> bool:
    """Compute the exact final result of a closed sticker. False when there was nothing to do."""
    sticker = Sticker.objects.select_for_update().filter(pk=sticker_id).first()
    if sticker is None or sticker.state != Sticker.State.CLOSED:
        return False
    _results_write(sticker)
    sticker.state = Sticker.State.FINAL
    sticker.finalized_at = timezone.now()
    sticker.save(
        update_fields=[
            "state",
            "finalized_at",
            "total_votes",
            "winner_option",
            "winner_comment",
            "updated_at",
        ]
    )
    transaction.on_commit(lambda: sticker_cache_forget(sticker_id))
    wake("stickers_final")
    return True


def _results_write(sticker: Sticker) -> None:
    """(Re)write StickerResult rows, total_votes and the winner, all in SQL."""
    table = StickerResult._meta.db_table
    StickerResult.objects.filter(sticker=sticker).delete()
    sticker.total_votes = 0
    sticker.winner_option = None
    sticker.winner_comment = None
    with connection.cursor() as cursor:
        if sticker.kind in VOTABLE:
            cursor.execute(
                f"INSERT INTO {table} (sticker_id, option_id, comment_id, votes, reached_at, rank) "
                f"SELECT %(sticker)s, option_id, NULL, votes, reached_at, rank "
                f"FROM ({_RANKED_OPTIONS}) ranked",
                {"sticker": sticker.pk},
            )
            cursor.execute(_VOTERS, {"sticker": sticker.pk})
            sticker.total_votes = cursor.fetchone()[0]
            cursor.execute(
                f"SELECT option_id FROM {table} WHERE sticker_id = %s AND rank = 1 AND votes > 0",
                [sticker.pk],
            )
            row = cursor.fetchone()
            sticker.winner_option_id = row[0] if row else None
        elif sticker.kind == Sticker.Kind.COMMENT_PICK:
            cutoff = sticker.closed_at or sticker.closes_at or timezone.now()
            cursor.execute(
                f"INSERT INTO {table} (sticker_id, option_id, comment_id, votes, reached_at, rank) "
                f"SELECT %(sticker)s, NULL, comment_id, votes, reached_at, rank "
                f"FROM ({_RANKED_COMMENTS}) ranked WHERE rank <= {FINAL_LEADERBOARD_SIZE}",
                {"sticker": sticker.pk, "video": sticker.video_id, "cutoff": cutoff},
            )
            cursor.execute(
                f"SELECT comment_id FROM {table} WHERE sticker_id = %s ORDER BY rank LIMIT 1",
                [sticker.pk],
            )
            row = cursor.fetchone()
            sticker.winner_comment_id = row[0] if row else None
            cursor.execute(
                f"SELECT count(*) FROM {CommentLike._meta.db_table} cl "
                f"JOIN {Comment._meta.db_table} c ON c.id = cl.comment_id "
                f"WHERE c.video_id = %s AND c.counted AND cl.counted AND cl.created_at < %s "
                f"AND c.created_at < %s",
                [sticker.video_id, cutoff, cutoff],
            )
            sticker.total_votes = cursor.fetchone()[0]


@transaction.atomic
def sticker_recount(*, sticker_id: int) -> bool:
    """Recompute from the rows after `counted` flags changed: final results, or the live tally."""
    sticker = Sticker.objects.select_for_update().filter(pk=sticker_id).first()
    if sticker is None:
        return False
    if sticker.state == Sticker.State.FINAL:
        _results_write(sticker)
        sticker.save(update_fields=["total_votes", "winner_option", "winner_comment", "updated_at"])
        transaction.on_commit(lambda: sticker_cache_forget(sticker_id))
    else:
        transaction.on_commit(lambda: tally_request(sticker_id=sticker_id))
    return True


# A closed sticker's finalization is queued again this long after the last time (the closing
# sweep asks every CLOSE_SWEEP_SECONDS): a task lost with a killed worker, whose message waits
# for the broker's visibility timeout, is replaced within seconds. A duplicate finds the
# sticker final and does nothing. (The task does not clear this flag: it expires.)
FINALIZE_REQUEUE_SECONDS = 8


def finalize_request(*, sticker_id: int) -> None:
    """Queue finalization after commit, unless queued in the last FINALIZE_REQUEUE_SECONDS."""
    enqueue_on_commit(
        FINALIZE_TASK,
        sticker_id,
        once_key=f"polls:finalize-queued:{sticker_id}",
        once_ttl=FINALIZE_REQUEUE_SECONDS,
    )
