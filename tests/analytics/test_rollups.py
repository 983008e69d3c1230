"""The rollups against the raw oracle: generated worlds, every window and zone, equal documents
(all but `as_of`), after incremental passes of the consumer and after a rebuild."""

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.db.models import Model

from analytics.raw import creator_figures_raw, video_figures_raw
from analytics.selectors import creator_analytics_document, video_analytics_document
from analytics.services.consumer import analytics_events_process
from analytics.services.rollups import analytics_rollups_rebuild
from engagement.models import Comment, Follow, InteractionKind, Like, Play, Share, Video
from engagement.services.counted import interactions_counted_set
from engagement.services.interactions import creator_unfollow, video_unlike
from polls.models import Sticker
from tests.analytics import world
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

# A Monday in DST-free April; 90 + 90 days back crosses both 2025-2026 DST changes of Berlin and
# New York. `now` values are ragged (microseconds) and one is on a quarter hour.
NOW = datetime(2026, 4, 20, 9, 3, 17, 654321, tzinfo=UTC)
NOWS = [
    NOW,
    NOW + timedelta(minutes=7, seconds=3, microseconds=5),
    datetime(2026, 4, 21, tzinfo=UTC),
]
ZONES = ["UTC", "Asia/Kolkata", "Asia/Kathmandu", "Europe/Berlin", "America/New_York"]
TEXTS = [
    "nice one",
    "Nice   ONE",
    "😀😀",
    "!!! 😀",
    "hello!",
    "hello",
    "Straße",
    "STRASSE",
    "#️⃣",
    "★",
]
HASHTAGS = ["cats", "dogs", "food", "Zebra", "art", "éclair"]
STICKER_KINDS = [k for k, _ in Sticker.Kind.choices]


def _moment(rng: random.Random, *, after: datetime) -> datetime:
    span = (NOW - after).total_seconds()
    return after + timedelta(seconds=rng.uniform(0, span), microseconds=rng.randrange(1_000_000))


def build_world(seed: int, *, size: int = 1) -> dict[str, Any]:
    rng = random.Random(seed)
    creators = [UserFactory.create() for _ in range(3)]
    viewers = [UserFactory.create() for _ in range(8 * size)]
    everyone = creators + viewers
    earliest = NOW - timedelta(days=200)
    videos: list[Video] = []
    for creator in creators:
        for _ in range(rng.randint(2, 4)):
            published = _moment(rng, after=earliest)
            # some videos published close to `now`, so their first hour is in every window
            if rng.random() < 0.3:
                published = NOW - timedelta(hours=rng.uniform(0.2, 30))
            clip = world.video(creator, published, rng.sample(HASHTAGS, rng.randint(0, 3)))
            for kind in rng.sample(STICKER_KINDS, rng.randint(0, 3)):
                state = rng.choice([Sticker.State.OPEN, Sticker.State.OPEN, Sticker.State.CANCELED])
                world.sticker(clip, kind, published, state=state)
            videos.append(clip)
    for clip in videos:
        published = clip.created_at

        def when(published: datetime = published) -> datetime:
            if rng.random() < 0.3:  # in or near the first hour
                return published + timedelta(minutes=rng.uniform(0, 90))
            return _moment(rng, after=published)

        for _ in range(rng.randint(0, 12 * size)):
            world.play(
                rng.choice(everyone),
                clip,
                when(),
                watched_ms=rng.choice([500, 1200, 2000, 2999, 3000, 15_000]),
                completed=rng.random() < 0.4,
                counted=rng.random() < 0.9,
            )
        for liker in rng.sample(everyone, rng.randint(0, len(everyone) // 2)):
            world.like(liker, clip, when(), counted=rng.random() < 0.9)
        for _ in range(rng.randint(0, 6 * size)):
            world.comment(
                rng.choice(everyone), clip, when(), rng.choice(TEXTS), counted=rng.random() < 0.9
            )
        for _ in range(rng.randint(0, 3 * size)):
            world.share(rng.choice(everyone), clip, when(), counted=rng.random() < 0.9)
    for user in everyone:
        for creator in rng.sample(creators, rng.randint(0, 2)):
            if creator == user:
                continue
            own = [v for v in videos if v.creator_id == creator.pk]
            source = rng.choice([None, *own])
            moment = later_than = source.created_at if source else earliest
            moment = _moment(rng, after=later_than)
            world.follow(user, creator, moment, source_video=source, counted=rng.random() < 0.9)
    return {"rng": rng, "creators": creators, "videos": videos, "everyone": everyone}


def churn(setting: dict[str, Any]) -> None:
    """Unfollows, unlikes and counted flips of every kind, through the services."""
    rng: random.Random = setting["rng"]
    for follow in rng.sample(list(Follow.objects.all()), min(3, Follow.objects.count())):
        creator_unfollow(user=follow.user, creator_id=follow.creator_id)
    for like in rng.sample(list(Like.objects.all()), min(3, Like.objects.count())):
        video_unlike(user=like.user, video_id=like.video_id)
    models: list[tuple[InteractionKind, type[Model]]] = [
        (InteractionKind.LIKE, Like),
        (InteractionKind.COMMENT, Comment),
        (InteractionKind.SHARE, Share),
        (InteractionKind.PLAY, Play),
        (InteractionKind.FOLLOW, Follow),
    ]
    for kind, model in models:
        ids = list(model._default_manager.values_list("pk", flat=True))
        for counted in (False, True):
            chosen = rng.sample(ids, min(len(ids), 3))
            if chosen:
                interactions_counted_set(kind=kind, ids=chosen, counted=counted)


def without_as_of(document: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in document.items() if key != "as_of"}


def assert_equal_to_oracle(setting: dict[str, Any], nows: list[datetime] = NOWS) -> int:
    compared = 0
    for now in nows:
        for days in (7, 28, 90):
            for tz in ZONES:
                for creator in setting["creators"]:
                    served = creator_analytics_document(
                        creator_id=creator.pk, days=days, tz=tz, now=now
                    )
                    oracle = creator_figures_raw(creator_id=creator.pk, days=days, tz=tz, now=now)
                    assert without_as_of(served) == oracle, (creator.pk, days, tz, now)
                    compared += 1
                if tz in ("UTC", "Asia/Kathmandu"):
                    for clip in setting["videos"]:
                        served = video_analytics_document(
                            video_id=clip.pk, days=days, tz=tz, now=now
                        )
                        oracle = video_figures_raw(video_id=clip.pk, days=days, tz=tz, now=now)
                        assert without_as_of(served) == oracle, (clip.pk, days, tz, now)
                        compared += 1
    return compared


def _consume() -> None:
    while analytics_events_process().more:
        pass


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_incremental_rollups_equal_the_oracle(seed: int) -> None:
    # given a world consumed in two parts, then churned (unfollows, unlikes, flips)
    setting = build_world(seed)
    _consume()
    churn(setting)
    _consume()
    # then
    assert assert_equal_to_oracle(setting) > 0


def test_rebuild_equals_incremental() -> None:
    setting = build_world(7)
    # Plays tied on created_at (the first of the pair is the one with the lower id), a replay
    # whose first play is in an earlier bucket, and an uncounted earlier play that is no first.
    viewer, clip = setting["everyone"][-1], setting["videos"][0]
    tie = clip.created_at + timedelta(minutes=20, microseconds=7)
    world.play(viewer, clip, clip.created_at + timedelta(minutes=1), counted=False)
    world.play(viewer, clip, tie, watched_ms=1000)
    world.play(viewer, clip, tie, watched_ms=1000, completed=True)
    world.play(viewer, clip, tie + timedelta(hours=5), watched_ms=500)
    _consume()
    churn(setting)
    _consume()
    tables = _rollup_tables()
    analytics_rollups_rebuild()
    assert _rollup_tables() == tables
    assert_equal_to_oracle(setting, [NOW])


def _rollup_tables() -> dict[str, Any]:
    from analytics import models

    tables: dict[str, Any] = {}
    for model, key in [
        (models.VideoBucket, ("video_id", "bucket")),
        (models.CreatorBucket, ("creator_id", "bucket")),
        (models.VideoTotal, ("video_id",)),
        (models.CreatorFanBucket, ("creator_id", "bucket")),
        (models.CreatorHashtagDay, ("creator_id", "day", "hashtag_id")),
        (models.FanLink, ("user_id", "creator_id")),
    ]:
        fields = [f.name for f in model._meta.fields if f.name != "id"]
        rows = {}
        for row in model._default_manager.values(*fields):
            values = {k: v for k, v in row.items()}
            numbers = [v for k, v in values.items() if not k.endswith("_id") and isinstance(v, int)]
            if numbers and not any(numbers):
                continue  # an all-zero row is the same as no row
            rows[tuple(values[k] for k in key)] = values
        tables[model.__name__] = rows
    return tables
