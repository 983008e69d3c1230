"""The rewards API: badges catalog, my badges, my perks, and the activity feed (SPEC §3)."""

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from rewards.models import ActivityEvent, Entitlement, Grant, Perk, RewardRule
from rewards.services.events import reward_events_process
from rewards.services.grants import grants_revoke
from rewards.services.redemption import entitlement_redeem
from tests.factories import (
    BadgeFactory,
    PerkFactory,
    RewardRuleFactory,
    StickerFactory,
    UserFactory,
    VideoFactory,
)
from tests.polls import iso, option_ids
from tests.rewards import finalize, like, vote

pytestmark = pytest.mark.django_db

ClientMaker = Callable[..., APIClient]
Trigger = RewardRule.Trigger


def _pages(client: APIClient, url: str) -> list[dict[str, Any]]:
    """Every page of a cursor list, following `next`; checks the links on the way."""
    pages: list[dict[str, Any]] = []
    while url:
        response = client.get(url)
        assert response.status_code == 200, response.content
        body = response.json()
        assert set(body) == {"next", "previous", "results"}
        if not pages:
            assert body["previous"] is None
        pages.append(body)
        url = body["next"]
    return pages


def _badge_document(badge: Any) -> dict[str, Any]:
    return {
        "id": badge.pk,
        "slug": badge.slug,
        "name": badge.name,
        "description": badge.description,
        "image_url": badge.image_url,
        "creator_id": badge.creator_id,
        "expires_at": iso(badge.expires_at),
    }


@pytest.mark.parametrize(
    "path", ["/api/v1/badges", "/api/v1/me/badges", "/api/v1/me/perks", "/api/v1/me/activity"]
)
def test_every_rewards_list_needs_a_token(
    api_client: APIClient, path: str, django_assert_num_queries: Callable[..., Any]
) -> None:
    with django_assert_num_queries(0):  # no token: refused before any query
        response = api_client.get(path)

    assert response.status_code == 401
    assert response["Content-Type"] == "application/problem+json"


# --- badges -----------------------------------------------------------------------------------
def test_the_badge_catalog_lists_every_badge_newest_first(
    make_client: ClientMaker, django_assert_num_queries: Callable[..., Any]
) -> None:
    creator = UserFactory.create()
    badges = [
        BadgeFactory.create(slug="first-like", name="First like", description="Like a video."),
        BadgeFactory.create(
            slug="superfan",
            name="Superfan",
            creator=creator,
            image_url="https://cdn.example.com/superfan.png",
        ),
        BadgeFactory.create(slug="autumn", name="Autumn", expires_at=timezone.now()),
    ]

    client = make_client(UserFactory.create())

    # two pages (of two, then one), each the device token and the page
    with django_assert_num_queries(2 * 2):
        pages = _pages(client, "/api/v1/badges?page_size=2")

    assert [len(page["results"]) for page in pages] == [2, 1]
    assert [item for page in pages for item in page["results"]] == [
        _badge_document(badge) for badge in reversed(badges)
    ]


def test_my_badges_lists_only_my_unrevoked_badges(
    make_client: ClientMaker, django_assert_num_queries: Callable[..., Any]
) -> None:
    # given a fan who earned two badges and a perk, one badge revoked later, and another user
    first_like = RewardRuleFactory.create(name="Like once", badge=BadgeFactory.create())
    two_likes = RewardRuleFactory.create(name="Like twice", threshold=2)
    RewardRuleFactory.create(perk=PerkFactory.create())
    revoked_rule = RewardRuleFactory.create(name="Revoked")
    fan, other = UserFactory.create_batch(2)
    videos = VideoFactory.create_batch(2)
    for video in videos:
        like(fan, video)
    like(other, videos[0])
    reward_events_process()
    grants_revoke(
        grant_ids=[Grant.objects.get(rule=revoked_rule, user=fan).pk], reason="bought likes"
    )

    fan_client, other_client = make_client(fan), make_client(other)

    # the device token, the page of grants with their rules and badges (a join)
    with django_assert_num_queries(2):
        response = fan_client.get("/api/v1/me/badges")

    assert response.status_code == 200
    expected = []
    for rule in (two_likes, first_like):  # newest grant first
        grant = Grant.objects.get(rule=rule, user=fan)
        expected.append(
            {
                "id": grant.pk,
                "badge": _badge_document(rule.badge),
                "rule": rule.name,
                "period_key": "",
                "granted_at": iso(grant.granted_at),
            }
        )
    assert response.json() == {"next": None, "previous": None, "results": expected}
    # and the other user sees only theirs
    with django_assert_num_queries(2):
        others = other_client.get("/api/v1/me/badges").json()["results"]
    assert sorted(item["rule"] for item in others) == ["Like once", "Revoked"]


# --- perks ------------------------------------------------------------------------------------
def test_my_perks_show_available_redeemed_and_expired_entitlements(
    make_client: ClientMaker, django_assert_num_queries: Callable[..., Any]
) -> None:
    # given a fan with three perks: one to redeem, one redeemed, one expired; and one revoked
    perks = {
        name: PerkFactory.create(name=name, slug=name.lower(), description=f"{name} perk")
        for name in ("Available", "Redeemed", "Expired", "Revoked")
    }
    rules = {
        name: RewardRuleFactory.create(name=f"{name} rule", perk=perk)
        for name, perk in perks.items()
    }
    fan, other = UserFactory.create_batch(2)
    like(fan, VideoFactory.create())
    like(other, VideoFactory.create())
    reward_events_process()
    mine = {name: Entitlement.objects.get(user=fan, perk=perk) for name, perk in perks.items()}
    entitlement_redeem(user=fan, entitlement_id=mine["Redeemed"].pk)
    expired_at = timezone.now() - timedelta(minutes=1)
    Perk.objects.filter(pk=perks["Expired"].pk).update(valid_until=expired_at)
    grants_revoke(grant_ids=[mine["Revoked"].grant_id], reason="bought likes")

    fan_client, other_client = make_client(fan), make_client(other)

    # the device token, the page of entitlements with their perks and rules (a join): three
    # entitlements here, four for the other user below, in as many queries
    with django_assert_num_queries(2):
        response = fan_client.get("/api/v1/me/perks")

    assert response.status_code == 200
    expected = []
    for name, status in (
        ("Expired", "expired"),
        ("Redeemed", "redeemed"),
        ("Available", "available"),
    ):
        entitlement = mine[name]
        entitlement.refresh_from_db()
        perk = perks[name]
        expected.append(
            {
                "id": entitlement.pk,
                "perk": {
                    "id": perk.pk,
                    "slug": perk.slug,
                    "name": name,
                    "description": f"{name} perk",
                    "valid_until": iso(expired_at) if name == "Expired" else None,
                },
                "rule": rules[name].name,
                "status": status,
                "created_at": iso(entitlement.created_at),
                "redeemed_at": iso(entitlement.redeemed_at),
                "code": entitlement.code,
            }
        )
    assert response.json() == {"next": None, "previous": None, "results": expected}
    assert expected[1]["code"] is not None
    # the other user's perks are all available, and none of the fan's
    with django_assert_num_queries(2):
        others = other_client.get("/api/v1/me/perks").json()["results"]
    assert sorted((item["perk"]["name"], item["status"]) for item in others) == [
        ("Available", "available"),
        ("Expired", "expired"),
        ("Redeemed", "available"),
        ("Revoked", "available"),
    ]


# --- the activity feed ------------------------------------------------------------------------
def test_the_activity_feed_says_what_happened_newest_first_with_cursor_pages(
    make_client: ClientMaker, django_assert_num_queries: Callable[..., Any]
) -> None:
    # given rules, a like on Alice's video and a winning vote on Carol's story
    RewardRuleFactory.create(badge=BadgeFactory.create(name="First like"))
    RewardRuleFactory.create(perk=PerkFactory.create(name="Free month"))
    RewardRuleFactory.create(
        trigger=Trigger.WINNING_ENDING, badge=BadgeFactory.create(name="Prophet")
    )
    alice = UserFactory.create(username="alice")
    carol = UserFactory.create(username="carol")
    ramen = VideoFactory.create(creator=alice, title="Five-minute ramen")
    story = VideoFactory.create(creator=carol, title="The lighthouse, part 1")
    ending = StickerFactory.create(
        video=story,
        kind="ending",
        options=[
            {"label": "Stay", "payload": {"text": "stays"}},
            {"label": "Go", "payload": {"text": "goes"}},
        ],
    )
    fan, other = UserFactory.create_batch(2)
    fan_like = like(fan, ramen)
    reward_events_process()
    fan_vote = vote(fan, ending, option_ids(ending)[1])
    vote(other, ending, option_ids(ending)[1])
    finalize(ending)
    reward_events_process()

    # when the fan reads the feed two entries at a time
    fan_client = make_client(fan)
    with django_assert_num_queries(3 * 2):  # three pages, each the device token and the page
        pages = _pages(fan_client, "/api/v1/me/activity?page_size=2")

    # then every entry is there once, newest first, in words
    assert [len(page["results"]) for page in pages] == [2, 2, 1]
    items = [item for page in pages for item in page["results"]]
    assert [(item["kind"], item["text"], item["video_id"]) for item in items] == [
        ("earned_badge", 'You earned the badge "Prophet"', None),
        ("vote_chose_ending", 'Your vote chose the ending of "The lighthouse, part 1"', story.pk),
        ("earned_perk", 'You earned the perk "Free month"', None),
        ("earned_badge", 'You earned the badge "First like"', None),
        ("liked_video", 'You liked alice\'s video "Five-minute ramen"', ramen.pk),
    ]
    events = {event.pk: event for event in ActivityEvent.objects.filter(user=fan)}
    assert [item["id"] for item in items] == sorted(events, reverse=True)
    for item in items:
        event = events[item["id"]]
        assert (item["data"], item["created_at"]) == (event.data, iso(event.created_at))
    assert events[items[1]["id"]].source_id == fan_vote.pk
    assert events[items[4]["id"]].source_id == fan_like.pk
    # and the other voter's feed has only their own entries
    others = make_client(other).get("/api/v1/me/activity").json()["results"]
    assert [item["text"] for item in others] == [
        'You earned the badge "Prophet"',
        'Your vote chose the ending of "The lighthouse, part 1"',
    ]


def test_a_forged_feed_cursor_is_404(make_client: ClientMaker) -> None:
    response = make_client(UserFactory.create()).get("/api/v1/me/activity?cursor=cD1hYmM%3D")

    assert response.status_code == 404
    assert response["Content-Type"] == "application/problem+json"
