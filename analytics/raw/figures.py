"""Every creator-centre figure computed straight from the interaction tables (SPEC §3).

This is the oracle: the rollups, their reconciliation and the tests compare with it. It scans raw
rows (bounded by the window, the followers and the creator's videos), so the API does not call it
per request. Each figure is one named statement of `analytics.raw.statements` (or a part of
one); Python only divides, shapes the documents and, for effective comments, applies the
Unicode rules of `analytics.comments` to the window's comments.

Rates are `numerator / denominator` of two exact integer counts as a Python float (the double
nearest the exact quotient, no further rounding), `None` when the denominator is 0; `lift` is
the double nearest the exact ratio of the two velocities. docs/analytics.md defines each figure.
"""

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from fractions import Fraction
from typing import Any

from django.db import connection, transaction

from analytics.comments import CommentRow, effective_comment_ids
from analytics.parameters import Window, check_timezone, window_ending
from analytics.raw import statements as sql
from engagement.models import Video
from polls.state import effective_state

INTERACTION_KINDS = ("likes", "comments", "shares", "follows_gained")


def ratio(numerator: int, denominator: int) -> float | None:
    """The share `numerator / denominator`; `None` for a zero denominator (SPEC §3)."""
    return None if denominator == 0 else numerator / denominator


def _rows(statement: str, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        return list(cursor.fetchall())


def _row(statement: str, params: Mapping[str, Any]) -> tuple[Any, ...]:
    rows = _rows(statement, params)
    assert len(rows) == 1, statement
    return rows[0]


@contextmanager
def _one_snapshot() -> Iterator[None]:
    """Run every statement on one snapshot, so the figures agree with each other (a like
    committed between two statements is in all of them or none). Inside a caller's transaction
    (tests, a reconciliation holding locks) its snapshot is used as it is."""
    if connection.in_atomic_block:
        yield
        return
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        yield


# --- counts -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class InteractionCounts:
    likes: int = 0
    comments: int = 0
    shares: int = 0
    follows_gained: int = 0

    @property
    def interactions(self) -> int:
        return self.likes + self.comments + self.shares + self.follows_gained


def interaction_counts(
    *, scope: str, params: Mapping[str, Any], window: Window
) -> tuple[InteractionCounts, InteractionCounts]:
    """Counted interactions in the window and in the window of the same length before it."""
    rows = _rows(
        sql.interactions_by_kind(scope),
        {**params, "since": window.previous_start, "start": window.start, "end": window.end},
    )
    current = {kind: in_window for kind, in_window, _ in rows}
    previous = {kind: in_previous for kind, _, in_previous in rows}
    return InteractionCounts(**current), InteractionCounts(**previous)


@dataclass(frozen=True)
class PlayCounts:
    plays: int
    completed: int
    replays: int


def play_counts(*, scope: str, params: Mapping[str, Any], window: Window) -> PlayCounts:
    plays, completed, replays = _row(
        sql.plays(scope), {**params, "since": window.start, "end": window.end}
    )
    return PlayCounts(plays=plays, completed=completed, replays=replays)


def quick_like_count(*, scope: str, params: Mapping[str, Any], window: Window) -> tuple[int, int]:
    """(quick likes, likes) in the window."""
    window_params = {**params, "since": window.start, "end": window.end}
    likes, quick = _row(sql.quick_likes(scope), window_params)
    return quick, likes


def effective_comment_count(
    *, scope: str, params: Mapping[str, Any], window: Window
) -> tuple[int, int]:
    """(effective comments, comments) in the window.

    The window's comments and every earlier counted comment of their authors are read; the
    Unicode rules run in Python (`analytics.comments`): work bounded by the commenters' own
    comments, acceptable for the oracle, which the API does not call per request.
    """
    comments = [
        CommentRow(*row)
        for row in _rows(
            sql.comments_in_window(scope), {**params, "since": window.start, "end": window.end}
        )
    ]
    if not comments:
        return 0, 0
    users = sorted({comment.user_id for comment in comments})
    history_rows = _rows(sql.COMMENTS_OF_USERS, {"users": users, "end": window.end})
    history = [CommentRow(*row) for row in history_rows]
    effective = effective_comment_ids(comments=comments, history=history)
    return len(effective), len(comments)


@dataclass(frozen=True)
class FirstHourCounts:
    videos: int = 0
    plays: int = 0
    interactions: int = 0
    first_hour_plays: int = 0
    first_hour_interactions: int = 0

    def __add__(self, other: "FirstHourCounts") -> "FirstHourCounts":
        return FirstHourCounts(
            videos=self.videos + other.videos,
            plays=self.plays + other.plays,
            interactions=self.interactions + other.interactions,
            first_hour_plays=self.first_hour_plays + other.first_hour_plays,
            first_hour_interactions=self.first_hour_interactions + other.first_hour_interactions,
        )

    @property
    def velocity(self) -> float | None:
        return ratio(self.first_hour_interactions, self.first_hour_plays)


def first_hour_counts_by_tools(
    *, scope: str, params: Mapping[str, Any], published_since: datetime, end: datetime
) -> dict[str, FirstHourCounts]:
    """Videos of the scope published in `[published_since, end)`, by `with_tools`, `one_kind`
    and `without_tools` (classes with no video are absent)."""
    rows = _rows(
        sql.first_hour_by_tools(scope),
        {
            **params,
            "since": published_since,
            "end": end,
            "uncounted_sticker_states": sql.UNCOUNTED_STICKER_STATES,
        },
    )
    return {
        tools: FirstHourCounts(
            videos=videos,
            plays=plays,
            interactions=interactions,
            first_hour_plays=first_hour_plays,
            first_hour_interactions=first_hour_interactions,
        )
        for tools, videos, plays, interactions, first_hour_plays, first_hour_interactions in rows
    }


def _all_classes(counts: Mapping[str, FirstHourCounts]) -> FirstHourCounts:
    total = FirstHourCounts()
    for class_counts in counts.values():
        total += class_counts
    return total


# --- figures ----------------------------------------------------------------------------------
def growth_rate(current: int, previous: int) -> float | None:
    return ratio(current - previous, previous)


def lift(with_tools: FirstHourCounts, without_tools: FirstHourCounts) -> float | None:
    """with / without first-hour velocity, as the double nearest the exact rational ratio;
    `None` when either velocity is undefined or the one without tools is 0."""
    if not with_tools.first_hour_plays or not without_tools.first_hour_plays:
        return None
    if not without_tools.first_hour_interactions:
        return None
    return float(
        Fraction(
            with_tools.first_hour_interactions * without_tools.first_hour_plays,
            with_tools.first_hour_plays * without_tools.first_hour_interactions,
        )
    )


def fan_activity(
    *, creator_id: int, window: Window, tz: str, video_id: int | None = None
) -> dict[str, Any]:
    """`{timezone, grid}`: 7 rows (Monday first) of 24 hourly counts in `tz`."""
    rows = _rows(
        sql.fan_activity(one_video=video_id is not None),
        {
            "creator": creator_id,
            "video": video_id,
            "since": window.start,
            "end": window.end,
            "tz": tz,
        },
    )
    grid = [[0] * 24 for _ in range(7)]
    for weekday, hour, events in rows:  # at most 168 cells
        grid[weekday][hour] = events
    return {"timezone": tz, "grid": grid}


def interest_preferences(*, creator_id: int, window: Window) -> list[dict[str, Any]]:
    rows = _rows(
        sql.INTEREST_PREFERENCES,
        {"creator": creator_id, "since": window.start, "end": window.end},
    )
    return [
        {"hashtag": hashtag, "plays": plays, "likes": likes, "like_rate": ratio(likes, plays)}
        for hashtag, plays, likes in rows
    ]


def _tool_group(counts: FirstHourCounts) -> dict[str, Any]:
    return {
        "videos": counts.videos,
        "plays": counts.plays,
        "interactions": counts.interactions,
        "first_hour_velocity": counts.velocity,
    }


def tool_effect(by_tools: Mapping[str, FirstHourCounts]) -> dict[str, Any]:
    with_tools = by_tools.get("with_tools", FirstHourCounts())
    without_tools = by_tools.get("without_tools", FirstHourCounts())
    return {
        "with_tools": _tool_group(with_tools),
        "without_tools": _tool_group(without_tools),
        "lift": lift(with_tools, without_tools),
    }


def stickers(*, video_id: int, window: Window) -> list[dict[str, Any]]:
    rows: Sequence[tuple[Any, ...]] = _rows(sql.STICKERS, {"video": video_id, "end": window.end})
    return [
        {
            "id": sticker_id,
            "kind": kind,
            # The state at `now`, as the API shows it (scheduled/open/closed follow the clock).
            "state": str(
                effective_state(state=state, opens_at=opens_at, closes_at=closes_at, now=window.end)
            ),
            "participants": participants,
        }
        for sticker_id, kind, state, opens_at, closes_at, participants in rows
    ]


def _shared_figures(
    *, scope: str, params: Mapping[str, Any], window: Window, by_tools: dict[str, FirstHourCounts]
) -> dict[str, Any]:
    """The figures a creator's and a video's documents share, in SPEC order."""
    current, previous = interaction_counts(scope=scope, params=params, window=window)
    play = play_counts(scope=scope, params=params, window=window)
    quick, likes = quick_like_count(scope=scope, params=params, window=window)
    effective, comments = effective_comment_count(scope=scope, params=params, window=window)
    return {
        "window": window.as_document(),
        "totals": {
            "plays": play.plays,
            "likes": current.likes,
            "comments": current.comments,
            "shares": current.shares,
            "follows_gained": current.follows_gained,
            "interactions": current.interactions,
        },
        "interaction_rate": ratio(current.interactions, play.plays),
        "interaction_growth_rate": growth_rate(current.interactions, previous.interactions),
        "first_hour_velocity": _all_classes(by_tools).velocity,
        "completion_rate": ratio(play.completed, play.plays),
        "replay_rate": ratio(play.replays, play.plays),
        "effective_comment_share": ratio(effective, comments),
        "quick_like_share": ratio(quick, likes),
    }


def creator_figures_raw(*, creator_id: int, days: int, tz: str, now: datetime) -> dict[str, Any]:
    """`GET creators/me/analytics` for `creator_id` at `now`, without `as_of`.

    Raises `analytics.parameters.InvalidAnalyticsParameter` (a ValueError) for a `days` other
    than 7, 28 or 90 and `UnknownTimeZone` for a `tz` that is not an IANA zone.
    """
    window = window_ending(days=days, now=now)
    check_timezone(tz)
    scope, params = sql.CREATOR_SCOPE, {"creator": creator_id}
    with _one_snapshot():
        by_tools = first_hour_counts_by_tools(
            scope=scope, params=params, published_since=window.start, end=window.end
        )
        return {
            **_shared_figures(scope=scope, params=params, window=window, by_tools=by_tools),
            "fan_activity": fan_activity(creator_id=creator_id, window=window, tz=tz),
            "interest_preferences": interest_preferences(creator_id=creator_id, window=window),
            "tool_effect": tool_effect(by_tools),
        }


def video_figures_raw(*, video_id: int, days: int, tz: str, now: datetime) -> dict[str, Any]:
    """`GET videos/{id}/analytics` for `video_id` at `now`, without `as_of`.

    `first_hour_velocity` is the windowed figure (`None` unless the video was published in the
    window); `first_hour` is the video's own first hour, wherever it lies. Raises
    `Video.DoesNotExist` for an unknown video and the parameter errors of `creator_figures_raw`.
    """
    window = window_ending(days=days, now=now)
    check_timezone(tz)
    scope, params = sql.VIDEO_SCOPE, {"video": video_id}
    with _one_snapshot():
        creator_id, published_at = (
            Video.objects.filter(pk=video_id).values_list("creator_id", "created_at").get()
        )
        in_window = first_hour_counts_by_tools(
            scope=scope, params=params, published_since=window.start, end=window.end
        )
        own = _all_classes(
            first_hour_counts_by_tools(
                scope=scope,
                params=params,
                published_since=published_at,
                end=window.end,
            )
        )
        return {
            **_shared_figures(scope=scope, params=params, window=window, by_tools=in_window),
            "fan_activity": fan_activity(
                creator_id=creator_id, window=window, tz=tz, video_id=video_id
            ),
            "first_hour": {
                "plays": own.first_hour_plays,
                "interactions": own.first_hour_interactions,
                "velocity": own.velocity,
            },
            "stickers": stickers(video_id=video_id, window=window),
        }
