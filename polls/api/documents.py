"""The documents the sticker endpoints send: what a caller may see of stickers (SPEC §2.7).

- quiz: a checkpoint's correct options and explanation only after the caller answered it;
- ending: option payloads hidden until the sticker is final, then the winning ending is shown
  to everyone (the endings that lost stay locked);
- unlock: the payload only to callers who like the video (a counted like);
- results: by the sticker's visibility mode; the creator and staff always see them
  (polls.services.results decides, this renders);
- moderated stickers: only the creator and staff see them at all (polls.visibility).
"""

import hashlib
from datetime import datetime
from functools import partial
from typing import Any

from django.utils import timezone

from core.memo import ContentMemo
from core.renderers import JSONRenderer
from engagement.models import User
from polls.models import Answer, Sticker, Vote
from polls.selectors import viewer_rows
from polls.services.results import ResultsRead
from polls.services.voting import Progress
from polls.state import sticker_state

# How many comments a comment_pick's results show.
RESULTS_LEADERBOARD_SIZE = 10
# How many rendered results bodies a process keeps (results_body).
RESULTS_BODIES_KEPT = 1024


def sticker_documents(stickers: list[Sticker], *, viewer: User) -> list[dict[str, Any]]:
    """Each sticker as this viewer may see it, with the viewer's own state (a few queries total)."""
    if not stickers:
        return []
    now = timezone.now()
    rows = viewer_rows(stickers, viewer=viewer)
    return [
        _sticker_document(
            sticker, now, rows.votes.get(sticker.pk), rows.answers[sticker.pk], rows.liked_videos
        )
        for sticker in stickers
    ]


def _sticker_document(
    sticker: Sticker,
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
        progress = Progress.of(
            total=len(checkpoints), correct=[answer.is_correct for answer in answers.values()]
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


def results_document(read: ResultsRead) -> dict[str, Any]:
    """The results document (ResultsSerializer's shape) of what the results read returned."""
    meta, tally = read.meta, read.tally
    final = bool(tally.get("final"))
    total = tally["total_votes"]
    document: dict[str, Any] = {
        "sticker_id": meta["id"],
        "state": read.state,
        "final": final,
        "as_of": tally["as_of"],
        "total_votes": total,
    }
    entries = tally["entries"]
    if meta["kind"] == Sticker.Kind.COMMENT_PICK:
        document["leaderboard"] = [
            {"comment_id": entry["id"], "likes": entry["votes"]}
            for entry in entries[:RESULTS_LEADERBOARD_SIZE]
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


def results_etag(read: ResultsRead) -> str:
    """The results document's ETag: it names the document's content (the sticker, its state
    now, and the stamp of its metadata and tally), so it changes whenever the document does."""
    fingerprint = f"{read.meta['id']}|{read.state}|{read.stamp}"
    return '"' + hashlib.sha1(fingerprint.encode()).hexdigest()[:20] + '"'


# A strong ETag names one representation (a client holding it is answered 304 without a body),
# so the body rendered for it once is the body for it.
_results_bodies: ContentMemo[str, bytes] = ContentMemo(RESULTS_BODIES_KEPT)


def results_body(read: ResultsRead, etag: str) -> bytes:
    """The results document rendered as JSON (as JSONRenderer renders it), for `etag` =
    results_etag(read): rendered once per ETag and process."""
    return _results_bodies.get(etag, partial(_results_rendered, read))


def _results_rendered(read: ResultsRead) -> bytes:
    return JSONRenderer().render(results_document(read))
