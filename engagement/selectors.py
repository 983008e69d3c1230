"""Reads for the API: one query per concern, no COUNT(*) over interaction tables."""

from django.db.models import Prefetch, QuerySet

from core.db import fetch_prepared
from core.exceptions import NotFound
from engagement.models import Comment, CommentLike, Hashtag, Like, Report, User, Video
from engagement.services.counters import video_counts


def videos_queryset() -> QuerySet[Video]:
    return Video.objects.select_related("creator").prefetch_related(
        Prefetch("hashtags", queryset=Hashtag.objects.order_by("videohashtag__position"))
    )


def video_get(*, video_id: int) -> Video:
    video = videos_queryset().filter(pk=video_id).first()
    if video is None:
        raise NotFound("No video with this id.", code="not_found")
    return video


def video_exists(*, video_id: int) -> bool:
    return Video.objects.filter(pk=video_id).exists()


def videos_liked_by(*, viewer: User, video_ids: list[int]) -> set[int]:
    """Which of these videos the viewer likes (one query)."""
    if not video_ids:
        return set()
    # Every hot-list read runs it: a prepared statement (core.db.fetch_prepared).
    rows = fetch_prepared(_LIKED_AMONG, [viewer.pk, video_ids])
    return {video_id for (video_id,) in rows}


_LIKED_AMONG = (
    f"SELECT video_id FROM {Like._meta.db_table} WHERE user_id = %s AND video_id = ANY(%s)"
)


def videos_decorate(videos: list[Video], *, viewer: User | None) -> list[Video]:
    """Attach `counts` and `viewer_liked` to each video (two queries for the whole page; one
    without a viewer, whose `viewer_liked` is False)."""
    ids = [video.pk for video in videos]
    counts = video_counts(ids)
    liked = videos_liked_by(viewer=viewer, video_ids=ids) if viewer is not None else set()
    for video in videos:
        video.counts = counts[video.pk]  # type: ignore[attr-defined]
        video.viewer_liked = video.pk in liked  # type: ignore[attr-defined]
    return videos


def comments_queryset(*, video_id: int) -> QuerySet[Comment]:
    return Comment.objects.filter(video_id=video_id).select_related("user")


def comments_decorate(comments: list[Comment], *, viewer: User) -> list[Comment]:
    ids = [comment.pk for comment in comments]
    liked = set(
        CommentLike.objects.filter(user=viewer, comment_id__in=ids).values_list(
            "comment_id", flat=True
        )
    )
    for comment in comments:
        comment.viewer_liked = comment.pk in liked  # type: ignore[attr-defined]
    return comments


def user_reports(*, user: User) -> QuerySet[Report]:
    """The reports a user filed, newest first (the `report_reporter_idx` index)."""
    return Report.objects.filter(reporter=user).order_by("-id")
