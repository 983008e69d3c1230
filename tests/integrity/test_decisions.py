"""Confirming and dismissing cases: every count exact before, after the confirmation and after
the dismissal (SPEC §5: "a reversal restores every count exactly")."""

from typing import Any

import pytest
from django.db.models import Count

from engagement.models import Comment, CommentLike, Follow, Like, Play, Share
from engagement.services.counters import video_counters_recount
from integrity.models import Case, CaseDecision, CaseFlip, RowKind
from integrity.services.cases import (
    AccountSpan,
    Finding,
    OpenOutcome,
    case_confirm,
    case_dismiss,
    case_open,
)
from polls.models import Answer, Vote
from rewards.models import Grant
from tests.analytics import world
from tests.factories import StaffUserFactory
from tests.integrity.farm import World, build_world, counts, option, span

pytestmark = pytest.mark.django_db


def _expected_before(setting: World) -> dict[str, Any]:
    g0, _, g2, _ = (user.pk for user in setting.genuine)
    farm = sorted([*(bot.pk for bot in setting.bots), setting.hijacked.pk])
    return {
        "videos": {
            "likes": [7, 5, 1],
            "comments": [3, 0, 0],
            "shares": [2, 0, 0],
            "plays": [8, 0, 0],
        },
        "comment likes": [2, 3, 0],
        "ending": (6, option(setting.ending, "Y")),
        "pick": setting.c2.pk,
        "grants": {
            "two_likes": farm,
            "creator_perk": farm,
            "video_five": [setting.creator.pk],
            "prophet": sorted([g2, *(bot.pk for bot in setting.bots)]),
            "quiz_taker": sorted([g0, setting.bots[0].pk]),
        },
        "entitlements": farm,
        # the owner's like of v2 (30 h ago) is in the previous window
        "trending": {"cats": (14, 0), "dogs": (4, 1)},
        "poll": (6, [(option(setting.poll, "B"), 4), (option(setting.poll, "A"), 2)]),
    }


def test_confirm_then_dismiss_keeps_every_count_exact() -> None:
    # given the world and a case over the farm and the hijacked account
    setting = build_world()
    before = counts(setting)
    expected = _expected_before(setting)
    for key in ("videos", "comment likes", "ending", "pick", "grants", "entitlements", "poll"):
        assert before[key] == expected[key], key
    assert before["trending"] == expected["trending"]
    # (likes, deep likes: by users who commented it too, points = likes + deep likes)
    assert before["heat"][setting.v1.pk] == (7, 3, 10)
    assert before["analytics"]["creator"]["totals"]["likes"] == 13
    opened = case_open(finding=setting.finding())
    assert opened.outcome == OpenOutcome.OPENED
    case = opened.case
    assert case is not None
    assert (case.account_count, case.interaction_count) == (4, 24)
    staff = StaffUserFactory.create()

    # when staff confirm it
    confirmed = case_confirm(case, by=staff, note="one device, 3 s apart")

    # then the farm's and the hijacker's rows stop counting and everything is recounted
    assert confirmed.changed and confirmed.rows_flipped == 24
    after = counts(setting)
    g0, g1, _, _ = (user.pk for user in setting.genuine)
    assert after["videos"] == {
        "likes": [3, 2, 1],
        "comments": [2, 0, 0],
        "shares": [1, 0, 0],
        "plays": [4, 0, 0],
    }
    assert after["comment likes"] == [2, 0, 0]
    assert after["poll"] == (3, [(option(setting.poll, "A"), 2), (option(setting.poll, "B"), 1)])
    assert after["ending"] == (3, option(setting.ending, "X"))
    assert after["pick"] == setting.c1.pk
    assert after["grants"] == {
        # the owner's own like of v2 still counts, but one like is under the threshold
        "two_likes": [],
        "creator_perk": [],
        "video_five": [],
        # the ending's winner moved: its voters are the prophets now
        "prophet": [g0, g1],
        "quiz_taker": [g0],
    }
    assert after["entitlements"] == []
    assert after["heat"][setting.v1.pk] == (3, 2, 5)  # G0 and G1 liked and commented v1
    assert after["trending"] == {"cats": (7, 0)}  # dogs: one user left, under 3
    assert after["analytics"]["creator"]["totals"]["likes"] == 6
    assert after["analytics"]["creator"]["totals"]["plays"] == 4
    # the hijacked account keeps its owner's like outside the span
    assert Like.objects.get(user=setting.hijacked, video=setting.v2).counted is True
    assert Like.objects.get(user=setting.hijacked, video=setting.v1).counted is False
    assert Like.objects.get(user=setting.bots[0], video=setting.v3).counted is True
    assert dict(
        CaseFlip.objects.filter(case=case, released_at__isnull=True)
        .values_list("kind")
        .annotate(n=Count("id"))
        .order_by()
    ) == {
        RowKind.LIKE: 7,
        RowKind.COMMENT_LIKE: 3,
        RowKind.COMMENT: 1,
        RowKind.SHARE: 1,
        RowKind.PLAY: 4,
        RowKind.FOLLOW: 1,
        RowKind.VOTE: 6,
        RowKind.ANSWER: 1,
    }
    revoked = Grant.objects.filter(revoked_at__isnull=False)
    assert set(revoked.values_list("revoke_reason", flat=True)) == {
        f"reassessed: integrity case {case.pk} confirmed"
    }

    # when staff dismiss it
    dismissed = case_dismiss(case, by=staff, note="a school trip on one wifi")

    # then every count is what it was
    assert dismissed.changed and dismissed.rows_flipped == 24
    assert counts(setting) == before
    assert CaseFlip.objects.filter(case=case, released_at__isnull=True).count() == 0
    # the new prophets' grants go (reassessed), the old ones are back
    assert sorted(
        Grant.objects.filter(revoked_at__isnull=False).values_list("user_id", flat=True)
    ) == [g0, g1]
    assert list(
        CaseDecision.objects.filter(case=case)
        .order_by("at")
        .values_list("action", "by", "auto", "rows_flipped")
    ) == [("confirm", staff.pk, False, 24), ("dismiss", staff.pk, False, 24)]


def _counted() -> dict[str, int]:
    return {
        model.__name__: model._default_manager.filter(counted=True).count()  # type: ignore[attr-defined]
        for model in (Like, CommentLike, Comment, Share, Play, Follow, Vote, Answer)
    }


def test_confirm_and_dismiss_are_idempotent() -> None:
    setting = build_world()
    case = case_open(finding=setting.finding()).case
    assert case is not None
    first = case_confirm(case)
    state = (_counted(), counts(setting))

    again = case_confirm(case)

    assert (again.changed, again.rows_flipped) == (False, 0)
    assert (_counted(), counts(setting)) == state
    assert CaseDecision.objects.filter(case=case).count() == 1
    assert first.rows_flipped == 24

    case_dismiss(case, by=None, note="no")
    state = (_counted(), counts(setting))
    again = case_dismiss(case, by=None, note="no")
    assert again.changed is False
    assert (_counted(), counts(setting)) == state
    assert CaseDecision.objects.filter(case=case).count() == 2

    # a dismissed case can be confirmed again, and flips the same rows
    assert case_confirm(case).rows_flipped == 24


def test_an_automatic_confirmation_is_dismissed_the_same_way() -> None:
    setting = build_world()
    before = counts(setting)

    opened = case_open(finding=setting.finding(), auto_confirm=True)

    assert opened.case is not None and opened.case.status == Case.Status.CONFIRMED
    assert opened.case.auto_confirmed is True and opened.case.decided_by is None
    assert opened.decision is not None and opened.decision.rows_flipped == 24
    assert counts(setting)["videos"]["likes"] == [3, 2, 1]
    case_dismiss(opened.case, by=StaffUserFactory.create(), note="false positive")
    assert counts(setting) == before


def test_overlapping_cases_a_dismissal_leaves_what_the_other_covers_uncounted() -> None:
    # given two confirmed cases sharing bot 1: A = bots 0, 1; B = bots 1, 2
    setting = build_world()
    before = counts(setting)
    start, end = span(setting.now)
    b0, b1, b2 = setting.bots

    def finding(users: list[Any], name: str) -> Finding:
        return Finding(
            accounts=[AccountSpan(user.pk, start, end) for user in users],
            score=0.8,
            fingerprint=name,
        )

    a = case_open(finding=finding([b0, b1], "A")).case
    b = case_open(finding=finding([b1, b2], "B")).case
    assert a is not None and b is not None
    # each bot: 2 likes, a comment like, a play, 2 votes; bot 0 a comment and an answer, bot 1
    # a share, bot 2 a follow
    assert case_confirm(a).rows_flipped == 8 + 7
    # B flips only bot 2's rows: bot 1's are uncounted already
    assert case_confirm(b).rows_flipped == 7
    assert counts(setting)["videos"]["likes"] == [4, 2, 1]  # the hijacker's like still counts

    # when A is dismissed
    result = case_dismiss(a, by=None, note="only bot 0 was a friend")

    # then bot 0's rows count again, bot 1's stay uncounted (B covers them, and holds them now)
    assert result.rows_flipped == 8 and result.rows_handed_over == 7
    assert Like.objects.filter(user=b0, counted=False).count() == 0
    assert Like.objects.filter(user=b1, counted=True).count() == 0
    assert Vote.objects.filter(user=b1, counted=True).count() == 0
    assert counts(setting)["videos"]["likes"] == [5, 3, 1]
    assert CaseFlip.objects.filter(case=b, released_at__isnull=True).count() == 14

    # when B is dismissed too, everything is back
    assert case_dismiss(b, by=None, note="no").rows_flipped == 14
    assert counts(setting) == before


def test_a_row_uncounted_by_a_confirmed_case_is_not_taken_by_a_later_one() -> None:
    # the same rows, two cases: the first holds them, the second's dismissal changes nothing
    setting = build_world()
    first = case_open(finding=setting.finding("first")).case
    second = case_open(finding=setting.finding("second")).case
    assert first is not None and second is not None
    case_confirm(first)
    assert case_confirm(second).rows_flipped == 0
    likes = counts(setting)["videos"]["likes"]

    assert case_dismiss(second, by=None, note="duplicate").rows_flipped == 0

    assert counts(setting)["videos"]["likes"] == likes == [3, 2, 1]


def test_confirming_again_catches_rows_made_in_the_span_since() -> None:
    # given a confirmed case, then one more like by a bot, inside its span
    setting = build_world()
    before = counts(setting)
    staff = StaffUserFactory.create()
    case = case_open(finding=setting.finding()).case
    assert case is not None
    case_confirm(case, by=staff, note="farm")
    late = world.like(setting.bots[1], setting.v3, setting.now)
    video_counters_recount(video_id=setting.v3.pk)
    assert counts(setting)["videos"]["likes"] == [3, 2, 2]

    # when the case is confirmed again (a later pass, automatically)
    again = case_confirm(case, auto=True)

    # then only the new like is flipped, the case keeps its decider, and a dismissal restores all
    assert (again.changed, again.rows_flipped) == (True, 1)
    case.refresh_from_db()
    assert (case.decided_by, case.auto_confirmed) == (staff, False)
    late.refresh_from_db()
    assert late.counted is False
    assert counts(setting)["videos"]["likes"] == [3, 2, 1]
    assert case_dismiss(case, by=staff, note="no").rows_flipped == 25
    after = counts(setting)
    assert after["videos"]["likes"] == [7, 5, 2]
    for key in ("comment likes", "poll", "ending", "pick", "entitlements"):
        assert after[key] == before[key], key
