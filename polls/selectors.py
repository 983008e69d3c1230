"""Reads of stickers: which ones a viewer may see, and the viewer's own rows on them.

Selectors only read. The API renders what they return (polls.api.documents: what a caller may
see of each sticker, SPEC §2.7); the results read, which fills a cache, is
polls.services.results.
"""

from collections import defaultdict
from dataclasses import dataclass

from django.db.models import Prefetch, QuerySet

from core.exceptions import NotFound
from engagement.models import Like, User
from polls.models import Answer, Checkpoint, CheckpointOption, Sticker, StickerOption, Vote
from polls.visibility import check_sticker_visible, stickers_visible


def stickers_queryset() -> QuerySet[Sticker]:
    return Sticker.objects.select_related("video").prefetch_related(
        Prefetch("options", queryset=StickerOption.objects.order_by("position")),
        Prefetch(
            "checkpoints",
            queryset=Checkpoint.objects.order_by("position").prefetch_related(
                Prefetch("options", queryset=CheckpointOption.objects.order_by("position"))
            ),
        ),
    )


def sticker_get(*, sticker_id: int, viewer: User) -> Sticker:
    sticker = stickers_queryset().filter(pk=sticker_id).first()
    if sticker is None:
        raise NotFound("No sticker with this id.")
    check_sticker_visible(viewer=viewer, state=sticker.state, creator_id=sticker.video.creator_id)
    return sticker


def stickers_for_video(*, video_id: int, viewer: User) -> QuerySet[Sticker]:
    """The video's stickers the viewer may see."""
    return stickers_visible(
        stickers_queryset().filter(video_id=video_id), viewer=viewer, video_id=video_id
    )


@dataclass(frozen=True)
class ViewerRows:
    """The viewer's own rows on some stickers: what their documents show of the viewer."""

    # sticker id -> the viewer's vote
    votes: dict[int, Vote]
    # sticker id -> checkpoint id -> the viewer's quiz answer
    answers: dict[int, dict[int, Answer]]
    # the videos (of unlock stickers) the viewer likes, with a counted like
    liked_videos: set[int]


def viewer_rows(stickers: list[Sticker], *, viewer: User) -> ViewerRows:
    """The viewer's votes, quiz answers and (for unlock stickers) likes on these stickers, in a
    few queries for all of them."""
    ids = [sticker.pk for sticker in stickers]
    votes = {vote.sticker_id: vote for vote in Vote.objects.filter(sticker_id__in=ids, user=viewer)}
    answers: dict[int, dict[int, Answer]] = defaultdict(dict)
    for answer in Answer.objects.filter(sticker_id__in=ids, user=viewer):
        answers[answer.sticker_id][answer.checkpoint_id] = answer
    unlock_videos = {s.video_id for s in stickers if s.kind == Sticker.Kind.UNLOCK}
    liked_videos = set(
        Like.objects.filter(user=viewer, video_id__in=unlock_videos, counted=True).values_list(
            "video_id", flat=True
        )
    )
    return ViewerRows(votes=votes, answers=answers, liked_videos=liked_videos)
