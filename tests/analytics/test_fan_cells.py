"""The fan side of the rollups: fan cells (creator, quarter hour) and interest days (creator, UTC
day, hashtag) recounted from the rows. A stream of follows, unfollows, unlikes and counted flips
consumed pass by pass equals a full rebuild table by table and the raw oracle; interests with a
ragged window start across a UTC midnight are exact; a follow (unfollow) moves the follower's
whole activity into (out of) the creator's grid and interests; the reconciliation repairs the
fan side."""

import random
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from analytics import interest_cells
from analytics.documents import documents_all_changed
from analytics.models import CreatorFanBucket, CreatorHashtagDay, FanLink
from analytics.raw import creator_figures_raw
from analytics.selectors import creator_analytics_document
from analytics.services import columnar, consumer
from analytics.services.consumer import analytics_events_process
from analytics.services.reconcile import analytics_rollups_reconcile
from analytics.services.rollups import analytics_rollups_rebuild, fan_cells_recount
from engagement.models import Follow, InteractionKind, Play, User
from engagement.services.counted import interactions_counted_set
from engagement.services.interactions import creator_unfollow, video_unlike
from tests.analytics import world
from tests.analytics.test_refresh_ahead import _closed_port
from tests.analytics.test_rollups import (
    NOW,
    _rollup_tables,
    assert_equal_to_oracle,
    build_world,
    churn,
    without_as_of,
)
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def consume() -> None:
    while analytics_events_process().more:
        pass


def _stream(setting: dict[str, Any], rng: random.Random) -> None:
    """More follows (some of users who just unfollowed), unfollows and follow flips, each
    followed by a pass, so links are made and undone between and within passes."""
    creators: list[User] = setting["creators"]
    everyone: list[User] = setting["everyone"]
    for _ in range(3):
        for user in rng.sample(everyone, 4):
            creator = rng.choice(creators)
            if creator != user and not Follow.objects.filter(user=user, creator=creator).exists():
                when = NOW - timedelta(days=rng.uniform(0, 150))
                world.follow(user, creator, when, counted=rng.random() < 0.8)
        follows = list(Follow.objects.all())
        for follow in rng.sample(follows, min(2, len(follows))):
            creator_unfollow(user=follow.user, creator_id=follow.creator_id)
        ids = list(Follow.objects.values_list("pk", flat=True))
        if ids:
            interactions_counted_set(
                kind=InteractionKind.FOLLOW, ids=rng.sample(ids, 1), counted=rng.random() < 0.5
            )
        plays = list(Play.objects.values_list("pk", flat=True))
        interactions_counted_set(
            kind=InteractionKind.PLAY, ids=rng.sample(plays, min(3, len(plays))), counted=False
        )
        consume()


@pytest.mark.parametrize(
    ("seed", "dense"),
    [(11, True), (12, True), (11, False)],
    ids=["11-dense", "12-dense", "11-sparse"],
)
def test_a_stream_of_passes_equals_a_rebuild_table_by_table_and_the_oracle(
    seed: int, dense: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not dense:
        # the rebuild's grids counted over their distinct keys (as for a key space too big to
        # count densely), the fan-out a few rows at a time: the same tables
        monkeypatch.setattr(columnar, "DENSE_CELLS", 0)
        monkeypatch.setattr(columnar, "FANOUT_CHUNK", 7)
    # given a world consumed in parts: rows, churn, then follows made and undone pass by pass
    setting = build_world(seed)
    consume()
    churn(setting)
    consume()
    _stream(setting, random.Random(seed))
    incremental = _rollup_tables()
    assert incremental["CreatorFanBucket"] and incremental["CreatorHashtagDay"]
    # when every fan cell is recounted again, nothing changes (recounts are idempotent)
    fan_cells_recount(
        fan_cells=set(CreatorFanBucket.objects.values_list("creator_id", "bucket")),
        interest_cells=set(CreatorHashtagDay.objects.values_list("creator_id", "day")),
    )
    assert _rollup_tables() == incremental
    # when rebuilt from scratch: every rollup table row by row the same
    analytics_rollups_rebuild()
    rebuilt = _rollup_tables()
    for table, rows in incremental.items():
        assert rebuilt[table] == rows, table
    # and both equal the oracle through the documents
    assert assert_equal_to_oracle(setting, [NOW]) > 0


def _interest_world() -> tuple[User, User, Any, Any]:
    creator, follower, stranger = (UserFactory.create() for _ in range(3))
    other = UserFactory.create()
    published = datetime(2026, 1, 1, tzinfo=UTC)
    one = world.video(other, published, ["cats"])
    two = world.video(other, published, ["dogs", "cats"])
    world.follow(follower, creator, published)
    # (the window of days=7 ending 2026-04-20 23:40:00.5 starts 2026-04-13 23:40:00.5)
    world.play(follower, one, datetime(2026, 4, 13, 23, 40, 0, 400_000, tzinfo=UTC))  # before
    world.play(follower, one, datetime(2026, 4, 13, 23, 55, tzinfo=UTC))  # ragged start
    world.like(follower, two, datetime(2026, 4, 13, 23, 59, 59, 999_999, tzinfo=UTC))  # start
    world.play(follower, two, datetime(2026, 4, 14, tzinfo=UTC))  # first whole day
    world.like(follower, one, datetime(2026, 4, 20, 23, 40, 0, 400_000, tzinfo=UTC))  # last day
    world.play(follower, two, datetime(2026, 4, 20, 23, 55, tzinfo=UTC))  # after a ragged now
    world.play(stranger, one, datetime(2026, 4, 13, 23, 56, tzinfo=UTC))  # not a follower
    world.play(follower, one, datetime(2026, 4, 13, 23, 57, tzinfo=UTC), counted=False)
    return creator, follower, one, two


def _interests(creator: User, now: datetime) -> list[dict[str, Any]]:
    served = creator_analytics_document(creator_id=creator.pk, days=7, tz="UTC", now=now)
    oracle = creator_figures_raw(creator_id=creator.pk, days=7, tz="UTC", now=now)
    assert without_as_of(served) == oracle
    interests: list[dict[str, Any]] = served["interest_preferences"]
    return interests


def test_interests_with_a_ragged_start_across_a_utc_midnight_are_exact() -> None:
    # given plays and likes on both sides of the window's start and of the next UTC midnight
    creator, _, _, _ = _interest_world()
    consume()
    # then a ragged now: the start's [23:40:00.5, midnight) from the rows, the whole days from
    # the tier, the last day's row less what it holds after now (a play at 23:55, in a quarter
    # hour after the one holding now, which the quarter-hour reads do not read)
    assert _interests(creator, datetime(2026, 4, 20, 23, 40, 0, 500_000, tzinfo=UTC)) == [
        {"hashtag": "cats", "plays": 2, "likes": 2, "like_rate": 1.0},
        {"hashtag": "dogs", "plays": 1, "likes": 1, "like_rate": 1.0},
    ]
    # and a now on a UTC midnight: whole days only
    assert _interests(creator, datetime(2026, 4, 21, tzinfo=UTC)) == [
        {"hashtag": "cats", "plays": 2, "likes": 1, "like_rate": 0.5},
        {"hashtag": "dogs", "plays": 2, "likes": 0, "like_rate": 0.0},
    ]


def _first_day_world() -> tuple[User, list[User], list[Play], Any]:
    """Followers' plays and likes all through 2026-04-13, the first day of the 7-day windows
    ending on 2026-04-20, on videos of two hashtags, and a stranger's."""
    creator, stranger, other = (UserFactory.create() for _ in range(3))
    followers = UserFactory.create_batch(4)
    published = datetime(2026, 1, 1, tzinfo=UTC)
    cats = world.video(other, published, ["cats"])
    dogs = world.video(other, published, ["dogs", "cats"])
    for follower in followers:
        world.follow(follower, creator, published)
    day = datetime(2026, 4, 13, tzinfo=UTC)
    plays = [
        world.play(followers[n % 4], (cats, dogs)[n % 2], day + timedelta(minutes=5 + 37 * n))
        for n in range(39)
    ]
    for n, follower in enumerate(followers):
        world.like(follower, cats, day + timedelta(hours=3 + 5 * n, minutes=n))
        world.like(follower, dogs, day + timedelta(hours=5 + 4 * n, minutes=50))
    world.play(stranger, cats, day + timedelta(hours=12))
    return creator, followers, plays, dogs


def _first_day_read(creator: User, now: datetime) -> tuple[list[dict[str, Any]], int]:
    """The creator's interests for the 7 days ending `now` (checked against the oracle), and how
    often the first day's cells were counted from the rows meanwhile."""
    with CaptureQueriesContext(connection) as captured:
        interests = _interests(creator, now)
    counted = sum("date_bin('15 minutes', x.created_at" in q["sql"] for q in captured)
    return interests, counted


def test_the_first_day_s_interest_cells_are_counted_once_and_stay_exact() -> None:
    # given followers' activity all through the window's first day
    creator, _, plays, dogs = _first_day_world()
    consume()
    day = datetime(2026, 4, 20, tzinfo=UTC)
    # when the window's start moves through that day, then every read is exact (the oracle
    # counts the rows), and the day's cells are counted from the rows once, then reused
    nows = [
        day + timedelta(minutes=10),
        day + timedelta(hours=3, minutes=7, seconds=30),
        day + timedelta(hours=11, minutes=59, microseconds=1),
        day + timedelta(hours=17, minutes=45),
        day + timedelta(hours=23, minutes=20),
    ]
    reads = [_first_day_read(creator, now) for now in nows]
    assert [counted for _, counted in reads] == [1, 0, 0, 0, 0]
    totals = [sum(row["plays"] for row in interests) for interests, _ in reads]
    assert totals == sorted(totals, reverse=True) and totals[0] > totals[-1] > 0
    # when the day's last play (23:31, on the cats video) stops counting and the pass runs,
    # then the next read counts the day again and shows it
    late = max(plays, key=lambda play: play.created_at)
    interactions_counted_set(kind=InteractionKind.PLAY, ids=[late.pk], counted=False)
    consume()
    interests, counted = _first_day_read(creator, nows[-2])
    assert counted == 1
    assert sum(row["plays"] for row in interests) == totals[-2] - 1
    # when a new follower's earlier activity on that day joins through a follow
    newcomer = UserFactory.create()
    world.play(newcomer, dogs, datetime(2026, 4, 13, 23, 30, tzinfo=UTC))
    world.follow(newcomer, creator, datetime(2026, 4, 19, tzinfo=UTC))
    consume()
    interests, counted = _first_day_read(creator, nows[-2])
    assert counted == 1
    assert sum(row["plays"] for row in interests) == totals[-2] + 1  # dogs and cats
    # and when every document is outdated (a rebuild, a repair), the day is counted again
    documents_all_changed()
    assert _first_day_read(creator, nows[-2]) == (interests, 1)


def test_a_lost_move_of_the_first_day_s_cells_shows_within_their_lifetime(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given stored cells of the first day, living one second, and a pass that cannot outdate
    # them (Redis away just then)
    monkeypatch.setattr(interest_cells, "CELLS_TTL_SECONDS", 1)
    creator, _, plays, _ = _first_day_world()
    consume()
    now = datetime(2026, 4, 20, 8, tzinfo=UTC)
    served = creator_analytics_document(creator_id=creator.pk, days=7, tz="UTC", now=now)
    monkeypatch.setattr(consumer, "interest_days_changed", lambda cells: None)
    late = max(plays, key=lambda play: play.created_at)
    interactions_counted_set(kind=InteractionKind.PLAY, ids=[late.pk], counted=False)
    consume()
    # then a read right after still has the old day (what the lifetime bounds) ...
    stale = creator_analytics_document(creator_id=creator.pk, days=7, tz="UTC", now=now)
    assert stale["interest_preferences"] == served["interest_preferences"]
    # ... and once the cells expired, the read is exact again
    time.sleep(1.2)
    assert _first_day_read(creator, now)[1] == 1


def test_a_follow_and_an_unfollow_move_the_whole_activity_in_and_out() -> None:
    # given a user with months of activity on another creator's videos, not a follower yet
    creator, fan, other = (UserFactory.create() for _ in range(3))
    clip = world.video(other, NOW - timedelta(days=120), ["music"])
    moments = [NOW - timedelta(days=d, minutes=7 * d) for d in (1, 5, 20, 60, 85)]
    for moment in moments:
        world.play(fan, clip, moment)
    world.like(fan, clip, moments[2])
    world.share(fan, clip, moments[3])
    consume()
    empty = creator_analytics_document(creator_id=creator.pk, days=90, tz="UTC", now=NOW)
    assert sum(map(sum, empty["fan_activity"]["grid"])) == 0
    assert empty["interest_preferences"] == []
    # when the user follows the creator
    world.follow(fan, creator, NOW - timedelta(hours=1))
    consume()
    # then the whole history is in the creator's grid and interests
    served = creator_analytics_document(creator_id=creator.pk, days=90, tz="UTC", now=NOW)
    assert without_as_of(served) == creator_figures_raw(
        creator_id=creator.pk, days=90, tz="UTC", now=NOW
    )
    assert sum(map(sum, served["fan_activity"]["grid"])) == 7
    assert served["interest_preferences"] == [
        {"hashtag": "music", "plays": 5, "likes": 1, "like_rate": 0.2}
    ]
    # when the user unfollows, in the same pass as an unlike of their one like
    creator_unfollow(user=fan, creator_id=creator.pk)
    video_unlike(user=fan, video_id=clip.pk)
    consume()
    # then it all leaves again, and no row of the creator's fan side is left behind
    served = creator_analytics_document(creator_id=creator.pk, days=90, tz="UTC", now=NOW)
    assert sum(map(sum, served["fan_activity"]["grid"])) == 0
    assert served["interest_preferences"] == []
    assert not FanLink.objects.filter(creator_id=creator.pk).exists()
    assert not CreatorFanBucket.objects.filter(creator_id=creator.pk).exists()
    assert not CreatorHashtagDay.objects.filter(creator_id=creator.pk).exists()


def test_the_reconciliation_finds_and_repairs_the_fan_side() -> None:
    # given consumed rollups with a drifted fan cell, a lost interest row and a lost link
    setting = build_world(5)
    consume()
    expected = _rollup_tables()
    cell = CreatorFanBucket.objects.order_by("id").first()
    day = CreatorHashtagDay.objects.order_by("id").first()
    link = FanLink.objects.order_by("id").first()
    assert cell and day and link
    CreatorFanBucket.objects.filter(pk=cell.pk).update(events=cell.events + 5)
    CreatorHashtagDay.objects.filter(pk=day.pk).delete()
    FanLink.objects.filter(pk=link.pk).delete()
    # when reconciled
    report = analytics_rollups_reconcile(video_ids=[v.pk for v in setting["videos"]])
    # then each difference is counted and repaired
    assert report.differences >= 3 and report.repaired
    assert _rollup_tables() == expected
    assert analytics_rollups_reconcile(video_ids=[v.pk for v in setting["videos"]]).differences == 0


def test_with_redis_unreachable_the_first_day_is_counted_on_every_read_and_exact(
    settings: Any,
) -> None:
    # given followers' activity all through the window's first day, and no Redis to keep cells
    creator, _, _, _ = _first_day_world()
    consume()
    settings.CACHES = {
        "default": {
            **settings.CACHES["default"],
            "LOCATION": f"redis://127.0.0.1:{_closed_port()}/0",
        }
    }
    now = datetime(2026, 4, 20, 9, 10, tzinfo=UTC)
    # then each read counts the day from the rows, and is exact (checked against the oracle)
    first = _first_day_read(creator, now)
    assert first[1] == 1 and first[0]
    assert _first_day_read(creator, now) == first
