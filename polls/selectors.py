"""What a caller may see of stickers (SPEC §2.7).

- quiz: a checkpoint's correct options and explanation only after the caller answered it;
- ending: option payloads hidden until the sticker is final, then the winning ending is shown
  to everyone (the endings that lost stay locked);
- unlock: the payload only to callers who like the video (a counted like);
- results: by the sticker's visibility mode; the creator and staff always see them;
- moderated stickers: only the creator and staff see them at all.
"""

import hashlib
from collections import defaultdict
from datetime import datetime
from typing import Any

from django.db.models import Prefetch, QuerySet
from django.utils import timezone

from core.exceptions import Forbidden, NotFound
from engagement.models import Like, User, Video
from polls.models import Answer, Checkpoint, CheckpointOption, Sticker, StickerOption, Vote
from polls.services.cache import cached_get_many, meta_store
from polls.services.tally import VOTABLE, tally_load
from polls.services.voting import Progress
from polls.state import effective_state, sticker_state


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


def _is_privileged(viewer: User, creator_id: int) -> bool:
    return viewer.is_staff or viewer.pk == creator_id


def sticker_get(*, sticker_id: int, viewer: User) -> Sticker:
    sticker = stickers_queryset().filter(pk=sticker_id).first()
    if sticker is None or (
        sticker.state == Sticker.State.MODERATED
        and not _is_privileged(viewer, sticker.video.creator_id)
    ):
        raise NotFound("No sticker with this id.")
    return sticker


def stickers_for_video(*, video_id: int, viewer: User) -> QuerySet[Sticker]:
    """The video's stickers the viewer may see: moderated ones only for its creator and staff."""
    stickers = stickers_queryset().filter(video_id=video_id)
    if not (viewer.is_staff or Video.objects.filter(pk=video_id, creator_id=viewer.pk).exists()):
        stickers = stickers.exclude(state=Sticker.State.MODERATED)
    return stickers


def stickers_present(stickers: list[Sticker], *, viewer: User) -> list[dict[str, Any]]:
    """Each sticker as this viewer may see it, with the viewer's own state (a few queries total)."""
    if not stickers:
        return []
    now = timezone.now()
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
    return [
        _present(sticker, viewer, now, votes.get(sticker.pk), answers[sticker.pk], liked_videos)
        for sticker in stickers
    ]


def _present(
    sticker: Sticker,
    viewer: User,
    now: datetime,
    vote: Vote | None,
    answers: dict[int, Answer],
    liked_videos: set[int],
) -> dict[str, Any]:
    state = sticker_state(sticker, now)
    is_final = state == Sticker.State.FINAL
    options = []
    for option in sticker.options.all():
        entry: dict[str, Any] = {"id": option.pk, "label": option.label}
        if sticker.kind == Sticker.Kind.ENDING:
            revealed = is_final and option.pk == sticker.winner_option_id
            entry["payload"] = option.payload if revealed else None
            entry["locked"] = not revealed
        options.append(entry)
    checkpoints = []
    for checkpoint in sticker.checkpoints.all():
        answer = answers.get(checkpoint.pk)
        checkpoint_options = list(checkpoint.options.all())
        checkpoints.append(
            {
                "id": checkpoint.pk,
                "at_ms": checkpoint.at_ms,
                "question": checkpoint.question,
                "options": [
                    {"id": option.pk, "label": option.label} for option in checkpoint_options
                ],
                "answered": answer is not None,
                "correct_option_ids": (
                    [option.pk for option in checkpoint_options if option.is_correct]
                    if answer
                    else None
                ),
                "explanation": checkpoint.explanation if answer else None,
            }
        )
    unlocked = None
    payload = None
    if sticker.kind == Sticker.Kind.UNLOCK:
        unlocked = sticker.video_id in liked_videos
        payload = sticker.payload if unlocked else None
    progress = None
    if sticker.kind == Sticker.Kind.QUIZ:
        total = len(checkpoints)
        answered = len(answers)
        progress = Progress(
            answered=answered,
            total=total,
            correct=sum(1 for answer in answers.values() if answer.is_correct),
            completed=total > 0 and answered >= total,
        ).__dict__
    return {
        "id": sticker.pk,
        "video_id": sticker.video_id,
        "kind": sticker.kind,
        "prompt": sticker.prompt,
        "state": state,
        "opens_at": sticker.opens_at,
        "closes_at": sticker.closes_at,
        "max_choices": sticker.max_choices,
        "results_visibility": sticker.results_visibility,
        "allow_vote_change": sticker.allow_vote_change,
        "options": options,
        "checkpoints": checkpoints,
        "payload": payload,
        "winner_option_id": sticker.winner_option_id if is_final else None,
        "winner_comment_id": sticker.winner_comment_id if is_final else None,
        "created_at": sticker.created_at,
        "viewer": {
            "vote": ({"option_ids": vote.option_ids, "voted_at": vote.voted_at} if vote else None),
            "answers": [
                {
                    "checkpoint_id": answer.checkpoint_id,
                    "option_ids": answer.option_ids,
                    "correct": answer.is_correct,
                }
                for answer in answers.values()
            ],
            "progress": progress,
            "unlocked": unlocked,
        },
    }


# --- results ---------------------------------------------------------------------------------
def _meta_build(sticker_id: int, version: int) -> dict[str, Any] | None:
    sticker = (
        Sticker.objects.select_related("video")
        .filter(pk=sticker_id)
        .only(
            "id",
            "kind",
            "state",
            "opens_at",
            "closes_at",
            "results_visibility",
            "video__creator_id",
        )
        .first()
    )
    if sticker is None:
        return None
    meta = {
        "id": sticker.pk,
        "kind": sticker.kind,
        "state": sticker.state,
        "opens_at": sticker.opens_at,
        "closes_at": sticker.closes_at,
        "visibility": sticker.results_visibility,
        "creator_id": sticker.video.creator_id,
        "options": [
            {"id": option_id, "label": label}
            for option_id, label in StickerOption.objects.filter(sticker_id=sticker_id)
            .order_by("position")
            .values_list("id", "label")
        ],
    }
    meta_store(sticker_id, version, meta)
    return meta


def sticker_results(
    *, sticker_id: int, viewer: User, cached: tuple[int, Any, Any] | None = None
) -> tuple[dict[str, Any], str]:
    """The results document and its ETag, or NotFound / Forbidden(results_hidden).

    `cached`: (version, meta, tally) already read from Redis by the caller, if it could.
    """
    version, meta, tally = cached if cached is not None else cached_get_many(sticker_id)
    if meta is None:
        meta = _meta_build(sticker_id, version)
    if meta is None:
        raise NotFound("No sticker with this id.")
    privileged = _is_privileged(viewer, meta["creator_id"])
    if meta["state"] == Sticker.State.MODERATED and not privileged:
        raise NotFound("No sticker with this id.")
    if meta["kind"] not in (*VOTABLE, Sticker.Kind.COMMENT_PICK):
        raise NotFound(f"A sticker of kind {meta['kind']} has no results.", code="no_results")
    state = effective_state(
        state=meta["state"],
        opens_at=meta["opens_at"],
        closes_at=meta["closes_at"],
        now=timezone.now(),
    )
    closed = state in (Sticker.State.CLOSED, Sticker.State.FINAL)
    if not privileged:
        visibility = meta["visibility"]
        if visibility == Sticker.Visibility.AFTER_CLOSE and not closed:
            raise Forbidden("Results are shown when the sticker closes.", code="results_hidden")
        if (
            visibility == Sticker.Visibility.AFTER_VOTE
            and not closed
            and not Vote.objects.filter(sticker_id=sticker_id, user=viewer).exists()
        ):
            raise Forbidden("Results are shown after you vote.", code="results_hidden")
    if tally is None or (state == Sticker.State.FINAL and not tally.get("final")):
        sticker = Sticker.objects.get(pk=sticker_id)
        tally = tally_load(sticker=sticker, version=version)
    document = _results_document(meta, state, tally)
    etag = (
        '"'
        + hashlib.sha1(
            f"{state}|{tally['as_of']}|{tally['final']}|{tally['total_votes']}".encode()
        ).hexdigest()[:20]
        + '"'
    )
    return document, etag


def _results_document(meta: dict[str, Any], state: str, tally: dict[str, Any]) -> dict[str, Any]:
    final = bool(tally.get("final"))
    total = tally["total_votes"]
    document: dict[str, Any] = {
        "sticker_id": meta["id"],
        "state": state,
        "final": final,
        "as_of": tally["as_of"],
        "total_votes": total,
    }
    entries = tally["entries"]
    if meta["kind"] == Sticker.Kind.COMMENT_PICK:
        document["leaderboard"] = [
            {"comment_id": entry["id"], "likes": entry["votes"]} for entry in entries[:10]
        ]
        document["winner_comment_id"] = entries[0]["id"] if final and entries else None
        return document
    votes = {entry["id"]: entry["votes"] for entry in entries}
    document["options"] = [
        {
            "id": option["id"],
            "label": option["label"],
            "votes": votes.get(option["id"], 0),
            "percent": round(100.0 * votes.get(option["id"], 0) / total, 1) if total else 0.0,
        }
        for option in meta["options"]
    ]
    winner = entries[0] if final and entries and entries[0]["votes"] > 0 else None
    document["winner_option_id"] = winner["id"] if winner else None
    return document
