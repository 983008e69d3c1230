"""Redeeming perks: one unit of stock claimed atomically, never oversold (SPEC §2.5)."""

import re
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from engagement.models import Like, User
from rewards.models import Entitlement, Perk, RewardRule
from rewards.services.grants import grants_revoke, rule_backfill
from tests.conftest import assert_problem, unknown_id
from tests.factories import PerkFactory, RewardRuleFactory, UserFactory, VideoFactory
from tests.polls import iso
from tests.rewards import rewards_state, run_concurrently, utc

ClientMaker = Callable[..., APIClient]
CODE_RE = re.compile(r"^TEST-[A-HJ-NP-Z2-9]{4}-[A-HJ-NP-Z2-9]{4}-[A-HJ-NP-Z2-9]{4}$")


def _entitle(users: list[User], perk: Perk, *, period: str = "", likes_each: int = 1) -> None:
    """Each user earns the perk through a "1 like" rule (once per day with `period="day"`)."""
    rule = RewardRuleFactory.create(perk=perk, period=period)
    videos = VideoFactory.create_batch(likes_each)
    Like.objects.bulk_create([Like(user=user, video=video) for user in users for video in videos])
    for day, video in enumerate(videos):
        # one like a day (created_at is set on insert, so it is moved afterwards)
        Like.objects.filter(video=video).update(
            created_at=utc("2025-03-10T12:00:00") + timedelta(days=day)
        )
    assert rule_backfill(rule_id=rule.pk) == len(users) * (likes_each if period else 1)


def _url(entitlement: Entitlement) -> str:
    return f"/api/v1/me/perks/{entitlement.pk}/redeem"


def _outcome(response: Any) -> tuple[int, str | None]:
    body = response.json()
    return response.status_code, (body.get("code") if response.status_code != 200 else None)


@pytest.mark.django_db
def test_redeem_claims_one_unit_and_returns_a_code(
    make_client: ClientMaker, django_assert_num_queries: Callable[..., Any]
) -> None:
    perk = PerkFactory.create(stock=5)
    fan = UserFactory.create()
    _entitle([fan], perk)
    entitlement = Entitlement.objects.get(user=fan)
    client = make_client(fan)

    # the device token; in one atomic block (BEGIN/COMMIT or savepoints) the entitlement with
    # its perk, the user's entitlements of the perk locked (the per-user limit), the entitlement
    # read again (after the lock), one unit of stock claimed, the entitlement's code written
    with django_assert_num_queries(8):
        response = client.post(_url(entitlement))

    assert response.status_code == 200, response.content
    entitlement.refresh_from_db()
    assert entitlement.code is not None
    assert CODE_RE.match(entitlement.code)
    assert response.json() == {
        "entitlement_id": entitlement.pk,
        "code": entitlement.code,
        "redeemed_at": iso(entitlement.redeemed_at),
    }
    perk.refresh_from_db()
    assert perk.redeemed_count == 1


@pytest.mark.django_db
def test_a_second_redemption_of_one_entitlement_is_409_already_redeemed(
    make_client: ClientMaker,
) -> None:
    perk = PerkFactory.create(stock=5)
    fan = UserFactory.create()
    _entitle([fan], perk)
    entitlement = Entitlement.objects.get(user=fan)
    client = make_client(fan)
    assert client.post(_url(entitlement)).status_code == 200
    before = rewards_state()

    response = client.post(_url(entitlement))

    assert_problem(response, 409, "already_redeemed", "This perk was already redeemed.")
    assert rewards_state() == before


@pytest.mark.django_db
def test_redeeming_an_expired_perk_is_409_expired(make_client: ClientMaker) -> None:
    perk = PerkFactory.create(stock=5)
    fan = UserFactory.create()
    _entitle([fan], perk)
    Perk.objects.filter(pk=perk.pk).update(valid_until=timezone.now() - timedelta(seconds=1))
    before = rewards_state()

    response = make_client(fan).post(_url(Entitlement.objects.get(user=fan)))

    assert_problem(response, 409, "expired", "This perk has expired.")
    assert rewards_state() == before


@pytest.mark.django_db
def test_redeeming_when_the_stock_is_gone_is_409_out_of_stock(make_client: ClientMaker) -> None:
    perk = PerkFactory.create(stock=1)
    first, second = UserFactory.create_batch(2)
    _entitle([first, second], perk)
    assert make_client(first).post(_url(Entitlement.objects.get(user=first))).status_code == 200
    before = rewards_state()

    response = make_client(second).post(_url(Entitlement.objects.get(user=second)))

    assert_problem(response, 409, "out_of_stock", "This perk is out of stock.")
    assert rewards_state() == before


@pytest.mark.django_db
def test_unlimited_stock_never_runs_out(make_client: ClientMaker) -> None:
    perk = PerkFactory.create(stock=None)
    fans = UserFactory.create_batch(3)
    _entitle(fans, perk)

    statuses = [
        make_client(fan).post(_url(Entitlement.objects.get(user=fan))).status_code for fan in fans
    ]

    assert statuses == [200, 200, 200]
    perk.refresh_from_db()
    assert perk.redeemed_count == 3


@pytest.mark.django_db
@pytest.mark.parametrize(("limit", "expected"), [(1, [200, 409, 409]), (2, [200, 200, 409])])
def test_the_per_user_limit_caps_redemptions_of_one_perk(
    make_client: ClientMaker, limit: int, expected: list[int]
) -> None:
    # given a fan who earned the perk on 3 days (3 entitlements)
    perk = PerkFactory.create(stock=10, per_user_limit=limit)
    fan = UserFactory.create()
    _entitle([fan], perk, period=RewardRule.Period.DAY, likes_each=3)
    client = make_client(fan)

    # when they redeem each of them
    responses = [client.post(_url(e)) for e in Entitlement.objects.filter(user=fan).order_by("pk")]

    # then only `limit` succeed; the rest are refused with limit_reached
    assert [response.status_code for response in responses] == expected
    for response in responses[limit:]:
        assert_problem(
            response,
            409,
            "limit_reached",
            "You have redeemed this perk as often as allowed.",
        )
    perk.refresh_from_db()
    assert perk.redeemed_count == limit
    assert Entitlement.objects.filter(user=fan, code__isnull=False).count() == limit


@pytest.mark.django_db
def test_redeeming_what_is_not_yours_or_was_revoked_is_404(
    make_client: ClientMaker, django_assert_num_queries: Callable[..., Any]
) -> None:
    perk = PerkFactory.create(stock=5)
    owner, revoked_user = UserFactory.create_batch(2)
    _entitle([owner, revoked_user], perk)
    revoked = Entitlement.objects.get(user=revoked_user)
    grants_revoke(grant_ids=[revoked.grant_id], reason="bought likes")
    before = rewards_state()

    revoked_client, owner_client = make_client(revoked_user), make_client(owner)
    owners_url = _url(Entitlement.objects.get(user=owner))
    unknown_url = f"/api/v1/me/perks/{unknown_id(Entitlement)}/redeem"

    # each: the device token; no entitlement of the caller's found, in the atomic block (in a
    # test a savepoint, rolled back and released)
    with django_assert_num_queries(3 * 5):
        someone_elses = revoked_client.post(owners_url)
        was_revoked = revoked_client.post(_url(revoked))
        unknown = owner_client.post(unknown_url)

    for response in (someone_elses, was_revoked, unknown):
        assert_problem(response, 404, "not_found", "No perk entitlement with this id.")
    assert rewards_state() == before


@pytest.mark.django_db
def test_redeeming_without_a_token_is_401(api_client: APIClient) -> None:
    perk = PerkFactory.create(stock=5)
    fan = UserFactory.create()
    _entitle([fan], perk)
    before = rewards_state()

    response = api_client.post(_url(Entitlement.objects.get(user=fan)))

    assert response.status_code == 401
    assert response["Content-Type"] == "application/problem+json"
    assert rewards_state() == before


@pytest.mark.django_db
def test_a_retried_redemption_with_the_same_idempotency_key_returns_the_first_answer(
    make_client: ClientMaker,
) -> None:
    perk = PerkFactory.create(stock=5)
    fan = UserFactory.create()
    _entitle([fan], perk)
    client = make_client(fan)
    url = _url(Entitlement.objects.get(user=fan))

    first = client.post(url, HTTP_IDEMPOTENCY_KEY="redeem-1")
    retried = client.post(url, HTTP_IDEMPOTENCY_KEY="redeem-1")

    assert (first.status_code, retried.status_code) == (200, 200)
    assert retried.json() == first.json()
    perk.refresh_from_db()
    assert perk.redeemed_count == 1


@pytest.mark.django_db
def test_revoking_a_redeemed_grant_leaves_the_entitlement_spent(make_client: ClientMaker) -> None:
    perk = PerkFactory.create(stock=5)
    fan = UserFactory.create()
    _entitle([fan], perk)
    entitlement = Entitlement.objects.get(user=fan)
    code = make_client(fan).post(_url(entitlement)).json()["code"]

    assert grants_revoke(grant_ids=[entitlement.grant_id], reason="late review") == 1

    entitlement.refresh_from_db()
    assert (entitlement.code, entitlement.revoked_at) == (code, None)
    perk.refresh_from_db()
    assert perk.redeemed_count == 1


# --- under real concurrency -------------------------------------------------------------------
@pytest.mark.django_db(transaction=True)
def test_200_simultaneous_redemptions_of_a_perk_with_stock_50(make_client: ClientMaker) -> None:
    # given 200 users, each with an entitlement to a perk with 50 units
    perk = PerkFactory.create(stock=50)
    users = UserFactory.create_batch(200)
    _entitle(users, perk)
    entitlements = {e.user_id: e for e in Entitlement.objects.filter(perk=perk)}
    requests = [(make_client(user), _url(entitlements[user.pk])) for user in users]

    # when they all redeem at once: 40 threads (one database connection each, the server allows
    # 200 in all) released together, each sending 5 redemptions back to back
    def redeem_five(thread: int) -> list[tuple[int, str | None, str | None]]:
        outcomes = []
        for client, url in requests[thread * 5 : thread * 5 + 5]:
            response = client.post(url)
            status, code = _outcome(response)
            outcomes.append((status, code, response.json().get("code") if status == 200 else None))
        return outcomes

    outcomes = [outcome for batch in run_concurrently(40, redeem_five) for outcome in batch]

    # then exactly 50 succeed and 150 are refused as out of stock
    assert Counter((status, code) for status, code, _ in outcomes) == {
        (200, None): 50,
        (409, "out_of_stock"): 150,
    }
    perk.refresh_from_db()
    assert perk.redeemed_count == 50
    # and exactly the 50 winners hold a code: the ones they were given, all different
    given = sorted(code for _, _, code in outcomes if code is not None)
    stored = sorted(
        code
        for code in Entitlement.objects.filter(perk=perk).values_list("code", flat=True)
        if code is not None
    )
    assert stored == given
    assert len(set(stored)) == 50
    assert Entitlement.objects.filter(perk=perk, redeemed_at__isnull=False).count() == 50


@pytest.mark.django_db(transaction=True)
def test_16_simultaneous_redemptions_of_one_entitlement_succeed_once(
    make_client: ClientMaker,
) -> None:
    perk = PerkFactory.create(stock=10)
    fan = UserFactory.create()
    _entitle([fan], perk)
    url = _url(Entitlement.objects.get(user=fan))
    clients = [make_client(fan) for _ in range(16)]

    outcomes = run_concurrently(16, lambda index: _outcome(clients[index].post(url)))

    assert Counter(outcomes) == {(200, None): 1, (409, "already_redeemed"): 15}
    perk.refresh_from_db()
    assert perk.redeemed_count == 1


@pytest.mark.django_db(transaction=True)
def test_simultaneous_redemptions_by_one_user_respect_the_per_user_limit(
    make_client: ClientMaker,
) -> None:
    # given a fan with 6 entitlements of a perk they may redeem twice
    perk = PerkFactory.create(stock=100, per_user_limit=2)
    fan = UserFactory.create()
    _entitle([fan], perk, period=RewardRule.Period.DAY, likes_each=6)
    urls = [_url(e) for e in Entitlement.objects.filter(user=fan)]
    clients = [make_client(fan) for _ in urls]

    outcomes = run_concurrently(len(urls), lambda index: _outcome(clients[index].post(urls[index])))

    assert Counter(outcomes) == {(200, None): 2, (409, "limit_reached"): 4}
    perk.refresh_from_db()
    assert perk.redeemed_count == 2
