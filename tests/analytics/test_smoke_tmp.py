from datetime import UTC, datetime, timedelta

import pytest

from analytics.raw import creator_figures_raw, video_figures_raw
from tests.factories import (
    CommentFactory,
    FollowFactory,
    LikeFactory,
    PlayFactory,
    StickerFactory,
    UserFactory,
    VideoFactory,
)


@pytest.mark.django_db
def test_smoke() -> None:
    now = datetime(2026, 3, 20, 12, tzinfo=UTC)
    creator = UserFactory.create()
    video = VideoFactory.create(creator=creator)
    type(video).objects.filter(pk=video.pk).update(created_at=now - timedelta(days=1))
    fan = UserFactory.create()
    FollowFactory.create(user=fan, creator=creator, source_video=video)
    LikeFactory.create(user=fan, video=video)
    PlayFactory.create(user=fan, video=video)
    CommentFactory.create(user=fan, video=video, text="hi 😀")
    StickerFactory.create(video=video, kind="poll", options=["A", "B"])
    print(
        creator_figures_raw(
            creator_id=creator.pk, days=28, tz="Asia/Kathmandu", now=datetime.now(UTC)
        )
    )
    print(video_figures_raw(video_id=video.pk, days=28, tz="Asia/Kathmandu", now=datetime.now(UTC)))
