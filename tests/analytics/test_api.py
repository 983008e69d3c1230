"""`GET creators/me/analytics` and `GET videos/{id}/analytics` served from the rollups: the
SPEC's edge cases with exact values, refusals with exact problem documents, freshness, the
reconciliation and the query budget."""

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from analytics.models import VideoBucket
from analytics.raw import creator_figures_raw
from analytics.selectors import creator_analytics_document
from analytics.services.consumer import analytics_events_process
from analytics.services.reconcile import analytics_rollups_reconcile
from engagement.models import InteractionKind, Like, User, Video
from engagement.services.counted import interactions_counted_set
from tests.analytics import world
from tests.analytics.test_rollups import without_as_of
from tests.conftest import assert_problem, unknown_id
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

DAY = timedelta(days=1)
EMPTY_GRID = [[0] * 24 for _ in range(7)]
ClientMaker = Callable[..., APIClient]


def consume() -> None:
    while analytics_events_process().more:
        pass


def get(client: APIClient, path: str) -> dict[str, Any]:
    response = client.get(path)
    assert response.status_code == 200, response.content
    body = response.json()
    assert isinstance(body.pop("as_of"), str)
    return body


def _creator(make_client: ClientMaker) -> tuple[User, APIClient, Video]:
    creator = UserFactory.create()
    clip = world.video(creator, timezone.now() - 100 * DAY)
    return creator, make_client(creator), clip


def test_a_creator_with_no_videos(make_client: ClientMaker) -> None:
    creator = UserFactory.create()
    consume()
    body = get(make_client(creator), "/api/v1/creators/me/analytics?days=7&tz=Asia/Kathmandu")
    assert body["totals"] == {
        "plays": 0,
        "likes": 0,
        "comments": 0,
        "shares": 0,
        "follows_gained": 0,
        "interactions": 0,
    }
    for rate in (
        "interaction_rate",
        "interaction_growth_rate",
        "first_hour_velocity",
        "completion_rate",
        "replay_rate",
        "effective_comment_share",
        "quick_like_share",
    ):
        assert body[rate] is None
    assert body["fan_activity"] == {"timezone": "Asia/Kathmandu", "grid": EMPTY_GRID}
    assert body["interest_preferences"] == []
    group = {"videos": 0, "plays": 0, "interactions": 0, "first_hour_velocity": None}
    assert body["tool_effect"] == {"with_tools": group, "without_tools": group, "lift": None}
    assert body["window"]["days"] == 7


def test_a_window_with_no_plays_has_null_rates_and_growth_against_nothing_is_null(
    make_client: ClientMaker,
) -> None:
    _, client, clip = _creator(make_client)
    world.like(UserFactory.create(), clip, timezone.now() - 2 * DAY)
    consume()
    body = get(client, "/api/v1/creators/me/analytics")
    assert body["totals"]["likes"] == 1 and body["totals"]["interactions"] == 1
    assert body["totals"]["plays"] == 0
    assert body["interaction_rate"] is None
    assert body["completion_rate"] is None and body["replay_rate"] is None
    assert body["interaction_growth_rate"] is None  # nothing in the 28 days before
    assert body["quick_like_share"] == 1.0  # a like with no play at all


def test_growth_with_numbers_and_a_replay_whose_first_play_was_before_the_window(
    make_client: ClientMaker,
) -> None:
    _, client, clip = _creator(make_client)
    now = timezone.now()
    viewer = UserFactory.create()
    world.play(viewer, clip, now - 40 * DAY, watched_ms=9000)  # before the 28-day window
    world.play(viewer, clip, now - 1 * DAY, watched_ms=9000, completed=True)
    world.comment(UserFactory.create(), clip, now - 30 * DAY)  # previous window: 2
    world.share(UserFactory.create(), clip, now - 29 * DAY)
    for _ in range(3):  # this window: 3
        world.share(UserFactory.create(), clip, now - 3 * DAY)
    consume()
    body = get(client, "/api/v1/creators/me/analytics?days=28")
    assert body["totals"]["plays"] == 1
    assert body["replay_rate"] == 1.0
    assert body["completion_rate"] == 1.0
    assert body["interaction_growth_rate"] == 0.5  # (3 - 2) / 2
    assert body["interaction_rate"] == 3.0


def test_repeated_and_emoji_only_comments(make_client: ClientMaker) -> None:
    _, client, clip = _creator(make_client)
    other = world.video(UserFactory.create(), timezone.now() - 100 * DAY)
    fan = UserFactory.create()
    now = timezone.now()
    world.comment(fan, other, now - 60 * DAY, "Hello  World")  # earlier, elsewhere
    world.comment(fan, clip, now - 2 * DAY, "hello world")  # a repeat
    world.comment(fan, clip, now - 2 * DAY + timedelta(seconds=1), "😀😀 !!")  # hollow
    world.comment(fan, clip, now - DAY, "great tip")  # effective
    world.comment(fan, clip, now - DAY + timedelta(seconds=1), "GREAT   tip")  # a repeat
    consume()
    body = get(client, "/api/v1/creators/me/analytics?days=7")
    assert body["totals"]["comments"] == 4
    assert body["effective_comment_share"] == 0.25


def test_quick_likes_a_like_with_no_play_one_after_two_seconds_and_one_watched(
    make_client: ClientMaker,
) -> None:
    _, client, clip = _creator(make_client)
    now = timezone.now()
    no_play, quick, watcher = UserFactory.create_batch(3)
    world.like(no_play, clip, now - DAY)
    world.play(quick, clip, now - DAY, watched_ms=2000)
    world.like(quick, clip, now - DAY + timedelta(seconds=2))
    world.play(watcher, clip, now - DAY, watched_ms=2000)
    world.like(watcher, clip, now - DAY + timedelta(seconds=2))
    consume()
    assert get(client, "/api/v1/creators/me/analytics")["quick_like_share"] == 1.0
    # a later play takes the watcher's total to 3 s: the like stops being quick
    world.play(watcher, clip, now - DAY + timedelta(minutes=5), watched_ms=1000)
    consume()
    body = get(client, f"/api/v1/videos/{clip.pk}/analytics")
    assert body["quick_like_share"] == 2 / 3
    assert body["totals"]["likes"] == 3 and body["totals"]["plays"] == 3


def test_uncounted_rows_are_excluded_everywhere(make_client: ClientMaker) -> None:
    creator, client, clip = _creator(make_client)
    now = timezone.now()
    fan = UserFactory.create()
    world.follow(fan, creator, now - 50 * DAY, source_video=clip, counted=False)
    world.like(fan, clip, now - DAY, counted=False)
    world.play(fan, clip, now - DAY, counted=False)
    world.comment(fan, clip, now - DAY, counted=False)
    world.share(fan, clip, now - DAY, counted=False)
    consume()
    body = get(client, "/api/v1/creators/me/analytics?days=90")
    assert body["totals"] == {
        "plays": 0,
        "likes": 0,
        "comments": 0,
        "shares": 0,
        "follows_gained": 0,
        "interactions": 0,
    }
    assert body["fan_activity"]["grid"] == EMPTY_GRID


def test_parameters_outside_the_spec_are_400(make_client: ClientMaker) -> None:
    _, client, clip = _creator(make_client)
    path = "/api/v1/creators/me/analytics"
    days_error = "Must be one of 7, 28, 90."
    tz_error = "Unknown time zone 'Mars/Base': give an IANA name such as Europe/Berlin."
    assert_problem(
        client.get(f"{path}?days=5"),
        400,
        "invalid",
        f"Invalid input: days: {days_error}",
        errors={"days": [days_error]},
    )
    assert_problem(
        client.get(f"{path}?days=abc"),
        400,
        "invalid",
        f"Invalid input: days: {days_error}",
        errors={"days": [days_error]},
    )
    assert_problem(
        client.get(f"/api/v1/videos/{clip.pk}/analytics?days=07&tz=Mars/Base"),
        400,
        "invalid",
        f"Invalid input: days: {days_error}; tz: {tz_error}",
        errors={"days": [days_error], "tz": [tz_error]},
    )
    utc5 = "Unknown time zone 'UTC+5': give an IANA name such as Europe/Berlin."
    assert_problem(
        client.get(f"{path}?tz=UTC%2B5"),
        400,
        "invalid",
        f"Invalid input: tz: {utc5}",
        errors={"tz": [utc5]},
    )


def test_another_users_video_and_an_unknown_video_are_404(
    make_client: ClientMaker, django_assert_num_queries: Any
) -> None:
    _, client, clip = _creator(make_client)
    stranger = make_client(UserFactory.create())
    unknown = unknown_id(Video)
    # each: the device token, the video's creator (not the caller's, or no video)
    with django_assert_num_queries(2 * 2):
        responses = (
            stranger.get(f"/api/v1/videos/{clip.pk}/analytics"),
            client.get(f"/api/v1/videos/{unknown}/analytics"),
        )
    for response in responses:
        assert_problem(response, 404, "not_found", "No video with this id.")


def test_anonymous_is_401(api_client: APIClient, django_assert_num_queries: Any) -> None:
    with django_assert_num_queries(0):  # no token: refused before any query
        assert api_client.get("/api/v1/creators/me/analytics").status_code == 401


def test_a_like_then_a_consumer_pass_is_visible_and_a_flip_after_the_next_pass(
    make_client: ClientMaker,
) -> None:
    _, client, clip = _creator(make_client)
    fan = make_client(UserFactory.create())
    assert fan.put(f"/api/v1/videos/{clip.pk}/like").status_code == 201
    consume()
    assert get(client, "/api/v1/creators/me/analytics")["totals"]["likes"] == 1
    like_id = Like.objects.get(video=clip).pk
    interactions_counted_set(kind=InteractionKind.LIKE, ids=[like_id], counted=False)
    consume()
    assert get(client, f"/api/v1/videos/{clip.pk}/analytics")["totals"]["likes"] == 0
    assert get(client, "/api/v1/creators/me/analytics")["totals"]["likes"] == 0


def test_the_reconciliation_finds_and_repairs_one_corrupted_row() -> None:
    creator = UserFactory.create()
    clip = world.video(creator, timezone.now() - 10 * DAY)
    world.play(UserFactory.create(), clip, timezone.now() - DAY)
    consume()
    now = timezone.now()
    expected = creator_figures_raw(creator_id=creator.pk, days=28, tz="UTC", now=now)
    # given a rollup row gone wrong
    VideoBucket.objects.filter(video_id=clip.pk).update(plays=5)
    assert analytics_rollups_reconcile(repair=False).differences == 1
    # when
    report = analytics_rollups_reconcile()
    # then
    assert report.differences == 1 and report.repaired
    assert analytics_rollups_reconcile().differences == 0
    served = creator_analytics_document(creator_id=creator.pk, days=28, tz="UTC", now=now)
    assert without_as_of(served) == expected


def _history(creator: User, videos: int, events: int) -> None:
    now = timezone.now()
    viewers = UserFactory.create_batch(5)
    for index in range(videos):
        clip = world.video(creator, now - (index + 1) * 3 * DAY, ["cats"])
        for n in range(events):
            viewer = viewers[n % 5]
            world.play(viewer, clip, now - (n % 170) * DAY / 2 - timedelta(minutes=n))
            world.share(viewer, clip, now - (n % 170) * DAY / 2)
    for viewer in viewers:
        world.follow(viewer, creator, now - 200 * DAY)


@pytest.mark.parametrize(("videos", "events"), [(1, 2), (6, 60)])
def test_a_creator_read_makes_a_fixed_number_of_queries(
    make_client: ClientMaker, django_assert_num_queries: Any, videos: int, events: int
) -> None:
    creator = UserFactory.create()
    _history(creator, videos, events)
    consume()
    client = make_client(creator)
    client.get("/api/v1/creators/me/analytics")  # warm the auth caches
    # auth (token + user), no parallel workers (set, reset), as_of, buckets, edges, published
    # videos, fan grid, the interest cells of the window's first day (not yet stored: the
    # warm-up read was for 28 days), interests
    with django_assert_num_queries(QUERIES_PER_CREATOR_READ):
        response = client.get("/api/v1/creators/me/analytics?days=90&tz=Asia/Kolkata")
    assert response.status_code == 200


QUERIES_PER_CREATOR_READ = 10


@pytest.mark.parametrize("events", [2, 60])
def test_a_video_read_makes_a_fixed_number_of_queries(
    make_client: ClientMaker, django_assert_num_queries: Any, events: int
) -> None:
    creator = UserFactory.create()
    _history(creator, 1, events)
    consume()
    clip = Video.objects.get(creator=creator)
    client = make_client(creator)
    # (documents are not stored in tests: ANALYTICS_DOCUMENT_FRESH_SECONDS=0) auth, the video's
    # creator, no parallel workers (set, reset), the video's first hour, as_of, buckets, edges,
    # follower cells, stickers: the same for 2 and 60 events
    with django_assert_num_queries(QUERIES_PER_VIDEO_READ):
        response = client.get(f"/api/v1/videos/{clip.pk}/analytics")
    assert response.status_code == 200


QUERIES_PER_VIDEO_READ = 10


def test_the_documents_validate_against_the_schema(make_client: ClientMaker) -> None:
    from tests.core.test_schema_pages import _validator

    _, client, clip = _creator(make_client)
    world.like(UserFactory.create(), clip, timezone.now() - DAY)
    consume()
    schema = APIClient().get("/api/schema/?format=json").json()
    for path, example in [
        ("/api/v1/creators/me/analytics", "/api/v1/creators/me/analytics"),
        ("/api/v1/videos/{video_id}/analytics", f"/api/v1/videos/{clip.pk}/analytics"),
    ]:
        _validator(schema, path).validate(client.get(example).json())
