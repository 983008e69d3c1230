"""Decisions are set-based: the number of statements does not grow with the rows, and chunking
large sets gives the same result as one chunk."""

from datetime import datetime
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from engagement.models import Video
from engagement.services.counters import video_counters_recount, video_counts
from integrity.services import rows
from integrity.services.cases import AccountSpan, Finding, case_confirm, case_dismiss, case_open
from polls.models import Sticker
from tests.analytics import world
from tests.factories import RewardRuleFactory, StickerFactory, UserFactory, VoteFactory
from tests.integrity.farm import DAY, HOUR, consume_everything, finalize

pytestmark = pytest.mark.django_db


def _farm(size: int, now: datetime) -> tuple[Finding, Video, Sticker]:
    creator = UserFactory.create()
    video = world.video(creator, now - DAY)
    ending = StickerFactory.create(
        video=video,
        kind=Sticker.Kind.ENDING,
        options=[
            {"label": "X", "payload": {"text": "x"}},
            {"label": "Y", "payload": {"text": "y"}},
        ],
        opens_at=now - DAY,
        closes_at=now - HOUR,
    )
    x, y = (option.pk for option in ending.options.order_by("position"))
    for fan in UserFactory.create_batch(2):
        world.like(fan, video, now - 20 * HOUR)
        VoteFactory.create(sticker=ending, user=fan, option_ids=[x], created_at=now - 20 * HOUR)
    bots = UserFactory.create_batch(size)
    for bot in bots:
        world.like(bot, video, now - 2 * HOUR)
        world.play(bot, video, now - 2 * HOUR)
        VoteFactory.create(sticker=ending, user=bot, option_ids=[y], created_at=now - 2 * HOUR)
    video_counters_recount(video_id=video.pk)
    finalize(ending)
    consume_everything()
    finding = Finding(
        accounts=[AccountSpan(bot.pk, now - 3 * HOUR, now + HOUR) for bot in bots],
        score=0.9,
        fingerprint=f"farm-{size}",
    )
    return finding, video, ending


def _queries(action: Any) -> int:
    with CaptureQueriesContext(connection) as captured:
        action()
    return len(captured.captured_queries)


def test_the_statements_of_a_decision_do_not_grow_with_the_farm() -> None:
    now = timezone.now()
    RewardRuleFactory.create(threshold=1)
    budgets = []
    for size in (3, 30):
        finding, _, _ = _farm(size, now)
        case = case_open(finding=finding).case
        assert case is not None
        confirm = _queries(lambda case=case: case_confirm(case))
        dismiss = _queries(lambda case=case: case_dismiss(case, by=None, note="x"))
        budgets.append((confirm, dismiss))
    assert budgets[0] == budgets[1]


def test_chunked_decisions_equal_one_chunk(monkeypatch: pytest.MonkeyPatch) -> None:
    now = timezone.now()
    RewardRuleFactory.create(threshold=1)
    finding, video, ending = _farm(7, now)
    monkeypatch.setattr(rows, "CHUNK", 2)
    case = case_open(finding=finding).case
    assert case is not None

    assert case_confirm(case).rows_flipped == 21
    assert video_counts([video.pk])[video.pk]["likes"] == 2
    ending.refresh_from_db()
    assert ending.winner_option_id == ending.options.get(label="X").pk

    assert case_dismiss(case, by=None, note="x").rows_flipped == 21
    assert video_counts([video.pk])[video.pk] == {
        "likes": 9,
        "comments": 0,
        "shares": 0,
        "plays": 7,
    }
    ending.refresh_from_db()
    assert ending.winner_option_id == ending.options.get(label="Y").pk
