"""The raw computation of every creator-centre figure, against small worlds with exact values.

`now` is fixed (Wednesday 2026-04-15 12:00 UTC unless a test says otherwise): the 28-day window
is [2026-03-18 12:00, 2026-04-15 12:00) and the one before it [2026-02-18 12:00, 2026-03-18
12:00).
"""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.db import connection

from analytics.comments import comment_is_hollow, comment_repeat_key
from analytics.parameters import InvalidAnalyticsParameter, InvalidWindow, UnknownTimeZone
from analytics.raw import creator_figures_raw, video_figures_raw
from engagement.models import User
from polls.models import Sticker, Vote
from tests.analytics.world import (
    answer,
    cells,
    comment,
    comment_like,
    follow,
    like,
    play,
    share,
    sticker,
    uncount,
    video,
)
from tests.factories import UserFactory, VideoFactory, VoteFactory

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 4, 15, 12, 0, tzinfo=UTC)
START = NOW - timedelta(days=28)
PREVIOUS_START = START - timedelta(days=28)
WINDOW = {"days": 28, "start": "2026-03-18T12:00:00Z", "end": "2026-04-15T12:00:00Z"}
EMPTY_GRID = [[0] * 24 for _ in range(7)]
SECOND = timedelta(seconds=1)
MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


def creator_figures(creator: User, *, days: int = 28, tz: str = "UTC", now: datetime = NOW) -> Any:
    return creator_figures_raw(creator_id=creator.pk, days=days, tz=tz, now=now)


def no_tools() -> dict[str, Any]:
    return {"videos": 0, "plays": 0, "interactions": 0, "first_hour_velocity": None}


# --- parameters -------------------------------------------------------------------------------
def test_parameters_outside_spec_raise_value_errors() -> None:
    creator = UserFactory.create()
    with pytest.raises(UnknownTimeZone):
        creator_figures(creator, tz="Mars/Olympus_Mons")
    with pytest.raises(UnknownTimeZone):
        creator_figures(creator, tz="localtime")
    with pytest.raises(UnknownTimeZone):
        creator_figures(creator, tz="europe/berlin")  # IANA names are spelt exactly
    with pytest.raises(InvalidWindow):
        creator_figures(creator, days=14)
    with pytest.raises(InvalidAnalyticsParameter):
        creator_figures(creator, now=datetime(2026, 4, 15, 12, 0))  # naive
    with pytest.raises(UnknownTimeZone):
        video_figures_raw(video_id=VideoFactory.create().pk, days=7, tz="UTC+5", now=NOW)
    assert issubclass(UnknownTimeZone, ValueError)
    assert issubclass(InvalidWindow, ValueError)


# --- a creator with nothing -------------------------------------------------------------------
def test_creator_with_no_videos_has_zero_counts_and_null_rates() -> None:
    # given a creator with no videos and no followers (other people are busy)
    creator = UserFactory.create()
    someone = UserFactory.create()
    elsewhere = video(UserFactory.create(), START + DAY, hashtags=["cats"])
    like(someone, elsewhere, START + 2 * DAY)
    play(someone, elsewhere, START + 2 * DAY)

    for days, start in ((7, "2026-04-08T12:00:00Z"), (90, "2026-01-15T12:00:00Z")):
        # when / then
        assert creator_figures(creator, days=days, tz="Asia/Kolkata") == {
            "window": {"days": days, "start": start, "end": "2026-04-15T12:00:00Z"},
            "totals": {
                "plays": 0,
                "likes": 0,
                "comments": 0,
                "shares": 0,
                "follows_gained": 0,
                "interactions": 0,
            },
            "interaction_rate": None,
            "interaction_growth_rate": None,
            "first_hour_velocity": None,
            "completion_rate": None,
            "replay_rate": None,
            "effective_comment_share": None,
            "quick_like_share": None,
            "fan_activity": {"timezone": "Asia/Kolkata", "grid": EMPTY_GRID},
            "interest_preferences": [],
            "tool_effect": {"with_tools": no_tools(), "without_tools": no_tools(), "lift": None},
        }


def test_window_with_no_plays_has_null_play_rates() -> None:
    # given a video published before the window, liked and shared in it but never played
    creator, fan = UserFactory.create(), UserFactory.create()
    old = video(creator, PREVIOUS_START - DAY)
    like(fan, old, START + DAY)
    share(fan, old, START + 2 * DAY)
    play(fan, old, START - SECOND)  # a play, but before the window

    figures = creator_figures(creator)

    assert figures["window"] == WINDOW
    assert figures["totals"] == {
        "plays": 0,
        "likes": 1,
        "comments": 0,
        "shares": 1,
        "follows_gained": 0,
        "interactions": 2,
    }
    assert figures["interaction_rate"] is None
    assert figures["completion_rate"] is None
    assert figures["replay_rate"] is None
    assert figures["first_hour_velocity"] is None  # nothing published in the window
    assert figures["effective_comment_share"] is None
    # the liker's only play (10 s, before the window) still counts towards "watched in all"
    assert figures["quick_like_share"] == 0.0
    assert figures["interaction_growth_rate"] is None  # the previous window had none


# --- growth -----------------------------------------------------------------------------------
def test_growth_against_an_empty_previous_window_is_null_and_bounds_are_half_open() -> None:
    creator, fan = UserFactory.create(), UserFactory.create()
    clip = video(creator, PREVIOUS_START - DAY)
    like(fan, clip, START)  # the window's first instant: in this window
    share(fan, clip, NOW - timedelta(microseconds=1))
    share(fan, clip, NOW)  # the window's end is excluded
    share(fan, clip, PREVIOUS_START - timedelta(microseconds=1))  # before the previous window

    figures = creator_figures(creator)

    assert figures["totals"]["interactions"] == 2
    assert figures["interaction_growth_rate"] is None

    # one interaction in the previous window (its first instant): growth (2 - 1) / 1
    share(fan, clip, PREVIOUS_START)
    assert creator_figures(creator)["interaction_growth_rate"] == 1.0


def test_growth_with_numbers() -> None:
    creator = UserFactory.create()
    fans = UserFactory.create_batch(4)
    clip = video(creator, PREVIOUS_START - DAY)
    # previous window: a like, a comment, a share (3); the last instant before START included
    like(fans[0], clip, PREVIOUS_START + DAY)
    comment(fans[0], clip, START - timedelta(microseconds=1))
    share(fans[1], clip, PREVIOUS_START + 2 * DAY)
    # this window: 3 likes, a share and a follow gained from the video (5)
    for fan in fans[1:]:
        like(fan, clip, START + DAY)
    share(fans[0], clip, START + DAY)
    follow(fans[0], creator, START + DAY, source_video=clip)
    # shrinking: nothing counted in this window
    creator_shrinking = UserFactory.create()
    shrinking = video(creator_shrinking, PREVIOUS_START - DAY)
    like(fans[0], shrinking, PREVIOUS_START + DAY)
    like(fans[1], shrinking, PREVIOUS_START + DAY)

    figures = creator_figures(creator)

    assert figures["totals"]["interactions"] == 5
    assert figures["interaction_growth_rate"] == 2 / 3
    assert creator_figures(creator_shrinking)["interaction_growth_rate"] == -1.0


# --- plays ------------------------------------------------------------------------------------
def test_replays_completion_and_a_first_play_before_the_window() -> None:
    creator = UserFactory.create()
    early, twice, once, after_uncounted = UserFactory.create_batch(4)
    clip = video(creator, PREVIOUS_START)
    # a replay whose first play was before the window
    play(early, clip, START - 10 * DAY)
    play(early, clip, START + DAY, completed=True)
    # two plays in the window: the second is a replay
    play(twice, clip, START + DAY)
    play(twice, clip, START + DAY + SECOND, completed=True)
    play(once, clip, START + 2 * DAY)
    # an earlier play that does not count does not make the next one a replay
    play(after_uncounted, clip, START - DAY, counted=False)
    play(after_uncounted, clip, START + 3 * DAY)
    # the same user's plays of another video are not replays of this one
    other = video(creator, PREVIOUS_START)
    play(once, other, START + 3 * DAY)

    figures = creator_figures(creator)

    assert figures["totals"]["plays"] == 6
    assert figures["replay_rate"] == 2 / 6
    assert figures["completion_rate"] == 2 / 6


def test_two_plays_at_the_same_instant_make_one_replay() -> None:
    creator, viewer = UserFactory.create(), UserFactory.create()
    clip = video(creator, PREVIOUS_START)
    play(viewer, clip, START + DAY)
    play(viewer, clip, START + DAY)

    assert creator_figures(creator)["replay_rate"] == 0.5


# --- comments ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "hollow"),
    [
        ("", True),
        ("   \n\t", True),
        ("...!?¿—«»", True),
        ("!!! 😀😀", True),
        ("😀", True),
        ("👨‍👩‍👧 👍🏽 🇫🇷", True),  # ZWJ family, skin tone, flag
        ("#️⃣ 1️⃣", True),  # keycaps: the '#' is part of the emoji, not punctuation
        ("\u200b\u200d", True),  # zero-width space and joiner show nothing
        ("hi 😀", False),
        ("😀a", False),
        ("★", False),  # a symbol, not an emoji
        ("ok", False),
        ("42", False),
        ("Hello   World", False),
    ],
)
def test_comment_is_hollow(text: str, hollow: bool) -> None:
    assert comment_is_hollow(text) is hollow


def test_comment_repeat_key_folds_case_and_collapses_whitespace() -> None:
    assert comment_repeat_key("Hello   World") == comment_repeat_key("hello world")
    assert comment_repeat_key("  hello\n\tworld ") == "hello world"
    assert comment_repeat_key("Straße") == comment_repeat_key("STRASSE")  # full case folding
    assert comment_repeat_key("hello world!") != comment_repeat_key("hello world")
    assert comment_repeat_key("helloworld") != comment_repeat_key("hello world")


def test_effective_comment_share() -> None:
    # given
    creator, author, other_author = UserFactory.create(), UserFactory.create(), UserFactory.create()
    clip = video(creator, PREVIOUS_START)
    elsewhere = video(UserFactory.create(), PREVIOUS_START)
    # the author's earlier comments, on another creator's video, before the window
    comment(author, elsewhere, START - 5 * DAY, "hello world")
    comment(author, elsewhere, START - 5 * DAY, "STRASSE")
    comment(author, elsewhere, START - 5 * DAY, "ignored text", counted=False)
    # this window, on the creator's video
    comment(author, clip, START + DAY, "Hello   World")  # repeat: not effective
    comment(author, clip, START + DAY, "Straße")  # repeat after case folding: not effective
    comment(author, clip, START + DAY, "Ignored   TEXT")  # its twin does not count: effective
    comment(author, clip, START + DAY, "!!! 😀😀")  # only punctuation and emoji
    comment(author, clip, START + DAY, "hi 😀")  # effective
    comment(other_author, clip, START + DAY, "hello world")  # another user's: effective
    comment(other_author, clip, START + 2 * DAY, "nice")  # effective
    comment(other_author, clip, START + 3 * DAY, "Nice ")  # repeats the one before
    comment(other_author, clip, START + 3 * DAY, "#️⃣")  # a keycap emoji
    comment(other_author, clip, START + 3 * DAY, "\u200b")  # a zero-width space
    comment(other_author, clip, START + 3 * DAY, "uncounted", counted=False)
    comment(other_author, elsewhere, START + 3 * DAY, "not on this creator's video")
    # a later comment elsewhere does not make an earlier one a repeat
    comment(author, elsewhere, START + 10 * DAY, "hi 😀")

    figures = creator_figures(creator)

    assert figures["totals"]["comments"] == 10
    assert figures["effective_comment_share"] == 4 / 10


def test_a_repeat_within_the_same_instant_is_decided_by_id() -> None:
    creator, author = UserFactory.create(), UserFactory.create()
    clip = video(creator, PREVIOUS_START)
    comment(author, clip, START + DAY, "same")
    comment(author, clip, START + DAY, "SAME")

    assert creator_figures(creator)["effective_comment_share"] == 0.5


# --- quick likes ------------------------------------------------------------------------------
def test_quick_like_share() -> None:
    creator = UserFactory.create()
    never_played, two_seconds, three_seconds, watched_later, padded, outside = (
        UserFactory.create_batch(6)
    )
    clip = video(creator, PREVIOUS_START)
    other = video(creator, PREVIOUS_START)
    # a like with no play: 0 ms
    like(never_played, clip, START + DAY)
    play(never_played, other, START + DAY, watched_ms=60_000)  # another video's play
    # a like after a 2-second play
    play(two_seconds, clip, START + DAY, watched_ms=2_000)
    like(two_seconds, clip, START + DAY + MINUTE)
    # 2 s + 1 s = 3 s in all, across the window's start: not "less than 3 seconds"
    play(three_seconds, clip, START - 2 * DAY, watched_ms=2_000)
    play(three_seconds, clip, START + DAY, watched_ms=1_000)
    like(three_seconds, clip, START + DAY)
    # a quick like, then a long play after it: not quick
    like(watched_later, clip, START + DAY)
    play(watched_later, clip, START + 5 * DAY, watched_ms=60_000)
    # 2.999 s counted, plus a long play that does not count: quick
    play(padded, clip, START + DAY, watched_ms=2_999)
    play(padded, clip, START + DAY, watched_ms=60_000, counted=False)
    like(padded, clip, START + 2 * DAY)
    # a like before the window is in neither count
    like(outside, clip, START - SECOND)

    figures = creator_figures(creator)

    assert figures["totals"]["likes"] == 5
    assert figures["quick_like_share"] == 3 / 5


# --- uncounted rows ---------------------------------------------------------------------------
def _counted_world() -> dict[str, Any]:
    """A fan who follows the creator from her video, plays it twice, likes, comments, shares."""
    creator, fan = UserFactory.create(), UserFactory.create()
    published = START + 2 * DAY  # Friday 2026-03-20 12:00 UTC
    clip = video(creator, published, hashtags=["diy", "cats"])
    return {
        "creator": creator,
        "clip": clip,
        "follow": follow(fan, creator, published + 10 * MINUTE, source_video=clip),
        "play": play(fan, clip, published + 5 * MINUTE, watched_ms=2_000, completed=True),
        "replay": play(fan, clip, published + 20 * MINUTE, watched_ms=500),
        "like": like(fan, clip, published + 30 * MINUTE),
        "comment": comment(fan, clip, published + 40 * MINUTE, "love it"),
        "share": share(fan, clip, published + 50 * MINUTE),
    }


def _counted_world_figures(
    *,
    plays: int = 2,
    completed: int = 1,
    replays: int = 1,
    likes: int = 1,
    comments: int = 1,
    shares: int = 1,
    follows_gained: int = 1,
    quick: int = 1,
    fan_events: int = 5,
    fan_plays: int = 2,
    fan_likes: int = 1,
) -> dict[str, Any]:
    interactions = likes + comments + shares + follows_gained
    grid = [row[:] for row in EMPTY_GRID]
    grid[4][12] = fan_events  # Friday 12:00-13:00 UTC
    preferences = (
        [
            {
                "hashtag": name,
                "plays": fan_plays,
                "likes": fan_likes,
                "like_rate": fan_likes / fan_plays,
            }
            for name in ("cats", "diy")
        ]
        if fan_events
        else []
    )
    return {
        "window": WINDOW,
        "totals": {
            "plays": plays,
            "likes": likes,
            "comments": comments,
            "shares": shares,
            "follows_gained": follows_gained,
            "interactions": interactions,
        },
        "interaction_rate": interactions / plays,
        "interaction_growth_rate": None,
        "first_hour_velocity": interactions / plays,
        "completion_rate": completed / plays,
        "replay_rate": replays / plays,
        "effective_comment_share": comments / comments if comments else None,
        "quick_like_share": quick / likes if likes else None,
        "fan_activity": {"timezone": "UTC", "grid": grid},
        "interest_preferences": preferences,
        "tool_effect": {
            "with_tools": no_tools(),
            "without_tools": {
                "videos": 1,
                "plays": plays,
                "interactions": interactions,
                "first_hour_velocity": interactions / plays,
            },
            "lift": None,
        },
    }


def test_counted_world_baseline() -> None:
    world = _counted_world()
    assert creator_figures(world["creator"]) == _counted_world_figures()


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        ("like", {"likes": 0, "quick": 0, "fan_events": 4, "fan_likes": 0}),
        ("comment", {"comments": 0, "fan_events": 4}),
        ("share", {"shares": 0, "fan_events": 4}),
        # the replay's earlier play no longer counts, so it is a first play
        ("play", {"plays": 1, "completed": 0, "replays": 0, "fan_events": 4, "fan_plays": 1}),
        # the follow was gained from the video, and the fan is no longer a follower
        ("follow", {"follows_gained": 0, "fan_events": 0}),
    ],
)
def test_an_uncounted_row_leaves_every_figure(row: str, expected: dict[str, int]) -> None:
    world = _counted_world()
    uncount(world[row])
    assert creator_figures(world["creator"]) == _counted_world_figures(**expected)


def test_a_play_that_starts_counting_makes_a_like_slow() -> None:
    world = _counted_world()
    # a 3-second play that does not count leaves the like quick; once it counts, it is not
    extra = play(world["like"].user, world["clip"], START + 5 * DAY, watched_ms=3_000)
    uncount(extra)
    assert creator_figures(world["creator"])["quick_like_share"] == 1.0
    type(extra).objects.filter(pk=extra.pk).update(counted=True)
    assert creator_figures(world["creator"])["quick_like_share"] == 0.0


# --- first hour -------------------------------------------------------------------------------
def test_first_hour_velocity_counts_until_sixty_minutes_excluded() -> None:
    creator = UserFactory.create()
    viewers = UserFactory.create_batch(4)
    published = START + DAY
    clip = video(creator, published)
    like(viewers[0], clip, published)  # the first instant: in
    comment(viewers[1], clip, published + 59 * MINUTE + 59 * SECOND)  # 59:59: in
    follow(viewers[2], creator, published + 30 * MINUTE, source_video=clip)  # in
    share(viewers[3], clip, published + HOUR)  # 60:00: out
    play(viewers[0], clip, published + 59 * MINUTE + 59 * SECOND)  # in
    play(viewers[1], clip, published + HOUR)  # out
    # a video published before the window: its first hour overlaps the window, yet it is not
    # "published in the window"
    early = video(creator, START - 30 * MINUTE)
    like(viewers[0], early, START + 10 * MINUTE)
    play(viewers[0], early, START + 10 * MINUTE)

    figures = creator_figures(creator)

    assert figures["first_hour_velocity"] == 3.0
    assert figures["tool_effect"]["without_tools"] == {
        "videos": 1,
        "plays": 2,
        "interactions": 4,
        "first_hour_velocity": 3.0,
    }
    # a video published within the window's last hour: its first hour ends at `now`
    late = video(creator, NOW - 10 * MINUTE)
    play(viewers[0], late, NOW - MINUTE)
    like(viewers[0], late, NOW - MINUTE)
    like(viewers[1], late, NOW + MINUTE)  # after now: not yet made
    assert creator_figures(creator)["first_hour_velocity"] == 4 / 2


def test_follows_with_and_without_a_source_video() -> None:
    creator, other_creator = UserFactory.create(), UserFactory.create()
    clip = video(creator, PREVIOUS_START)
    other_clip = video(other_creator, PREVIOUS_START)
    users = UserFactory.create_batch(7)
    follow(users[0], creator, START + DAY, source_video=clip)  # gained from her video
    follow(users[1], creator, START + DAY)  # names no video
    follow(users[2], other_creator, START + DAY, source_video=other_clip)  # someone else's
    follow(users[3], creator, START - DAY, source_video=clip)  # before the window
    follow(users[4], creator, START + DAY, source_video=clip, counted=False)
    # a follow of another creator naming her video (the API refuses it): not hers to gain
    follow(users[5], other_creator, START + DAY, source_video=clip)
    like(users[6], clip, START + DAY)

    figures = creator_figures(creator)

    assert figures["totals"] == {
        "plays": 0,
        "likes": 1,
        "comments": 0,
        "shares": 0,
        "follows_gained": 1,
        "interactions": 2,
    }
    assert figures["interaction_growth_rate"] == 1.0  # the follow before the window: 1 -> 2
    video_figures = video_figures_raw(video_id=clip.pk, days=28, tz="UTC", now=NOW)
    assert video_figures["totals"]["follows_gained"] == 1


# --- fan activity -----------------------------------------------------------------------------
def _fans_of(creator: User, when: datetime) -> tuple[User, User]:
    fan, second_fan = UserFactory.create(), UserFactory.create()
    follow(fan, creator, when)
    follow(second_fan, creator, when)
    return fan, second_fan


def test_fan_activity_in_utc_kolkata_and_kathmandu() -> None:
    # given two followers active anywhere on Chorus, and people whose activity does not count
    creator = UserFactory.create()
    fan, second_fan = _fans_of(creator, START - 10 * DAY)
    not_a_fan, uncounted_fan = UserFactory.create(), UserFactory.create()
    follow(uncounted_fan, creator, START - DAY, counted=False)
    late_fan = UserFactory.create()
    follow(late_fan, creator, NOW + SECOND)  # follows after now
    elsewhere = video(UserFactory.create(), PREVIOUS_START)
    own = video(creator, PREVIOUS_START)
    # Monday 2026-04-13 18:20 UTC = 23:50 in Kolkata = Tuesday 00:05 in Kathmandu
    like(fan, elsewhere, datetime(2026, 4, 13, 18, 20, tzinfo=UTC))
    # Monday 18:10 UTC = 23:40 Kolkata = 23:55 Kathmandu
    play(fan, own, datetime(2026, 4, 13, 18, 10, tzinfo=UTC))
    # Sunday 2026-04-12 23:59 UTC = Monday 05:29 Kolkata = Monday 05:44 Kathmandu
    comment(second_fan, elsewhere, datetime(2026, 4, 12, 23, 59, tzinfo=UTC))
    # Tuesday 2026-04-14 00:00 UTC = 05:30 Kolkata = 05:45 Kathmandu
    share(second_fan, own, datetime(2026, 4, 14, 0, 0, tzinfo=UTC))
    # not counted in fan activity
    like(fan, own, datetime(2026, 4, 14, 9, 0, tzinfo=UTC), counted=False)
    play(fan, own, START - SECOND)  # before the window
    like(not_a_fan, own, datetime(2026, 4, 14, 9, 0, tzinfo=UTC))
    like(uncounted_fan, own, datetime(2026, 4, 14, 9, 0, tzinfo=UTC))
    like(late_fan, own, datetime(2026, 4, 14, 9, 0, tzinfo=UTC))
    comment_like(fan, comment(not_a_fan, own, START + DAY), datetime(2026, 4, 14, 9, tzinfo=UTC))
    follow(
        fan, UserFactory.create(), datetime(2026, 4, 14, 9, tzinfo=UTC)
    )  # follows are not events

    def grid(tz: str) -> dict[tuple[int, int], int]:
        figures = creator_figures(creator, tz=tz)
        assert figures["fan_activity"]["timezone"] == tz
        return cells(figures["fan_activity"]["grid"])

    assert grid("UTC") == {(0, 18): 2, (6, 23): 1, (1, 0): 1}
    assert grid("Asia/Kolkata") == {(0, 23): 2, (0, 5): 1, (1, 5): 1}
    assert grid("Asia/Kathmandu") == {(1, 0): 1, (0, 23): 1, (0, 5): 1, (1, 5): 1}

    # the video's own fan activity: the followers' events on this video only
    video_figures = video_figures_raw(video_id=own.pk, days=28, tz="Asia/Kathmandu", now=NOW)
    assert video_figures["fan_activity"]["timezone"] == "Asia/Kathmandu"
    assert cells(video_figures["fan_activity"]["grid"]) == {(0, 23): 1, (1, 5): 1}


def test_fan_activity_across_berlin_daylight_saving_changes() -> None:
    creator = UserFactory.create()
    fan, second_fan = _fans_of(creator, datetime(2026, 1, 1, tzinfo=UTC))
    elsewhere = video(UserFactory.create(), datetime(2026, 1, 1, tzinfo=UTC))
    # Sunday 2026-03-29: 02:00 CET becomes 03:00 CEST at 01:00 UTC; local 02:xx never happens
    like(fan, elsewhere, datetime(2026, 3, 29, 0, 30, tzinfo=UTC))  # 01:30 CET
    like(second_fan, elsewhere, datetime(2026, 3, 29, 1, 30, tzinfo=UTC))  # 03:30 CEST
    play(fan, elsewhere, datetime(2026, 3, 29, 0, 59, 59, tzinfo=UTC))  # 01:59:59 CET
    play(fan, elsewhere, datetime(2026, 3, 29, 1, 0, tzinfo=UTC))  # 03:00 CEST
    # Sunday 2026-10-25: 03:00 CEST becomes 02:00 CET at 01:00 UTC; local 02:xx happens twice
    comment(fan, elsewhere, datetime(2026, 10, 25, 0, 30, tzinfo=UTC))  # 02:30 CEST
    comment(fan, elsewhere, datetime(2026, 10, 25, 1, 30, tzinfo=UTC))  # 02:30 CET
    share(second_fan, elsewhere, datetime(2026, 10, 25, 2, 0, tzinfo=UTC))  # 03:00 CET
    # Saturday 2026-10-24 22:30 UTC = Sunday 00:30 CEST
    share(second_fan, elsewhere, datetime(2026, 10, 24, 22, 30, tzinfo=UTC))

    spring = creator_figures(
        creator, days=7, tz="Europe/Berlin", now=datetime(2026, 4, 1, tzinfo=UTC)
    )
    assert cells(spring["fan_activity"]["grid"]) == {(6, 1): 2, (6, 3): 2}
    autumn = creator_figures(
        creator, days=7, tz="Europe/Berlin", now=datetime(2026, 10, 28, tzinfo=UTC)
    )
    assert cells(autumn["fan_activity"]["grid"]) == {(6, 0): 1, (6, 2): 2, (6, 3): 1}
    autumn_utc = creator_figures(creator, days=7, tz="UTC", now=datetime(2026, 10, 28, tzinfo=UTC))
    assert cells(autumn_utc["fan_activity"]["grid"]) == {
        (6, 0): 1,
        (6, 1): 1,
        (6, 2): 1,
        (5, 22): 1,
    }


def test_fan_activity_across_new_york_daylight_saving_changes() -> None:
    creator = UserFactory.create()
    fan, _ = _fans_of(creator, datetime(2026, 1, 1, tzinfo=UTC))
    elsewhere = video(UserFactory.create(), datetime(2026, 1, 1, tzinfo=UTC))
    # Sunday 2026-03-08: 02:00 EST becomes 03:00 EDT at 07:00 UTC
    like(fan, elsewhere, datetime(2026, 3, 8, 6, 30, tzinfo=UTC))  # Sunday 01:30 EST
    play(fan, elsewhere, datetime(2026, 3, 8, 7, 30, tzinfo=UTC))  # Sunday 03:30 EDT
    # Tuesday 03:00 UTC is Monday 23:00 EDT (22:00 had it still been EST)
    play(fan, elsewhere, datetime(2026, 3, 10, 3, 0, tzinfo=UTC))
    # Sunday 2026-11-01: 02:00 EDT becomes 01:00 EST at 06:00 UTC
    comment(fan, elsewhere, datetime(2026, 11, 1, 5, 30, tzinfo=UTC))  # 01:30 EDT
    comment(fan, elsewhere, datetime(2026, 11, 1, 6, 30, tzinfo=UTC))  # 01:30 EST
    # Monday 2026-11-02 04:59 UTC = Sunday 23:59 EST
    share(fan, elsewhere, datetime(2026, 11, 2, 4, 59, tzinfo=UTC))

    spring = creator_figures(
        creator, days=7, tz="America/New_York", now=datetime(2026, 3, 12, tzinfo=UTC)
    )
    assert cells(spring["fan_activity"]["grid"]) == {(6, 1): 1, (6, 3): 1, (0, 23): 1}
    autumn = creator_figures(
        creator, days=7, tz="America/New_York", now=datetime(2026, 11, 4, tzinfo=UTC)
    )
    assert cells(autumn["fan_activity"]["grid"]) == {(6, 1): 2, (6, 23): 1}


# --- interest preferences ---------------------------------------------------------------------
def test_interest_preferences_order_and_top_ten() -> None:
    creator = UserFactory.create()
    followers = UserFactory.create_batch(4)
    for follower in followers:
        follow(follower, creator, START - DAY)
    stranger = UserFactory.create()
    # hashtag: (follower plays, follower likes) in the window
    wanted = {
        "zeta": (1, 3),
        "alpha": (5, 2),
        "beta": (2, 2),
        "delta": (3, 1),
        "eps": (1, 1),
        "Gamma": (1, 1),  # code point order: "Gamma" < "eps" < "gamma"
        "gamma": (1, 1),
        "theta": (0, 1),  # liked, never played: like_rate null
        "eta": (4, 0),
        "iota": (2, 0),
        "kappa": (1, 0),  # eleventh and twelfth: cut
        "lambda": (1, 0),
    }
    for name, (plays, likes) in wanted.items():
        tagged = video(UserFactory.create(), PREVIOUS_START, hashtags=[name])
        for index in range(plays):
            play(followers[index % 4], tagged, START + DAY)
        for follower in followers[:likes]:
            like(follower, tagged, START + DAY)
        # what does not count: strangers, uncounted rows, rows outside the window
        play(stranger, tagged, START + DAY)
        like(stranger, tagged, START + DAY)
        play(followers[0], tagged, START - SECOND)
        play(followers[0], tagged, START + DAY, counted=False)
    busy = video(UserFactory.create(), PREVIOUS_START, hashtags=["mu"])
    for _ in range(9):
        play(stranger, busy, START + DAY)

    preferences = creator_figures(creator)["interest_preferences"]

    assert preferences == [
        {"hashtag": "zeta", "plays": 1, "likes": 3, "like_rate": 3.0},
        {"hashtag": "alpha", "plays": 5, "likes": 2, "like_rate": 0.4},
        {"hashtag": "beta", "plays": 2, "likes": 2, "like_rate": 1.0},
        {"hashtag": "delta", "plays": 3, "likes": 1, "like_rate": 1 / 3},
        {"hashtag": "Gamma", "plays": 1, "likes": 1, "like_rate": 1.0},
        {"hashtag": "eps", "plays": 1, "likes": 1, "like_rate": 1.0},
        {"hashtag": "gamma", "plays": 1, "likes": 1, "like_rate": 1.0},
        {"hashtag": "theta", "plays": 0, "likes": 1, "like_rate": None},
        {"hashtag": "eta", "plays": 4, "likes": 0, "like_rate": 0.0},
        {"hashtag": "iota", "plays": 2, "likes": 0, "like_rate": 0.0},
    ]


# --- tool effect ------------------------------------------------------------------------------
def _activity(clip: Any, *, first_hour: tuple[int, int], later: tuple[int, int]) -> None:
    """(plays, interactions) in the video's first hour and after it, each by a new user."""
    for offset, (plays, interactions) in ((10 * MINUTE, first_hour), (2 * HOUR, later)):
        for _ in range(plays):
            play(UserFactory.create(), clip, clip.created_at + offset)
        for _ in range(interactions):
            like(UserFactory.create(), clip, clip.created_at + offset)


def test_tool_effect_two_kinds_against_none() -> None:
    creator = UserFactory.create()
    published = START + DAY
    two_kinds = video(creator, published)
    sticker(two_kinds, Sticker.Kind.POLL, published, closes_at=published + DAY)
    sticker(two_kinds, Sticker.Kind.QUIZ, published + 2 * HOUR)
    sticker(two_kinds, Sticker.Kind.UNLOCK, published, state=Sticker.State.CANCELED)
    _activity(two_kinds, first_hour=(2, 3), later=(1, 1))
    one_kind = video(creator, published)  # two polls are one kind: in neither group
    sticker(one_kind, Sticker.Kind.POLL, published, closes_at=published + DAY)
    sticker(one_kind, Sticker.Kind.POLL, published, closes_at=published + DAY)
    _activity(one_kind, first_hour=(1, 1), later=(0, 0))
    one_live_kind = video(creator, published)  # a poll and a canceled quiz: one kind
    sticker(one_live_kind, Sticker.Kind.POLL, published, closes_at=published + DAY)
    sticker(one_live_kind, Sticker.Kind.QUIZ, published, state=Sticker.State.CANCELED)
    none = video(creator, published)
    _activity(none, first_hour=(1, 1), later=(1, 0))
    only_canceled = video(creator, published)  # canceled and moderated stickers: none
    sticker(only_canceled, Sticker.Kind.POLL, published, state=Sticker.State.CANCELED)
    sticker(only_canceled, Sticker.Kind.QUIZ, published, state=Sticker.State.MODERATED)
    _activity(only_canceled, first_hour=(3, 0), later=(0, 0))
    old = video(creator, START - DAY)  # published before the window
    sticker(old, Sticker.Kind.POLL, START - DAY, closes_at=START)
    sticker(old, Sticker.Kind.UNLOCK, START - DAY)
    _activity(old, first_hour=(1, 1), later=(1, 1))

    figures = creator_figures(creator)

    assert figures["tool_effect"] == {
        "with_tools": {"videos": 1, "plays": 3, "interactions": 4, "first_hour_velocity": 1.5},
        "without_tools": {"videos": 2, "plays": 5, "interactions": 1, "first_hour_velocity": 0.25},
        "lift": 6.0,
    }
    # every video published in the window, whatever its stickers: (3 + 1 + 1) / (2 + 1 + 1 + 3)
    assert figures["first_hour_velocity"] == 5 / 7


def test_tool_effect_lift_is_null_without_a_velocity_to_compare() -> None:
    creator = UserFactory.create()
    published = START + DAY
    with_tools = video(creator, published)
    sticker(with_tools, Sticker.Kind.POLL, published, closes_at=published + DAY)
    sticker(with_tools, Sticker.Kind.UNLOCK, published)
    _activity(with_tools, first_hour=(1, 1), later=(0, 0))
    without_tools = video(creator, published)
    _activity(without_tools, first_hour=(2, 0), later=(0, 0))

    figures = creator_figures(creator)

    assert figures["tool_effect"]["without_tools"]["first_hour_velocity"] == 0.0
    assert figures["tool_effect"]["lift"] is None  # with / 0
    # a sticker added after now does not count yet
    sticker(without_tools, Sticker.Kind.POLL, NOW + SECOND)
    assert creator_figures(creator)["tool_effect"]["without_tools"]["videos"] == 1


# --- one video --------------------------------------------------------------------------------
def test_video_figures_and_sticker_participants_of_each_kind() -> None:
    # given a video published before the window, with a sticker of every kind
    creator = UserFactory.create()
    published = START - 3 * DAY
    clip = video(creator, published)
    users = UserFactory.create_batch(6)
    created = START + DAY
    poll = sticker(clip, Sticker.Kind.POLL, created, closes_at=created + DAY, options=["A", "B"])
    ending = sticker(
        clip,
        Sticker.Kind.ENDING,
        created,
        closes_at=NOW + DAY,
        options=[
            {"label": "X", "payload": {"text": "x"}},
            {"label": "Y", "payload": {"text": "y"}},
        ],
    )
    quiz = sticker(
        clip,
        Sticker.Kind.QUIZ,
        created,
        checkpoints=[
            {"at_ms": 1000, "question": "One?", "options": ["a", "b"], "correct": [0]},
            {"at_ms": 2000, "question": "Two?", "options": ["a", "b"], "correct": [1]},
        ],
    )
    unlock = sticker(clip, Sticker.Kind.UNLOCK, created, payload={"text": "tip"})
    pick_closes = created + DAY
    pick = sticker(clip, Sticker.Kind.COMMENT_PICK, created, closes_at=pick_closes)
    canceled = sticker(clip, Sticker.Kind.POLL, created, state=Sticker.State.CANCELED)
    future = sticker(clip, Sticker.Kind.POLL, NOW + SECOND)  # created after now: absent

    poll_option = poll.options.first()
    assert poll_option is not None
    VoteFactory.create(sticker=poll, user=users[0], option_ids=[poll_option.pk], created_at=created)
    VoteFactory.create(sticker=poll, user=users[1], option_ids=[poll_option.pk], created_at=created)
    VoteFactory.create(
        sticker=poll, user=users[2], option_ids=[poll_option.pk], created_at=created, counted=False
    )
    VoteFactory.create(
        sticker=poll, user=users[3], option_ids=[poll_option.pk], created_at=NOW + SECOND
    )  # after now
    ending_option = ending.options.first()
    assert ending_option is not None
    VoteFactory.create(
        sticker=ending, user=users[0], option_ids=[ending_option.pk], created_at=created
    )
    answer(users[0], quiz, 0, created)
    answer(users[0], quiz, 1, created)  # two answers, one answerer
    answer(users[1], quiz, 0, created)
    uncount(answer(users[2], quiz, 0, created))
    # likers of the video unlock (a like from before the sticker included)
    like(users[0], clip, published + MINUTE)
    like(users[1], clip, START + 2 * DAY)
    like(users[2], clip, START + 2 * DAY)
    like(users[3], clip, START + 2 * DAY, counted=False)
    # comment likes under the video before the pick closed
    first, second = comment(users[4], clip, created), comment(users[5], clip, created)
    hidden = comment(users[5], clip, created, counted=False)
    comment_like(users[0], first, created + HOUR)
    comment_like(users[0], second, created + HOUR)  # two likes, one participant
    comment_like(users[1], first, pick_closes - SECOND)
    comment_like(users[2], first, pick_closes)  # at the close: too late
    comment_like(users[3], first, created + HOUR, counted=False)
    comment_like(users[4], hidden, created + HOUR)  # on an uncounted comment
    comment_like(users[5], first, created + HOUR)

    # when
    figures = video_figures_raw(video_id=clip.pk, days=28, tz="UTC", now=NOW)

    # then
    assert figures["stickers"] == [
        {"id": poll.pk, "kind": "poll", "state": "closed", "participants": 2},
        {"id": ending.pk, "kind": "ending", "state": "open", "participants": 1},
        {"id": quiz.pk, "kind": "quiz", "state": "open", "participants": 2},
        {"id": unlock.pk, "kind": "unlock", "state": "open", "participants": 3},
        {"id": pick.pk, "kind": "comment_pick", "state": "closed", "participants": 3},
        {"id": canceled.pk, "kind": "poll", "state": "canceled", "participants": 0},
    ]
    assert future.pk not in {entry["id"] for entry in figures["stickers"]}
    assert set(figures) == {
        "window",
        "totals",
        "interaction_rate",
        "interaction_growth_rate",
        "first_hour_velocity",
        "completion_rate",
        "replay_rate",
        "effective_comment_share",
        "quick_like_share",
        "fan_activity",
        "first_hour",
        "stickers",
    }
    assert figures["totals"] == {
        "plays": 0,
        "likes": 2,
        "comments": 2,
        "shares": 0,
        "follows_gained": 0,
        "interactions": 4,
    }
    # published before the window: no windowed first-hour figure, its own first hour stands
    assert figures["first_hour_velocity"] is None
    assert figures["first_hour"] == {"plays": 0, "interactions": 1, "velocity": None}
    assert Vote.objects.filter(sticker=poll).count() == 4


def test_video_first_hour_and_window_figures() -> None:
    creator = UserFactory.create()
    viewers = UserFactory.create_batch(3)
    published = START + 5 * DAY
    clip = video(creator, published)
    sibling = video(creator, published)  # the creator's other video: not in this one's figures
    play(viewers[0], clip, published + MINUTE, watched_ms=1_000, completed=True)
    play(viewers[0], clip, published + 2 * MINUTE, watched_ms=1_000)  # a replay
    play(viewers[1], clip, published + 2 * HOUR)
    like(viewers[0], clip, published + 3 * MINUTE)  # quick: 2 s watched in all
    like(viewers[1], clip, published + 2 * HOUR)
    follow(viewers[0], creator, published + 4 * MINUTE, source_video=clip)
    share(viewers[2], clip, published + 3 * HOUR)
    comment(viewers[2], clip, published + 3 * HOUR, "🔥🔥🔥")
    play(viewers[2], sibling, published + MINUTE)
    like(viewers[2], sibling, published + MINUTE)

    figures = video_figures_raw(video_id=clip.pk, days=28, tz="Europe/Berlin", now=NOW)

    assert figures == {
        "window": WINDOW,
        "totals": {
            "plays": 3,
            "likes": 2,
            "comments": 1,
            "shares": 1,
            "follows_gained": 1,
            "interactions": 5,
        },
        "interaction_rate": 5 / 3,
        "interaction_growth_rate": None,
        "first_hour_velocity": 1.0,
        "completion_rate": 1 / 3,
        "replay_rate": 1 / 3,
        "effective_comment_share": 0.0,
        "quick_like_share": 0.5,
        # only viewers[0] follows the creator: two plays and a like, Monday 2026-03-23 12:0x
        # UTC = 13:0x CET (summer time starts on the 29th)
        "fan_activity": {
            "timezone": "Europe/Berlin",
            "grid": [
                [0] * 13 + [3] + [0] * 10,
                *EMPTY_GRID[1:],
            ],
        },
        "first_hour": {"plays": 2, "interactions": 2, "velocity": 1.0},
        "stickers": [],
    }
    # a week later, the window no longer holds its publication
    week = video_figures_raw(video_id=clip.pk, days=7, tz="UTC", now=NOW)
    assert week["first_hour_velocity"] is None
    assert week["first_hour"] == {"plays": 2, "interactions": 2, "velocity": 1.0}


@pytest.mark.django_db(transaction=True)
def test_outside_a_transaction_the_figures_come_from_one_read_only_snapshot() -> None:
    # (the other tests run inside the test's transaction, whose snapshot the oracle uses as it
    # is; here there is none, and the oracle opens a REPEATABLE READ, READ ONLY one)
    creator = UserFactory.create()
    clip = video(creator, START + DAY)
    like(UserFactory.create(), clip, START + DAY + MINUTE)
    play(UserFactory.create(), clip, START + DAY + MINUTE)

    assert not connection.in_atomic_block
    figures = creator_figures(creator)
    video_document = video_figures_raw(video_id=clip.pk, days=28, tz="UTC", now=NOW)

    assert not connection.in_atomic_block
    assert figures["totals"]["likes"] == video_document["totals"]["likes"] == 1
    assert figures["first_hour_velocity"] == video_document["first_hour"]["velocity"] == 1.0
