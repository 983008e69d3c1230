"""Flipping `counted` on sets of interaction rows, recounting what they touch (SPEC §2.4, §5).

`interactions_counted_set` is the one writer of `counted` after a row was created. For any
number of rows it runs a fixed number of statements in one transaction:

1. (kinds that feed a video counter) the videos of the rows that would change;
2. FOR UPDATE on those videos in id order: the recount side of the counter protocol
   (engagement.services.counters), so no like, comment, share or play is between its row and
   its counter while the counter is rebuilt, and two flips never deadlock on each other;
3. the flip itself, `UPDATE … WHERE id = ANY(ids) AND counted <> %s`, taking the row locks in
   id order; only rows that really change are touched and reported;
4. the recount of what the flipped rows touch: the one video counter of the kind for every
   touched video (two statements for all of them), or the `like_count` of every touched comment
   (one statement, comment row locks in id order, taken after the row locks as a comment like
   or unlike takes them: row first, then comment);
5. the durable record, one `CountedFlip` row per flipped row, written last so that its
   `created_at` is as close to the commit as it can be (consumers lag on it).

Comments and their likes: `Comment.like_count` is the number of counted likes of the comment,
whatever the comment's own flag says. A flipped comment stops counting in its video's comment
count, and in comment_pick leaderboards through its own flag (the live leaderboard reads
`counted` comments, the final result requires `c.counted AND cl.counted`); its likes keep their
flags, so flipping it back restores everything without touching them.

Comment_pick stickers (polls) depend on comments and comment likes; polls may import engagement,
not the reverse, so the caller (integrity) calls `polls.services.counted.
comment_pick_stickers_recount(video_ids=result.video_ids)` after a flip of either kind, in the
same transaction.
"""

from collections.abc import Sequence
from dataclasses import dataclass

from django.db import connection, transaction
from django.db.models import Model

from core.db import counted_flip_cte
from core.wakeups import wake
from engagement.locks import COMMENTS_FOR_UPDATE_SQL, videos_for_update
from engagement.models import (
    Comment,
    CommentLike,
    CountedFlip,
    Follow,
    InteractionKind,
    Like,
    Play,
    Share,
)
from engagement.services.counters import CounterName, video_counters_rewrite

WAKE_TOPIC = "counted_flips"


@dataclass(frozen=True)
class FlipResult:
    kind: InteractionKind
    counted: bool
    # Rows whose flag changed (rows already in that state, or gone, are not counted).
    flipped: int
    # Sorted, distinct: who made the flipped rows; their targets (videos; comments for comment
    # likes; creators for follows); their videos (a comment like's comment's video, a follow's
    # source video), for recounts elsewhere (comment_pick stickers, analytics rollups).
    user_ids: list[int]
    target_ids: list[int]
    video_ids: list[int]


@dataclass(frozen=True)
class _Source:
    model: type[Model]
    # SQL over the row `t` (and its comment `c`, joined when `joins_comment`).
    target: str
    video: str
    counter: CounterName | None
    joins_comment: bool = False


_SOURCES: dict[InteractionKind, _Source] = {
    InteractionKind.LIKE: _Source(Like, "t.video_id", "t.video_id", "likes"),
    InteractionKind.COMMENT: _Source(Comment, "t.video_id", "t.video_id", "comments"),
    InteractionKind.SHARE: _Source(Share, "t.video_id", "t.video_id", "shares"),
    InteractionKind.PLAY: _Source(Play, "t.video_id", "t.video_id", "plays"),
    InteractionKind.COMMENT_LIKE: _Source(
        CommentLike, "t.comment_id", "c.video_id", None, joins_comment=True
    ),
    InteractionKind.FOLLOW: _Source(Follow, "t.creator_id", "t.source_video_id", None),
}

_COMMENT = Comment._meta.db_table
_COMMENT_LIKE = CommentLike._meta.db_table
_FLIP = CountedFlip._meta.db_table


def _join(source: _Source) -> str:
    return f"LEFT JOIN {_COMMENT} c ON c.id = t.comment_id" if source.joins_comment else ""


def _videos_to_lock(table: str, ids: list[int], counted: bool) -> list[int]:
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT coalesce(array_agg(DISTINCT video_id), '{{}}') FROM {table} "
            f"WHERE id = ANY(%s::bigint[]) AND counted <> %s",
            [ids, counted],
        )
        return list(cursor.fetchone()[0])


def _flip(
    source: _Source, ids: list[int], counted: bool, videos: list[int] | None
) -> tuple[list[int], list[int], list[int], list[int]]:
    """(flipped row ids, users, targets, videos). Row locks in id order; with `videos`, only
    rows of those (locked) videos."""
    table = source.model._meta.db_table
    flipped_rows = counted_flip_cte(
        table, only_parents="video_id" if videos is not None else None, returning="t.*"
    )
    with connection.cursor() as cursor:
        cursor.execute(
            flipped_rows
            + f"""
            SELECT coalesce(array_agg(t.id), '{{}}'),
                   coalesce(array_agg(DISTINCT t.user_id), '{{}}'),
                   coalesce(array_agg(DISTINCT {source.target}), '{{}}'),
                   coalesce(array_agg(DISTINCT {source.video})
                            FILTER (WHERE {source.video} IS NOT NULL), '{{}}')
            FROM flipped t {_join(source)}
            """,
            {"ids": ids, "counted": counted, "parents": videos},
        )
        flipped, users, targets, touched_videos = cursor.fetchone()
    return list(flipped), sorted(users), sorted(targets), sorted(touched_videos)


def _comment_likes_rewrite(comment_ids: list[int]) -> None:
    """like_count = the counted likes, for these comments, in one statement (id order)."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            UPDATE {_COMMENT} AS c
            SET like_count = (
                SELECT count(*) FROM {_COMMENT_LIKE} cl WHERE cl.comment_id = c.id AND cl.counted
            )
            WHERE c.id IN ({COMMENTS_FOR_UPDATE_SQL})
            """,
            [comment_ids],
        )


def _record(kind: InteractionKind, source: _Source, flipped: list[int], counted: bool) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            INSERT INTO {_FLIP}
                (kind, row_id, user_id, target_id, video_id, counted, interaction_created_at,
                 created_at)
            SELECT %(kind)s, t.id, t.user_id, {source.target}, {source.video}, %(counted)s,
                   t.created_at, clock_timestamp()
            FROM {source.model._meta.db_table} t {_join(source)}
            WHERE t.id = ANY(%(flipped)s::bigint[])
            ORDER BY t.id
            """,
            {"kind": kind.value, "flipped": flipped, "counted": counted},
        )


@transaction.atomic
def interactions_counted_set(
    *, kind: InteractionKind, ids: Sequence[int], counted: bool
) -> FlipResult:
    """Set `counted` on these rows of one interaction table, recount what they touch and record
    each change (engagement.CountedFlip), in one transaction of at most six statements.

    Rows already in that state (and ids of no row) are left alone: flipping them again changes
    nothing and records nothing.
    """
    kind = InteractionKind(kind)
    source = _SOURCES[kind]
    row_ids = sorted(set(ids))
    nothing = FlipResult(kind, counted, 0, [], [], [])
    if not row_ids:
        return nothing
    videos: list[int] | None = None
    if source.counter is not None:
        candidates = _videos_to_lock(source.model._meta.db_table, row_ids, counted)
        if not candidates:
            return nothing
        videos = videos_for_update(video_ids=candidates)
    flipped, users, targets, touched_videos = _flip(source, row_ids, counted, videos)
    if not flipped:
        return nothing
    if source.counter is not None:
        video_counters_rewrite(video_ids=touched_videos, counters=[source.counter])
    if kind == InteractionKind.COMMENT_LIKE:
        _comment_likes_rewrite(targets)
    _record(kind, source, flipped, counted)
    wake(WAKE_TOPIC)
    return FlipResult(
        kind=kind,
        counted=counted,
        flipped=len(flipped),
        user_ids=users,
        target_ids=targets,
        video_ids=touched_videos,
    )
