"""Videos API (SPEC §3 "Content and interactions"): publish, read, list."""

from collections.abc import Callable
from typing import Any

import pytest
from rest_framework.test import APIClient

from engagement.models import Hashtag, User, Video, VideoHashtag
from engagement.services.counters import video_counter_add
from tests.conftest import assert_problem, database_state
from tests.factories import LikeFactory, UserFactory, VideoFactory

pytestmark = pytest.mark.django_db


def _iso(video: Video) -> str:
    return video.created_at.isoformat().replace("+00:00", "Z")


def _video_body(
    video: Video, *, counts: dict[str, int] | None = None, liked: bool = False
) -> dict[str, Any]:
    return {
        "id": video.pk,
        "creator": {
            "id": video.creator.pk,
            "username": video.creator.username,
            "display_name": video.creator.display_name,
        },
        "title": video.title,
        "caption": video.caption,
        "hashtags": [tag.name for tag in video.hashtags.order_by("videohashtag__position")],
        "duration_ms": video.duration_ms,
        "created_at": _iso(video),
        "counts": counts or {"likes": 0, "comments": 0, "shares": 0, "plays": 0},
        "viewer": {"liked": liked},
    }


# --- publish ------------------------------------------------------------------------------------
def test_publish_a_video_makes_the_caller_its_creator(
    client_for_user: APIClient, user: User, django_assert_num_queries: Callable[..., Any]
) -> None:
    # the device token; in one atomic block (BEGIN/COMMIT or savepoints) the video, the
    # hashtags (one INSERT, one SELECT of their ids, however many) and their links (one INSERT);
    # then the video as read: the video with its creator, its hashtags, its counts, the
    # viewer's like
    with django_assert_num_queries(11):
        response = client_for_user.post(
            "/api/v1/videos",
            {
                "title": "Five-minute ramen",
                "caption": "Quick and good",
                "hashtags": ["#Cooking", "ramen", "cooking", "#RAMEN", "late_night"],
                "duration_ms": 45_000,
            },
        )

    assert response.status_code == 201
    video = Video.objects.get()
    assert response.json() == {
        "id": video.pk,
        "creator": {"id": user.pk, "username": user.username, "display_name": user.display_name},
        "title": "Five-minute ramen",
        "caption": "Quick and good",
        "hashtags": ["cooking", "ramen", "late_night"],
        "duration_ms": 45_000,
        "created_at": _iso(video),
        "counts": {"likes": 0, "comments": 0, "shares": 0, "plays": 0},
        "viewer": {"liked": False},
    }
    assert video.creator == user
    assert sorted(Hashtag.objects.values_list("name", flat=True)) == [
        "cooking",
        "late_night",
        "ramen",
    ]
    assert list(
        VideoHashtag.objects.filter(video=video)
        .order_by("position")
        .values_list("hashtag__name", "position")
    ) == [("cooking", 0), ("ramen", 1), ("late_night", 2)]


def test_publish_with_only_the_required_fields(
    client_for_user: APIClient, django_assert_num_queries: Callable[..., Any]
) -> None:
    # as with hashtags, less their three statements
    with django_assert_num_queries(8):
        response = client_for_user.post("/api/v1/videos", {"title": "Minimal", "duration_ms": 1})

    assert response.status_code == 201
    body = response.json()
    assert (body["caption"], body["hashtags"], body["duration_ms"]) == ("", [], 1)
    assert Hashtag.objects.count() == 0


def test_publish_reuses_existing_hashtags(client_for_user: APIClient) -> None:
    Hashtag.objects.create(name="cooking")

    response = client_for_user.post(
        "/api/v1/videos", {"title": "t", "duration_ms": 10, "hashtags": ["cooking", "new"]}
    )

    assert response.status_code == 201
    assert Hashtag.objects.count() == 2
    assert VideoHashtag.objects.count() == 2


@pytest.mark.parametrize(
    ("changes", "errors"),
    [
        ({"title": ""}, {"title": ["This field may not be blank."]}),
        ({"title": "   "}, {"title": ["This field may not be blank."]}),
        ({"title": "t" * 201}, {"title": ["Ensure this field has no more than 200 characters."]}),
        (
            {"caption": "c" * 2201},
            {"caption": ["Ensure this field has no more than 2200 characters."]},
        ),
        ({"caption": None}, {"caption": ["This field may not be null."]}),
        ({"duration_ms": 0}, {"duration_ms": ["Ensure this value is greater than or equal to 1."]}),
        (
            {"duration_ms": 36_000_001},
            {"duration_ms": ["Ensure this value is less than or equal to 36000000."]},
        ),
        ({"duration_ms": "45000"}, {"duration_ms": ["Must be an integer."]}),
        ({"duration_ms": 45000.0}, {"duration_ms": ["Must be an integer."]}),
        (
            {"hashtags": "cooking"},
            {"hashtags": ['Expected a list of items but got type "str".']},
        ),
        (
            {"hashtags": {"cooking": True}},
            {"hashtags": ['Expected a list of items but got type "dict".']},
        ),
        (
            {"hashtags": [f"tag{n}" for n in range(31)]},
            {"hashtags": ["Ensure this field has no more than 30 elements."]},
        ),
        (
            {"hashtags": ["h" * 101]},
            {"hashtags.0": ["Ensure this field has no more than 100 characters."]},
        ),
        (
            {"hashtags": ["#"]},
            {"hashtags.0": ["A hashtag is letters, digits and underscores, optionally after '#'."]},
        ),
        (
            {"hashtags": ["ok", "no-dashes"]},
            {"hashtags.1": ["A hashtag is letters, digits and underscores, optionally after '#'."]},
        ),
        ({"hashtags": [None]}, {"hashtags.0": ["This field may not be null."]}),
    ],
)
def test_publish_refuses_bad_input(
    client_for_user: APIClient, changes: dict[str, Any], errors: dict[str, list[str]]
) -> None:
    body = {"title": "A title", "duration_ms": 1000, **changes}
    before = database_state()

    response = client_for_user.post("/api/v1/videos", body)

    detail = "Invalid input: " + "; ".join(f"{name}: {errors[name][0]}" for name in errors)
    assert_problem(response, 400, "invalid", detail, errors=errors)
    assert database_state() == before


def test_publish_without_a_token_is_401(
    api_client: APIClient, django_assert_num_queries: Callable[..., Any]
) -> None:
    before = database_state()

    with django_assert_num_queries(0):  # no token: refused before any query
        response = api_client.post("/api/v1/videos", {"title": "t", "duration_ms": 1})

    assert_problem(
        response, 401, "not_authenticated", "Authentication credentials were not provided."
    )
    assert database_state() == before


# --- read ---------------------------------------------------------------------------------------
def test_get_a_video_with_counts_and_the_viewers_like(
    make_client: Callable[..., APIClient], django_assert_num_queries: Callable[..., Any]
) -> None:
    video = VideoFactory.create(caption="about it")
    fan, stranger = UserFactory.create(), UserFactory.create()
    make_client(fan).put(f"/api/v1/videos/{video.pk}/like")
    make_client(stranger).post(f"/api/v1/videos/{video.pk}/comments", {"text": "hi"})
    make_client(stranger).post(f"/api/v1/videos/{video.pk}/shares", {})
    make_client(stranger).post(
        f"/api/v1/videos/{video.pk}/plays", {"watched_ms": 5, "completed": False}
    )
    counts = {"likes": 1, "comments": 1, "shares": 1, "plays": 1}

    fan_client, stranger_client = make_client(fan), make_client(stranger)
    # the device token, the video with its creator, its hashtags, its counts, the viewer's like
    with django_assert_num_queries(5):
        as_fan = fan_client.get(f"/api/v1/videos/{video.pk}")
    with django_assert_num_queries(5):
        as_stranger = stranger_client.get(f"/api/v1/videos/{video.pk}")

    assert as_fan.status_code == as_stranger.status_code == 200
    assert as_fan.json() == _video_body(video, counts=counts, liked=True)
    assert as_stranger.json() == _video_body(video, counts=counts, liked=False)


def test_counts_show_only_counted_likes(client_for_user: APIClient) -> None:
    # a like that integrity marked as not counting is not in the counters
    video = VideoFactory.create()
    LikeFactory.create(video=video, counted=False)
    LikeFactory.create(video=video, counted=True)
    video_counter_add(video_id=video.pk, counter="likes", delta=1)

    response = client_for_user.get(f"/api/v1/videos/{video.pk}")

    assert response.json()["counts"] == {"likes": 1, "comments": 0, "shares": 0, "plays": 0}


def test_get_a_video_without_a_token_is_401(
    api_client: APIClient, django_assert_num_queries: Callable[..., Any]
) -> None:
    video = VideoFactory.create()

    with django_assert_num_queries(0):  # no token: refused before any query
        response = api_client.get(f"/api/v1/videos/{video.pk}")

    assert_problem(
        response, 401, "not_authenticated", "Authentication credentials were not provided."
    )


# --- list ---------------------------------------------------------------------------------------
def test_list_videos_newest_first_with_cursor_pages(
    client_for_user: APIClient, user: User, django_assert_num_queries: Callable[..., Any]
) -> None:
    videos = VideoFactory.create_batch(5)
    LikeFactory.create(user=user, video=videos[1])
    newest_first = list(reversed(videos))

    # the device token, the page's videos with their creators, their hashtags, their counts,
    # the viewer's likes among them: the same for a page of 100 (test_page_size_is_capped_at_100)
    with django_assert_num_queries(5):
        first = client_for_user.get("/api/v1/videos?page_size=2")
    second = client_for_user.get(first.json()["next"])
    third = client_for_user.get(second.json()["next"])
    back = client_for_user.get(third.json()["previous"])

    assert first.status_code == second.status_code == third.status_code == 200
    assert first.json()["previous"] is None
    assert first.json()["results"] == [_video_body(video) for video in newest_first[:2]]
    assert second.json()["results"] == [
        _video_body(newest_first[2]),
        _video_body(newest_first[3], liked=True),
    ]
    assert third.json()["results"] == [_video_body(newest_first[4])]
    assert third.json()["next"] is None
    assert back.json()["results"] == second.json()["results"]


def test_list_videos_of_one_creator(client_for_user: APIClient) -> None:
    creator = UserFactory.create()
    mine = VideoFactory.create_batch(2, creator=creator)
    VideoFactory.create_batch(2)

    response = client_for_user.get(f"/api/v1/videos?creator={creator.pk}")

    assert response.status_code == 200
    assert response.json() == {
        "next": None,
        "previous": None,
        "results": [_video_body(video) for video in reversed(mine)],
    }


@pytest.mark.parametrize("creator", ["abc", "-1", "1.5", "1" * 19, "", "\u0661\u0662", "\u00b2"])
def test_list_videos_refuses_a_creator_that_is_not_an_id(
    client_for_user: APIClient, creator: str
) -> None:
    response = client_for_user.get("/api/v1/videos", {"creator": creator})

    assert_problem(
        response,
        400,
        "invalid",
        "Invalid input: creator: must be a user id.",
        errors={"creator": ["Must be a user id."]},
    )


def test_page_size_is_capped_at_100(
    client_for_user: APIClient, django_assert_num_queries: Callable[..., Any]
) -> None:
    Video.objects.bulk_create(
        [Video(creator=UserFactory.create(), title=f"v{n}", duration_ms=1) for n in range(101)]
    )

    # 100 videos of 100 creators, in as many queries as a page of 2
    with django_assert_num_queries(5):
        response = client_for_user.get("/api/v1/videos?page_size=1000")

    assert len(response.json()["results"]) == 100
    assert response.json()["next"] is not None
