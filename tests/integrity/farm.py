"""The integrity decision tests' world with genuine users, a bot farm and a
hijacked account, and a snapshot of every count a decision must keep exact."""

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone

from analytics.discovery import trending_document
from analytics.models import VideoHeat
from analytics.raw import creator_figures_raw, video_figures_raw
from analytics.selectors import creator_analytics_document, video_analytics_document
from analytics.services.consumer import analytics_events_process
from analytics.services.heat import heat_events_process
from analytics.services.trending import SLICE, slice_floor, trending_events_process
from engagement.models import Comment, User, Video
from engagement.services.counters import video_counters_recount, video_counts
from engagement.services.interactions import comment_likes_recount
from integrity.services.cases import AccountSpan, Finding, SignalInput
from polls.models import Sticker, StickerTally
from polls.services.finalizing import sticker_finalize
from polls.services.tallies import sticker_tally_refresh
from rewards.models import Entitlement, Grant, RewardRule
from rewards.services.events import reward_events_process
from tests.analytics import world
from tests.factories import (
    PerkFactory,
    RewardRuleFactory,
    StickerFactory,
    UserFactory,
    VoteFactory,
)

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


def finalize(sticker: Sticker) -> None:
    Sticker.objects.filter(pk=sticker.pk).update(
        state=Sticker.State.CLOSED, closed_at=timezone.now()
    )
    assert sticker_finalize(sticker_id=sticker.pk) is True
    sticker.refresh_from_db()


def consume_everything() -> None:
    """The consumers a decision feeds, in-process, to their end."""
    while reward_events_process().more:
        pass
    while analytics_events_process().more:
        pass
    while heat_events_process().more:
        pass
    while trending_events_process().more:
        pass


def span(now: datetime) -> tuple[datetime, datetime]:
    return now - 6 * HOUR, now + HOUR


@dataclass
class World:
    now: datetime
    creator: User
    v1: Video
    v2: Video
    v3: Video
    genuine: list[User]
    bots: list[User]
    hijacked: User
    c1: Comment
    c2: Comment
    c3: Comment
    poll: Sticker
    ending: Sticker
    pick: Sticker
    quiz: Sticker
    rules: dict[str, RewardRule]

    def finding(self, fingerprint: str = "lockstep:farm-1") -> Finding:
        start, end = span(self.now)
        return Finding(
            accounts=[AccountSpan(user.pk, start, end) for user in [*self.bots, self.hijacked]],
            score=0.93,
            fingerprint=fingerprint,
            signals=[
                SignalInput(
                    kind="lockstep",
                    score=0.93,
                    evidence={
                        "accounts": [user.pk for user in self.bots],
                        "videos": [self.v1.pk, self.v2.pk],
                        "window_seconds": 40,
                        "devices": ["farm-device"],
                    },
                )
            ],
        )


def option(sticker: Sticker, label: str) -> int:
    return sticker.options.get(label=label).pk


def build_world() -> World:
    """Genuine users G0..G3, bots B0..B2 (their activity inside the span but one like of v3 two
    days ago), and a hijacked account H whose owner liked v2 30 hours ago (outside the span) and
    whose hijacker liked and played v1 inside it.

    Counted before any decision, and without the bots and the hijacker:
    - v1 likes 7 -> 3, comments 3 -> 2, shares 2 -> 1, plays 8 -> 4; v2 likes 5 -> 2; v3 1 -> 1;
    - comment c2 (by G1) liked by the bots: like_count 3 -> 0, so the comment_pick winner moves
      from c2 to c1 (liked by G2, G3);
    - the poll on v1: B 4, A 2 -> A 2, B 1; the final ending sticker on v2: Y 4 / X 2 wins Y ->
      X 2 / Y 1 wins X.
    """
    now = timezone.now()
    g_time = now - 20 * HOUR  # genuine activity: in the last 24 h, outside the span
    b_time = now - 3 * HOUR  # the farm's activity: inside the span
    creator = UserFactory.create()
    published = now - 3 * DAY
    v1 = world.video(creator, published, ["cats"])
    v2 = world.video(creator, published, ["dogs"])
    v3 = world.video(creator, published)
    genuine = [UserFactory.create() for _ in range(4)]
    bots = [UserFactory.create() for _ in range(3)]
    hijacked = UserFactory.create()
    g0, g1, g2, g3 = genuine

    for user in (g0, g1, g3):
        world.like(user, v1, g_time)
    world.like(g2, v2, g_time)
    for bot in bots:
        world.like(bot, v1, b_time)
        world.like(bot, v2, b_time)
    world.like(bots[0], v3, now - 2 * DAY)  # the farm's account before the span: stays counted
    world.like(hijacked, v2, now - 30 * HOUR)  # the owner's own like
    world.like(hijacked, v1, b_time)  # the hijacker's

    c1 = world.comment(g0, v1, g_time, "tacos on friday")
    c2 = world.comment(g1, v1, g_time, "pizza")
    c3 = world.comment(bots[0], v1, b_time, "great video!!")
    for user in (g2, g3):
        world.comment_like(user, c1, g_time)
    for bot in bots:
        world.comment_like(bot, c2, b_time)

    world.share(g0, v1, g_time)
    world.share(bots[1], v1, b_time)
    for user in genuine:
        world.play(user, v1, g_time, watched_ms=12_000, completed=True)
    for user in [*bots, hijacked]:
        world.play(user, v1, b_time, watched_ms=900)
    world.follow(g0, creator, g_time, source_video=v1)
    world.follow(bots[2], creator, b_time, source_video=v1)

    opened = now - 3 * DAY
    poll = StickerFactory.create(video=v1, options=["A", "B"], opens_at=opened, closes_at=now + DAY)
    ending = StickerFactory.create(
        video=v2,
        kind=Sticker.Kind.ENDING,
        options=[
            {"label": "X", "payload": {"text": "the hero stays"}},
            {"label": "Y", "payload": {"text": "the hero leaves"}},
        ],
        opens_at=opened,
        closes_at=now - HOUR,
    )
    pick = StickerFactory.create(
        video=v1, kind=Sticker.Kind.COMMENT_PICK, opens_at=opened, closes_at=now + DAY
    )
    quiz = StickerFactory.create(
        video=v2,
        kind=Sticker.Kind.QUIZ,
        opens_at=opened,
        checkpoints=[{"at_ms": 1000, "question": "Who?", "options": ["a", "b"], "correct": [0]}],
    )
    for user, label in ((g0, "A"), (g1, "A"), (g2, "B")):
        VoteFactory.create(
            sticker=poll, user=user, option_ids=[option(poll, label)], created_at=g_time
        )
    for user, label in ((g0, "X"), (g1, "X"), (g2, "Y")):
        VoteFactory.create(
            sticker=ending, user=user, option_ids=[option(ending, label)], created_at=g_time
        )
    for bot in bots:
        VoteFactory.create(
            sticker=poll, user=bot, option_ids=[option(poll, "B")], created_at=b_time
        )
        VoteFactory.create(
            sticker=ending, user=bot, option_ids=[option(ending, "Y")], created_at=b_time
        )
    world.answer(g0, quiz, 0, g_time)
    world.answer(bots[0], quiz, 0, b_time)

    for made in (v1, v2, v3):
        video_counters_recount(video_id=made.pk)
    for comment in (c1, c2, c3):
        comment_likes_recount(comment_id=comment.pk)
    sticker_tally_refresh(sticker_id=poll.pk)
    finalize(ending)
    finalize(pick)

    rules = {
        "two_likes": RewardRuleFactory.create(name="two likes", threshold=2),
        "creator_perk": RewardRuleFactory.create(
            name="creator perk",
            trigger=RewardRule.Trigger.CREATOR_LIKES,
            creator=creator,
            threshold=2,
            perk=PerkFactory.create(),
        ),
        "video_five": RewardRuleFactory.create(
            name="video reached 5", trigger=RewardRule.Trigger.VIDEO_LIKES, threshold=5
        ),
        "prophet": RewardRuleFactory.create(
            name="prophet", trigger=RewardRule.Trigger.WINNING_ENDING
        ),
        "quiz_taker": RewardRuleFactory.create(
            name="quiz taker",
            trigger=RewardRule.Trigger.STICKER_PARTICIPATION,
            sticker_kind=Sticker.Kind.QUIZ,
        ),
    }
    consume_everything()
    return World(
        now=now,
        creator=creator,
        v1=v1,
        v2=v2,
        v3=v3,
        genuine=genuine,
        bots=bots,
        hijacked=hijacked,
        c1=c1,
        c2=c2,
        c3=c3,
        poll=poll,
        ending=ending,
        pick=pick,
        quiz=quiz,
        rules=rules,
    )


def live_grants(setting: World) -> dict[str, list[int]]:
    """Rule name -> the users holding a live (unrevoked) grant, sorted."""
    names = {rule.pk: name for name, rule in setting.rules.items()}
    held: dict[str, list[int]] = {name: [] for name in setting.rules}
    for rule_id, user_id in Grant.objects.filter(revoked_at__isnull=True).values_list(
        "rule_id", "user_id"
    ):
        held[names[rule_id]].append(user_id)
    return {name: sorted(users) for name, users in held.items()}


def available_entitlements() -> list[int]:
    return sorted(
        Entitlement.objects.filter(revoked_at__isnull=True).values_list("user_id", flat=True)
    )


def _without_as_of(document: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in document.items() if key != "as_of"}


def analytics_documents(setting: World) -> dict[str, Any]:
    """The served creator-centre documents, each first checked equal to the raw oracle."""
    documents: dict[str, Any] = {}
    now = setting.now + timedelta(seconds=1)
    served = _without_as_of(
        creator_analytics_document(creator_id=setting.creator.pk, days=28, tz="UTC", now=now)
    )
    assert served == creator_figures_raw(creator_id=setting.creator.pk, days=28, tz="UTC", now=now)
    documents["creator"] = served
    for made in (setting.v1, setting.v2, setting.v3):
        served = _without_as_of(
            video_analytics_document(video_id=made.pk, days=28, tz="UTC", now=now)
        )
        assert served == video_figures_raw(video_id=made.pk, days=28, tz="UTC", now=now)
        documents[f"video {made.pk}"] = served
    return documents


def counts(setting: World) -> dict[str, Any]:
    """Every count a decision touches, after the consumers have run."""
    consume_everything()
    videos = [setting.v1.pk, setting.v2.pk, setting.v3.pk]
    by_video = video_counts(videos)
    tally = StickerTally.objects.get(sticker=setting.poll)
    ending = Sticker.objects.get(pk=setting.ending.pk)
    pick = Sticker.objects.get(pk=setting.pick.pk)
    heat = {
        row.video_id: (row.likes, row.deep_likes, row.points)
        for row in VideoHeat.objects.filter(video_id__in=videos)
    }
    # (a trending window ends on a slice boundary)
    end = slice_floor(setting.now) + SLICE
    trending = {
        row["hashtag"]: (row["interactions"], row["previous"])
        for row in trending_document(hours=24, limit=20, end=end)["results"]
    }
    return {
        "videos": {
            name: [by_video[video][name] for video in videos]
            for name in ("likes", "comments", "shares", "plays")
        },
        "comment likes": [
            Comment.objects.get(pk=comment.pk).like_count
            for comment in (setting.c1, setting.c2, setting.c3)
        ],
        "poll": (tally.total_votes, [(entry["id"], entry["votes"]) for entry in tally.entries]),
        "ending": (ending.total_votes, ending.winner_option_id),
        "pick": pick.winner_comment_id,
        "grants": live_grants(setting),
        "entitlements": available_entitlements(),
        "heat": heat,
        "trending": trending,
        "analytics": analytics_documents(setting),
    }
