"""Demo badges, a perk and rules, backfilled so `make run` shows rewards already earned."""

from collections.abc import Callable
from typing import Any

from engagement.models import User
from rewards.models import Badge, Perk, RewardRule
from rewards.services.grants import rule_backfill

BADGES = [
    ("first-like", "First like", "You liked your first video."),
    ("superfan-alice", "Alice's superfan", "Liked Alice's videos."),
    ("prophet", "Prophet", "Your vote chose the ending."),
    ("quiz-whiz", "Quiz whiz", "Completed a quiz with a perfect score."),
    ("participant", "Participant", "Took part in a sticker."),
    ("rising-creator", "Rising creator", "One of your videos reached 3 likes."),
]


def seed(log: Callable[[str], None]) -> None:
    alice = User.objects.filter(username="alice").first()
    badges = {}
    for slug, name, description in BADGES:
        badges[slug], _ = Badge.objects.get_or_create(
            slug=slug,
            defaults={
                "name": name,
                "description": description,
                "creator": alice if slug == "superfan-alice" else None,
            },
        )
    membership, _ = Perk.objects.get_or_create(
        slug="membership-month",
        defaults={
            "name": "One month of membership",
            "description": "Like 3 videos (100 in production) to redeem a month of membership.",
            "stock": 100,
            "code_prefix": "MEMBER",
        },
    )
    rules: list[tuple[str, str, int, dict[str, Any]]] = [
        ("Like a video", RewardRule.Trigger.TOTAL_LIKES, 1, {"badge": badges["first-like"]}),
        ("Like 3 videos -> membership", RewardRule.Trigger.TOTAL_LIKES, 3, {"perk": membership}),
        (
            "Like Alice's videos",
            RewardRule.Trigger.CREATOR_LIKES,
            1,
            {"badge": badges["superfan-alice"], "creator": alice},
        ),
        (
            "Vote for the winning ending",
            RewardRule.Trigger.WINNING_ENDING,
            1,
            {"badge": badges["prophet"]},
        ),
        ("Perfect quiz", RewardRule.Trigger.QUIZ_SCORE, 2, {"badge": badges["quiz-whiz"]}),
        (
            "Take part in a sticker",
            RewardRule.Trigger.STICKER_PARTICIPATION,
            1,
            {"badge": badges["participant"]},
        ),
        (
            "Video reaches 3 likes",
            RewardRule.Trigger.VIDEO_LIKES,
            3,
            {"badge": badges["rising-creator"]},
        ),
    ]
    granted = 0
    for name, trigger, threshold, extra in rules:
        if "creator" in extra and extra["creator"] is None:
            continue  # the demo creator is missing
        rule, created = RewardRule.objects.get_or_create(
            name=name, defaults={"trigger": trigger, "threshold": threshold, **extra}
        )
        if created:
            granted += rule_backfill(rule_id=rule.pk)
    log(f"Demo rewards: {len(rules)} rules, {granted} grant(s) from history.")
