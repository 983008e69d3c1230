"""Final results: computed exactly, once, when a sticker has closed; rewritten by a recount.

In one transaction holding the sticker's row lock, one INSERT … SELECT writes the ranked
StickerResult rows from the vote rows (comment likes for comment_pick), and the sticker becomes
`final`. Running it again on a final sticker does nothing; a crash rolls it back. A recount
(after `counted` flags changed) rewrites a final sticker's results the same way, or schedules
a refresh of a live one's tally.

Tie rule: among options (or comments) with the same count, the one that reached that count first
wins, i.e. the one whose last counted vote (like) is oldest; if that is equal too, the lower
option position (or comment id) wins.
"""

from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from core.enqueue import enqueue_on_commit
from core.wakeups import wake
from engagement.models import Comment, CommentLike
from polls.locks import sticker_for_update
from polls.models import VOTABLE_KINDS, Sticker, StickerOption, StickerResult, Vote
from polls.services.results_cache import sticker_cache_forget
from polls.services.tallies import TIE_RULE_ORDER, tally_refresh_schedule

FINAL_LEADERBOARD_SIZE = 100
# Enqueued by name (core.enqueue): services do not import the tasks that call them.
FINALIZE_TASK = "polls.tasks.finalize_sticker"
# A closed sticker's finalization is enqueued again this long after the last time (the closing
# sweep asks every CLOSE_SWEEP_SECONDS): a task lost with a killed worker, whose message waits
# for the broker's visibility timeout, is replaced within seconds. A duplicate finds the
# sticker final and does nothing. (The task does not clear this flag: it expires.)
FINALIZE_REQUEUE_SECONDS = 8

_RESULT = StickerResult._meta.db_table
_COUNTED_OPTION_VOTES = f"""
    SELECT choice.option_id, count(*) AS votes, max(v.voted_at) AS reached_at
    FROM {Vote._meta.db_table} v
    CROSS JOIN LATERAL unnest(v.option_ids) AS choice(option_id)
    WHERE v.sticker_id = %(sticker)s AND v.counted
    GROUP BY choice.option_id
"""
_RANKED_OPTIONS = f"""
    SELECT o.id AS option_id, COALESCE(t.votes, 0) AS votes, t.reached_at,
           row_number() OVER (ORDER BY {TIE_RULE_ORDER}) AS rank
    FROM {StickerOption._meta.db_table} o
    LEFT JOIN ({_COUNTED_OPTION_VOTES}) t ON t.option_id = o.id
    WHERE o.sticker_id = %(sticker)s
"""
# Counted likes of the video's counted comments, made before the cutoff (when it closed).
_COUNTED_COMMENT_LIKES = f"""
    FROM {CommentLike._meta.db_table} cl
    JOIN {Comment._meta.db_table} c ON c.id = cl.comment_id
    WHERE c.video_id = %(video)s AND c.counted AND cl.counted
      AND cl.created_at < %(cutoff)s AND c.created_at < %(cutoff)s
"""
_RANKED_COMMENTS = f"""
    SELECT c.id AS comment_id, count(*) AS votes, max(cl.created_at) AS reached_at,
           row_number() OVER (ORDER BY count(*) DESC, max(cl.created_at) ASC, c.id ASC) AS rank
    {_COUNTED_COMMENT_LIKES}
    GROUP BY c.id
"""
_RESULT_COLUMNS = "(sticker_id, option_id, comment_id, votes, reached_at, rank)"

# The named statements of a final result.
OPTION_RESULTS_INSERT_SQL = (
    f"INSERT INTO {_RESULT} {_RESULT_COLUMNS} "
    f"SELECT %(sticker)s, option_id, NULL, votes, reached_at, rank FROM ({_RANKED_OPTIONS}) ranked"
)
VOTERS_SQL = (
    f"SELECT count(*) FROM {Vote._meta.db_table} WHERE sticker_id = %(sticker)s AND counted"
)
WINNER_OPTION_SQL = (
    f"SELECT option_id FROM {_RESULT} WHERE sticker_id = %(sticker)s AND rank = 1 AND votes > 0"
)
COMMENT_RESULTS_INSERT_SQL = (
    f"INSERT INTO {_RESULT} {_RESULT_COLUMNS} "
    f"SELECT %(sticker)s, NULL, comment_id, votes, reached_at, rank "
    f"FROM ({_RANKED_COMMENTS}) ranked WHERE rank <= {FINAL_LEADERBOARD_SIZE}"
)
WINNER_COMMENT_SQL = (
    f"SELECT comment_id FROM {_RESULT} WHERE sticker_id = %(sticker)s ORDER BY rank LIMIT 1"
)
COMMENT_LIKES_COUNT_SQL = f"SELECT count(*) {_COUNTED_COMMENT_LIKES}"


@transaction.atomic
def sticker_finalize(*, sticker_id: int) -> bool:
    """Compute the exact final result of a closed sticker. False when there was nothing to do."""
    sticker = sticker_for_update(sticker_id)
    if sticker is None or sticker.state != Sticker.State.CLOSED:
        return False
    final_results_write(sticker)
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


def final_results_write(sticker: Sticker) -> None:
    """(Re)write a sticker's StickerResult rows, total_votes and winner, all in SQL; the caller
    holds the sticker's row lock and saves the sticker."""
    StickerResult.objects.filter(sticker=sticker).delete()
    sticker.total_votes = 0
    sticker.winner_option = None
    sticker.winner_comment = None
    with connection.cursor() as cursor:
        params: dict[str, Any] = {"sticker": sticker.pk}
        if sticker.kind in VOTABLE_KINDS:
            cursor.execute(OPTION_RESULTS_INSERT_SQL, params)
            cursor.execute(VOTERS_SQL, params)
            sticker.total_votes = cursor.fetchone()[0]
            cursor.execute(WINNER_OPTION_SQL, params)
            row = cursor.fetchone()
            sticker.winner_option_id = row[0] if row else None
        elif sticker.kind == Sticker.Kind.COMMENT_PICK:
            cutoff = sticker.closed_at or sticker.closes_at or timezone.now()
            params.update(video=sticker.video_id, cutoff=cutoff)
            cursor.execute(COMMENT_RESULTS_INSERT_SQL, params)
            cursor.execute(WINNER_COMMENT_SQL, params)
            row = cursor.fetchone()
            sticker.winner_comment_id = row[0] if row else None
            cursor.execute(COMMENT_LIKES_COUNT_SQL, params)
            sticker.total_votes = cursor.fetchone()[0]


@transaction.atomic
def sticker_recount(*, sticker_id: int) -> bool:
    """Recompute from the rows after `counted` flags changed: final results, or the live tally."""
    sticker = sticker_for_update(sticker_id)
    if sticker is None:
        return False
    if sticker.state == Sticker.State.FINAL:
        final_results_write(sticker)
        sticker.save(update_fields=["total_votes", "winner_option", "winner_comment", "updated_at"])
        transaction.on_commit(lambda: sticker_cache_forget(sticker_id))
    else:
        transaction.on_commit(lambda: tally_refresh_schedule(sticker_id=sticker_id))
    return True


def finalize_enqueue(*, sticker_id: int) -> None:
    """Enqueue finalization after commit, unless enqueued in the last FINALIZE_REQUEUE_SECONDS."""
    enqueue_on_commit(
        FINALIZE_TASK,
        sticker_id,
        once_key=f"polls:finalize-queued:{sticker_id}",
        once_ttl=FINALIZE_REQUEUE_SECONDS,
    )
