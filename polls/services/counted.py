"""Flipping `counted` on sets of votes and quiz answers, recounting the stickers they touch.

The set-based counterpart of engagement.services.counted for the polls tables (SPEC §2.4, §5).
A vote flip, in one transaction and a number of statements that does not grow with the rows:

1. the stickers of the votes that would change;
2. FOR UPDATE on those stickers in id order. A vote holds FOR KEY SHARE on its sticker while it
   writes its row, so the sticker lock comes before the row locks (the other order deadlocks
   with a vote change); it also serialises the flip with finalization, so a sticker finalized
   while the flip waited is seen final here and its result rewritten, and a finalization that
   waited for the flip counts the flipped flags;
3. the flip, `UPDATE … WHERE id = ANY(ids) AND counted <> %s` (row locks in id order);
4. the recount of every touched sticker: a final one gets its StickerResult rows, total and
   winner rewritten (`final_results_write`, a few statements per sticker: a loop over the touched
   stickers, never over the votes); the others get their live tallies recomputed with one
   aggregation for all (`tallies_refresh`, the Redis copies stored after commit);
5. one `polls.CountedFlip` row per flipped vote, written last (consumers lag on `created_at`).

Quiz answers feed no stored aggregate (progress and score are computed from the rows when read,
and a user always sees their own answers), so an answer flip is steps 3 and 5: no sticker lock,
which an answer in flight (FOR KEY SHARE on the sticker, then its row) would deadlock against.

Comment_pick results are made of engagement rows (comments and comment likes). engagement may
not import polls, so whoever flips those (integrity) calls `comment_pick_stickers_recount(
video_ids=…)` with the `video_ids` engagement's flip returned, in the same transaction.
"""

from collections.abc import Sequence
from dataclasses import dataclass

from django.db import connection, transaction

from core.db import counted_flip_cte
from core.wakeups import wake
from polls.locks import comment_pick_stickers_for_update, stickers_for_update
from polls.models import Answer, CountedFlip, Sticker, Vote
from polls.services.finalizing import final_results_write
from polls.services.results_cache import sticker_cache_forget
from polls.services.tallies import tallies_refresh

WAKE_TOPIC = "counted_flips"
_FLIP = CountedFlip._meta.db_table

# The stickers of the votes among `%s` (ids) whose `counted` differs from `%s`.
VOTE_STICKERS_TO_FLIP_SQL = (
    f"SELECT coalesce(array_agg(DISTINCT sticker_id), '{{}}') FROM {Vote._meta.db_table} "
    f"WHERE id = ANY(%s::bigint[]) AND counted <> %s"
)
# After `counted_flip_cte`: the flipped rows' ids, their users and their stickers.
FLIPPED_SUMMARY_SQL = """
    SELECT coalesce(array_agg(id), '{}'), coalesce(array_agg(DISTINCT user_id), '{}'),
           coalesce(array_agg(DISTINCT sticker_id), '{}')
    FROM flipped
"""


def _flip_record_sql(table: str) -> str:
    """One polls.CountedFlip row per flipped row of `table` (votes or answers), in id order."""
    return f"""
        INSERT INTO {_FLIP}
            (kind, row_id, user_id, sticker_id, counted, interaction_created_at, created_at)
        SELECT %(kind)s, t.id, t.user_id, t.sticker_id, %(counted)s, t.created_at,
               clock_timestamp()
        FROM {table} t WHERE t.id = ANY(%(flipped)s::bigint[]) ORDER BY t.id
    """


_FLIP_RECORD_SQL = {
    CountedFlip.Kind.VOTE: _flip_record_sql(Vote._meta.db_table),
    CountedFlip.Kind.ANSWER: _flip_record_sql(Answer._meta.db_table),
}


@dataclass(frozen=True)
class FlipResult:
    kind: CountedFlip.Kind
    counted: bool
    # Rows whose flag changed (rows already in that state, or gone, are not counted).
    flipped: int
    # Sorted, distinct: who made the flipped rows, and their stickers.
    user_ids: list[int]
    sticker_ids: list[int]


@dataclass(frozen=True)
class StickersRecount:
    # Final stickers whose results were rewritten, and stickers whose live tallies were.
    final: list[int]
    live: list[int]


def _stickers_recount(stickers: list[Sticker]) -> StickersRecount:
    """Recount these stickers, whose row locks the caller holds."""
    final = [sticker for sticker in stickers if sticker.state == Sticker.State.FINAL]
    for sticker in final:
        final_results_write(sticker)
        sticker.save(update_fields=["total_votes", "winner_option", "winner_comment", "updated_at"])
    final_ids = [sticker.pk for sticker in final]

    def forget() -> None:
        for sticker_id in final_ids:
            sticker_cache_forget(sticker_id)

    if final_ids:
        transaction.on_commit(forget)
    live = sorted(tallies_refresh([sticker.pk for sticker in stickers], store_on_commit=True))
    return StickersRecount(final=final_ids, live=live)


@transaction.atomic
def comment_pick_stickers_recount(*, video_ids: Sequence[int]) -> StickersRecount:
    """Recount the comment_pick stickers of these videos after their comments or comment likes
    changed `counted` (engagement.services.counted.interactions_counted_set): final ones get
    their leaderboard and winner rewritten, open ones their live leaderboard."""
    stickers = comment_pick_stickers_for_update(video_ids)
    if not stickers:
        return StickersRecount(final=[], live=[])
    return _stickers_recount(stickers)


def _flip(
    table: str, ids: list[int], counted: bool, stickers: list[int] | None
) -> tuple[list[int], list[int], list[int]]:
    """(flipped row ids, users, stickers), row locks in id order; with `stickers`, only rows of
    those (locked) stickers."""
    flipped_rows = counted_flip_cte(
        table,
        only_parents="sticker_id" if stickers is not None else None,
        returning="t.id, t.user_id, t.sticker_id",
    )
    with connection.cursor() as cursor:
        cursor.execute(
            flipped_rows + FLIPPED_SUMMARY_SQL,
            {"ids": ids, "counted": counted, "parents": stickers},
        )
        flipped, users, touched = cursor.fetchone()
    return list(flipped), sorted(users), sorted(touched)


def _record(kind: CountedFlip.Kind, flipped: list[int], counted: bool) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            _FLIP_RECORD_SQL[kind], {"kind": kind.value, "flipped": flipped, "counted": counted}
        )


@transaction.atomic
def votes_counted_set(*, ids: Sequence[int], counted: bool) -> FlipResult:
    """Set `counted` on these votes, recount their stickers (final results or live tallies)
    and record each change (polls.CountedFlip), in one transaction.

    Votes already in that state (and ids of no vote) are left alone: flipping them again
    changes nothing and records nothing.
    """
    kind = CountedFlip.Kind.VOTE
    table = Vote._meta.db_table
    nothing = FlipResult(kind, counted, 0, [], [])
    row_ids = sorted(set(ids))
    if not row_ids:
        return nothing
    with connection.cursor() as cursor:
        cursor.execute(VOTE_STICKERS_TO_FLIP_SQL, [row_ids, counted])
        candidates = sorted(cursor.fetchone()[0])
    if not candidates:
        return nothing
    stickers = stickers_for_update(candidates)
    flipped, users, touched = _flip(table, row_ids, counted, [sticker.pk for sticker in stickers])
    if not flipped:
        return nothing
    _stickers_recount([sticker for sticker in stickers if sticker.pk in set(touched)])
    _record(kind, flipped, counted)
    wake(WAKE_TOPIC)
    return FlipResult(kind, counted, len(flipped), users, touched)


@transaction.atomic
def answers_counted_set(*, ids: Sequence[int], counted: bool) -> FlipResult:
    """Set `counted` on these quiz answers and record each change (polls.CountedFlip).

    No sticker holds an aggregate of answers, so there is nothing to recount here; rewards read
    the record. Answers already in that state are left alone and recorded nowhere.
    """
    kind = CountedFlip.Kind.ANSWER
    table = Answer._meta.db_table
    nothing = FlipResult(kind, counted, 0, [], [])
    row_ids = sorted(set(ids))
    if not row_ids:
        return nothing
    flipped, users, touched = _flip(table, row_ids, counted, None)
    if not flipped:
        return nothing
    _record(kind, flipped, counted)
    wake(WAKE_TOPIC)
    return FlipResult(kind, counted, len(flipped), users, touched)
