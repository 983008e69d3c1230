"""Likes, comments, comment likes, shares, plays, follows.

Uniqueness (one like per user and video, …) is a database constraint; a write is an
INSERT … ON CONFLICT DO NOTHING, so concurrent duplicates can never double count, and the
counter changes in the same transaction as the row.

Unlike, comment unlike and unfollow delete the row (the tables hold current state) and, in the
same statement, write what was removed to `Removal`, so consumers see churn (docs/counted-flips.md).
"""

from dataclasses import dataclass
from functools import partial

from django.db import connection, transaction
from django.db.models import F

from core.client import ClientInfo
from core.db import insert_ignoring_conflict
from core.exceptions import InvalidInput, NotFound
from core.wakeups import wake
from engagement.likes_version import viewer_likes_changed
from engagement.locks import comment_for_update, video_for_key_share
from engagement.metrics import COMMENT_LIKES, VIDEO_LIKES
from engagement.models import (
    Comment,
    CommentLike,
    Follow,
    InteractionKind,
    Like,
    Play,
    Removal,
    Share,
    User,
    Video,
)
from engagement.services.counters import video_counter_add

REMOVALS_WAKE_TOPIC = "removals"


def _removal_sql(
    model: type[Like] | type[CommentLike] | type[Follow],
    kind: InteractionKind,
    where: str,
    target: str,
    video: str,
) -> str:
    """DELETE the row and record it in Removal, in one statement returning the row's `counted`."""
    return (
        f"WITH removed AS (DELETE FROM {model._meta.db_table} WHERE {where} RETURNING *), "
        f"recorded AS (INSERT INTO {Removal._meta.db_table} "
        f"(kind, row_id, user_id, target_id, video_id, counted, interaction_created_at, "
        f"created_at) "
        f"SELECT '{kind.value}', r.id, r.user_id, {target}, {video}, r.counted, r.created_at, "
        f"clock_timestamp() FROM removed r) "
        f"SELECT counted FROM removed"
    )


_UNLIKE_SQL = _removal_sql(
    Like, InteractionKind.LIKE, "user_id = %s AND video_id = %s", "r.video_id", "r.video_id"
)
_COMMENT_UNLIKE_SQL = _removal_sql(
    CommentLike,
    InteractionKind.COMMENT_LIKE,
    "user_id = %s AND comment_id = %s",
    "r.comment_id",
    f"(SELECT c.video_id FROM {Comment._meta.db_table} c WHERE c.id = r.comment_id)",
)
_UNFOLLOW_SQL = _removal_sql(
    Follow,
    InteractionKind.FOLLOW,
    "user_id = %s AND creator_id = %s",
    "r.creator_id",
    "r.source_video_id",
)


def _remove(sql: str, params: list[int]) -> list[bool]:
    """Run a removal statement; the removed rows' `counted` (empty when there was none)."""
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        removed = [row[0] for row in cursor.fetchall()]
    if removed:
        wake(REMOVALS_WAKE_TOPIC)
    return removed


@dataclass(frozen=True)
class ToggleResult:
    created: bool


def _interaction_values(user: User, client: ClientInfo) -> dict:
    return {"user": user.pk, "ip": client.ip, "device_id": client.device_id, "counted": True}


def _now_values() -> dict:
    from django.utils import timezone

    return {"created_at": timezone.now()}


def _video_locked(video_id: int) -> None:
    if not video_for_key_share(video_id=video_id):
        raise NotFound("No video with this id.", code="not_found")


@transaction.atomic
def video_like(*, user: User, video_id: int, client: ClientInfo) -> ToggleResult:
    _video_locked(video_id)
    new_id = insert_ignoring_conflict(
        Like,
        {**_interaction_values(user, client), **_now_values(), "video": video_id},
        ["user", "video"],
    )
    if new_id is not None:
        video_counter_add(video_id=video_id, counter="likes", delta=1)
        wake("interactions")
        transaction.on_commit(VIDEO_LIKES.inc)
        transaction.on_commit(partial(viewer_likes_changed, user.pk))
    return ToggleResult(created=new_id is not None)


@transaction.atomic
def video_unlike(*, user: User, video_id: int) -> None:
    _video_locked(video_id)
    removed = _remove(_UNLIKE_SQL, [user.pk, video_id])
    if removed:
        transaction.on_commit(partial(viewer_likes_changed, user.pk))
    if removed and removed[0]:
        video_counter_add(video_id=video_id, counter="likes", delta=-1)


@transaction.atomic
def comment_create(*, user: User, video_id: int, text: str, client: ClientInfo) -> Comment:
    _video_locked(video_id)
    comment = Comment.objects.create(
        user=user, video_id=video_id, text=text, ip=client.ip, device_id=client.device_id
    )
    video_counter_add(video_id=video_id, counter="comments", delta=1)
    wake("interactions")
    return comment


@transaction.atomic
def comment_like(*, user: User, comment_id: int, client: ClientInfo) -> ToggleResult:
    if not Comment.objects.filter(pk=comment_id).exists():
        raise NotFound("No comment with this id.", code="not_found")
    new_id = insert_ignoring_conflict(
        CommentLike,
        {**_interaction_values(user, client), **_now_values(), "comment": comment_id},
        ["user", "comment"],
    )
    if new_id is not None:
        # The row lock on the comment serialises its likers; the count is exact at commit.
        Comment.objects.filter(pk=comment_id).update(like_count=F("like_count") + 1)
        wake("interactions")
        transaction.on_commit(COMMENT_LIKES.inc)
    return ToggleResult(created=new_id is not None)


@transaction.atomic
def comment_unlike(*, user: User, comment_id: int) -> None:
    if not Comment.objects.filter(pk=comment_id).exists():
        raise NotFound("No comment with this id.", code="not_found")
    removed = _remove(_COMMENT_UNLIKE_SQL, [user.pk, comment_id])
    if removed and removed[0]:
        Comment.objects.filter(pk=comment_id).update(like_count=F("like_count") - 1)


@transaction.atomic
def comment_likes_recount(*, comment_id: int) -> int | None:
    comment = comment_for_update(comment_id)
    if comment is None:
        return None
    exact = CommentLike.objects.filter(comment_id=comment_id, counted=True).count()
    Comment.objects.filter(pk=comment_id).update(like_count=exact)
    return exact


@transaction.atomic
def share_create(*, user: User, video_id: int, channel: str, client: ClientInfo) -> Share:
    _video_locked(video_id)
    share = Share.objects.create(
        user=user, video_id=video_id, channel=channel, ip=client.ip, device_id=client.device_id
    )
    video_counter_add(video_id=video_id, counter="shares", delta=1)
    wake("interactions")
    return share


@dataclass(frozen=True)
class PlayResult:
    play: Play
    replay: bool


@transaction.atomic
def play_create(
    *, user: User, video_id: int, watched_ms: int, completed: bool, client: ClientInfo
) -> PlayResult:
    _video_locked(video_id)
    replay = Play.objects.filter(video_id=video_id, user=user).exists()
    play = Play.objects.create(
        user=user,
        video_id=video_id,
        watched_ms=watched_ms,
        completed=completed,
        ip=client.ip,
        device_id=client.device_id,
    )
    video_counter_add(video_id=video_id, counter="plays", delta=1)
    wake("interactions")
    return PlayResult(play=play, replay=replay)


@transaction.atomic
def creator_follow(
    *, user: User, creator_id: int, source_video_id: int | None, client: ClientInfo
) -> ToggleResult:
    if creator_id == user.pk:
        raise InvalidInput("You cannot follow yourself.", code="cannot_follow_self")
    if not User.objects.filter(pk=creator_id, is_active=True).exists():
        raise NotFound("No creator with this id.", code="not_found")
    if (
        source_video_id is not None
        and not Video.objects.filter(pk=source_video_id, creator_id=creator_id).exists()
    ):
        raise InvalidInput(
            "Invalid input: video_id: not a video of this creator.",
            errors={"video_id": ["Not a video of this creator."]},
        )
    new_id = insert_ignoring_conflict(
        Follow,
        {
            **_interaction_values(user, client),
            **_now_values(),
            "creator": creator_id,
            "source_video": source_video_id,
        },
        ["user", "creator"],
    )
    if new_id is not None:
        wake("interactions")
    return ToggleResult(created=new_id is not None)


@transaction.atomic
def creator_unfollow(*, user: User, creator_id: int) -> None:
    if not User.objects.filter(pk=creator_id).exists():
        raise NotFound("No creator with this id.", code="not_found")
    _remove(_UNFOLLOW_SQL, [user.pk, creator_id])
