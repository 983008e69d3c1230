"""Rewards across the broker: a real Celery worker process, real Redis, the real database.

A commit wakes the consumer (core.wakeups: a Redis flag, then a task sent by name to the
`rewards` queue); the worker grants. A lost wake-up or a consumer killed mid-run only delays
grants: the next run (the periodic sweep) grants them, exactly once.
"""

import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Callable

import pytest
from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django.test import Client
from rest_framework.test import APIClient

from core.models import Watermark
from core.wakeups import flag_key
from rewards.models import ActivityEvent, Entitlement, Grant, RewardRule
from rewards.services.events import reward_events_process
from rewards.tasks import backfill_rule, process_reward_events
from tests.conftest import ROOT, _database_url, wait_until
from tests.factories import (
    BadgeFactory,
    LikeFactory,
    PerkFactory,
    RewardRuleFactory,
    StaffUserFactory,
    StickerFactory,
    UserFactory,
    VideoFactory,
)
from tests.polls import option_ids
from tests.rewards import grants_of

pytestmark = [pytest.mark.celery_worker, pytest.mark.django_db(transaction=True)]

ClientMaker = Callable[..., APIClient]
CONSUMER_TASK = "rewards.tasks.process_reward_events"
Kind = ActivityEvent.Kind


def _drain_rewards_queue() -> None:
    """Wait until the worker ran every rewards task queued so far.

    The queue is FIFO and the worker runs one task at a time: once a backfill sent now has run,
    everything sent before it has too. Wake-ups are sent with a debounce countdown, so the
    sentinel waits a little longer than that. (An inactive rule: its backfill grants nothing.)
    """
    sentinel = RewardRuleFactory.create(name="sentinel", is_active=False)
    backfill_rule.apply_async((sentinel.pk,), countdown=settings.WAKE_DEBOUNCE_SECONDS + 0.5)
    assert wait_until(
        lambda: RewardRule.objects.filter(pk=sentinel.pk, backfilled_at__isnull=False).exists(),
        timeout=60,
    )


def test_likes_through_the_api_are_granted_by_the_worker(
    celery_worker: object, make_client: ClientMaker
) -> None:
    # given "2 likes -> badge" and "2 likes -> perk"
    badge_rule = RewardRuleFactory.create(threshold=2)
    perk_rule = RewardRuleFactory.create(threshold=2, perk=PerkFactory.create(stock=5))
    fan = UserFactory.create()
    client = make_client(fan)
    videos = VideoFactory.create_batch(2)

    # when the fan likes two videos through the API (each commit wakes the consumer)
    for video in videos:
        assert client.put(f"/api/v1/videos/{video.pk}/like").status_code == 201

    # then the worker grants both, once, with the entitlement and the feed entries (a run may
    # grant from the second like before a later run, woken by that like, writes its feed entry)
    assert wait_until(
        lambda: (
            Grant.objects.filter(user=fan).count() == 2
            and ActivityEvent.objects.filter(kind=Kind.LIKED_VIDEO).count() == 2
        ),
        timeout=60,
    )
    _drain_rewards_queue()
    assert grants_of(badge_rule) == [(fan.pk, "")]
    assert grants_of(perk_rule) == [(fan.pk, "")]
    assert list(Entitlement.objects.values_list("user_id", "perk_id")) == [
        (fan.pk, perk_rule.perk_id)
    ]
    assert Counter(ActivityEvent.objects.filter(user=fan).values_list("kind", flat=True)) == {
        Kind.LIKED_VIDEO: 2,
        Kind.EARNED_BADGE: 1,
        Kind.EARNED_PERK: 1,
    }
    # and the fan sees them through the API
    assert [item["rule"] for item in client.get("/api/v1/me/badges").json()["results"]] == [
        badge_rule.name
    ]


def test_with_the_wake_up_flag_stuck_the_next_run_still_grants(
    celery_worker: object, make_client: ClientMaker
) -> None:
    # given nothing queued, and a wake-up flag left behind (as if its task had been lost)
    _drain_rewards_queue()
    rule = RewardRuleFactory.create(threshold=2)
    cache.set(flag_key(CONSUMER_TASK), 1, timeout=300)
    fan = UserFactory.create()
    client = make_client(fan)

    # when the fan likes two videos, no wake-up is sent
    for video in VideoFactory.create_batch(2):
        assert client.put(f"/api/v1/videos/{video.pk}/like").status_code == 201
    assert cache.get(flag_key(CONSUMER_TASK)) == 1
    assert Grant.objects.count() == 0

    # then the next run (the periodic sweep) goes through the broker and grants, once
    process_reward_events.delay()
    assert wait_until(lambda: Grant.objects.filter(user=fan).exists(), timeout=60)
    assert grants_of(rule) == [(fan.pk, "")]
    # and it cleared the flag, so the next commit wakes it again
    assert cache.get(flag_key(CONSUMER_TASK)) is None


def test_the_worker_grants_the_winning_ending_after_a_close_through_the_api(
    celery_worker: object, make_client: ClientMaker
) -> None:
    # given "vote for the winning ending -> prophet" and an ending voted on through the API
    rule = RewardRuleFactory.create(
        trigger=RewardRule.Trigger.WINNING_ENDING, badge=BadgeFactory.create(name="Prophet")
    )
    sticker = StickerFactory.create(
        kind="ending",
        options=[
            {"label": "Stay", "payload": {"text": "stays"}},
            {"label": "Go", "payload": {"text": "goes"}},
        ],
    )
    stay, go = option_ids(sticker)
    voters = {choice: UserFactory.create() for choice in ("go-1", "go-2", "stay")}
    for name, voter in voters.items():
        response = make_client(voter).post(
            f"/api/v1/stickers/{sticker.pk}/votes",
            {"option_ids": [stay if name == "stay" else go]},
            format="json",
        )
        assert response.status_code == 201

    # when the creator closes it: the worker finalizes, and the final result wakes the consumer
    creator = make_client(sticker.video.creator)
    assert creator.post(f"/api/v1/stickers/{sticker.pk}/close").status_code == 200

    # then the winner's voters are granted and told their vote chose the ending
    assert wait_until(lambda: Grant.objects.filter(rule=rule).count() == 2, timeout=60)
    assert grants_of(rule) == sorted((voters[name].pk, "") for name in ("go-1", "go-2"))
    feed = make_client(voters["go-1"]).get("/api/v1/me/activity").json()["results"]
    assert [item["text"] for item in feed] == [
        'You earned the badge "Prophet"',
        f'Your vote chose the ending of "{sticker.video.title}"',
    ]


def test_a_rule_added_in_the_admin_is_backfilled_by_the_worker(celery_worker: object) -> None:
    # given history: 3 users with 2 likes, 1 with 1
    videos = VideoFactory.create_batch(2)
    veterans = UserFactory.create_batch(3)
    for veteran in veterans:
        for video in videos:
            LikeFactory.create(user=veteran, video=video)
    LikeFactory.create(video=videos[0])
    badge = BadgeFactory.create()
    staff = Client()
    staff.force_login(StaffUserFactory.create())
    # (wake-ups queued by earlier tests have run: the consumer finds no rule for these likes)
    _drain_rewards_queue()

    # when staff adds "2 likes -> badge" in the admin
    response = staff.post(
        "/admin/rewards/rewardrule/add/",
        {
            "name": "Like 2 videos",
            "trigger": "total_likes",
            "threshold": 2,
            "badge": badge.pk,
            "period": "",
            "sticker_kind": "",
            "is_active": "on",
        },
    )
    assert response.status_code == 302

    # then the worker applies it to history: exactly the veterans, by backfill
    rule = RewardRule.objects.get(name="Like 2 videos")
    assert wait_until(
        lambda: RewardRule.objects.filter(pk=rule.pk, backfilled_at__isnull=False).exists(),
        timeout=60,
    )
    assert grants_of(rule) == sorted((veteran.pk, "") for veteran in veterans)
    assert set(Grant.objects.values_list("source", flat=True)) == {"backfill"}


def test_duplicate_deliveries_through_the_worker_grant_once(celery_worker: object) -> None:
    # given rules and history the consumer has not read
    badge_rule = RewardRuleFactory.create()
    perk_rule = RewardRuleFactory.create(perk=PerkFactory.create())
    fans = UserFactory.create_batch(4)
    video = VideoFactory.create()
    for fan in fans:
        LikeFactory.create(user=fan, video=video)

    # when the consumer task is delivered three times and the backfills twice
    for _ in range(3):
        process_reward_events.delay()
    for rule in (badge_rule, perk_rule, badge_rule, perk_rule):
        backfill_rule.delay(rule.pk)
    _drain_rewards_queue()

    # then every fan has each reward once
    for rule in (badge_rule, perk_rule):
        assert grants_of(rule) == sorted((fan.pk, "") for fan in fans)
    assert Entitlement.objects.count() == 4
    assert Counter(ActivityEvent.objects.values_list("kind", flat=True)) == {
        Kind.LIKED_VIDEO: 4,
        Kind.EARNED_BADGE: 4,
        Kind.EARNED_PERK: 4,
    }


def _backend_waiting_on_grants() -> int | None:
    with connection.cursor() as cursor:
        # inside a transaction the statistics views are a snapshot; take a fresh one
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid() AND wait_event_type = 'Lock' "
            "AND query ILIKE %s",
            [f"%INSERT INTO {Grant._meta.db_table}%"],
        )
        row = cursor.fetchone()
    return row[0] if row else None


def _backend_alive(pid: int) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", [pid])
        return bool(cursor.fetchone()[0])


def test_a_consumer_killed_mid_run_grants_nothing_and_the_next_run_grants_once(
    celery_worker: object,
) -> None:
    # given rules and likes the consumer has not read
    badge_rule = RewardRuleFactory.create()
    perk_rule = RewardRuleFactory.create(perk=PerkFactory.create())
    fans = UserFactory.create_batch(3)
    video = VideoFactory.create()
    for fan in fans:
        LikeFactory.create(user=fan, video=video)
    _drain_rewards_queue()

    # when a consumer process is killed (SIGKILL) in the middle of writing grants: it is held
    # inside its transaction by a lock on the grant table until it is dead
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": _database_url(),
    }
    script = (
        "import django; django.setup(); "
        "from rewards.services.events import reward_events_process; reward_events_process()"
    )
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(f"LOCK TABLE {Grant._meta.db_table} IN SHARE ROW EXCLUSIVE MODE")
        consumer = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, env=environment)
        try:
            assert wait_until(lambda: _backend_waiting_on_grants() is not None, timeout=60)
            backend = _backend_waiting_on_grants()
            assert backend is not None
        finally:
            os.kill(consumer.pid, signal.SIGKILL)
            consumer.wait(timeout=30)
    assert consumer.returncode == -signal.SIGKILL
    # (its database session ends once it finds its client gone)
    assert wait_until(lambda: not _backend_alive(backend), timeout=60)

    # then nothing it wrote survived: no grant, no entitlement, no feed entry, no progress
    assert Grant.objects.count() == 0
    assert Entitlement.objects.count() == 0
    assert ActivityEvent.objects.count() == 0
    assert Watermark.objects.get(name="rewards:likes").position == 0

    # and the next run (here through the worker, as the sweep would) grants each once
    process_reward_events.delay()
    assert wait_until(lambda: Grant.objects.count() == 6, timeout=60)
    _drain_rewards_queue()
    assert reward_events_process().grants == 0
    for rule in (badge_rule, perk_rule):
        assert grants_of(rule) == sorted((fan.pk, "") for fan in fans)
    assert Entitlement.objects.count() == 3
    assert ActivityEvent.objects.filter(kind=Kind.LIKED_VIDEO).count() == 3
