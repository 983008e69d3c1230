"""The Django admin for engagement (SPEC §4): every page opens; big tables are never COUNTed."""

import re
from typing import Any

import pytest
from django.contrib.admin.sites import site
from django.db import connection
from django.db.models import Model
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from core.models import IdempotencyRecord
from engagement.models import (
    Comment,
    CommentLike,
    DeviceToken,
    Follow,
    Hashtag,
    Like,
    Play,
    Share,
    User,
    Video,
    VideoCounter,
)
from engagement.services.counters import video_counter_add, video_counts
from tests.factories import (
    CommentFactory,
    CommentLikeFactory,
    FollowFactory,
    LikeFactory,
    PlayFactory,
    ShareFactory,
    StaffUserFactory,
    UserFactory,
    VideoFactory,
)

pytestmark = pytest.mark.django_db

ENGAGEMENT_MODELS: list[type[Model]] = [
    User,
    DeviceToken,
    Hashtag,
    Video,
    VideoCounter,
    Like,
    Comment,
    CommentLike,
    Share,
    Play,
    Follow,
]
BIG_TABLES: list[type[Model]] = [Like, Comment, CommentLike, Share, Play, Follow]


@pytest.fixture
def staff_client() -> Client:
    client = Client()
    client.force_login(StaffUserFactory.create())
    return client


def _one_of_each() -> dict[type[Model], Model]:
    video = VideoFactory.create(title="Lighthouse")
    video.hashtags.add(Hashtag.objects.create(name="mystery"))
    comment = CommentFactory.create(video=video)
    video_counter_add(video_id=video.pk, counter="likes", delta=1)
    token, _ = DeviceToken.objects.create(user=video.creator, device_id="phone")
    user = UserFactory.create()
    return {
        User: user,
        DeviceToken: token,
        Hashtag: Hashtag.objects.get(name="mystery"),
        Video: video,
        VideoCounter: VideoCounter.objects.get(video=video),
        Like: LikeFactory.create(video=video),
        Comment: comment,
        CommentLike: CommentLikeFactory.create(comment=comment),
        Share: ShareFactory.create(video=video, channel="sms"),
        Play: PlayFactory.create(video=video),
        Follow: FollowFactory.create(creator=video.creator, source_video=video),
        IdempotencyRecord: IdempotencyRecord.objects.create(
            user=user, key="k", request_fingerprint="f", response_status=201
        ),
    }


def test_every_engagement_model_is_registered() -> None:
    models: list[type[Model]] = [*ENGAGEMENT_MODELS, IdempotencyRecord]
    for model in models:
        assert site.is_registered(model), model


def test_staff_opens_every_changelist_and_change_page(staff_client: Client) -> None:
    objects = _one_of_each()

    for model, instance in objects.items():
        meta = model._meta
        changelist = staff_client.get(
            reverse(f"admin:{meta.app_label}_{meta.model_name}_changelist")
        )
        change = staff_client.get(
            reverse(f"admin:{meta.app_label}_{meta.model_name}_change", args=[instance.pk])
        )

        assert changelist.status_code == 200, meta.label
        assert change.status_code == 200, meta.label
        assert str(instance.pk) in changelist.content.decode(), meta.label


@pytest.mark.parametrize(
    ("model", "query"),
    [
        (User, "?q=user&is_staff__exact=0"),
        (Video, "?q=Lighthouse"),
        (Like, "?counted__exact=1&q=user"),
        (Comment, "?counted__exact=0&q=Comment"),
        (CommentLike, "?counted__exact=1"),
        (Share, "?channel=sms&counted__exact=1"),
        (Play, "?completed__exact=0&created_at__gte=2000-01-01+00%3A00%3A00%2B00%3A00"),
        (Follow, "?q=user"),
        (Hashtag, "?q=myst"),
        (DeviceToken, "?q=phone"),
    ],
)
def test_changelist_search_and_filters_work(
    staff_client: Client, model: type[Model], query: str
) -> None:
    _one_of_each()
    meta = model._meta

    response = staff_client.get(
        reverse(f"admin:{meta.app_label}_{meta.model_name}_changelist") + query
    )

    assert response.status_code == 200


def test_staff_opens_the_add_pages(staff_client: Client) -> None:
    for model in [User, Hashtag, Video, Like, Comment, CommentLike, Share, Play, Follow]:
        meta = model._meta

        response = staff_client.get(reverse(f"admin:{meta.app_label}_{meta.model_name}_add"))

        assert response.status_code == 200, meta.label


def test_counters_cannot_be_added_or_edited_by_hand(staff_client: Client) -> None:
    _one_of_each()
    counter = VideoCounter.objects.get()

    add = staff_client.get(reverse("admin:engagement_videocounter_add"))
    change = staff_client.post(
        reverse("admin:engagement_videocounter_change", args=[counter.pk]),
        {"video": counter.video_id, "shard": 0, "likes": 999},
    )

    assert add.status_code == 403
    assert change.status_code == 403
    counter.refresh_from_db()
    assert counter.likes == 1


def test_a_non_staff_user_is_sent_to_the_login_page() -> None:
    client = Client()
    client.force_login(UserFactory.create())
    url = reverse("admin:engagement_like_changelist")

    response = client.get(url)

    assert response.status_code == 302
    assert response["Location"] == f"{reverse('admin:login')}?next={url}"


def test_recount_action_repairs_video_counters(staff_client: Client) -> None:
    video = VideoFactory.create()
    LikeFactory.create_batch(2, video=video)
    LikeFactory.create(video=video, counted=False)
    VideoCounter.objects.create(video=video, shard=4, likes=50)

    response = staff_client.post(
        reverse("admin:engagement_video_changelist"),
        {"action": "recount_counters", "_selected_action": [video.pk]},
    )

    assert response.status_code == 302
    assert video_counts([video.pk])[video.pk] == {
        "likes": 2,
        "comments": 0,
        "shares": 0,
        "plays": 0,
    }


def test_recount_action_repairs_comment_likes(staff_client: Client) -> None:
    comment = CommentFactory.create(like_count=9)
    CommentLikeFactory.create(comment=comment)
    CommentLikeFactory.create(comment=comment, counted=False)

    response = staff_client.post(
        reverse("admin:engagement_comment_changelist"),
        {"action": "recount_likes", "_selected_action": [comment.pk]},
    )

    assert response.status_code == 302
    comment.refresh_from_db()
    assert comment.like_count == 1


def _full_count_queries(queries: list[dict[str, str]], table: str) -> list[str]:
    pattern = re.compile(rf'COUNT\(\*\).*FROM "{table}"(?!.*WHERE)', re.IGNORECASE | re.DOTALL)
    return [query["sql"] for query in queries if pattern.search(query["sql"])]


def _fill_likes(users: int, videos: int) -> int:
    """users x videos likes in one INSERT … SELECT, then ANALYZE so the planner knows."""
    user_ids = [user.pk for user in UserFactory.create_batch(users)]
    creator = UserFactory.create()
    video_ids = [
        video.pk
        for video in Video.objects.bulk_create(
            [Video(creator=creator, title=f"v{n}", duration_ms=1) for n in range(videos)]
        )
    ]
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {Like._meta.db_table} (user_id, video_id, created_at, device_id, counted)"
            " SELECT u, v, now(), '', true FROM unnest(%s::bigint[]) u, unnest(%s::bigint[]) v",
            [user_ids, video_ids],
        )
        cursor.execute(f"ANALYZE {Like._meta.db_table}")
    return users * videos


def test_the_unfiltered_like_changelist_never_counts_the_whole_table(
    staff_client: Client, django_assert_max_num_queries: object
) -> None:
    # given a like table big enough that the planner's estimate is used (> 10,000 rows)
    total = _fill_likes(users=101, videos=100)
    url = reverse("admin:engagement_like_changelist")

    # when staff opens the unfiltered change list
    with CaptureQueriesContext(connection) as captured:
        response = staff_client.get(url)

    # then no query counts the whole table, and the page still says how many there are
    assert response.status_code == 200
    assert _full_count_queries(captured.captured_queries, Like._meta.db_table) == []
    assert f"{total} likes" in response.content.decode()
    # the only read of the table is the page itself (no date-hierarchy MIN/MAX/DISTINCT scans)
    reads = [
        query["sql"]
        for query in captured.captured_queries
        if f'FROM "{Like._meta.db_table}"' in query["sql"]
    ]
    assert len(reads) == 1
    assert reads[0].endswith("LIMIT 50")
    with django_assert_max_num_queries(12):  # type: ignore[operator]
        staff_client.get(url)


@pytest.mark.parametrize("model", BIG_TABLES)
def test_big_table_changelists_hide_the_full_result_count(
    staff_client: Client, model: type[Model]
) -> None:
    # a filtered list counts its matches, never the whole table on top of them
    _one_of_each()
    meta = model._meta
    url = reverse(f"admin:{meta.app_label}_{meta.model_name}_changelist") + "?counted__exact=1"

    with CaptureQueriesContext(connection) as captured:
        response = staff_client.get(url)

    assert response.status_code == 200
    assert _full_count_queries(captured.captured_queries, meta.db_table) == []


@pytest.mark.parametrize("factory", [LikeFactory, CommentLikeFactory])
def test_counted_is_read_only_in_the_admin_so_flips_go_through_the_services(
    staff_client: Client, factory: Any
) -> None:
    # given an interaction that counts
    row = factory.create(counted=True)
    meta = row._meta
    url = reverse(f"admin:{meta.app_label}_{meta.model_name}_change", args=[row.pk])

    # when staff post the change form with counted off
    page = staff_client.get(url)
    staff_client.post(url, {"counted": ""})

    # then the form offers no counted field and the row still counts
    assert page.status_code == 200
    assert 'name="counted"' not in page.content.decode()
    row.refresh_from_db()
    assert row.counted is True
