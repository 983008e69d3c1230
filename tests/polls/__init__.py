"""Helpers shared by the polls tests: exact expected documents and database snapshots."""

from datetime import UTC, datetime
from typing import Any

from polls.models import (
    Answer,
    Checkpoint,
    CheckpointOption,
    Sticker,
    StickerOption,
    StickerResult,
    StickerTally,
    Vote,
)
from tests.conftest import database_state

_POLLS_MODELS = (
    Sticker,
    StickerOption,
    Checkpoint,
    CheckpointOption,
    Vote,
    Answer,
    StickerTally,
    StickerResult,
)


def iso(value: datetime | None) -> str | None:
    """A timestamp as the API renders it (ISO 8601, UTC, `Z`)."""
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def polls_state() -> dict[str, Any]:
    """Every row of every polls table, plus the engagement counts of `database_state`.

    Compare before and after a refused request: `assert polls_state() == before`.
    """
    state: dict[str, Any] = {
        model._meta.label: list(model.objects.order_by("pk").values()) for model in _POLLS_MODELS
    }
    state["engagement"] = database_state()
    return state


def option_ids(sticker: Sticker) -> list[int]:
    return list(sticker.options.order_by("position").values_list("id", flat=True))


def locked_options(sticker: Sticker) -> list[dict[str, Any]]:
    """The options as every caller sees them before anything is revealed."""
    options: list[dict[str, Any]] = []
    for option in sticker.options.order_by("position"):
        # Every option carries `payload` (null but for a revealed ending); endings add `locked`.
        entry: dict[str, Any] = {"id": option.pk, "label": option.label, "payload": None}
        if sticker.kind == Sticker.Kind.ENDING:
            entry["locked"] = True
        options.append(entry)
    return options


def unanswered_checkpoints(sticker: Sticker) -> list[dict[str, Any]]:
    """The checkpoints as a caller who answered none of them sees them."""
    return [
        {
            "id": checkpoint.pk,
            "at_ms": checkpoint.at_ms,
            "question": checkpoint.question,
            "options": [
                {"id": option.pk, "label": option.label}
                for option in checkpoint.options.order_by("position")
            ],
            "answered": False,
            "correct_option_ids": None,
            "explanation": None,
        }
        for checkpoint in sticker.checkpoints.order_by("position")
    ]


def empty_viewer(sticker: Sticker) -> dict[str, Any]:
    """`viewer` for a caller who has not taken part."""
    total = sticker.checkpoints.count()
    return {
        "vote": None,
        "answers": [],
        "progress": (
            {"answered": 0, "total": total, "correct": 0, "completed": False}
            if sticker.kind == Sticker.Kind.QUIZ
            else None
        ),
        "unlocked": False if sticker.kind == Sticker.Kind.UNLOCK else None,
    }


def sticker_document(sticker: Sticker, **overrides: Any) -> dict[str, Any]:
    """The exact sticker document for a caller who has not taken part and sees nothing secret.

    The row is read again; pass what differs (`state`, `options`, `viewer`, `payload`, …).
    """
    sticker.refresh_from_db()
    document = {
        "id": sticker.pk,
        "video_id": sticker.video_id,
        "kind": sticker.kind,
        "prompt": sticker.prompt,
        "state": sticker.state,
        "opens_at": iso(sticker.opens_at),
        "closes_at": iso(sticker.closes_at),
        "max_choices": sticker.max_choices,
        "results_visibility": sticker.results_visibility,
        "allow_vote_change": sticker.allow_vote_change,
        "options": locked_options(sticker),
        "checkpoints": unanswered_checkpoints(sticker),
        "payload": None,
        "winner_option_id": None,
        "winner_comment_id": None,
        "created_at": iso(sticker.created_at),
        "viewer": empty_viewer(sticker),
    }
    unknown = set(overrides) - set(document)
    assert not unknown, f"not sticker fields: {unknown}"
    document.update(overrides)
    return document
