"""Row locks on stickers, each named for what it locks (after Saleor's `lock_objects.py`).

The protocol (SPEC §2.1, §2.4): a vote or a quiz answer holds FOR KEY SHARE on its sticker
while it writes its row, so voters never block each other; whatever changes a sticker's state
or recounts its votes takes FOR UPDATE on the sticker, so it waits for the votes in flight and
holds new ones (no vote lands after a sticker was finalized). Several stickers are locked in id
order, and before any of their votes (the vote rows' own locks are `core.db.counted_flip_cte`'s),
so two lockers never deadlock.
"""

from collections.abc import Sequence
from typing import Any

from django.db import connection
from django.db.models import QuerySet

from polls.models import Sticker, StickerOption

# The sticker row a vote or a quiz answer is checked against, read FOR KEY SHARE: its rules'
# columns and its option ids. A statement of its own for an answer (`sticker_for_key_share`), a
# CTE of the vote's one statement (polls.services.voting).
STICKER_FOR_KEY_SHARE_SQL = f"""
    SELECT s.id, s.kind, s.state, s.opens_at, s.closes_at, s.max_choices, s.allow_vote_change,
        ARRAY(SELECT o.id FROM {StickerOption._meta.db_table} o WHERE o.sticker_id = s.id)
            AS option_ids
    FROM {Sticker._meta.db_table} s
    WHERE s.id = %(sticker)s
    FOR KEY SHARE
"""


def sticker_for_key_share(sticker_id: int) -> tuple[Any, ...] | None:
    """FOR KEY SHARE on the sticker: the row of STICKER_FOR_KEY_SHARE_SQL, None when it does not
    exist."""
    with connection.cursor() as cursor:
        cursor.execute(STICKER_FOR_KEY_SHARE_SQL, {"sticker": sticker_id})
        return cursor.fetchone()


def sticker_qs_select_for_update() -> QuerySet[Sticker]:
    """Stickers locked FOR UPDATE, in id order."""
    return Sticker.objects.order_by("pk").select_for_update()


def sticker_for_update(sticker_id: int) -> Sticker | None:
    """FOR UPDATE on one sticker (finalizing, recounting)."""
    return sticker_qs_select_for_update().filter(pk=sticker_id).first()


def sticker_and_video_for_update(sticker_id: int) -> Sticker | None:
    """FOR UPDATE on one sticker, read with its video, whose row the same lock takes (a FOR
    UPDATE over a join locks the rows of both): closing, canceling, moderating, editing."""
    return sticker_qs_select_for_update().select_related("video").filter(pk=sticker_id).first()


def stickers_for_update(sticker_ids: Sequence[int]) -> list[Sticker]:
    """FOR UPDATE on these stickers, in id order (a flip of their votes' `counted`)."""
    return list(sticker_qs_select_for_update().filter(pk__in=sticker_ids))


def comment_pick_stickers_for_update(video_ids: Sequence[int]) -> list[Sticker]:
    """FOR UPDATE on the comment_pick stickers of these videos, in id order (a flip of their
    comments' or comment likes' `counted`)."""
    return list(
        sticker_qs_select_for_update().filter(
            video_id__in=sorted(set(video_ids)), kind=Sticker.Kind.COMMENT_PICK
        )
    )
