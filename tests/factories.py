from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import factory
from django.utils import timezone
from factory.django import DjangoModelFactory

from engagement.models import (
    Comment,
    CommentLike,
    Follow,
    Like,
    Play,
    Report,
    Share,
    User,
    Video,
)
from polls.models import Checkpoint, CheckpointOption, Sticker, StickerOption, Vote
from rewards.models import Badge, Perk, RewardRule


def _save_user(user: User, create: bool, extracted: object, **kwargs: object) -> None:
    if create:
        user.save()


class UserFactory(DjangoModelFactory[User]):
    class Meta:
        model = User
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    display_name = factory.LazyAttribute(lambda user: user.username.title())
    password = factory.PostGenerationMethodCall("set_password", "a-good-password-1")
    _save = factory.PostGeneration(_save_user)


class StaffUserFactory(UserFactory):
    username = factory.Sequence(lambda n: f"staff{n}")
    is_staff = True
    is_superuser = True


class VideoFactory(DjangoModelFactory[Video]):
    class Meta:
        model = Video

    creator = factory.SubFactory(UserFactory)
    title = factory.Sequence(lambda n: f"Video {n}")
    duration_ms = 30_000


class CommentFactory(DjangoModelFactory[Comment]):
    class Meta:
        model = Comment

    user = factory.SubFactory(UserFactory)
    video = factory.SubFactory(VideoFactory)
    text = factory.Sequence(lambda n: f"Comment {n}")


# The factories below write interaction rows directly, without touching the counters (as an
# import or a repair would); tests that need counters use the services or the API.
class LikeFactory(DjangoModelFactory[Like]):
    class Meta:
        model = Like

    user = factory.SubFactory(UserFactory)
    video = factory.SubFactory(VideoFactory)


class CommentLikeFactory(DjangoModelFactory[CommentLike]):
    class Meta:
        model = CommentLike

    user = factory.SubFactory(UserFactory)
    comment = factory.SubFactory(CommentFactory)


class ShareFactory(DjangoModelFactory[Share]):
    class Meta:
        model = Share

    user = factory.SubFactory(UserFactory)
    video = factory.SubFactory(VideoFactory)


class PlayFactory(DjangoModelFactory[Play]):
    class Meta:
        model = Play

    user = factory.SubFactory(UserFactory)
    video = factory.SubFactory(VideoFactory)
    watched_ms = 10_000


class FollowFactory(DjangoModelFactory[Follow]):
    class Meta:
        model = Follow

    user = factory.SubFactory(UserFactory)
    creator = factory.SubFactory(UserFactory)


class ReportFactory(DjangoModelFactory[Report]):
    """An open report of a video (the target is not checked: pass a real one when it matters)."""

    class Meta:
        model = Report

    reporter = factory.SubFactory(UserFactory)
    target_type = Report.TargetType.VIDEO
    target_id = factory.LazyFunction(lambda: VideoFactory.create().pk)
    reason = factory.Sequence(lambda n: f"Reason {n}")


# --- polls ------------------------------------------------------------------------------------
# Stickers are written directly (open, with options) so tests can set any state or time the API
# would refuse; the API tests create theirs through POST videos/{id}/stickers.
def _sticker_options(
    sticker: Sticker, create: bool, extracted: Sequence[str | dict[str, Any]] | None, **_: object
) -> None:
    if not create or not extracted:
        return
    for position, option in enumerate(extracted):
        fields = {"label": option} if isinstance(option, str) else option
        StickerOption.objects.create(sticker=sticker, position=position, **fields)


def _sticker_checkpoints(
    sticker: Sticker, create: bool, extracted: Sequence[dict[str, Any]] | None, **_: object
) -> None:
    if not create or not extracted:
        return
    for position, spec in enumerate(extracted):
        checkpoint = Checkpoint.objects.create(
            sticker=sticker,
            position=position,
            at_ms=spec["at_ms"],
            question=spec["question"],
            explanation=spec.get("explanation", ""),
        )
        for index, label in enumerate(spec["options"]):
            CheckpointOption.objects.create(
                checkpoint=checkpoint,
                position=index,
                label=label,
                is_correct=index in spec["correct"],
            )


class StickerFactory(DjangoModelFactory[Sticker]):
    """An open sticker (a poll unless `kind` says otherwise).

    `options=["A", {"label": "B", "payload": {...}}]` adds options in that order;
    `checkpoints=[{"at_ms", "question", "options": [labels], "correct": [indexes],
    "explanation"}]` adds quiz checkpoints.
    """

    class Meta:
        model = Sticker
        skip_postgeneration_save = True

    video = factory.SubFactory(VideoFactory)
    kind = Sticker.Kind.POLL
    prompt = factory.Sequence(lambda n: f"Sticker {n}?")
    opens_at = factory.LazyFunction(lambda: timezone.now() - timedelta(minutes=5))
    closes_at = factory.LazyAttribute(
        lambda sticker: (
            None
            if sticker.kind in (Sticker.Kind.QUIZ, Sticker.Kind.UNLOCK)
            else sticker.opens_at + timedelta(days=1)
        )
    )
    state = Sticker.State.OPEN
    options = factory.PostGeneration(_sticker_options)
    checkpoints = factory.PostGeneration(_sticker_checkpoints)


class VoteFactory(DjangoModelFactory[Vote]):
    """A vote row written directly (no tally refresh is requested)."""

    class Meta:
        model = Vote

    sticker = factory.SubFactory(StickerFactory)
    user = factory.SubFactory(UserFactory)
    option_ids = factory.LazyFunction(list)
    created_at = factory.LazyFunction(timezone.now)
    voted_at = factory.LazyAttribute(lambda vote: vote.created_at)
    counted = True


# --- rewards ----------------------------------------------------------------------------------
class BadgeFactory(DjangoModelFactory[Badge]):
    class Meta:
        model = Badge

    slug = factory.Sequence(lambda n: f"badge-{n}")
    name = factory.Sequence(lambda n: f"Badge {n}")


class PerkFactory(DjangoModelFactory[Perk]):
    """A perk with unlimited stock unless `stock` says otherwise."""

    class Meta:
        model = Perk

    slug = factory.Sequence(lambda n: f"perk-{n}")
    name = factory.Sequence(lambda n: f"Perk {n}")
    code_prefix = "TEST"


class RewardRuleFactory(DjangoModelFactory[RewardRule]):
    """An active once-ever rule "total counted likes >= 1" granting a new badge.

    Pass `perk=...` to grant a perk instead (the badge is then left empty).
    """

    class Meta:
        model = RewardRule

    name = factory.Sequence(lambda n: f"Rule {n}")
    trigger = RewardRule.Trigger.TOTAL_LIKES
    threshold = 1
    perk = None
    badge = factory.Maybe(
        "perk", yes_declaration=None, no_declaration=factory.SubFactory(BadgeFactory)
    )
