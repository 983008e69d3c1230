"""The rewards consumer: feed entries, watermarks, and exactly once (SPEC §2.5).

Exactly once is a database guarantee (the unique constraint on Grant, one INSERT … ON CONFLICT
per rule writing the grant, its entitlement and its feed entry), so it is tested with real
threads on the real database: duplicate and concurrent evaluations never write a second grant.
"""

from collections import Counter
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from core.models import Watermark
from core.wakeups import flag_key
from engagement.models import Like
from rewards.models import ActivityEvent, Entitlement, Grant, RewardRule
from rewards.services.events import SAFETY_LAG, RunReport, reward_events_process
from rewards.services.grants import rule_backfill
from rewards.services.rules import Scope, rule_apply
from rewards.tasks import process_reward_events
from tests.factories import (
    LikeFactory,
    PerkFactory,
    RewardRuleFactory,
    UserFactory,
    VideoFactory,
)
from tests.rewards import grants_of, like, rewards_state, run_concurrently, utc

Kind = ActivityEvent.Kind


def _likes_position() -> int:
    return Watermark.objects.get(name="rewards:likes").position


# --- feed entries and the watermark -----------------------------------------------------------
@pytest.mark.django_db
def test_each_counted_like_becomes_one_liked_video_feed_entry() -> None:
    creator = UserFactory.create(username="alice")
    video = VideoFactory.create(creator=creator, title="Five-minute ramen")
    fan, bot = UserFactory.create_batch(2)
    fan_like = like(fan, video, at=utc("2025-03-10T12:00:00"))
    like(bot, video, counted=False)

    report = reward_events_process()

    assert report == RunReport(
        grants=0,
        rows={"likes": 2, "comment_likes": 0, "votes": 0, "answers": 0, "finals": 0},
        more=False,
    )
    assert list(
        ActivityEvent.objects.values_list("user_id", "kind", "source_id", "video_id", "data")
    ) == [
        (
            fan.pk,
            Kind.LIKED_VIDEO,
            fan_like.pk,
            video.pk,
            {"video_title": "Five-minute ramen", "creator_id": creator.pk, "creator": "alice"},
        )
    ]
    assert ActivityEvent.objects.get().created_at == utc("2025-03-10T12:00:00")


@pytest.mark.django_db
def test_running_the_consumer_twice_writes_nothing_the_second_time() -> None:
    # given rules and likes that earn a badge and a perk
    badge_rule = RewardRuleFactory.create(threshold=2)
    perk_rule = RewardRuleFactory.create(threshold=1, perk=PerkFactory.create())
    fans = UserFactory.create_batch(3)
    videos = VideoFactory.create_batch(2)
    for fan in fans:
        for video in videos:
            like(fan, video)

    # when the consumer runs twice (a duplicate delivery, a retry)
    first = reward_events_process()
    after_first = rewards_state()
    second = reward_events_process()

    # then the second pass wrote nothing
    assert (first.grants, second.grants) == (6, 0)
    assert rewards_state() == after_first
    assert grants_of(badge_rule) == sorted((fan.pk, "") for fan in fans)
    assert grants_of(perk_rule) == sorted((fan.pk, "") for fan in fans)
    assert Entitlement.objects.count() == 3
    assert Counter(ActivityEvent.objects.values_list("kind", flat=True)) == {
        Kind.LIKED_VIDEO: 6,
        Kind.EARNED_BADGE: 3,
        Kind.EARNED_PERK: 3,
    }


@pytest.mark.django_db
def test_the_watermark_stays_behind_rows_younger_than_the_safety_lag() -> None:
    # given an old like and one just committed
    videos = VideoFactory.create_batch(2)
    fan = UserFactory.create()
    old = like(fan, videos[0], at=timezone.now() - timedelta(hours=1))
    young = like(fan, videos[1])

    # when the consumer runs, it reads both but only moves past the old one
    assert reward_events_process().rows["likes"] == 2
    assert _likes_position() == old.pk

    # so the young one is read again next time, duplicating nothing
    before = rewards_state()
    assert reward_events_process().rows["likes"] == 1
    assert rewards_state() == before
    assert _likes_position() == old.pk

    # once it is older than the lag, the watermark passes it and nothing is read again
    Like.objects.filter(pk=young.pk).update(created_at=timezone.now() - SAFETY_LAG * 2)
    assert reward_events_process().rows["likes"] == 1
    assert _likes_position() == young.pk
    assert reward_events_process().rows["likes"] == 0
    assert ActivityEvent.objects.filter(kind=Kind.LIKED_VIDEO).count() == 2


@pytest.mark.django_db
def test_the_task_body_is_safe_to_run_twice_and_clears_the_wake_flag() -> None:
    # eager runs of the task body; the flow through the broker is in test_worker.py
    rule = RewardRuleFactory.create()
    fan = UserFactory.create()
    like(fan, VideoFactory.create())
    cache.set(flag_key("rewards.tasks.process_reward_events"), 1, 60)

    assert process_reward_events.apply().get() == 1
    assert cache.get(flag_key("rewards.tasks.process_reward_events")) is None
    assert process_reward_events.apply().get() == 0
    assert grants_of(rule) == [(fan.pk, "")]


# --- exactly once under real concurrency --------------------------------------------------------
def _history(qualified: int, short: int) -> tuple[list[int], list[int]]:
    """Users with 2 counted likes (qualified) and users with 1, written without wake-ups."""
    videos = VideoFactory.create_batch(2)
    winners = UserFactory.create_batch(qualified)
    losers = UserFactory.create_batch(short)
    for user in winners:
        for video in videos:
            LikeFactory.create(user=user, video=video)
    for user in losers:
        LikeFactory.create(user=user, video=videos[0])
    return [user.pk for user in winners], [user.pk for user in losers]


def _assert_once_each(rules: list[RewardRule], winners: list[int]) -> None:
    for rule in rules:
        assert grants_of(rule) == sorted((user_id, "") for user_id in winners)
    perk_rules = [rule for rule in rules if rule.perk_id is not None]
    badge_rules = [rule for rule in rules if rule.badge_id is not None]
    assert Grant.objects.count() == len(rules) * len(winners)
    assert Entitlement.objects.count() == len(perk_rules) * len(winners)
    assert sorted(Entitlement.objects.values_list("user_id", flat=True)) == sorted(
        winners * len(perk_rules)
    )
    assert ActivityEvent.objects.filter(kind=Kind.EARNED_BADGE).count() == len(badge_rules) * len(
        winners
    )
    assert ActivityEvent.objects.filter(kind=Kind.EARNED_PERK).count() == len(perk_rules) * len(
        winners
    )


@pytest.mark.django_db(transaction=True)
def test_rule_apply_from_8_threads_at_once_grants_once_per_user() -> None:
    # given a badge rule and a perk rule "2 likes", 12 users who qualify and 5 who do not
    rules = [
        RewardRuleFactory.create(threshold=2),
        RewardRuleFactory.create(threshold=2, perk=PerkFactory.create()),
    ]
    winners, _ = _history(qualified=12, short=5)

    def apply_all(index: int) -> int:
        written = 0
        for rule_id in [rule.pk for rule in rules]:
            rule = RewardRule.objects.select_related("badge", "perk").get(pk=rule_id)
            written += rule_apply(rule, Scope(), source="event")
        return written

    # when 8 threads evaluate both rules over everything at the same moment
    written = run_concurrently(8, apply_all)

    # then every grant was written by exactly one of them, with one entitlement and feed entry
    assert sum(written) == 2 * 12
    _assert_once_each(rules, winners)


@pytest.mark.django_db(transaction=True)
def test_8_consumers_and_backfills_at_once_grant_once_per_user() -> None:
    rules = [
        RewardRuleFactory.create(threshold=2),
        RewardRuleFactory.create(threshold=2, perk=PerkFactory.create()),
    ]
    winners, _ = _history(qualified=10, short=4)

    def evaluate(index: int) -> int:
        if index % 2:
            return reward_events_process().grants
        return sum(rule_backfill(rule_id=rule.pk) for rule in rules)

    written = run_concurrently(8, evaluate)

    assert sum(written) == 2 * 10
    _assert_once_each(rules, winners)
    # and the likes' feed entries were written once each
    assert ActivityEvent.objects.filter(kind=Kind.LIKED_VIDEO).count() == 2 * 10 + 4


@pytest.mark.django_db(transaction=True)
def test_likes_committing_while_consumers_run_still_grant_once() -> None:
    # given "1 like" and "8 likes" rules and one fan
    first = RewardRuleFactory.create(threshold=1)
    eighth = RewardRuleFactory.create(threshold=8, perk=PerkFactory.create())
    fan = UserFactory.create()
    videos = VideoFactory.create_batch(8)

    # when 8 threads each like one video through the service and then run the consumer
    def like_then_consume(index: int) -> None:
        like(fan, videos[index])
        reward_events_process()

    run_concurrently(8, like_then_consume)
    # (a consumer that found another one running skipped its pass; the sweep runs it again)
    reward_events_process()

    # then each rule granted the fan exactly once
    assert grants_of(first) == [(fan.pk, "")]
    assert grants_of(eighth) == [(fan.pk, "")]
    assert Entitlement.objects.filter(user=fan).count() == 1
    assert Counter(ActivityEvent.objects.filter(user=fan).values_list("kind", flat=True)) == {
        Kind.LIKED_VIDEO: 8,
        Kind.EARNED_BADGE: 1,
        Kind.EARNED_PERK: 1,
    }


@pytest.mark.django_db(transaction=True)
def test_overlapping_evaluations_of_one_rule_at_once_neither_deadlock_nor_double_grant() -> None:
    # given 400 users who qualify for a badge rule and a perk rule
    rules = [
        RewardRuleFactory.create(threshold=1),
        RewardRuleFactory.create(threshold=1, perk=PerkFactory.create()),
    ]
    video = VideoFactory.create()
    users = UserFactory.create_batch(400)
    Like.objects.bulk_create([Like(user=user, video=video) for user in users])
    user_ids = [user.pk for user in users]

    # when 12 transactions evaluate both rules (in rule order, as the consumer does) at once,
    # some over everything (a backfill), others over different overlapping sets of users
    def evaluate(index: int) -> int:
        scope = Scope()
        if index % 3:
            rotated = user_ids[index * 37 :] + user_ids[: index * 37]
            scope = Scope(user_ids=rotated[: 100 + 25 * index])
        written = 0
        with transaction.atomic():
            for rule_id in sorted(rule.pk for rule in rules):
                rule = RewardRule.objects.select_related("badge", "perk").get(pk=rule_id)
                written += rule_apply(rule, scope, source="event")
        return written

    written = run_concurrently(12, evaluate)

    # then none failed (no deadlock) and each grant was written once
    assert sum(written) == 2 * 400
    _assert_once_each(rules, user_ids)
