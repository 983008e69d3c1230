"""The rows a case covers, and flipping them through the lower apps' services.

Eight tables: engagement's six interaction kinds, polls' votes and answers. A case account's
row is covered when the account made it inside the account's span: `created_at` for every
table but votes, whose `voted_at` (when the current choice was made) is used, so a vote a
hijacker changed inside the span stops counting while the owner's untouched vote does not.
"""

from collections.abc import Iterator
from dataclasses import dataclass, field

from django.db import connection
from django.db.models import Model

from engagement.models import (
    Comment,
    CommentLike,
    Follow,
    InteractionKind,
    Like,
    Play,
    Share,
    Video,
)
from engagement.services.counted import interactions_counted_set
from integrity.models import RowKind
from polls.models import Answer, Sticker, Vote
from polls.services.counted import (
    answers_counted_set,
    comment_pick_stickers_recount,
    votes_counted_set,
)

# Row ids handled per flip call: each chunk is a bounded number of statements (see the lower
# apps' services), and Python holds one chunk of ids at a time.
CHUNK = 10_000

STAGED = "integrity_staged_rows"


@dataclass(frozen=True)
class Table:
    model: type[Model]
    time: str

    @property
    def name(self) -> str:
        return self.model._meta.db_table


TABLES: dict[str, Table] = {
    RowKind.LIKE.value: Table(Like, "created_at"),
    RowKind.COMMENT_LIKE.value: Table(CommentLike, "created_at"),
    RowKind.COMMENT.value: Table(Comment, "created_at"),
    RowKind.SHARE.value: Table(Share, "created_at"),
    RowKind.PLAY.value: Table(Play, "created_at"),
    RowKind.FOLLOW.value: Table(Follow, "created_at"),
    RowKind.VOTE.value: Table(Vote, "voted_at"),
    RowKind.ANSWER.value: Table(Answer, "created_at"),
}


def covered(table: Table, alias: str, account: str) -> str:
    """SQL: row `alias` of `table` was made by `account` (a CaseAccount alias) inside its span."""
    return (
        f"{account}.user_id = {alias}.user_id AND {alias}.{table.time} >= {account}.span_start "
        f"AND {alias}.{table.time} < {account}.span_end"
    )


def staged_create() -> None:
    """An empty temporary table of (kind, row id) for one decision (dropped at commit)."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {STAGED} "
            f"(kind varchar(16) NOT NULL, id bigint NOT NULL, PRIMARY KEY (kind, id)) "
            f"ON COMMIT DROP"
        )
        cursor.execute(f"TRUNCATE {STAGED}")


def staged_chunks(kind: str) -> Iterator[list[int]]:
    """The staged ids of one kind, CHUNK at a time, in id order (a keyset read per chunk)."""
    last = 0
    while True:
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT id FROM {STAGED} WHERE kind = %s AND id > %s ORDER BY id LIMIT %s",
                [kind, last, CHUNK],
            )
            ids = [row[0] for row in cursor.fetchall()]
        if not ids:
            return
        yield ids
        last = ids[-1]


def affected_users() -> list[int]:
    """Whose rewards the staged rows can change: who made them, the creators of the liked videos
    (video_likes rules), and every voter of a final `ending` sticker a staged vote is on
    (winning_ending rules follow the recounted winner)."""
    parts = [
        f"SELECT t.user_id FROM {STAGED} s JOIN {table.name} t ON t.id = s.id "
        f"WHERE s.kind = '{kind}'"
        for kind, table in TABLES.items()
    ]
    parts.append(
        f"SELECT v.creator_id FROM {STAGED} s JOIN {Like._meta.db_table} l ON l.id = s.id "
        f"JOIN {Video._meta.db_table} v ON v.id = l.video_id WHERE s.kind = '{RowKind.LIKE}'"
    )
    parts.append(
        f"SELECT other.user_id FROM {STAGED} s JOIN {Vote._meta.db_table} vt ON vt.id = s.id "
        f"JOIN {Sticker._meta.db_table} st ON st.id = vt.sticker_id "
        f"AND st.state = '{Sticker.State.FINAL}' AND st.kind = '{Sticker.Kind.ENDING}' "
        f"JOIN {Vote._meta.db_table} other ON other.sticker_id = st.id "
        f"WHERE s.kind = '{RowKind.VOTE}'"
    )
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT coalesce(array_agg(DISTINCT user_id ORDER BY user_id), '{}') FROM ("
            + " UNION ".join(parts)
            + ") affected(user_id)"
        )
        return list(cursor.fetchone()[0])


@dataclass
class FlipTotals:
    flipped: int = 0
    # Videos whose comments or comment likes changed: their comment_pick stickers are recounted.
    comment_videos: set[int] = field(default_factory=set)


def rows_flip(*, kind: str, ids: list[int], counted: bool, totals: FlipTotals) -> None:
    """Flip one chunk through the service that owns the table (which recounts what it touches)."""
    if kind == RowKind.VOTE:
        totals.flipped += votes_counted_set(ids=ids, counted=counted).flipped
    elif kind == RowKind.ANSWER:
        totals.flipped += answers_counted_set(ids=ids, counted=counted).flipped
    else:
        result = interactions_counted_set(kind=InteractionKind(kind), ids=ids, counted=counted)
        totals.flipped += result.flipped
        if kind in (RowKind.COMMENT, RowKind.COMMENT_LIKE):
            totals.comment_videos.update(result.video_ids)


def comment_pick_recount(totals: FlipTotals) -> None:
    """After comment and comment-like flips, in the same transaction (docs/counted-flips.md)."""
    if totals.comment_videos:
        comment_pick_stickers_recount(video_ids=sorted(totals.comment_videos))
