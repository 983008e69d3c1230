"""Grants following an integrity decision (rewards.services.reassess, docs/rewards.md)."""

import pytest

from engagement.models import InteractionKind, Like
from engagement.services.counted import interactions_counted_set
from engagement.services.interactions import video_unlike
from rewards.models import Entitlement, Grant
from rewards.services.events import reward_events_process
from rewards.services.grants import grants_revoke
from rewards.services.reassess import (
    Reassessment,
    grants_qualification_snapshot,
    grants_reassess,
)
from rewards.services.redemption import entitlement_redeem
from tests.factories import PerkFactory, RewardRuleFactory, UserFactory, VideoFactory
from tests.rewards import like

pytestmark = pytest.mark.django_db


def _flip(user_ids: list[int], like_ids: list[int], counted: bool, reason: str) -> Reassessment:
    grants_qualification_snapshot(user_ids=user_ids)
    interactions_counted_set(kind=InteractionKind.LIKE, ids=like_ids, counted=counted)
    return grants_reassess(user_ids=user_ids, reason=reason)


def _live(user_id: int) -> tuple[bool, bool]:
    """(grant live, entitlement live) of the user's only grant."""
    grant = Grant.objects.get(user_id=user_id)
    entitlement = Entitlement.objects.get(grant=grant)
    return grant.revoked_at is None, entitlement.revoked_at is None


def test_a_grant_the_flip_undercuts_is_revoked_and_restored_with_its_entitlement() -> None:
    RewardRuleFactory.create(threshold=2, perk=PerkFactory.create())
    fan = UserFactory.create()
    likes = [like(fan, VideoFactory.create()).pk for _ in range(2)]
    reward_events_process()
    assert _live(fan.pk) == (True, True)

    off = _flip([fan.pk], likes[:1], False, "integrity case 7 confirmed")

    grant = Grant.objects.get(user=fan)
    assert off == Reassessment(revoked=[grant.pk], restored=[], granted=0)
    assert grant.revoke_reason == "reassessed: integrity case 7 confirmed"
    assert _live(fan.pk) == (False, False)

    back = _flip([fan.pk], likes[:1], True, "integrity case 7 dismissed")

    assert back == Reassessment(revoked=[], restored=[grant.pk], granted=0)
    assert _live(fan.pk) == (True, True)
    grant.refresh_from_db()
    assert grant.revoke_reason == ""


def test_a_grant_undercut_before_the_decision_is_left_alone() -> None:
    # given a grant kept after an unlike (docs/rewards.md: grants are kept)
    RewardRuleFactory.create(threshold=2)
    fan = UserFactory.create()
    videos = [VideoFactory.create() for _ in range(2)]
    likes = [like(fan, video) for video in videos]
    reward_events_process()
    video_unlike(user=fan, video_id=videos[0].pk)

    # when a decision flips the remaining like
    result = _flip([fan.pk], [likes[1].pk], False, "integrity case 8 confirmed")

    # then the grant, which did not qualify before the decision either, stays
    assert result == Reassessment(revoked=[], restored=[], granted=0)
    assert Grant.objects.get(user=fan).revoked_at is None


def test_staff_revocations_are_not_restored_and_redeemed_perks_stay_spent() -> None:
    RewardRuleFactory.create(threshold=1, perk=PerkFactory.create())
    staff_revoked, redeemed = UserFactory.create_batch(2)
    staff_like = like(staff_revoked, VideoFactory.create())
    redeemed_like = like(redeemed, VideoFactory.create())
    reward_events_process()
    grants_revoke(grant_ids=[Grant.objects.get(user=staff_revoked).pk], reason="abuse")
    entitlement = Entitlement.objects.get(user=redeemed)
    entitlement_redeem(user=redeemed, entitlement_id=entitlement.pk)
    users = [staff_revoked.pk, redeemed.pk]

    _flip(users, [staff_like.pk, redeemed_like.pk], False, "integrity case 9 confirmed")
    result = _flip(users, [staff_like.pk, redeemed_like.pk], True, "integrity case 9 dismissed")

    assert result.restored == [Grant.objects.get(user=redeemed).pk]
    assert Grant.objects.get(user=staff_revoked).revoke_reason == "abuse"
    entitlement.refresh_from_db()
    assert entitlement.redeemed_at is not None and entitlement.revoked_at is None
    assert Like.objects.filter(counted=False).count() == 0
