"""GET videos/hot and GET hashtags/trending through the API: documents, ordering and ties, a
fixed number of queries, 400 problem documents that change nothing, the OpenAPI schema."""

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from analytics.api import discovery as discovery_api
from analytics.models import VideoHeat
from analytics.parameters import iso_utc
from analytics.services.heat import heat_as_of, heat_events_process, heat_of
from analytics.services.trending import trending_as_of, trending_events_process
from engagement import selectors as engagement_selectors
from engagement.models import User, Video
from tests.analytics.test_refresh_ahead import _closed_port
from tests.analytics.world import comment, like, video
from tests.conftest import assert_problem, database_state
from tests.engagement.test_api_videos import _video_body
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

DAY = datetime(2026, 3, 1, tzinfo=UTC)


def users(count: int, prefix: str = "fan") -> list[User]:
    return User.objects.bulk_create([User(username=f"{prefix}{n}") for n in range(count)])


def hot_body(made: Video, points: int, liked: bool = False) -> dict:
    made.refresh_from_db()
    return {
        # (the world's rows bypass the services, so the video counters stay at 0)
        "video": _video_body(made, liked=liked),
        "heat": heat_of(points=points, published_at=made.created_at),
    }


def test_hot_lists_by_heat_then_newer_then_higher_id(
    client_for_user: APIClient, user: User
) -> None:
    fans = users(3)
    old = video(UserFactory.create(), DAY)
    twin_a = video(UserFactory.create(), DAY + timedelta(hours=5))
    twin_b = video(UserFactory.create(), DAY + timedelta(hours=5))
    unliked = video(UserFactory.create(), DAY + timedelta(hours=9))  # no counted like: not listed
    like(fans[0], unliked, DAY + timedelta(hours=9), counted=False)
    for made in (old, twin_a, twin_b):
        like(fans[0], made, made.created_at + timedelta(hours=2))
    like(user, old, DAY + timedelta(hours=2))
    heat_events_process()

    response = client_for_user.get("/api/v1/videos/hot")

    assert response.status_code == 200
    body = response.json()
    assert body["as_of"] == iso_utc(heat_as_of())
    # twins tie on heat and time: the higher id first; old (2 points, 5 h older) last
    assert body["results"] == [
        hot_body(twin_b, 1),
        hot_body(twin_a, 1),
        hot_body(old, 2, liked=True),
    ]


def test_hot_list_takes_a_fixed_number_of_queries(
    client_for_user: APIClient,
    make_client: Callable[..., APIClient],
    django_assert_num_queries: Callable[..., Any],
) -> None:
    fan = users(1)[0]

    def queries(videos: int) -> int:
        for hour in range(videos):
            made = video(UserFactory.create(), DAY + timedelta(hours=hour), ["tag", f"t{hour}"])
            like(fan, made, DAY + timedelta(hours=hour, minutes=5))
            comment(fan, made, DAY + timedelta(hours=hour, minutes=6))
        heat_events_process()
        # not stored (ANALYTICS_HOT_CACHE_SECONDS=0 in tests): the device token, heat's as_of,
        # the hot ids, the videos with their creators, their hashtags, their counts, the
        # viewer's likes among them
        with django_assert_num_queries(7), CaptureQueriesContext(connection) as captured:
            response = client_for_user.get("/api/v1/videos/hot?limit=100")
        assert response.status_code == 200
        assert len(response.json()["results"]) == VideoHeat.objects.count()
        return len(captured)

    assert queries(1) == queries(30)


def test_the_hot_list_is_stored_for_everyone_and_marks_each_viewers_likes(
    make_client: Callable[..., APIClient], django_assert_num_queries: Callable[..., Any]
) -> None:
    fan, other = users(2)
    early = video(UserFactory.create(), DAY, ["tag"])
    like(fan, early, DAY + timedelta(minutes=5))
    heat_events_process()
    with override_settings(ANALYTICS_HOT_CACHE_SECONDS=5):
        first = make_client(fan).get("/api/v1/videos/hot").json()
        assert first["results"] == [hot_body(early, 2, liked=True)]
        # A new like: the stored list is served (within its 5 s), with each viewer's likes.
        late = video(UserFactory.create(), DAY + timedelta(hours=1), ["tag"])
        like(other, late, DAY + timedelta(hours=1, minutes=5))
        heat_events_process()
        client = make_client(other)
        with django_assert_num_queries(2), CaptureQueriesContext(connection) as captured:
            again = client.get("/api/v1/videos/hot").json()
        assert again["results"] == [hot_body(early, 2, liked=False)]
        assert again["as_of"] == first["as_of"]
        # the token and the viewer's likes: the list itself is not read again
        assert not any("analytics_videoheat" in q["sql"] for q in captured.captured_queries)
        fan_client = make_client(fan)
        # the token only: the list and the fan's likes (under the fan's likes version) are read
        # from Redis on the throttle's round trip
        with django_assert_num_queries(1):
            assert fan_client.get("/api/v1/videos/hot").json() == first
    with override_settings(ANALYTICS_HOT_CACHE_SECONDS=0):
        assert len(make_client(other).get("/api/v1/videos/hot").json()["results"]) == 2


@pytest.mark.django_db(transaction=True)
def test_a_viewer_s_likes_are_stored_and_their_own_like_or_unlike_shows_on_the_next_read(
    make_client: Callable[..., APIClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    # given two listed videos and a viewer who likes neither
    fans = users(2)
    viewer = fans[1]
    first_clip = video(UserFactory.create(), DAY, ["tag"])
    second_clip = video(UserFactory.create(), DAY + timedelta(hours=1), ["tag"])
    for made in (first_clip, second_clip):
        like(fans[0], made, made.created_at + timedelta(minutes=5))
    heat_events_process()
    liked_queries: list[list[int]] = []
    liked_by = engagement_selectors.videos_liked_by

    def counting(**kwargs: Any) -> set[int]:
        liked_queries.append(kwargs["video_ids"])
        return liked_by(**kwargs)

    monkeypatch.setattr(engagement_selectors, "videos_liked_by", counting)
    monkeypatch.setattr(discovery_api, "HOT_LIKED_SECONDS", 1)
    client = make_client(viewer)

    def liked() -> list[bool]:
        results = client.get("/api/v1/videos/hot").json()["results"]
        return [entry["video"]["viewer"]["liked"] for entry in results]

    with override_settings(ANALYTICS_HOT_CACHE_SECONDS=5):
        # when read twice, then the viewer's likes are queried once, then kept
        assert liked() == [False, False]
        assert liked() == [False, False]
        assert len(liked_queries) == 1
        # when the viewer likes one through the API, then the next read shows it
        assert client.put(f"/api/v1/videos/{first_clip.pk}/like").status_code == 201
        assert liked() == [False, True]  # (the newer video first)
        # and when they unlike it again, the next read shows that too
        assert client.delete(f"/api/v1/videos/{first_clip.pk}/like").status_code == 204
        assert liked() == [False, False]
        assert len(liked_queries) == 3
        # a like made around the API (here the test's own row) moves no version: it shows
        # once the stored likes expire (HOT_LIKED_SECONDS, here 1 s)
        like(viewer, second_clip, DAY + timedelta(hours=2), counted=False)
        assert liked() == [False, False]
        time.sleep(1.2)
        assert liked() == [True, False]


@pytest.mark.django_db(transaction=True)
def test_with_redis_unreachable_the_hot_list_still_shows_the_viewer_s_own_like(
    make_client: Callable[..., APIClient], settings: Any
) -> None:
    # given a listed video and no Redis (nothing stored, no likes version)
    fan, viewer = users(2)
    clip = video(UserFactory.create(), DAY, ["tag"])
    like(fan, clip, DAY + timedelta(minutes=5))
    heat_events_process()
    client = make_client(viewer)
    settings.CACHES = {
        "default": {
            **settings.CACHES["default"],
            "LOCATION": f"redis://127.0.0.1:{_closed_port()}/0",
        }
    }

    def liked() -> dict[str, bool]:
        viewer_part: dict[str, bool] = client.get("/api/v1/videos/hot").json()["results"][0][
            "video"
        ]["viewer"]
        return viewer_part

    assert liked() == {"liked": False}
    # when the viewer likes it, then the next read shows it (counted from the rows)
    assert client.put(f"/api/v1/videos/{clip.pk}/like").status_code == 201
    assert liked() == {"liked": True}


@pytest.mark.parametrize(
    ("path", "field", "low", "high"),
    [
        ("/api/v1/videos/hot", "limit", 1, 100),
        ("/api/v1/hashtags/trending", "limit", 1, 100),
        ("/api/v1/hashtags/trending", "hours", 1, 168),
    ],
)
@pytest.mark.parametrize("value", ["0", "-1", "1.5", "abc", "", "\u0661", "101", "169", "1000"])
def test_parameters_out_of_range_are_400_and_change_nothing(
    client_for_user: APIClient,
    path: str,
    field: str,
    low: int,
    high: int,
    value: str,
    django_assert_num_queries: Callable[..., Any],
) -> None:
    if field == "hours" and value == "101":
        value = "0169"
    before = database_state()

    with django_assert_num_queries(1):  # the device token only
        response = client_for_user.get(path, {field: value})

    assert_problem(
        response,
        400,
        "invalid",
        f"Invalid input: {field}: must be an integer from {low} to {high}.",
        errors={field: [f"Must be an integer from {low} to {high}."]},
    )
    assert database_state() == before


@pytest.mark.parametrize(("path", "value"), [("videos/hot", "100"), ("hashtags/trending", "168")])
def test_the_bounds_are_accepted(client_for_user: APIClient, path: str, value: str) -> None:
    field = "limit" if path == "videos/hot" else "hours"
    assert client_for_user.get(f"/api/v1/{path}", {field: value}).status_code == 200


def test_both_need_a_token(
    api_client: APIClient, django_assert_num_queries: Callable[..., Any]
) -> None:
    with django_assert_num_queries(0):  # no token: refused before any query
        assert api_client.get("/api/v1/videos/hot").status_code == 401
        assert api_client.get("/api/v1/hashtags/trending").status_code == 401


def test_trending_document_through_the_api(
    client_for_user: APIClient, django_assert_num_queries: Callable[..., Any]
) -> None:
    # given three users interacting with a tagged video a few minutes ago, committed
    fans = users(3)
    now = datetime.now(UTC)
    made = video(UserFactory.create(), now - timedelta(hours=2), ["live"])
    for fan in fans:
        like(fan, made, now - timedelta(minutes=30))

    # when the consumer passes and the list is asked for
    trending_events_process()
    # the device token, the consumer's as_of, the ranking (one statement, however many
    # hashtags)
    with django_assert_num_queries(3):
        response = client_for_user.get("/api/v1/hashtags/trending?hours=1&limit=5")

    # then the window ends at the consumer's as_of (slice-aligned, at most a few seconds old)
    assert response.status_code == 200
    end = trending_as_of()
    assert now - timedelta(seconds=20) < end <= now
    assert response.json() == {
        "as_of": iso_utc(end),
        "window": {"hours": 1, "start": iso_utc(end - timedelta(hours=1)), "end": iso_utc(end)},
        "results": [
            {
                "hashtag": "live",
                "interactions": 3,
                "previous": 0,
                "growth": None,
                "score": 3 / 10**0.5,
            }
        ],
    }


def test_the_schema_documents_both_endpoints(api_client: APIClient) -> None:
    schema = api_client.get("/api/schema/?format=json").json()
    hot = schema["paths"]["/api/v1/videos/hot"]["get"]
    trending = schema["paths"]["/api/v1/hashtags/trending"]["get"]
    assert [p["name"] for p in hot["parameters"]] == ["limit"]
    assert [p["name"] for p in trending["parameters"]] == ["hours", "limit"]
    components = schema["components"]["schemas"]
    assert set(components["HotList"]["properties"]) == {"as_of", "results"}
    assert set(components["HotEntry"]["properties"]) == {"video", "heat"}
    assert set(components["Trending"]["properties"]) == {"as_of", "window", "results"}
    assert set(components["TrendingEntry"]["properties"]) == {
        "hashtag",
        "interactions",
        "previous",
        "growth",
        "score",
    }
    assert components["TrendingEntry"]["properties"]["growth"]["nullable"] is True
