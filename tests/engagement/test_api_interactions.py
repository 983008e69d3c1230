"""Likes, comment likes, comments, shares, plays and follows through the API (SPEC §3)."""

import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection
from rest_framework.test import APIClient

from engagement.models import (
    Comment,
    CommentLike,
    Follow,
    Like,
    Play,
    Removal,
    Share,
    User,
    Video,
)
from engagement.services.counters import video_counts
from tests.conftest import assert_problem, database_state, unknown_id
from tests.factories import (
    CommentFactory,
    CommentLikeFactory,
    LikeFactory,
    UserFactory,
    VideoFactory,
)

pytestmark = pytest.mark.django_db

ZERO = {"likes": 0, "comments": 0, "shares": 0, "plays": 0}


def _iso(value: Any) -> str:
    return value.isoformat().replace("+00:00", "Z")


def _counts(video: Video) -> dict[str, int]:
    return video_counts([video.pk])[video.pk]


# --- video likes --------------------------------------------------------------------------------
def test_like_is_201_first_then_200_and_counts_once(
    make_client: Callable[..., APIClient], django_assert_num_queries: Callable[..., Any]
) -> None:
    video = VideoFactory.create()
    user = UserFactory.create()
    client = make_client(user, device_id="phone-7")

    # the device token; in one atomic block (BEGIN/COMMIT or savepoints) the video locked
    # (FOR KEY SHARE), the like, a counter shard; then the counts
    with django_assert_num_queries(7):
        first = client.put(f"/api/v1/videos/{video.pk}/like")
    with django_assert_num_queries(6):  # the like is there: no counter change
        again = client.put(f"/api/v1/videos/{video.pk}/like")

    assert (first.status_code, first.json()) == (201, {"liked": True, "likes": 1})
    assert (again.status_code, again.json()) == (200, {"liked": True, "likes": 1})
    like = Like.objects.get()
    assert (like.user_id, like.video_id, like.counted) == (user.pk, video.pk, True)
    assert (like.ip, like.device_id) == ("127.0.0.1", "phone-7")
    assert _counts(video) == {**ZERO, "likes": 1}


def test_likes_of_different_users_add_up(make_client: Callable[..., APIClient]) -> None:
    video = VideoFactory.create()

    bodies = [
        make_client(UserFactory.create()).put(f"/api/v1/videos/{video.pk}/like") for _ in range(3)
    ]

    assert [(response.status_code, response.json()) for response in bodies] == [
        (201, {"liked": True, "likes": 1}),
        (201, {"liked": True, "likes": 2}),
        (201, {"liked": True, "likes": 3}),
    ]
    assert Like.objects.filter(video=video).count() == 3


def test_unlike_is_204_and_idempotent(
    make_client: Callable[..., APIClient], django_assert_num_queries: Callable[..., Any]
) -> None:
    video = VideoFactory.create()
    user, other = UserFactory.create(), UserFactory.create()
    client = make_client(user)
    client.put(f"/api/v1/videos/{video.pk}/like")
    make_client(other).put(f"/api/v1/videos/{video.pk}/like")

    # the device token; in one atomic block (BEGIN/COMMIT or savepoints) the video locked,
    # the like deleted with its removal recorded (one statement), a counter shard
    with django_assert_num_queries(6):
        first = client.delete(f"/api/v1/videos/{video.pk}/like")
    with django_assert_num_queries(5):  # nothing removed: no counter change
        again = client.delete(f"/api/v1/videos/{video.pk}/like")

    assert (first.status_code, first.content) == (204, b"")
    assert (again.status_code, again.content) == (204, b"")
    assert list(Like.objects.values_list("user_id", flat=True)) == [other.pk]
    assert _counts(video) == {**ZERO, "likes": 1}
    # and it can be liked again
    assert client.put(f"/api/v1/videos/{video.pk}/like").json() == {"liked": True, "likes": 2}


def test_unlike_of_a_like_that_does_not_count_leaves_the_counter(
    client_for_user: APIClient, user: User
) -> None:
    video = VideoFactory.create()
    LikeFactory.create(user=user, video=video, counted=False)
    client_for_user.put(f"/api/v1/videos/{video.pk}/like")  # already there: 200, no change

    response = client_for_user.delete(f"/api/v1/videos/{video.pk}/like")

    assert response.status_code == 204
    assert Like.objects.count() == 0
    assert _counts(video) == ZERO


@pytest.mark.parametrize("method", ["put", "delete"])
def test_like_without_a_token_is_401_and_changes_nothing(
    api_client: APIClient, method: str, django_assert_num_queries: Callable[..., Any]
) -> None:
    video = VideoFactory.create()
    before = database_state()

    with django_assert_num_queries(0):  # no token: refused before any query
        response = getattr(api_client, method)(f"/api/v1/videos/{video.pk}/like")

    assert_problem(
        response, 401, "not_authenticated", "Authentication credentials were not provided."
    )
    assert database_state() == before


def test_like_ignores_a_body(client_for_user: APIClient) -> None:
    video = VideoFactory.create()

    response = client_for_user.put(f"/api/v1/videos/{video.pk}/like", {"counted": False})

    assert response.status_code == 201
    assert Like.objects.get().counted is True


# --- comments -----------------------------------------------------------------------------------
def _comment_body(comment: Comment, *, liked: bool = False) -> dict[str, Any]:
    return {
        "id": comment.pk,
        "video_id": comment.video_id,
        "user": {
            "id": comment.user.pk,
            "username": comment.user.username,
            "display_name": comment.user.display_name,
        },
        "text": comment.text,
        "created_at": _iso(comment.created_at),
        "likes": comment.like_count,
        "viewer": {"liked": liked},
    }


def test_post_a_comment(
    make_client: Callable[..., APIClient], django_assert_num_queries: Callable[..., Any]
) -> None:
    video = VideoFactory.create()
    user = UserFactory.create()
    client = make_client(user, device_id="tab-1")

    # the device token; in one atomic block (BEGIN/COMMIT or savepoints) the video locked,
    # the comment, a counter shard
    with django_assert_num_queries(6):
        response = client.post(f"/api/v1/videos/{video.pk}/comments", {"text": "  Love this!  "})

    assert response.status_code == 201
    comment = Comment.objects.get()
    assert response.json() == _comment_body(comment)
    assert comment.text == "Love this!"
    assert (comment.user_id, comment.video_id, comment.counted) == (user.pk, video.pk, True)
    assert (comment.ip, comment.device_id) == ("127.0.0.1", "tab-1")
    assert _counts(video) == {**ZERO, "comments": 1}


def test_the_same_comment_twice_makes_two_comments(client_for_user: APIClient) -> None:
    video = VideoFactory.create()

    for _ in range(2):
        assert (
            client_for_user.post(
                f"/api/v1/videos/{video.pk}/comments", {"text": "again"}
            ).status_code
            == 201
        )

    assert Comment.objects.count() == 2
    assert _counts(video) == {**ZERO, "comments": 2}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "This field is required."),
        ({"text": ""}, "This field may not be blank."),
        ({"text": " \n\t "}, "This field may not be blank."),
        ({"text": None}, "This field may not be null."),
        ({"text": 5}, "Must be a string."),
        ({"text": ["a"]}, "Must be a string."),
        ({"text": "c" * 2001}, "Ensure this field has no more than 2000 characters."),
        ({"text": "c" * 1_000_000}, "Ensure this field has no more than 2000 characters."),
        ({"text": "nul\x00byte"}, "Null characters are not allowed."),
    ],
)
def test_post_a_comment_refuses_bad_input(
    client_for_user: APIClient, body: dict[str, Any], message: str
) -> None:
    video = VideoFactory.create()
    before = database_state()

    response = client_for_user.post(f"/api/v1/videos/{video.pk}/comments", body)

    assert_problem(
        response, 400, "invalid", f"Invalid input: text: {message}", errors={"text": [message]}
    )
    assert database_state() == before


def test_comments_are_listed_newest_first_with_cursor_pages(
    make_client: Callable[..., APIClient], django_assert_num_queries: Callable[..., Any]
) -> None:
    # given five comments, two of them liked (one by the viewer), and a comment elsewhere
    video = VideoFactory.create()
    viewer = UserFactory.create()
    client = make_client(viewer)
    comments = CommentFactory.create_batch(5, video=video)
    CommentFactory.create()
    client.put(f"/api/v1/comments/{comments[3].pk}/like")
    make_client(UserFactory.create()).put(f"/api/v1/comments/{comments[3].pk}/like")
    make_client(UserFactory.create()).put(f"/api/v1/comments/{comments[0].pk}/like")
    for comment in comments:
        comment.refresh_from_db()
    newest_first = list(reversed(comments))

    # when the viewer pages through them two at a time (each page: the device token, the video
    # exists?, the page's comments with their authors, the viewer's likes among them)
    with django_assert_num_queries(4):
        first = client.get(f"/api/v1/videos/{video.pk}/comments?page_size=2")
    with django_assert_num_queries(4):  # a page of one: the same
        second = client.get(first.json()["next"])
    third = client.get(second.json()["next"])
    back = client.get(second.json()["previous"])

    # then every comment shows once, in order, with its likes and the viewer's like
    assert first.status_code == second.status_code == third.status_code == back.status_code == 200
    assert first.json()["previous"] is None
    assert first.json()["results"] == [
        _comment_body(newest_first[0]),
        _comment_body(newest_first[1], liked=True),
    ]
    assert first.json()["results"][1]["likes"] == 2
    assert second.json()["results"] == [
        _comment_body(newest_first[2]),
        _comment_body(newest_first[3]),
    ]
    assert third.json() == {
        "next": None,
        "previous": third.json()["previous"],
        "results": [_comment_body(newest_first[4])],
    }
    assert third.json()["results"][0]["likes"] == 1
    assert back.json()["results"] == first.json()["results"]


def test_comments_of_a_video_without_comments(
    client_for_user: APIClient, django_assert_num_queries: Callable[..., Any]
) -> None:
    video = VideoFactory.create()

    with django_assert_num_queries(3):  # no comments: no look for the viewer's likes
        response = client_for_user.get(f"/api/v1/videos/{video.pk}/comments")

    assert response.status_code == 200
    assert response.json() == {"next": None, "previous": None, "results": []}


def test_new_comments_do_not_shift_a_cursor(client_for_user: APIClient) -> None:
    video = VideoFactory.create()
    comments = CommentFactory.create_batch(3, video=video)
    first = client_for_user.get(f"/api/v1/videos/{video.pk}/comments?page_size=2")
    CommentFactory.create_batch(2, video=video)

    second = client_for_user.get(first.json()["next"])

    assert [c["id"] for c in second.json()["results"]] == [comments[0].pk]


# --- comment likes ------------------------------------------------------------------------------
def test_comment_like_is_201_first_then_200(
    make_client: Callable[..., APIClient], django_assert_num_queries: Callable[..., Any]
) -> None:
    comment = CommentFactory.create()
    user = UserFactory.create()
    client = make_client(user, device_id="dev-3")

    # the device token; in one atomic block (BEGIN/COMMIT or savepoints) the comment exists?,
    # the like, the comment's like count + 1; then the like count
    with django_assert_num_queries(7):
        first = client.put(f"/api/v1/comments/{comment.pk}/like")
    with django_assert_num_queries(6):  # the like is there: no count change
        again = client.put(f"/api/v1/comments/{comment.pk}/like")
    other = make_client(UserFactory.create()).put(f"/api/v1/comments/{comment.pk}/like")

    assert (first.status_code, first.json()) == (201, {"liked": True, "likes": 1})
    assert (again.status_code, again.json()) == (200, {"liked": True, "likes": 1})
    assert (other.status_code, other.json()) == (201, {"liked": True, "likes": 2})
    comment.refresh_from_db()
    assert comment.like_count == 2
    mine = CommentLike.objects.get(user=user)
    assert (mine.ip, mine.device_id, mine.counted) == ("127.0.0.1", "dev-3", True)
    # comment likes are not video likes
    assert Like.objects.count() == 0
    assert _counts(comment.video) == ZERO


def test_comment_unlike_is_204_and_idempotent(
    client_for_user: APIClient, user: User, django_assert_num_queries: Callable[..., Any]
) -> None:
    comment = CommentFactory.create()
    client_for_user.put(f"/api/v1/comments/{comment.pk}/like")

    # the device token; in one atomic block (BEGIN/COMMIT or savepoints) the comment exists?,
    # the like deleted with its removal recorded (one statement), the like count - 1
    with django_assert_num_queries(6):
        first = client_for_user.delete(f"/api/v1/comments/{comment.pk}/like")
    with django_assert_num_queries(5):  # nothing removed: no count change
        again = client_for_user.delete(f"/api/v1/comments/{comment.pk}/like")

    assert (first.status_code, again.status_code) == (204, 204)
    assert CommentLike.objects.count() == 0
    comment.refresh_from_db()
    assert comment.like_count == 0


def test_comment_unlike_of_an_uncounted_like_leaves_the_count(
    client_for_user: APIClient, user: User
) -> None:
    comment = CommentFactory.create(like_count=1)
    CommentLikeFactory.create(comment=comment, counted=True)
    CommentLikeFactory.create(comment=comment, user=user, counted=False)

    response = client_for_user.delete(f"/api/v1/comments/{comment.pk}/like")

    assert response.status_code == 204
    comment.refresh_from_db()
    assert comment.like_count == 1
    assert CommentLike.objects.filter(comment=comment).count() == 1


@pytest.mark.parametrize("method", ["put", "delete"])
def test_comment_like_without_a_token_is_401(
    api_client: APIClient, method: str, django_assert_num_queries: Callable[..., Any]
) -> None:
    comment = CommentFactory.create()
    before = database_state()

    with django_assert_num_queries(0):  # no token: refused before any query
        response = getattr(api_client, method)(f"/api/v1/comments/{comment.pk}/like")

    assert_problem(
        response, 401, "not_authenticated", "Authentication credentials were not provided."
    )
    assert database_state() == before


@pytest.mark.django_db(transaction=True)
def test_16_simultaneous_comment_likes_from_one_user_make_one_like(
    make_client: Callable[..., APIClient],
) -> None:
    comment = CommentFactory.create()
    user = UserFactory.create()
    clients = [make_client(user) for _ in range(16)]
    barrier = threading.Barrier(16)
    statuses: list[int] = [0] * 16

    def like(index: int) -> None:
        try:
            barrier.wait(timeout=30)
            statuses[index] = clients[index].put(f"/api/v1/comments/{comment.pk}/like").status_code
        finally:
            connection.close()

    threads = [threading.Thread(target=like, args=(index,)) for index in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert not any(thread.is_alive() for thread in threads)
    assert Counter(statuses) == {201: 1, 200: 15}
    assert CommentLike.objects.filter(comment=comment, user=user).count() == 1
    comment.refresh_from_db()
    assert comment.like_count == 1


# --- shares -------------------------------------------------------------------------------------
def test_share_a_video(
    make_client: Callable[..., APIClient], django_assert_num_queries: Callable[..., Any]
) -> None:
    video = VideoFactory.create()
    user = UserFactory.create()
    client = make_client(user, device_id="share-dev")

    # the device token; in one atomic block (BEGIN/COMMIT or savepoints) the video locked,
    # the share, a counter shard
    with django_assert_num_queries(6):
        with_channel = client.post(f"/api/v1/videos/{video.pk}/shares", {"channel": "whatsapp"})
    without = client.post(f"/api/v1/videos/{video.pk}/shares", {})

    assert (with_channel.status_code, without.status_code) == (201, 201)
    shares = list(Share.objects.order_by("id"))
    assert with_channel.json() == {
        "id": shares[0].pk,
        "video_id": video.pk,
        "channel": "whatsapp",
        "created_at": _iso(shares[0].created_at),
    }
    assert without.json() == {
        "id": shares[1].pk,
        "video_id": video.pk,
        "channel": "",
        "created_at": _iso(shares[1].created_at),
    }
    assert (shares[0].user_id, shares[0].ip, shares[0].device_id) == (
        user.pk,
        "127.0.0.1",
        "share-dev",
    )
    assert _counts(video) == {**ZERO, "shares": 2}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"channel": "Bad Channel"}, "This value does not match the required pattern."),
        ({"channel": "c" * 33}, "This value does not match the required pattern."),
        ({"channel": 5}, "Must be a string."),
        ({"channel": None}, "This field may not be null."),
    ],
)
def test_share_refuses_bad_input(
    client_for_user: APIClient, body: dict[str, Any], message: str
) -> None:
    video = VideoFactory.create()
    before = database_state()

    response = client_for_user.post(f"/api/v1/videos/{video.pk}/shares", body)

    assert_problem(
        response,
        400,
        "invalid",
        f"Invalid input: channel: {message}",
        errors={"channel": [message]},
    )
    assert database_state() == before


# --- plays --------------------------------------------------------------------------------------
def test_plays_after_the_first_are_replays(
    make_client: Callable[..., APIClient], django_assert_num_queries: Callable[..., Any]
) -> None:
    video = VideoFactory.create()
    viewer, other = UserFactory.create(), UserFactory.create()
    client = make_client(viewer)

    # the device token; in one atomic block (BEGIN/COMMIT or savepoints) the video locked,
    # a play before? (the replay flag), the play, a counter shard: first play or replay alike
    with django_assert_num_queries(7):
        first = client.post(
            f"/api/v1/videos/{video.pk}/plays", {"watched_ms": 12_000, "completed": False}
        )
    with django_assert_num_queries(7):
        second = client.post(
            f"/api/v1/videos/{video.pk}/plays", {"watched_ms": 30_000, "completed": True}
        )
    someone_else = make_client(other).post(
        f"/api/v1/videos/{video.pk}/plays", {"watched_ms": 0, "completed": False}
    )

    plays = list(Play.objects.order_by("id"))
    assert (first.status_code, second.status_code, someone_else.status_code) == (201, 201, 201)
    assert first.json() == {
        "id": plays[0].pk,
        "video_id": video.pk,
        "watched_ms": 12_000,
        "completed": False,
        "replay": False,
        "created_at": _iso(plays[0].created_at),
    }
    assert second.json() == {
        "id": plays[1].pk,
        "video_id": video.pk,
        "watched_ms": 30_000,
        "completed": True,
        "replay": True,
        "created_at": _iso(plays[1].created_at),
    }
    assert someone_else.json()["replay"] is False
    assert _counts(video) == {**ZERO, "plays": 3}


def test_a_play_of_another_video_is_not_a_replay(client_for_user: APIClient) -> None:
    first_video, second_video = VideoFactory.create(), VideoFactory.create()
    body = {"watched_ms": 1, "completed": True}
    client_for_user.post(f"/api/v1/videos/{first_video.pk}/plays", body)

    response = client_for_user.post(f"/api/v1/videos/{second_video.pk}/plays", body)

    assert response.json()["replay"] is False


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        (
            {},
            {
                "watched_ms": ["This field is required."],
                "completed": ["This field is required."],
            },
        ),
        (
            {"watched_ms": -1, "completed": True},
            {"watched_ms": ["Ensure this value is greater than or equal to 0."]},
        ),
        (
            {"watched_ms": 10**40, "completed": True},
            {"watched_ms": ["Ensure this value is less than or equal to 36000000."]},
        ),
        ({"watched_ms": "100", "completed": True}, {"watched_ms": ["Must be an integer."]}),
        ({"watched_ms": 100, "completed": "true"}, {"completed": ["Must be true or false."]}),
        ({"watched_ms": 100, "completed": 1}, {"completed": ["Must be true or false."]}),
        ({"watched_ms": 100, "completed": None}, {"completed": ["This field may not be null."]}),
    ],
)
def test_play_refuses_bad_input(
    client_for_user: APIClient, body: dict[str, Any], errors: dict[str, list[str]]
) -> None:
    video = VideoFactory.create()
    before = database_state()

    response = client_for_user.post(f"/api/v1/videos/{video.pk}/plays", body)

    detail = "Invalid input: " + "; ".join(f"{name}: {errors[name][0]}" for name in errors)
    assert_problem(response, 400, "invalid", detail, errors=errors)
    assert database_state() == before


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/v1/videos/{video}/comments", {"text": "hi"}),
        ("/api/v1/videos/{video}/shares", {}),
        ("/api/v1/videos/{video}/plays", {"watched_ms": 1, "completed": True}),
    ],
)
def test_interaction_posts_without_a_token_are_401(
    api_client: APIClient,
    path: str,
    body: dict[str, Any],
    django_assert_num_queries: Callable[..., Any],
) -> None:
    video = VideoFactory.create()
    before = database_state()

    with django_assert_num_queries(0):  # no token: refused before any query
        response = api_client.post(path.format(video=video.pk), body)

    assert_problem(
        response, 401, "not_authenticated", "Authentication credentials were not provided."
    )
    assert database_state() == before


# --- follows ------------------------------------------------------------------------------------
def test_follow_is_201_first_then_200(
    make_client: Callable[..., APIClient], django_assert_num_queries: Callable[..., Any]
) -> None:
    creator, fan = UserFactory.create(), UserFactory.create()
    client = make_client(fan, device_id="fan-phone")

    # the device token; in one atomic block (BEGIN/COMMIT or savepoints) the creator active?,
    # the follow (INSERT … ON CONFLICT: the same whether it was there or not)
    with django_assert_num_queries(5):
        first = client.put(f"/api/v1/creators/{creator.pk}/follow")
    with django_assert_num_queries(5):
        again = client.put(f"/api/v1/creators/{creator.pk}/follow")

    assert (first.status_code, first.json()) == (201, {"creator_id": creator.pk, "following": True})
    assert (again.status_code, again.json()) == (200, {"creator_id": creator.pk, "following": True})
    follow = Follow.objects.get()
    assert (follow.user_id, follow.creator_id, follow.source_video_id) == (fan.pk, creator.pk, None)
    assert (follow.ip, follow.device_id, follow.counted) == ("127.0.0.1", "fan-phone", True)


def test_follow_from_a_video_of_the_creator_records_it(
    client_for_user: APIClient, django_assert_num_queries: Callable[..., Any]
) -> None:
    video = VideoFactory.create()

    with django_assert_num_queries(6):  # a follow, and the video is the creator's?
        response = client_for_user.put(
            f"/api/v1/creators/{video.creator.pk}/follow", {"video_id": video.pk}
        )

    assert response.status_code == 201
    assert Follow.objects.get().source_video_id == video.pk


def test_follow_with_a_null_video_id(client_for_user: APIClient) -> None:
    creator = UserFactory.create()

    response = client_for_user.put(f"/api/v1/creators/{creator.pk}/follow", {"video_id": None})

    assert response.status_code == 201
    assert Follow.objects.get().source_video_id is None


def test_following_yourself_is_400(client_for_user: APIClient, user: User) -> None:
    before = database_state()

    response = client_for_user.put(f"/api/v1/creators/{user.pk}/follow")

    assert_problem(response, 400, "cannot_follow_self", "You cannot follow yourself.")
    assert database_state() == before


def test_follow_with_a_video_of_another_creator_is_400(client_for_user: APIClient) -> None:
    creator = UserFactory.create()
    someone_elses_video = VideoFactory.create()
    before = database_state()

    response = client_for_user.put(
        f"/api/v1/creators/{creator.pk}/follow", {"video_id": someone_elses_video.pk}
    )

    assert_problem(
        response,
        400,
        "invalid",
        "Invalid input: video_id: not a video of this creator.",
        errors={"video_id": ["Not a video of this creator."]},
    )
    assert database_state() == before


def test_follow_with_an_unknown_video_is_400(client_for_user: APIClient) -> None:
    creator = UserFactory.create()
    before = database_state()

    response = client_for_user.put(
        f"/api/v1/creators/{creator.pk}/follow", {"video_id": 999_999_999_999}
    )

    assert response.status_code == 400
    assert response.json()["errors"] == {"video_id": ["Not a video of this creator."]}
    assert database_state() == before


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        ({"video_id": "12"}, {"video_id": ["Must be an integer."]}),
        ({"video_id": 0}, {"video_id": ["Ensure this value is greater than or equal to 1."]}),
        (
            {"video_id": 2**63},
            {"video_id": ["Ensure this value is less than or equal to 9223372036854775807."]},
        ),
        ([], {"non_field_errors": ["Invalid data. Expected a dictionary, but got list."]}),
        (False, {"non_field_errors": ["Invalid data. Expected a dictionary, but got bool."]}),
        (0, {"non_field_errors": ["Invalid data. Expected a dictionary, but got int."]}),
        ("", {"non_field_errors": ["Invalid data. Expected a dictionary, but got str."]}),
    ],
)
def test_follow_refuses_bad_input(
    client_for_user: APIClient, body: Any, errors: dict[str, list[str]]
) -> None:
    creator = UserFactory.create()
    before = database_state()

    response = client_for_user.put(f"/api/v1/creators/{creator.pk}/follow", body, format="json")

    (field, messages), *_ = errors.items()
    detail = (
        messages[0] if field == "non_field_errors" else f"Invalid input: {field}: {messages[0]}"
    )
    assert_problem(response, 400, "invalid", detail, errors=errors)
    assert database_state() == before


def test_follow_of_a_deactivated_user_is_404(
    client_for_user: APIClient, django_assert_num_queries: Callable[..., Any]
) -> None:
    creator = UserFactory.create(is_active=False)
    before = database_state()

    # the device token; the creator active? in the atomic block (in a test a savepoint, rolled
    # back and released)
    with django_assert_num_queries(5):
        response = client_for_user.put(f"/api/v1/creators/{creator.pk}/follow")

    assert_problem(response, 404, "not_found", "No creator with this id.")
    assert database_state() == before


def test_unfollow_is_204_and_idempotent(
    client_for_user: APIClient, user: User, django_assert_num_queries: Callable[..., Any]
) -> None:
    creator, other_fan = UserFactory.create(), UserFactory.create()
    client_for_user.put(f"/api/v1/creators/{creator.pk}/follow")
    Follow.objects.create(user=other_fan, creator=creator)

    # the device token; in one atomic block (BEGIN/COMMIT or savepoints) the creator exists?,
    # the follow deleted with its removal recorded (one statement): removed or not, alike
    with django_assert_num_queries(5):
        first = client_for_user.delete(f"/api/v1/creators/{creator.pk}/follow")
    with django_assert_num_queries(5):
        again = client_for_user.delete(f"/api/v1/creators/{creator.pk}/follow")

    assert (first.status_code, again.status_code) == (204, 204)
    assert list(Follow.objects.values_list("user_id", flat=True)) == [other_fan.pk]


@pytest.mark.parametrize("method", ["put", "delete"])
def test_follow_without_a_token_is_401(
    api_client: APIClient, method: str, django_assert_num_queries: Callable[..., Any]
) -> None:
    creator = UserFactory.create()
    before = database_state()

    with django_assert_num_queries(0):  # no token: refused before any query
        response = getattr(api_client, method)(f"/api/v1/creators/{creator.pk}/follow")

    assert_problem(
        response, 401, "not_authenticated", "Authentication credentials were not provided."
    )
    assert database_state() == before


# --- removals are recorded (churn), refusals record nothing ---------------------------------------
def test_unlike_comment_unlike_and_unfollow_each_leave_one_removal(
    client_for_user: APIClient, user: User
) -> None:
    video = VideoFactory.create()
    comment = CommentFactory.create(video=video)
    client_for_user.put(f"/api/v1/videos/{video.pk}/like")
    client_for_user.put(f"/api/v1/comments/{comment.pk}/like")
    client_for_user.put(f"/api/v1/creators/{video.creator_id}/follow", {"video_id": video.pk})
    rows = (Like.objects.get().pk, CommentLike.objects.get().pk, Follow.objects.get().pk)

    statuses = [
        client_for_user.delete(path).status_code
        for path in (
            f"/api/v1/videos/{video.pk}/like",
            f"/api/v1/comments/{comment.pk}/like",
            f"/api/v1/creators/{video.creator_id}/follow",
        )
        for _ in range(2)  # the second of each finds nothing to remove
    ]

    assert statuses == [204] * 6
    assert list(
        Removal.objects.order_by("pk").values_list(
            "kind", "row_id", "user_id", "target_id", "video_id", "counted"
        )
    ) == [
        ("like", rows[0], user.pk, video.pk, video.pk, True),
        ("comment_like", rows[1], user.pk, comment.pk, video.pk, True),
        ("follow", rows[2], user.pk, video.creator_id, video.pk, True),
    ]


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/videos/{video}/like",
        "/api/v1/comments/{comment}/like",
        "/api/v1/creators/{creator}/follow",
    ],
)
def test_a_refused_removal_changes_nothing(
    client_for_user: APIClient, path: str, django_assert_num_queries: Callable[..., Any]
) -> None:
    LikeFactory.create()  # something that could be removed, by someone else
    before = database_state()
    target = path.format(
        video=unknown_id(Video), comment=unknown_id(Comment), creator=unknown_id(User)
    )

    # the device token; the target looked for in the atomic block (in a test a savepoint,
    # rolled back and released)
    with django_assert_num_queries(5):
        response = client_for_user.delete(target)

    assert response.status_code == 404
    assert database_state() == before
