"""Every reward trigger, thresholds at N-1 and N, windows, periods, backfill, counted rows only.

Rows are made through the real services and rules are evaluated by the consumer
(`reward_events_process`), as in production; backfill and preview by their services.
"""

from datetime import timedelta

import pytest
from django.utils import timezone

from core.models import Watermark
from engagement.models import Like
from engagement.services.interactions import video_unlike
from polls.models import Answer, Sticker
from rewards.models import ActivityEvent, Entitlement, Grant, RewardRule
from rewards.services.events import reward_events_process
from rewards.services.grants import grants_revoke, rule_backfill
from rewards.services.rules import rule_preview
from tests.factories import (
    BadgeFactory,
    PerkFactory,
    RewardRuleFactory,
    StickerFactory,
    UserFactory,
    VideoFactory,
)
from tests.polls import option_ids
from tests.rewards import (
    MICROSECOND,
    RIGHT,
    WRONG,
    answer_quiz,
    finalize,
    grants_of,
    like,
    quiz_checkpoints,
    utc,
    vote,
)

pytestmark = pytest.mark.django_db

Trigger = RewardRule.Trigger
Period = RewardRule.Period

ENDING_OPTIONS = [
    {"label": "Stay", "payload": {"text": "The keeper stays."}},
    {"label": "Go", "payload": {"text": "The keeper sails away."}},
]


def _earned(kind: str = ActivityEvent.Kind.EARNED_BADGE) -> list[tuple[int, int, dict]]:
    return sorted(
        ActivityEvent.objects.filter(kind=kind).values_list("user_id", "source_id", "data")
    )


# --- total_likes ------------------------------------------------------------------------------
def test_total_likes_grants_at_exactly_n_counted_likes_not_at_n_minus_one() -> None:
    # given a rule "3 likes -> badge" and two viewers with 2 likes each
    rule = RewardRuleFactory.create(trigger=Trigger.TOTAL_LIKES, threshold=3)
    fan, casual = UserFactory.create_batch(2)
    videos = VideoFactory.create_batch(3)
    for video in videos[:2]:
        like(fan, video)
        like(casual, video)

    # when the consumer runs, then N-1 likes earn nothing
    assert reward_events_process().grants == 0
    assert grants_of(rule) == []

    # when the fan likes a third video, then exactly the fan earns the badge, once
    like(fan, videos[2])
    assert reward_events_process().grants == 1
    assert grants_of(rule) == [(fan.pk, "")]
    grant = Grant.objects.get(rule=rule)
    assert (grant.badge_id, grant.source, grant.revoked_at, grant.revoke_reason) == (
        rule.badge_id,
        "event",
        None,
        "",
    )
    assert rule.badge is not None
    assert _earned() == [
        (fan.pk, grant.pk, {"reward": rule.badge.name, "rule": rule.name, "grant_id": grant.pk})
    ]
    assert Entitlement.objects.count() == 0


# --- creator_likes ----------------------------------------------------------------------------
def test_creator_likes_count_only_likes_on_that_creators_videos() -> None:
    # given "2 likes on Alice's videos -> Alice's badge"
    alice, bob = UserFactory.create_batch(2)
    alice_videos = VideoFactory.create_batch(2, creator=alice)
    bob_videos = VideoFactory.create_batch(3, creator=bob)
    badge = BadgeFactory.create(creator=alice)
    rule = RewardRuleFactory.create(
        trigger=Trigger.CREATOR_LIKES, threshold=2, creator=alice, badge=badge
    )
    superfan, near_fan = UserFactory.create_batch(2)
    like(superfan, alice_videos[0])
    # the near fan has 4 likes, only 1 of them on Alice's videos (N-1)
    like(near_fan, alice_videos[0])
    for video in bob_videos:
        like(near_fan, video)

    assert reward_events_process().grants == 0
    assert grants_of(rule) == []

    # when the superfan likes Alice's second video
    like(superfan, alice_videos[1])

    # then only the superfan earns it
    assert reward_events_process().grants == 1
    assert grants_of(rule) == [(superfan.pk, "")]


# --- video_likes ------------------------------------------------------------------------------
def test_video_likes_grant_the_creator_when_one_video_reaches_n_counted_likes() -> None:
    # given "one of your videos reached 3 likes -> rising creator"
    rule = RewardRuleFactory.create(trigger=Trigger.VIDEO_LIKES, threshold=3)
    rising, spread = UserFactory.create_batch(2)
    hit = VideoFactory.create(creator=rising)
    # the other creator has 4 likes, but 2 per video
    spread_videos = VideoFactory.create_batch(2, creator=spread)
    likers = UserFactory.create_batch(3)
    for liker in likers[:2]:
        like(liker, hit)
        for video in spread_videos:
            like(liker, video)

    assert reward_events_process().grants == 0
    assert grants_of(rule) == []

    # when the video gets its third like
    like(likers[2], hit)

    # then its creator is granted (not the likers, not the other creator)
    assert reward_events_process().grants == 1
    assert grants_of(rule) == [(rising.pk, "")]


# --- sticker_participation --------------------------------------------------------------------
def test_participation_in_any_sticker_counts_votes_and_answers_on_distinct_stickers() -> None:
    # given "take part in 2 stickers" and a poll and a quiz
    rule = RewardRuleFactory.create(trigger=Trigger.STICKER_PARTICIPATION, threshold=2)
    poll = StickerFactory.create(options=["A", "B"])
    quiz = StickerFactory.create(kind=Sticker.Kind.QUIZ, checkpoints=quiz_checkpoints(2))
    voter, quizzer = UserFactory.create_batch(2)
    vote(voter, poll, option_ids(poll)[0])
    # two answers on one quiz are one sticker (N-1)
    answer_quiz(quizzer, quiz, [RIGHT, WRONG])

    assert reward_events_process().grants == 0
    assert grants_of(rule) == []

    # when each takes part in a second sticker
    answer_quiz(voter, quiz, [WRONG])
    vote(quizzer, poll, option_ids(poll)[1])

    # then both earn it
    assert reward_events_process().grants == 2
    assert grants_of(rule) == sorted([(voter.pk, ""), (quizzer.pk, "")])


def test_participation_of_a_kind_counts_only_stickers_of_that_kind() -> None:
    rule = RewardRuleFactory.create(
        trigger=Trigger.STICKER_PARTICIPATION, sticker_kind=Sticker.Kind.QUIZ
    )
    poll = StickerFactory.create(options=["A", "B"])
    ending = StickerFactory.create(kind=Sticker.Kind.ENDING, options=ENDING_OPTIONS)
    quiz = StickerFactory.create(kind=Sticker.Kind.QUIZ, checkpoints=quiz_checkpoints(3))
    voter, quizzer = UserFactory.create_batch(2)
    vote(voter, poll, option_ids(poll)[0])
    vote(voter, ending, option_ids(ending)[0])
    answer_quiz(quizzer, quiz, [WRONG])

    assert reward_events_process().grants == 1
    assert grants_of(rule) == [(quizzer.pk, "")]


def test_participation_in_a_given_sticker_counts_only_that_sticker() -> None:
    chosen, other = StickerFactory.create_batch(2, options=["A", "B"])
    rule = RewardRuleFactory.create(trigger=Trigger.STICKER_PARTICIPATION, sticker=chosen)
    elsewhere, here = UserFactory.create_batch(2)
    vote(elsewhere, other, option_ids(other)[0])
    vote(here, chosen, option_ids(chosen)[1])

    assert reward_events_process().grants == 1
    assert grants_of(rule) == [(here.pk, "")]


def test_liking_a_video_with_an_unlock_sticker_is_taking_part_in_it() -> None:
    # given "take part in an unlock sticker", and a video with one
    rule = RewardRuleFactory.create(
        trigger=Trigger.STICKER_PARTICIPATION, sticker_kind=Sticker.Kind.UNLOCK
    )
    unlock = StickerFactory.create(kind=Sticker.Kind.UNLOCK, payload={"text": "tip"})
    plain = VideoFactory.create()
    fan, elsewhere, bot = UserFactory.create_batch(3)

    # when one likes that video, one another video, and a bot's like does not count
    like(fan, unlock.video)
    like(elsewhere, plain)
    like(bot, unlock.video, counted=False)

    # then only the fan took part
    assert reward_events_process().grants == 1
    assert grants_of(rule) == [(fan.pk, "")]


def test_liking_comments_under_an_open_comment_pick_is_taking_part_in_it() -> None:
    from engagement.models import CommentLike
    from engagement.services.interactions import comment_like
    from tests.factories import CommentFactory
    from tests.rewards import CLIENT

    rule = RewardRuleFactory.create(
        trigger=Trigger.STICKER_PARTICIPATION, sticker_kind=Sticker.Kind.COMMENT_PICK
    )
    pick = StickerFactory.create(kind=Sticker.Kind.COMMENT_PICK)
    comment = CommentFactory.create(video=pick.video)
    voter, late = UserFactory.create_batch(2)
    comment_like(user=voter, comment_id=comment.pk, client=CLIENT)
    comment_like(user=late, comment_id=comment.pk, client=CLIENT)
    # the late like came after the sticker closed
    assert pick.closes_at is not None
    CommentLike.objects.filter(user=late).update(created_at=pick.closes_at + MICROSECOND)

    assert reward_events_process().grants == 1
    assert grants_of(rule) == [(voter.pk, "")]


# --- winning_ending ---------------------------------------------------------------------------
def test_winning_ending_grants_the_voters_of_the_winner_once_the_sticker_is_final() -> None:
    # given an ending vote: Go 2, Stay 1; and a poll whose winner must not count
    rule = RewardRuleFactory.create(trigger=Trigger.WINNING_ENDING)
    ending = StickerFactory.create(kind=Sticker.Kind.ENDING, options=ENDING_OPTIONS)
    stay, go = option_ids(ending)
    prophets = UserFactory.create_batch(2)
    doubter = UserFactory.create()
    votes = [vote(prophet, ending, go) for prophet in prophets]
    vote(doubter, ending, stay)
    poll = StickerFactory.create(options=["A", "B"])
    poll_winner = UserFactory.create()
    vote(poll_winner, poll, option_ids(poll)[0])

    # when the consumer runs before the close, nothing is earned yet
    assert reward_events_process().grants == 0
    assert grants_of(rule) == []

    # when both close and are finalized
    finalize(ending)
    finalize(poll)
    assert ending.winner_option_id == go

    # then the winner's voters (only) are granted, and their feed says their vote chose it
    assert reward_events_process().grants == 2
    assert grants_of(rule) == sorted((prophet.pk, "") for prophet in prophets)
    assert sorted(
        ActivityEvent.objects.filter(kind=ActivityEvent.Kind.VOTE_CHOSE_ENDING).values_list(
            "user_id", "source_id", "video_id", "data", "created_at"
        )
    ) == sorted(
        (
            prophet.pk,
            prophet_vote.pk,
            ending.video_id,
            {"video_title": ending.video.title, "sticker_id": ending.pk, "ending": "Go"},
            ending.finalized_at,
        )
        for prophet, prophet_vote in zip(prophets, votes, strict=True)
    )
    # and a second pass changes nothing
    assert reward_events_process().grants == 0
    assert Grant.objects.count() == 2
    assert ActivityEvent.objects.filter(kind=ActivityEvent.Kind.VOTE_CHOSE_ENDING).count() == 2


def test_winning_ending_of_a_given_sticker_ignores_other_endings() -> None:
    chosen, other = StickerFactory.create_batch(2, kind=Sticker.Kind.ENDING, options=ENDING_OPTIONS)
    rule = RewardRuleFactory.create(trigger=Trigger.WINNING_ENDING, sticker=chosen)
    here, elsewhere = UserFactory.create_batch(2)
    vote(here, chosen, option_ids(chosen)[0])
    vote(elsewhere, other, option_ids(other)[0])
    finalize(chosen)
    finalize(other)

    assert reward_events_process().grants == 1
    assert grants_of(rule) == [(here.pk, "")]


# --- quiz_score -------------------------------------------------------------------------------
def test_quiz_score_grants_a_completed_quiz_with_at_least_s_correct() -> None:
    # given "complete a quiz with score >= 2" and a 3-checkpoint quiz
    rule = RewardRuleFactory.create(trigger=Trigger.QUIZ_SCORE, threshold=2)
    quiz = StickerFactory.create(kind=Sticker.Kind.QUIZ, checkpoints=quiz_checkpoints(3))
    ace, near, unfinished = UserFactory.create_batch(3)
    answer_quiz(ace, quiz, [RIGHT, WRONG, RIGHT])  # complete, 2 correct (S)
    answer_quiz(near, quiz, [RIGHT, WRONG, WRONG])  # complete, 1 correct (S-1)
    answer_quiz(unfinished, quiz, [RIGHT, RIGHT])  # 2 correct but not complete

    assert reward_events_process().grants == 1
    assert grants_of(rule) == [(ace.pk, "")]

    # when the unfinished one answers the last checkpoint (wrong): complete, still 2 correct
    answer_quiz(unfinished, quiz, [WRONG])

    # then it is granted too
    assert reward_events_process().grants == 1
    assert grants_of(rule) == sorted([(ace.pk, ""), (unfinished.pk, "")])


def test_quiz_score_of_a_given_quiz_ignores_other_quizzes() -> None:
    chosen, other = StickerFactory.create_batch(
        2, kind=Sticker.Kind.QUIZ, checkpoints=quiz_checkpoints(1)
    )
    rule = RewardRuleFactory.create(trigger=Trigger.QUIZ_SCORE, threshold=1, sticker=chosen)
    here, elsewhere = UserFactory.create_batch(2)
    answer_quiz(here, chosen, [RIGHT])
    answer_quiz(elsewhere, other, [RIGHT])

    assert reward_events_process().grants == 1
    assert grants_of(rule) == [(here.pk, "")]


# --- windows: [starts_at, ends_at) --------------------------------------------------------------
STARTS_AT = utc("2025-03-10T12:00:00")
ENDS_AT = utc("2025-03-20T12:00:00")
EDGES = {
    "just_before_start": STARTS_AT - MICROSECOND,
    "at_start": STARTS_AT,
    "just_before_end": ENDS_AT - MICROSECOND,
    "at_end": ENDS_AT,
}
INSIDE = ["at_start", "just_before_end"]


def test_like_window_includes_starts_at_and_excludes_ends_at() -> None:
    rule = RewardRuleFactory.create(starts_at=STARTS_AT, ends_at=ENDS_AT)
    video = VideoFactory.create()
    users = {edge: UserFactory.create() for edge in EDGES}
    for edge, moment in EDGES.items():
        like(users[edge], video, at=moment)

    reward_events_process()

    assert grants_of(rule) == sorted((users[edge].pk, "") for edge in INSIDE)


def test_likes_outside_the_window_do_not_make_up_the_threshold() -> None:
    rule = RewardRuleFactory.create(threshold=2, starts_at=STARTS_AT, ends_at=ENDS_AT)
    videos = VideoFactory.create_batch(3)
    outside_helped, inside_twice = UserFactory.create_batch(2)
    like(outside_helped, videos[0], at=STARTS_AT)
    like(outside_helped, videos[1], at=STARTS_AT - MICROSECOND)
    like(outside_helped, videos[2], at=ENDS_AT)
    like(inside_twice, videos[0], at=STARTS_AT)
    like(inside_twice, videos[1], at=ENDS_AT - MICROSECOND)

    reward_events_process()

    assert grants_of(rule) == [(inside_twice.pk, "")]


def test_participation_window_is_on_the_vote_time() -> None:
    rule = RewardRuleFactory.create(
        trigger=Trigger.STICKER_PARTICIPATION, starts_at=STARTS_AT, ends_at=ENDS_AT
    )
    poll = StickerFactory.create(options=["A", "B"])
    users = {edge: UserFactory.create() for edge in EDGES}
    for edge, moment in EDGES.items():
        vote(users[edge], poll, option_ids(poll)[0], at=moment)

    reward_events_process()

    assert grants_of(rule) == sorted((users[edge].pk, "") for edge in INSIDE)


def test_quiz_window_is_on_the_time_the_quiz_was_completed() -> None:
    rule = RewardRuleFactory.create(
        trigger=Trigger.QUIZ_SCORE, threshold=2, starts_at=STARTS_AT, ends_at=ENDS_AT
    )
    quiz = StickerFactory.create(kind=Sticker.Kind.QUIZ, checkpoints=quiz_checkpoints(2))
    users = {edge: UserFactory.create() for edge in EDGES}
    for edge, moment in EDGES.items():
        first, last = answer_quiz(users[edge], quiz, [RIGHT, RIGHT])
        # the quiz is started long before the window; only the last answer completes it
        Answer.objects.filter(pk=first.pk).update(created_at=STARTS_AT - timedelta(days=30))
        Answer.objects.filter(pk=last.pk).update(created_at=moment)

    reward_events_process()

    assert grants_of(rule) == sorted((users[edge].pk, "") for edge in INSIDE)


def test_winning_ending_window_is_on_the_time_the_sticker_became_final() -> None:
    rule = RewardRuleFactory.create(
        trigger=Trigger.WINNING_ENDING, starts_at=STARTS_AT, ends_at=ENDS_AT
    )
    users = {}
    for edge, moment in EDGES.items():
        ending = StickerFactory.create(kind=Sticker.Kind.ENDING, options=ENDING_OPTIONS)
        users[edge] = UserFactory.create()
        # voted inside the window every time; only the finalization time differs
        vote(users[edge], ending, option_ids(ending)[1], at=STARTS_AT)
        finalize(ending, at=moment)

    reward_events_process()

    assert grants_of(rule) == sorted((users[edge].pk, "") for edge in INSIDE)


# --- periods ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("period", "moments", "keys"),
    [
        (
            Period.DAY,
            ["2025-03-10T00:00:00", "2025-03-10T23:59:59.999999", "2025-03-11T00:00:00"],
            ["2025-03-10", "2025-03-11"],
        ),
        (
            # ISO weeks start on Monday; 2024-12-30 (a Monday) is in ISO week 1 of 2025
            Period.WEEK,
            ["2024-12-23T00:00:00", "2024-12-29T23:59:59.999999", "2024-12-30T00:00:00"],
            ["2024-W52", "2025-W01"],
        ),
        (
            Period.MONTH,
            ["2025-01-01T00:00:00", "2025-01-31T23:59:59.999999", "2025-02-01T00:00:00"],
            ["2025-01", "2025-02"],
        ),
    ],
)
def test_a_periodic_rule_grants_once_per_period(
    period: str, moments: list[str], keys: list[str]
) -> None:
    # given "a like per <period>" and likes: two in one period, one in the next
    rule = RewardRuleFactory.create(period=period)
    fan = UserFactory.create()
    videos = VideoFactory.create_batch(4)
    for video, moment in zip(videos, moments, strict=False):
        like(fan, video, at=utc(moment))

    # when the consumer runs (twice)
    assert reward_events_process().grants == 2
    assert reward_events_process().grants == 0

    # then one grant in each period, none twice in the same
    assert grants_of(rule) == [(fan.pk, key) for key in keys]
    # and another like in the second period grants nothing more
    like(fan, videos[3], at=utc(moments[2]) + timedelta(hours=1))
    assert reward_events_process().grants == 0
    assert grants_of(rule) == [(fan.pk, key) for key in keys]
    assert ActivityEvent.objects.filter(kind=ActivityEvent.Kind.EARNED_BADGE).count() == 2


def test_a_periodic_threshold_counts_each_period_on_its_own() -> None:
    rule = RewardRuleFactory.create(period=Period.DAY, threshold=2)
    videos = VideoFactory.create_batch(2)
    split, same_day = UserFactory.create_batch(2)
    like(split, videos[0], at=utc("2025-03-10T23:00:00"))
    like(split, videos[1], at=utc("2025-03-11T01:00:00"))
    like(same_day, videos[0], at=utc("2025-03-10T01:00:00"))
    like(same_day, videos[1], at=utc("2025-03-10T23:00:00"))

    reward_events_process()

    assert grants_of(rule) == [(same_day.pk, "2025-03-10")]


# --- perks ------------------------------------------------------------------------------------
def test_a_perk_rule_writes_the_grant_and_its_entitlement_and_feed_entry_together() -> None:
    perk = PerkFactory.create(name="Free month", stock=10)
    rule = RewardRuleFactory.create(perk=perk, period=Period.MONTH)
    fan = UserFactory.create()
    videos = VideoFactory.create_batch(2)
    like(fan, videos[0], at=utc("2025-01-15T10:00:00"))
    like(fan, videos[1], at=utc("2025-02-15T10:00:00"))

    assert reward_events_process().grants == 2

    grants = list(Grant.objects.filter(rule=rule).order_by("period_key"))
    assert [(grant.user_id, grant.period_key, grant.badge_id) for grant in grants] == [
        (fan.pk, "2025-01", None),
        (fan.pk, "2025-02", None),
    ]
    assert list(
        Entitlement.objects.order_by("grant__period_key").values_list(
            "grant_id", "user_id", "perk_id", "created_at", "redeemed_at", "code", "revoked_at"
        )
    ) == [(grant.pk, fan.pk, perk.pk, grant.granted_at, None, None, None) for grant in grants]
    assert _earned(ActivityEvent.Kind.EARNED_PERK) == sorted(
        (fan.pk, grant.pk, {"reward": "Free month", "rule": rule.name, "grant_id": grant.pk})
        for grant in grants
    )
    assert _earned(ActivityEvent.Kind.EARNED_BADGE) == []
    # granting a perk does not use up its stock; redeeming does
    perk.refresh_from_db()
    assert perk.redeemed_count == 0


# --- backfill and preview ---------------------------------------------------------------------
def test_backfill_applies_a_rule_created_later_to_history() -> None:
    # given history the consumer read before the rule existed
    long_ago = utc("2025-01-15T10:00:00")
    videos = VideoFactory.create_batch(2)
    veterans = UserFactory.create_batch(3)
    one_like, one_uncounted = UserFactory.create_batch(2)
    for veteran in veterans:
        for video in videos:
            like(veteran, video, at=long_ago)
    like(one_like, videos[0], at=long_ago)
    like(one_uncounted, videos[0], at=long_ago)
    like(one_uncounted, videos[1], at=long_ago, counted=False)
    assert reward_events_process().grants == 0
    assert Watermark.objects.get(name="rewards:likes").position == Like.objects.latest("id").pk

    # when a rule "2 likes" is created, the consumer has nothing new to read
    rule = RewardRuleFactory.create(threshold=2)
    assert reward_events_process().grants == 0
    assert grants_of(rule) == []

    # then the preview counts exactly the veterans, writing nothing
    assert rule_preview(rule) == 3
    assert Grant.objects.count() == 0

    # and the backfill grants exactly them, once
    assert rule_backfill(rule_id=rule.pk) == 3
    assert grants_of(rule) == sorted((veteran.pk, "") for veteran in veterans)
    assert set(Grant.objects.values_list("source", flat=True)) == {"backfill"}
    assert sorted(user_id for user_id, _, _ in _earned()) == sorted(v.pk for v in veterans)
    rule.refresh_from_db()
    assert rule.backfilled_at is not None
    assert rule_preview(rule) == 0
    assert rule_backfill(rule_id=rule.pk) == 0
    assert Grant.objects.count() == 3
    assert ActivityEvent.objects.filter(kind=ActivityEvent.Kind.EARNED_BADGE).count() == 3


def test_backfill_of_a_periodic_windowed_perk_rule_grants_each_period_in_the_window() -> None:
    perk = PerkFactory.create()
    rule = RewardRuleFactory.create(
        perk=perk,
        period=Period.MONTH,
        starts_at=utc("2025-02-01T00:00:00"),
        ends_at=utc("2025-04-01T00:00:00"),
    )
    videos = VideoFactory.create_batch(3)
    every_month, only_january = UserFactory.create_batch(2)
    for video, moment in zip(
        videos, ["2025-01-31T23:59:59", "2025-02-01T00:00:00", "2025-03-31T23:59:59"], strict=True
    ):
        like(every_month, video, at=utc(moment))
    like(only_january, videos[0], at=utc("2025-01-10T00:00:00"))

    assert rule_preview(rule) == 2
    assert rule_backfill(rule_id=rule.pk) == 2

    assert grants_of(rule) == [(every_month.pk, "2025-02"), (every_month.pk, "2025-03")]
    assert sorted(Entitlement.objects.values_list("user_id", "perk_id")) == [
        (every_month.pk, perk.pk),
        (every_month.pk, perk.pk),
    ]
    assert rule_preview(rule) == 0


def test_backfill_grants_every_trigger_from_history() -> None:
    # given history of every kind, which no consumer has read
    creator = UserFactory.create()
    video = VideoFactory.create(creator=creator)
    poll = StickerFactory.create(options=["A", "B"])
    ending = StickerFactory.create(kind=Sticker.Kind.ENDING, options=ENDING_OPTIONS)
    quiz = StickerFactory.create(kind=Sticker.Kind.QUIZ, checkpoints=quiz_checkpoints(1))
    liker, voter, prophet, doubter, quizzer = UserFactory.create_batch(5)
    like(liker, video)
    vote(voter, poll, option_ids(poll)[0])
    vote(prophet, ending, option_ids(ending)[1])
    vote(quizzer, ending, option_ids(ending)[1])
    vote(doubter, ending, option_ids(ending)[0])
    answer_quiz(quizzer, quiz, [RIGHT])
    answer_quiz(doubter, quiz, [WRONG])
    finalize(ending)
    expected = {
        Trigger.TOTAL_LIKES: [liker],
        Trigger.CREATOR_LIKES: [liker],
        Trigger.VIDEO_LIKES: [creator],
        Trigger.STICKER_PARTICIPATION: [voter, prophet, doubter, quizzer],
        Trigger.WINNING_ENDING: [prophet, quizzer],
        Trigger.QUIZ_SCORE: [quizzer],
    }

    for trigger, users in expected.items():
        # when a rule of the trigger is created and backfilled
        rule = RewardRuleFactory.create(
            trigger=trigger, creator=creator if trigger == Trigger.CREATOR_LIKES else None
        )
        assert rule_preview(rule) == len(users), trigger
        assert rule_backfill(rule_id=rule.pk) == len(users), trigger

        # then exactly the users who qualify are granted
        assert grants_of(rule) == sorted((user.pk, "") for user in users), trigger


def test_backfill_of_an_unknown_rule_grants_nothing() -> None:
    assert rule_backfill(rule_id=987_654_321) == 0


@pytest.mark.parametrize("reason", ["inactive", "badge_expired", "perk_expired"])
def test_a_rule_that_cannot_grant_now_grants_nothing(reason: str) -> None:
    past = timezone.now() - timedelta(minutes=1)
    if reason == "inactive":
        rule = RewardRuleFactory.create(is_active=False)
    elif reason == "badge_expired":
        rule = RewardRuleFactory.create(badge=BadgeFactory.create(expires_at=past))
    else:
        rule = RewardRuleFactory.create(perk=PerkFactory.create(valid_until=past))
    like(UserFactory.create(), VideoFactory.create())

    assert reward_events_process().grants == 0
    assert rule_backfill(rule_id=rule.pk) == 0
    assert Grant.objects.count() == 0
    assert Entitlement.objects.count() == 0


# --- counted rows only (SPEC §2.4) ------------------------------------------------------------
def test_uncounted_interactions_never_earn_anything() -> None:
    # given a rule of every trigger at its lowest bar
    creator = UserFactory.create()
    video = VideoFactory.create(creator=creator)
    poll = StickerFactory.create(options=["A", "B"])
    ending = StickerFactory.create(kind=Sticker.Kind.ENDING, options=ENDING_OPTIONS)
    quiz = StickerFactory.create(kind=Sticker.Kind.QUIZ, checkpoints=quiz_checkpoints(1))
    rules = [
        RewardRuleFactory.create(trigger=Trigger.TOTAL_LIKES),
        RewardRuleFactory.create(trigger=Trigger.TOTAL_LIKES, perk=PerkFactory.create()),
        RewardRuleFactory.create(trigger=Trigger.CREATOR_LIKES, creator=creator),
        RewardRuleFactory.create(trigger=Trigger.VIDEO_LIKES),
        RewardRuleFactory.create(trigger=Trigger.STICKER_PARTICIPATION),
        RewardRuleFactory.create(trigger=Trigger.WINNING_ENDING),
        RewardRuleFactory.create(trigger=Trigger.QUIZ_SCORE),
    ]
    # and a bot whose every interaction stopped counting, next to one honest voter
    bot, honest = UserFactory.create_batch(2)
    like(bot, video, counted=False)
    vote(bot, poll, option_ids(poll)[0], counted=False)
    vote(bot, ending, option_ids(ending)[1], counted=False)
    answer_quiz(bot, quiz, [RIGHT], counted=False)
    vote(honest, ending, option_ids(ending)[1])
    finalize(ending)

    # when the consumer runs and every rule is backfilled
    reward_events_process()
    backfilled = sum(rule_backfill(rule_id=rule.pk) for rule in rules)

    # then only the honest voter earned (participation, winning ending), nothing from the bot
    assert backfilled == 0
    assert sorted(Grant.objects.values_list("rule__trigger", "user_id")) == sorted(
        [(Trigger.STICKER_PARTICIPATION, honest.pk), (Trigger.WINNING_ENDING, honest.pk)]
    )
    assert Entitlement.objects.count() == 0
    assert ActivityEvent.objects.filter(user=bot).count() == 0
    assert ActivityEvent.objects.filter(user=creator).count() == 0
    assert all(rule_preview(rule) == 0 for rule in rules)


def test_an_uncounted_like_does_not_make_up_the_threshold() -> None:
    rule = RewardRuleFactory.create(threshold=2)
    videos = VideoFactory.create_batch(2)
    fan = UserFactory.create()
    like(fan, videos[0])
    like(fan, videos[1], counted=False)

    reward_events_process()

    assert grants_of(rule) == []
    assert list(ActivityEvent.objects.filter(user=fan).values_list("kind", "video_id")) == [
        (ActivityEvent.Kind.LIKED_VIDEO, videos[0].pk)
    ]


# --- an earned threshold later undercut: the grant is kept ------------------------------------
def test_an_unlike_after_a_grant_keeps_it_and_liking_again_does_not_grant_twice() -> None:
    # given a fan who earned "2 likes"
    rule = RewardRuleFactory.create(threshold=2)
    fan = UserFactory.create()
    videos = VideoFactory.create_batch(2)
    for video in videos:
        like(fan, video)
    assert reward_events_process().grants == 1
    grant = Grant.objects.get(rule=rule)

    # when they unlike one (1 like: under the threshold)
    video_unlike(user=fan, video_id=videos[0].pk)
    assert reward_events_process().grants == 0

    # then the grant is kept
    assert list(Grant.objects.values_list("pk", "revoked_at")) == [(grant.pk, None)]

    # when they like it again (2 likes: over the threshold again)
    like(fan, videos[0])
    assert reward_events_process().grants == 0
    assert rule_backfill(rule_id=rule.pk) == 0

    # then there is still exactly one grant and one "earned" feed entry
    assert grants_of(rule) == [(fan.pk, "")]
    assert ActivityEvent.objects.filter(kind=ActivityEvent.Kind.EARNED_BADGE).count() == 1


def test_an_integrity_decision_after_a_grant_keeps_it() -> None:
    rule = RewardRuleFactory.create(threshold=2)
    fan = UserFactory.create()
    for video in VideoFactory.create_batch(2):
        like(fan, video)
    reward_events_process()
    grant = Grant.objects.get(rule=rule)

    # when integrity stops the fan's likes counting (nothing is deleted)
    Like.objects.filter(user=fan).update(counted=False)
    like(fan, VideoFactory.create())

    # then no rule run takes it back or grants again; staff may revoke it (see below)
    assert reward_events_process().grants == 0
    assert rule_backfill(rule_id=rule.pk) == 0
    assert list(Grant.objects.values_list("pk", "revoked_at")) == [(grant.pk, None)]


# --- revocation by staff ----------------------------------------------------------------------
def test_revoking_a_grant_records_the_reason_and_the_rule_never_grants_it_again() -> None:
    rule = RewardRuleFactory.create(perk=PerkFactory.create())
    fan, other = UserFactory.create_batch(2)
    videos = VideoFactory.create_batch(2)
    like(fan, videos[0])
    like(other, videos[0])
    reward_events_process()
    grant = Grant.objects.get(user=fan)

    assert grants_revoke(grant_ids=[grant.pk], reason="bought likes") == 1

    grant.refresh_from_db()
    assert grant.revoked_at is not None
    assert grant.revoke_reason == "bought likes"
    assert dict(Entitlement.objects.values_list("user_id", "revoked_at")) == {
        fan.pk: grant.revoked_at,
        other.pk: None,
    }
    # the row stays, so neither the consumer nor a backfill grants the rule to the fan again
    like(fan, videos[1])
    reward_events_process()
    assert rule_backfill(rule_id=rule.pk) == 0
    assert grants_of(rule) == sorted([(fan.pk, ""), (other.pk, "")])
    # revoking again changes nothing
    assert grants_revoke(grant_ids=[grant.pk], reason="again") == 0
    grant.refresh_from_db()
    assert grant.revoke_reason == "bought likes"


def test_a_rule_that_cannot_grant_now_previews_zero() -> None:
    # given history that qualifies, and a rule that is inactive
    rule = RewardRuleFactory.create(is_active=False)
    like(UserFactory.create(), VideoFactory.create())

    assert rule_preview(rule) == 0
    assert rule_backfill(rule_id=rule.pk) == 0


def test_the_pending_sweep_backfills_active_rules_never_applied_to_history() -> None:
    from rewards.services.grants import rules_backfill_pending

    # given history, a rule whose backfill never ran, and one that already ran
    fans = UserFactory.create_batch(2)
    for fan in fans:
        like(fan, VideoFactory.create())
    pending = RewardRuleFactory.create()
    done = RewardRuleFactory.create(backfilled_at=timezone.now())

    # when the sweep runs (twice: the second finds nothing pending)
    assert rules_backfill_pending() == 2
    assert rules_backfill_pending() == 0

    # then only the pending rule was applied, and it is marked done
    assert grants_of(pending) == sorted([(fan.pk, "") for fan in fans])
    assert grants_of(done) == []
    pending.refresh_from_db()
    assert pending.backfilled_at is not None
