"""Small worlds for the analytics tests: rows with explicit `created_at` (set after create, since
the models stamp `auto_now_add`) and whether they count."""

from collections.abc import Sequence
from datetime import datetime
from typing import Any, TypeVar

from django.db.models import Model

from engagement.models import Comment, Follow, Hashtag, Like, Play, Share, User, Video, VideoHashtag
from polls.models import Answer, Sticker
from tests.factories import (
    CommentFactory,
    CommentLikeFactory,
    FollowFactory,
    LikeFactory,
    PlayFactory,
    ShareFactory,
    StickerFactory,
    VideoFactory,
)

M = TypeVar("M", bound=Model)


def at(row: M, when: datetime) -> M:
    """Give `row` the creation time `when`."""
    type(row)._default_manager.filter(pk=row.pk).update(created_at=when)
    row.created_at = when  # type: ignore[attr-defined]
    return row


def uncount(row: Model) -> None:
    type(row)._default_manager.filter(pk=row.pk).update(counted=False)


def video(creator: User, published: datetime, hashtags: Sequence[str] = ()) -> Video:
    made = at(VideoFactory.create(creator=creator), published)
    for position, name in enumerate(hashtags):
        hashtag, _ = Hashtag.objects.get_or_create(name=name)
        VideoHashtag.objects.create(video=made, hashtag=hashtag, position=position)
    return made


def like(user: User, on: Video, when: datetime, *, counted: bool = True) -> Like:
    return at(LikeFactory.create(user=user, video=on, counted=counted), when)


def comment(
    user: User, on: Video, when: datetime, text: str = "nice one", *, counted: bool = True
) -> Comment:
    return at(CommentFactory.create(user=user, video=on, text=text, counted=counted), when)


def share(user: User, on: Video, when: datetime, *, counted: bool = True) -> Share:
    return at(ShareFactory.create(user=user, video=on, counted=counted), when)


def play(
    user: User,
    on: Video,
    when: datetime,
    *,
    watched_ms: int = 10_000,
    completed: bool = False,
    counted: bool = True,
) -> Play:
    return at(
        PlayFactory.create(
            user=user, video=on, watched_ms=watched_ms, completed=completed, counted=counted
        ),
        when,
    )


def follow(
    user: User,
    creator: User,
    when: datetime,
    *,
    source_video: Video | None = None,
    counted: bool = True,
) -> Follow:
    return at(
        FollowFactory.create(
            user=user, creator=creator, source_video=source_video, counted=counted
        ),
        when,
    )


def comment_like(user: User, on: Comment, when: datetime, *, counted: bool = True) -> Any:
    return at(CommentLikeFactory.create(user=user, comment=on, counted=counted), when)


def sticker(
    on: Video,
    kind: str,
    created: datetime,
    *,
    state: str = Sticker.State.OPEN,
    closes_at: datetime | None = None,
    **fields: Any,
) -> Sticker:
    made = StickerFactory.create(
        video=on, kind=kind, state=state, opens_at=created, closes_at=closes_at, **fields
    )
    return at(made, created)


def answer(user: User, on: Sticker, checkpoint_position: int, when: datetime) -> Answer:
    checkpoint = on.checkpoints.get(position=checkpoint_position)
    option = checkpoint.options.get(position=0)
    made = Answer.objects.create(
        sticker=on,
        checkpoint=checkpoint,
        user=user,
        option_ids=[option.pk],
        is_correct=option.is_correct,
    )
    return at(made, when)


def cells(grid: list[list[int]]) -> dict[tuple[int, int], int]:
    """The non-empty cells of a fan-activity grid: (weekday, hour) -> count."""
    assert len(grid) == 7 and all(len(row) == 24 for row in grid)
    return {
        (weekday, hour): count
        for weekday, row in enumerate(grid)
        for hour, count in enumerate(row)
        if count
    }
