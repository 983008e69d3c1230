"""Row locks on engagement's tables, each named for what it locks (after Saleor's
`lock_objects.py`; polls.locks is the same for stickers).

The counter protocol (engagement.services.counters): every write that changes a video's counter
first takes FOR KEY SHARE on the video row (writers do not block each other), and a recount takes
FOR UPDATE on it (waits for writers in flight, holds new ones until it has rewritten the
shards). Several rows are locked in id order, so two lockers never deadlock on each other.
"""

from collections.abc import Sequence

from django.db import connection

from engagement.models import Comment, Video

_VIDEO = Video._meta.db_table

VIDEO_FOR_KEY_SHARE_SQL = f"SELECT 1 FROM {_VIDEO} WHERE id = %s FOR KEY SHARE"
VIDEOS_FOR_UPDATE_SQL = (
    f"SELECT id FROM {_VIDEO} WHERE id = ANY(%s::bigint[]) ORDER BY id FOR UPDATE"
)
# The comments `%s` (ids), locked FOR UPDATE in id order: a subquery for a set-based UPDATE.
COMMENTS_FOR_UPDATE_SQL = (
    f"SELECT id FROM {Comment._meta.db_table} WHERE id = ANY(%s::bigint[]) ORDER BY id FOR UPDATE"
)


def video_for_key_share(*, video_id: int) -> bool:
    """FOR KEY SHARE on the video (a write of one of its interactions); False when it does not
    exist."""
    with connection.cursor() as cursor:
        cursor.execute(VIDEO_FOR_KEY_SHARE_SQL, [video_id])
        return cursor.fetchone() is not None


def videos_for_update(*, video_ids: Sequence[int]) -> list[int]:
    """FOR UPDATE on these videos, in id order (a recount of their counters); the ids that
    exist."""
    if not video_ids:
        return []
    with connection.cursor() as cursor:
        cursor.execute(VIDEOS_FOR_UPDATE_SQL, [sorted(set(video_ids))])
        return [row[0] for row in cursor.fetchall()]


def comment_for_update(comment_id: int) -> Comment | None:
    """FOR UPDATE on one comment (a recount of its likes)."""
    return Comment.objects.select_for_update().filter(pk=comment_id).first()
