"""Authoring stickers: creating and editing them, by the rules of each kind (SPEC §3
"Stickers")."""

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from core.exceptions import Conflict, Forbidden, InvalidInput, NotFound
from engagement.models import User, Video
from polls.locks import sticker_and_video_for_update
from polls.models import Checkpoint, CheckpointOption, Sticker, StickerOption
from polls.services.results_cache import sticker_cache_forget
from polls.visibility import check_sticker_visible

MIN_OPEN = timedelta(minutes=1)
MAX_OPEN = timedelta(days=30)
# opens_at may lie this far in the past (client clocks drift); earlier is refused.
OPENS_AT_SLACK = timedelta(minutes=5)
OPTION_COUNTS = {Sticker.Kind.POLL: (2, 10), Sticker.Kind.ENDING: (2, 4)}
MAX_CHECKPOINTS = 20
CHECKPOINT_OPTIONS = (2, 6)


@dataclass
class CheckpointSpec:
    at_ms: int
    question: str
    options: list[str]
    correct: list[int]
    explanation: str = ""


@dataclass
class StickerSpec:
    kind: str
    prompt: str
    options: list[dict[str, Any]] = field(default_factory=list)
    max_choices: int = 1
    results_visibility: str = Sticker.Visibility.ALWAYS
    allow_vote_change: bool = True
    opens_at: datetime | None = None
    closes_at: datetime | None = None
    checkpoints: list[CheckpointSpec] = field(default_factory=list)
    payload: dict[str, Any] | None = None


def _payload_present(payload: dict[str, Any] | None) -> bool:
    return bool(payload) and bool(payload.get("text") or payload.get("media_url"))  # type: ignore[union-attr]


def sticker_check_spec(*, spec: StickerSpec, video: Video, now: datetime) -> dict[str, list[str]]:
    """All rule violations of the spec, by field; empty when it is valid."""
    errors: dict[str, list[str]] = {}

    def add(name: str, message: str) -> None:
        errors.setdefault(name, []).append(message)

    kind = spec.kind
    if kind in OPTION_COUNTS:
        low, high = OPTION_COUNTS[Sticker.Kind(kind)]
        if not low <= len(spec.options) <= high:
            add("options", f"A sticker of kind {kind} has {low} to {high} options.")
        if kind == Sticker.Kind.ENDING:
            for index, option in enumerate(spec.options):
                if not _payload_present(option.get("payload")):
                    add(f"options.{index}.payload", "Each ending needs a payload (text or media).")
            if spec.max_choices != 1:
                add("max_choices", "An ending sticker takes exactly one choice.")
        else:
            for index, option in enumerate(spec.options):
                if option.get("payload") is not None:
                    add(f"options.{index}.payload", "Only ending options carry a payload.")
        if spec.options and spec.max_choices > len(spec.options):
            add("max_choices", "max_choices cannot exceed the number of options.")
        labels = [option["label"].strip().lower() for option in spec.options]
        if len(set(labels)) != len(labels):
            add("options", "Option labels must be distinct.")
    else:
        if spec.options:
            add("options", f"A sticker of kind {kind} has no options.")
        if spec.max_choices != 1:
            add("max_choices", f"A sticker of kind {kind} has no choices.")

    if kind == Sticker.Kind.QUIZ:
        if not 1 <= len(spec.checkpoints) <= MAX_CHECKPOINTS:
            add("checkpoints", f"A quiz has 1 to {MAX_CHECKPOINTS} checkpoints.")
        low, high = CHECKPOINT_OPTIONS
        for index, checkpoint in enumerate(spec.checkpoints):
            prefix = f"checkpoints.{index}"
            if checkpoint.at_ms >= video.duration_ms:
                add(f"{prefix}.at_ms", "The checkpoint must lie within the video.")
            if not low <= len(checkpoint.options) <= high:
                add(f"{prefix}.options", f"A checkpoint has {low} to {high} options.")
            if not checkpoint.correct:
                add(f"{prefix}.correct", "Name at least one correct option.")
            elif len(set(checkpoint.correct)) != len(checkpoint.correct):
                add(f"{prefix}.correct", "Correct options must not repeat.")
            elif any(not 0 <= i < len(checkpoint.options) for i in checkpoint.correct):
                add(
                    f"{prefix}.correct",
                    "Correct options are indexes into this checkpoint's options.",
                )
    elif spec.checkpoints:
        add("checkpoints", "Only a quiz has checkpoints.")

    if kind == Sticker.Kind.UNLOCK:
        if not _payload_present(spec.payload):
            add("payload", "An unlock sticker needs a payload (text or media).")
    elif spec.payload is not None:
        add("payload", "Only an unlock sticker has a payload.")

    opens_at = spec.opens_at or now
    if spec.opens_at is not None and spec.opens_at < now - OPENS_AT_SLACK:
        add("opens_at", "opens_at cannot lie in the past.")
    if spec.closes_at is None:
        if kind not in (Sticker.Kind.UNLOCK, Sticker.Kind.QUIZ):
            add("closes_at", f"A sticker of kind {kind} needs closes_at.")
    # Compared as a duration: opens_at + MAX_OPEN overflows at the end of the calendar.
    elif not MIN_OPEN <= spec.closes_at - opens_at <= MAX_OPEN:
        add("closes_at", "closes_at lies between 1 minute and 30 days after opens_at.")
    return errors


def _write_children(sticker: Sticker, spec: StickerSpec) -> None:
    StickerOption.objects.bulk_create(
        [
            StickerOption(
                sticker=sticker,
                position=position,
                label=option["label"],
                payload=option.get("payload"),
            )
            for position, option in enumerate(spec.options)
        ]
    )
    for position, checkpoint_spec in enumerate(spec.checkpoints):
        checkpoint = Checkpoint.objects.create(
            sticker=sticker,
            position=position,
            at_ms=checkpoint_spec.at_ms,
            question=checkpoint_spec.question,
            explanation=checkpoint_spec.explanation,
        )
        CheckpointOption.objects.bulk_create(
            [
                CheckpointOption(
                    checkpoint=checkpoint,
                    position=index,
                    label=label,
                    is_correct=index in checkpoint_spec.correct,
                )
                for index, label in enumerate(checkpoint_spec.options)
            ]
        )


def _initial_state(opens_at: datetime, now: datetime) -> str:
    return Sticker.State.OPEN if opens_at <= now else Sticker.State.SCHEDULED


@transaction.atomic
def sticker_create(*, creator: User, video_id: int, spec: StickerSpec) -> Sticker:
    video = Video.objects.filter(pk=video_id).first()
    if video is None:
        raise NotFound("No video with this id.")
    if video.creator_id != creator.pk:
        raise Forbidden("Only the video's creator adds stickers to it.", code="not_video_creator")
    now = timezone.now()
    errors = sticker_check_spec(spec=spec, video=video, now=now)
    if errors:
        raise InvalidInput(_summary(errors), errors=errors)
    opens_at = max(spec.opens_at or now, now)
    sticker = Sticker.objects.create(
        video=video,
        kind=spec.kind,
        prompt=spec.prompt,
        max_choices=spec.max_choices,
        results_visibility=spec.results_visibility,
        allow_vote_change=spec.allow_vote_change,
        payload=spec.payload,
        opens_at=opens_at,
        closes_at=spec.closes_at,
        state=_initial_state(opens_at, now),
    )
    _write_children(sticker, spec)
    return sticker


def _summary(errors: dict[str, list[str]]) -> str:
    return "Invalid input: " + "; ".join(
        f"{name}: {messages[0]}" for name, messages in errors.items()
    )


def sticker_spec_of(sticker: Sticker) -> StickerSpec:
    """The spec a stored sticker was made from (the base a PATCH applies to)."""
    return StickerSpec(
        kind=sticker.kind,
        prompt=sticker.prompt,
        options=[
            {"label": option.label, "payload": option.payload} for option in sticker.options.all()
        ],
        max_choices=sticker.max_choices,
        results_visibility=sticker.results_visibility,
        allow_vote_change=sticker.allow_vote_change,
        opens_at=sticker.opens_at,
        closes_at=sticker.closes_at,
        checkpoints=[
            CheckpointSpec(
                at_ms=checkpoint.at_ms,
                question=checkpoint.question,
                options=[option.label for option in checkpoint.options.all()],
                correct=[
                    index
                    for index, option in enumerate(checkpoint.options.all())
                    if option.is_correct
                ],
                explanation=checkpoint.explanation,
            )
            for checkpoint in sticker.checkpoints.all()
        ],
        payload=sticker.payload,
    )


@transaction.atomic
def sticker_update(*, actor: User, sticker_id: int, changes: dict[str, Any]) -> Sticker:
    """Apply a PATCH. Only the creator, and only while the sticker is scheduled."""
    sticker = sticker_and_video_for_update(sticker_id)
    if sticker is None:
        raise NotFound("No sticker with this id.")
    check_sticker_visible(viewer=actor, state=sticker.state, creator_id=sticker.video.creator_id)
    if sticker.video.creator_id != actor.pk:
        raise Forbidden("Only the video's creator edits its stickers.", code="not_video_creator")
    now = timezone.now()
    if sticker.state != Sticker.State.SCHEDULED or sticker.opens_at <= now:
        raise Conflict(
            "A sticker can be edited only while it is scheduled.", code="sticker_not_scheduled"
        )
    spec = sticker_spec_of(sticker)
    for name, value in changes.items():
        setattr(spec, name, value)
    errors = sticker_check_spec(spec=spec, video=sticker.video, now=now)
    if errors:
        raise InvalidInput(_summary(errors), errors=errors)
    opens_at = spec.opens_at or now
    for name in (
        "prompt",
        "max_choices",
        "results_visibility",
        "allow_vote_change",
        "payload",
        "closes_at",
    ):
        setattr(sticker, name, getattr(spec, name))
    sticker.opens_at = opens_at
    sticker.state = _initial_state(opens_at, now)
    sticker.save()
    if "options" in changes or "checkpoints" in changes:
        sticker.options.all().delete()
        sticker.checkpoints.all().delete()
        _write_children(sticker, spec)
    # Results reads cache the visibility, times and options; they must not outlive the edit.
    transaction.on_commit(lambda: sticker_cache_forget(sticker_id))
    return sticker
