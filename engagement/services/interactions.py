"""Likes, comments, comment likes, shares, plays, follows.

Uniqueness (one like per user and video, …) is a database constraint; a write is an
INSERT … ON CONFLICT DO NOTHING, so concurrent duplicates can never double count, and the
counter changes in the same transaction as the row.
"""

from dataclasses import dataclass

from django.db import connection, transaction
from django.db.models import F

from core.client import ClientInfo
from core.db import insert_ignoring_conflict
from core.exceptions import InvalidInput, NotFound
from core.wakeups import wake
from engagement.metrics import COMMENT_LIKES, VIDEO_LIKES
from engagement.models import Comment, CommentLike, Follow, Like, Play, Share, User, Video
from engagement.services.counters import video_counter_add, video_lock_shared


@dataclass(frozen=True)
class ToggleResult:
    created: bool


def _interaction_values(user: User, client: ClientInfo) -> dict:
    return {"user": user.pk, "ip": client.ip, "device_id": client.device_id, "counted": True}


def _now_values() -> dict:
    from django.utils import timezone

    return {"created_at": timezone.now()}


def _video_locked(video_id: int) -> None:
    if not video_lock_shared(video_id=video_id):
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
    return ToggleResult(created=new_id is not None)


@transaction.atomic
def video_unlike(*, user: User, video_id: int) -> None:
    _video_locked(video_id)
    with connection.cursor() as cursor:
        cursor.execute(
            f"DELETE FROM {Like._meta.db_table} WHERE user_id = %s AND video_id = %s "
            f"RETURNING counted",
            [user.pk, video_id],
        )
        rows = cursor.fetchall()
    if rows and rows[0][0]:
        video_counter_add(video_id=video_id, counter="likes", delta=-1)


@transaction.atomic
def comment_create(*, user: User, video_id: int, text: str, client: ClientInfo) -> Comment:
    _video_locked(video_id)
    comment = Comment.objects.create(
        user=user, video_id=video_id, text=text, ip=client.ip, device_id=client.device_id
    )
    video_counter_add(video_id=video_id, counter="comments", delta=1)
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
    with connection.cursor() as cursor:
        cursor.execute(
            f"DELETE FROM {CommentLike._meta.db_table} WHERE user_id = %s AND comment_id = %s "
            f"RETURNING counted",
            [user.pk, comment_id],
        )
        rows = cursor.fetchall()
    if rows and rows[0][0]:
        Comment.objects.filter(pk=comment_id).update(like_count=F("like_count") - 1)


@transaction.atomic
def comment_likes_recount(*, comment_id: int) -> int | None:
    comment = Comment.objects.select_for_update().filter(pk=comment_id).first()
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
    return ToggleResult(created=new_id is not None)


@transaction.atomic
def creator_unfollow(*, user: User, creator_id: int) -> None:
    if not User.objects.filter(pk=creator_id).exists():
        raise NotFound("No creator with this id.", code="not_found")
    Follow.objects.filter(user=user, creator_id=creator_id).delete()
