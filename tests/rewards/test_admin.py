"""The rewards admin (SPEC §4): catalog, rules with backfill and preview, grants with revoke."""

import re
from io import StringIO

import pytest
from django.contrib.admin.sites import site
from django.core.management import call_command
from django.db.models import Model
from django.test import Client
from django.urls import reverse

from core.models import Watermark
from rewards.models import (
    ActivityEvent,
    Badge,
    Entitlement,
    Grant,
    Perk,
    RewardRule,
)
from rewards.services.events import reward_events_process
from rewards.services.redemption import entitlement_redeem
from tests.factories import (
    BadgeFactory,
    PerkFactory,
    RewardRuleFactory,
    StaffUserFactory,
    UserFactory,
    VideoFactory,
)
from tests.rewards import grants_of, like, rewards_state

pytestmark = pytest.mark.django_db

REWARDS_MODELS: list[type[Model]] = [
    Badge,
    Perk,
    RewardRule,
    Grant,
    Entitlement,
    ActivityEvent,
    Watermark,  # the consumer's watermarks (core.Watermark since the event-log kit)
]


@pytest.fixture
def staff() -> Client:
    client = Client()
    client.force_login(StaffUserFactory.create(username="ops"))
    return client


def _url(model: type[Model], view: str, *args: object) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


def _messages(response: object) -> list[str]:
    return [str(message) for message in response.context["messages"]]  # type: ignore[attr-defined]


def _earned_history() -> tuple[RewardRule, Perk]:
    """A perk rule "1 like" granted (with its entitlement) to two fans; one fan redeemed it."""
    perk = PerkFactory.create(name="Free month", stock=10)
    rule = RewardRuleFactory.create(name="Like once", perk=perk)
    first, second = (
        UserFactory.create(username="fan-first"),
        UserFactory.create(username="fan-second"),
    )
    video = VideoFactory.create()
    like(first, video)
    like(second, video)
    reward_events_process()
    entitlement_redeem(user=first, entitlement_id=Entitlement.objects.get(user=first).pk)
    return rule, perk


def test_every_rewards_model_is_registered() -> None:
    for model in REWARDS_MODELS:
        assert site.is_registered(model), model


def test_staff_opens_every_changelist_and_change_page(staff: Client) -> None:
    rule, perk = _earned_history()
    badge = BadgeFactory.create()
    instances: dict[type[Model], Model] = {
        Badge: badge,
        Perk: perk,
        RewardRule: rule,
        Grant: Grant.objects.first(),  # type: ignore[dict-item]
        Entitlement: Entitlement.objects.first(),  # type: ignore[dict-item]
        ActivityEvent: ActivityEvent.objects.first(),  # type: ignore[dict-item]
        Watermark: Watermark.objects.get(name="rewards:likes"),
    }

    for model, instance in instances.items():
        changelist = staff.get(_url(model, "changelist"))
        change = staff.get(_url(model, "change", instance.pk))

        assert changelist.status_code == 200, model
        assert change.status_code == 200, model
        assert str(instance.pk) in changelist.content.decode(), model


def test_staff_opens_the_add_pages_of_the_catalog_and_rules(staff: Client) -> None:
    for model in (Badge, Perk, RewardRule):
        assert staff.get(_url(model, "add")).status_code == 200, model


@pytest.mark.parametrize(("model", "username"), [(Grant, "fan-second"), (Entitlement, "fan-first")])
def test_grants_and_entitlements_are_searchable_by_user(
    staff: Client, model: type[Model], username: str
) -> None:
    _earned_history()

    response = staff.get(_url(model, "changelist") + f"?q={username}")

    assert response.status_code == 200
    found = list(response.context["cl"].result_list)
    assert [row.user.username for row in found] == [username]  # type: ignore[attr-defined]


def test_the_perk_list_shows_its_stock(staff: Client) -> None:
    _earned_history()
    PerkFactory.create(name="Sticker pack", stock=None)

    response = staff.get(_url(Perk, "changelist"))

    html = response.content.decode()
    assert re.search(r'<td class="field-stock">10</td>', html)
    assert re.search(r'<td class="field-redeemed_count">1</td>', html)
    assert re.search(r'<td class="field-remaining">9</td>', html)
    assert re.search(r'<td class="field-remaining">unlimited</td>', html)


def test_the_rule_page_previews_how_many_users_a_backfill_would_grant(staff: Client) -> None:
    video = VideoFactory.create()
    for fan in UserFactory.create_batch(3):
        like(fan, video)
    rule = RewardRuleFactory.create()

    response = staff.get(_url(RewardRule, "change", rule.pk))

    assert response.status_code == 200
    assert "3 user(s)" in response.content.decode()
    assert Grant.objects.count() == 0


def test_the_preview_action_reports_counts_and_writes_nothing(staff: Client) -> None:
    video = VideoFactory.create()
    fans = UserFactory.create_batch(3)
    for fan in fans:
        like(fan, video)
    like(fans[0], VideoFactory.create())
    once = RewardRuleFactory.create(name="Like once")
    twice = RewardRuleFactory.create(name="Like twice", threshold=2)
    before = rewards_state()

    response = staff.post(
        _url(RewardRule, "changelist"),
        {"action": "preview", "_selected_action": [once.pk, twice.pk]},
        follow=True,
    )

    assert response.status_code == 200
    assert sorted(_messages(response)) == [
        "Like once: 3 user(s) would be granted.",
        "Like twice: 1 user(s) would be granted.",
    ]
    assert rewards_state() == before


def test_the_backfill_action_grants_history_exactly_once(staff: Client) -> None:
    video = VideoFactory.create()
    fans = UserFactory.create_batch(3)
    for fan in fans:
        like(fan, video)
    rule = RewardRuleFactory.create(perk=PerkFactory.create())

    first = staff.post(
        _url(RewardRule, "changelist"),
        {"action": "backfill", "_selected_action": [rule.pk]},
        follow=True,
    )
    second = staff.post(
        _url(RewardRule, "changelist"),
        {"action": "backfill", "_selected_action": [rule.pk]},
        follow=True,
    )

    assert _messages(first) == ["Backfill granted 3 reward(s)."]
    assert _messages(second) == ["Backfill granted 0 reward(s)."]
    assert grants_of(rule) == sorted((fan.pk, "") for fan in fans)
    assert set(Grant.objects.values_list("source", flat=True)) == {"backfill"}
    assert Entitlement.objects.count() == 3
    rule.refresh_from_db()
    assert rule.backfilled_at is not None


def test_the_revoke_action_records_who_revoked_and_revokes_unredeemed_entitlements(
    staff: Client,
) -> None:
    _earned_history()
    grants = list(Grant.objects.order_by("pk"))

    response = staff.post(
        _url(Grant, "changelist"),
        {"action": "revoke", "_selected_action": [grant.pk for grant in grants]},
        follow=True,
    )

    assert _messages(response) == ["Revoked 2 grant(s)."]
    assert sorted(
        (user, reason, revoked is not None)
        for user, reason, revoked in Grant.objects.values_list(
            "user__username", "revoke_reason", "revoked_at"
        )
    ) == [
        ("fan-first", "revoked by staff (ops)", True),
        ("fan-second", "revoked by staff (ops)", True),
    ]
    # the redeemed entitlement stays spent; the unredeemed one is revoked with its grant
    assert sorted(
        (user, code is not None, revoked is not None)
        for user, code, revoked in Entitlement.objects.values_list(
            "user__username", "code", "revoked_at"
        )
    ) == [("fan-first", True, False), ("fan-second", False, True)]


def _rule_form(**overrides: object) -> dict[str, object]:
    badge = BadgeFactory.create()
    form: dict[str, object] = {
        "name": "Like 2 videos",
        "trigger": RewardRule.Trigger.TOTAL_LIKES,
        "threshold": 2,
        "badge": badge.pk,
        "sticker_kind": "",
        "period": "",
        "is_active": "on",
    }
    form.update(overrides)
    return {key: value for key, value in form.items() if value is not None}


def test_adding_an_active_rule_queues_its_backfill_after_commit(
    staff: Client, django_capture_on_commit_callbacks: object
) -> None:
    with django_capture_on_commit_callbacks() as callbacks:  # type: ignore[operator]
        response = staff.post(_url(RewardRule, "add"), _rule_form(), follow=True)

    assert response.status_code == 200
    rule = RewardRule.objects.get()
    assert (rule.name, rule.threshold, rule.is_active) == ("Like 2 videos", 2, True)
    assert "Backfill queued: the rule applies to history too." in _messages(response)
    # the backfill task is sent only once the rule is committed (see test_worker for the run)
    assert len(callbacks) == 1


def test_activating_a_rule_queues_a_backfill_and_saving_an_active_one_does_not(
    staff: Client, django_capture_on_commit_callbacks: object
) -> None:
    rule = RewardRuleFactory.create(is_active=False)
    form = _rule_form(badge=rule.badge_id, name=rule.name, threshold=1)

    with django_capture_on_commit_callbacks() as activated:  # type: ignore[operator]
        staff.post(_url(RewardRule, "change", rule.pk), form)
    with django_capture_on_commit_callbacks() as saved:  # type: ignore[operator]
        staff.post(_url(RewardRule, "change", rule.pk), form)

    rule.refresh_from_db()
    assert rule.is_active
    assert (len(activated), len(saved)) == (1, 0)


def test_a_rule_with_both_a_badge_and_a_perk_is_refused_by_the_form(staff: Client) -> None:
    response = staff.post(_url(RewardRule, "add"), _rule_form(perk=PerkFactory.create().pk))

    assert response.status_code == 200
    assert response.context["adminform"].form.errors
    assert RewardRule.objects.count() == 0


def test_a_creator_likes_rule_without_a_creator_is_refused_by_the_form(staff: Client) -> None:
    response = staff.post(
        _url(RewardRule, "add"), _rule_form(trigger=RewardRule.Trigger.CREATOR_LIKES)
    )

    assert response.status_code == 200
    assert response.context["adminform"].form.errors
    assert RewardRule.objects.count() == 0


def test_stock_below_what_was_redeemed_is_refused_by_the_form(staff: Client) -> None:
    _, perk = _earned_history()
    form = {
        "slug": perk.slug,
        "name": perk.name,
        "description": "",
        "stock": 0,
        "per_user_limit": 1,
        "code_prefix": perk.code_prefix,
    }

    response = staff.post(_url(Perk, "change", perk.pk), form)

    assert response.status_code == 200
    assert response.context["adminform"].form.errors == {
        "stock": ["1 unit(s) were already redeemed; the stock cannot be lower."]
    }
    perk.refresh_from_db()
    assert (perk.stock, perk.redeemed_count) == (10, 1)


def test_saving_a_perk_never_writes_back_a_redeemed_count_that_moved_meanwhile(
    staff: Client,
) -> None:
    # given staff has the perk (redeemed once) open while another fan redeems it
    _, perk = _earned_history()
    form = {
        "slug": perk.slug,
        "name": "Free month (renamed)",
        "description": "",
        "stock": 20,
        "per_user_limit": 1,
        "code_prefix": perk.code_prefix,
    }
    stale = Perk.objects.get(pk=perk.pk)
    entitlement_redeem(
        user=Grant.objects.get(user__username="fan-second").user,
        entitlement_id=Entitlement.objects.get(user__username="fan-second").pk,
    )

    # when the admin saves the instance it read before that redemption
    stale.stock = 15
    site._registry[Perk].save_model(None, stale, None, True)  # type: ignore[arg-type]

    # then both redemptions are still counted
    perk.refresh_from_db()
    assert (perk.stock, perk.redeemed_count) == (15, 2)
    # and the change form saves what staff changed, nothing else
    response = staff.post(_url(Perk, "change", perk.pk), form)
    assert response.status_code == 302
    perk.refresh_from_db()
    assert (perk.name, perk.stock, perk.redeemed_count) == ("Free month (renamed)", 20, 2)


@pytest.mark.parametrize("model", [Grant, Entitlement])
def test_grants_and_entitlements_cannot_be_added_by_hand(staff: Client, model: type[Model]) -> None:
    before = rewards_state()

    page = staff.get(_url(model, "add"))
    post = staff.post(_url(model, "add"), {"revoke_reason": "by hand"})

    assert (page.status_code, post.status_code) == (403, 403)
    assert rewards_state() == before


def test_an_entitlement_is_shown_read_only(staff: Client) -> None:
    _earned_history()
    entitlement = Entitlement.objects.get(user__username="fan-first")
    code = entitlement.code

    page = staff.get(_url(Entitlement, "change", entitlement.pk))
    post = staff.post(_url(Entitlement, "change", entitlement.pk), {})

    assert page.status_code == 200
    assert code is not None and code in page.content.decode()
    assert post.status_code == 403
    entitlement.refresh_from_db()
    assert entitlement.code == code


# --- demo data --------------------------------------------------------------------------------
def test_the_demo_data_has_rules_that_granted_rewards_from_history() -> None:
    out = StringIO()
    call_command("seed_demo", stdout=out)

    assert "Demo rewards: 7 rules, 19 grant(s) from history." in out.getvalue()
    assert sorted(Grant.objects.values_list("rule__name", "user__username").order_by()) == sorted(
        [
            (name, viewer)
            for name in (
                "Like a video",
                "Like 3 videos -> membership",
                "Like Alice's videos",
                "Take part in a sticker",
            )
            for viewer in ("dave", "erin", "frank", "grace")
        ]
        + [("Video reaches 3 likes", creator) for creator in ("alice", "bob", "carol")]
    )
    assert Entitlement.objects.filter(perk__slug="membership-month").count() == 4

    # and seeding again grants nothing more
    again = StringIO()
    call_command("seed_demo", stdout=again)
    assert "Demo rewards: 7 rules, 0 grant(s) from history." in again.getvalue()
    assert Grant.objects.count() == 19
