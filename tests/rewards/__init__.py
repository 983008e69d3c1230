"""Helpers shared by the rewards tests.

Interactions are made through the real services (`video_like`, `vote_cast`, `answer_submit`,
closing and finalization), then placed in time or marked uncounted with a queryset update, as an
import or an integrity decision would. Rules are evaluated by the consumer
(`reward_events_process`), by backfill, or by `rule_apply` directly.
"""

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from django.db import connection
from django.utils import timezone

from core.client import ClientInfo
from engagement.models import Like, User, Video
from engagement.services.interactions import video_like
from polls.models import Answer, Checkpoint, Sticker, Vote
from polls.services.finalizing import sticker_finalize
from polls.services.lifecycle import stickers_close_due
from polls.services.voting import answer_submit, vote_cast
from rewards.models import ActivityEvent, Entitlement, Grant, Perk, RewardRule

CLIENT = ClientInfo(ip="127.0.0.1", device_id="test-device")
T = TypeVar("T")


def utc(text: str) -> datetime:
    """`utc("2025-03-10T12:00:00")`: a fixed moment in UTC."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


MICROSECOND = timedelta(microseconds=1)


def like(user: User, video: Video, *, at: datetime | None = None, counted: bool = True) -> Like:
    """A like through the service, then moved to `at` and/or marked uncounted."""
    video_like(user=user, video_id=video.pk, client=CLIENT)
    rows = Like.objects.filter(user=user, video=video)
    changes: dict[str, Any] = {}
    if at is not None:
        changes["created_at"] = at
    if not counted:
        changes["counted"] = False
    if changes:
        rows.update(**changes)
    return rows.get()


def vote(
    user: User,
    sticker: Sticker,
    option_id: int,
    *,
    at: datetime | None = None,
    counted: bool = True,
) -> Vote:
    """A vote through the service (the sticker must be open), then placed and/or uncounted."""
    vote_cast(user=user, sticker_id=sticker.pk, option_ids=[option_id], client=CLIENT)
    rows = Vote.objects.filter(user=user, sticker=sticker)
    changes: dict[str, Any] = {}
    if at is not None:
        changes.update(created_at=at, voted_at=at)
    if not counted:
        changes["counted"] = False
    if changes:
        rows.update(**changes)
    return rows.get()


def answer_quiz(
    user: User,
    sticker: Sticker,
    choices: list[int],
    *,
    at: datetime | None = None,
    counted: bool = True,
) -> list[Answer]:
    """Answer the user's next unanswered checkpoints in order, picking option index choices[i]."""
    answered = Answer.objects.filter(user=user, sticker=sticker).values("checkpoint_id")
    checkpoints = list(
        Checkpoint.objects.filter(sticker=sticker).exclude(pk__in=answered).order_by("position")
    )
    for checkpoint, choice in zip(checkpoints, choices, strict=False):
        option = checkpoint.options.order_by("position")[choice]
        answer_submit(
            user=user,
            sticker_id=sticker.pk,
            checkpoint_id=checkpoint.pk,
            option_ids=[option.pk],
            client=CLIENT,
        )
    rows = Answer.objects.filter(user=user, sticker=sticker)
    changes: dict[str, Any] = {}
    if at is not None:
        changes["created_at"] = at
    if not counted:
        changes["counted"] = False
    if changes:
        rows.update(**changes)
    return list(rows.order_by("id"))


def finalize(sticker: Sticker, *, at: datetime | None = None) -> Sticker:
    """Close the sticker by the clock (closes_at moved into the past) and finalize it.

    `at` overrides `finalized_at` afterwards, to place the final result in time.
    """
    closes_at = timezone.now() - timedelta(seconds=1)
    Sticker.objects.filter(pk=sticker.pk).update(
        opens_at=closes_at - timedelta(hours=1), closes_at=closes_at
    )
    assert sticker.pk in stickers_close_due()
    assert sticker_finalize(sticker_id=sticker.pk)
    if at is not None:
        Sticker.objects.filter(pk=sticker.pk).update(finalized_at=at)
    sticker.refresh_from_db()
    return sticker


def quiz_checkpoints(count: int) -> list[dict[str, Any]]:
    """`count` checkpoints whose first option ("right") is the correct one."""
    return [
        {
            "at_ms": 1_000 * (index + 1),
            "question": f"Question {index + 1}?",
            "options": ["right", "wrong"],
            "correct": [0],
        }
        for index in range(count)
    ]


RIGHT, WRONG = 0, 1


def grants_of(rule: RewardRule) -> list[tuple[int, str]]:
    """(user id, period key) of every grant of the rule, sorted."""
    return sorted(Grant.objects.filter(rule=rule).values_list("user_id", "period_key"))


def rewards_state() -> dict[str, Any]:
    """Every row of the rewards tables a request may write, for `assert … == before`."""
    return {
        "grants": list(Grant.objects.order_by("pk").values()),
        "entitlements": list(Entitlement.objects.order_by("pk").values()),
        "perks": list(Perk.objects.order_by("pk").values("pk", "stock", "redeemed_count")),
        "activity": list(ActivityEvent.objects.order_by("pk").values()),
    }


def run_concurrently(count: int, action: Callable[[int], T]) -> list[T]:
    """Start `count` threads that wait on one barrier, then each returns action(index).

    Every thread uses its own database connection (closed at the end); an exception in a
    thread fails the test.
    """
    barrier = threading.Barrier(count)
    results: dict[int, T] = {}
    errors: list[BaseException] = []

    def run(index: int) -> None:
        try:
            barrier.wait(timeout=60)
            results[index] = action(index)
        except BaseException as error:
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=180)
    assert not any(thread.is_alive() for thread in threads)
    assert errors == [], errors
    return [results[index] for index in range(count)]
