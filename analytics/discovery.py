"""Reads for discovery: the hot list and the trending hashtags (SPEC §3, docs/discovery.md).

Both read only the derived tables the analytics consumers keep (analytics.services.heat and
.trending) and say, in `as_of`, up to when committed interactions are in them.
"""

import math
from dataclasses import dataclass
from datetime import datetime

from django.db import connection

from analytics.models import VideoHeat
from analytics.parameters import iso_utc
from analytics.services.heat import heat_as_of
from analytics.services.trending import (
    HOUR,
    MAX_HOURS,
    MIN_DISTINCT_USERS,
    PRIOR,
    hour_ceil,
    hour_floor,
    trending_as_of,
)
from analytics.tables import HASHTAG, TAG_HOUR, TAG_SLICE
from core.exceptions import InvalidInput
from engagement import selectors as engagement_selectors
from engagement.models import Video

MAX_LIMIT = 100
DEFAULT_LIMIT = 20
DEFAULT_HOURS = 24


def _whole_number(name: str, raw: str | None, *, default: int, low: int, high: int) -> int:
    """A query parameter that must be an integer in [low, high] (anything else is a 400)."""
    if raw is None:
        return default
    # isdigit() alone accepts non-ASCII digits; 3 digits bound what int() is given.
    if raw.isascii() and raw.isdigit() and len(raw) <= 3 and low <= int(raw) <= high:
        return int(raw)
    message = f"Must be an integer from {low} to {high}."
    raise InvalidInput(
        f"Invalid input: {name}: must be an integer from {low} to {high}.", errors={name: [message]}
    )


def check_limit(raw: str | None) -> int:
    return _whole_number("limit", raw, default=DEFAULT_LIMIT, low=1, high=MAX_LIMIT)


def check_hours(raw: str | None) -> int:
    return _whole_number("hours", raw, default=DEFAULT_HOURS, low=1, high=MAX_HOURS)


# --- hot ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class HotList:
    as_of: datetime
    videos: list[Video]  # with counts (viewer_liked False) and `.heat_value`


def hot_list(*, limit: int) -> HotList:
    """The `limit` hottest videos with a counted like: heat, then the newer video, then the
    higher id (the `videoheat_hot_idx` index). A fixed number of queries for any limit.
    Every `viewer_liked` is False: the API stores this list for everyone and marks each
    viewer's own likes (`engagement.selectors.videos_liked_by`)."""
    as_of = heat_as_of()
    ranked = list(
        VideoHeat.objects.filter(points__gte=1)
        .order_by("-heat", "-published_at", "-video_id")
        .values_list("video_id", "heat")[:limit]
    )
    by_id = {
        video.pk: video
        for video in engagement_selectors.videos_queryset().filter(
            pk__in=[video_id for video_id, _ in ranked]
        )
    }
    videos = []
    for video_id, heat in ranked:
        video = by_id.get(video_id)
        if video is not None:  # deleted since the heat row was read
            video.heat_value = heat  # type: ignore[attr-defined]
            videos.append(video)
    engagement_selectors.videos_decorate(videos, viewer=None)
    return HotList(as_of=as_of, videos=videos)


# --- trending -----------------------------------------------------------------------------------

_TRENDING_SQL = f"""
    WITH pieces AS (
        SELECT hashtag_id, interactions, users, hour >= %(start)s AS current FROM {TAG_HOUR}
        WHERE (hour >= %(previous_hours_from)s AND hour < %(previous_hours_to)s)
           OR (hour >= %(hours_from)s AND hour < %(hours_to)s)
        UNION ALL
        SELECT hashtag_id, interactions, users, slice >= %(start)s FROM {TAG_SLICE}
        WHERE (slice >= %(previous_start)s AND slice < %(previous_hours_from)s)
           OR (slice >= %(previous_hours_to)s AND slice < %(start)s)
           OR (slice >= %(start)s AND slice < %(hours_from)s)
           OR (slice >= %(hours_to)s AND slice < %(end)s)
    ),
    totals AS (
        SELECT hashtag_id,
               coalesce(sum(interactions) FILTER (WHERE current), 0)::bigint AS interactions,
               coalesce(sum(interactions) FILTER (WHERE NOT current), 0)::bigint AS previous
        FROM pieces GROUP BY hashtag_id
    ),
    listed AS (
        SELECT p.hashtag_id FROM pieces p CROSS JOIN LATERAL unnest(p.users) AS u(user_id)
        WHERE p.current GROUP BY p.hashtag_id
        HAVING count(DISTINCT u.user_id) >= {MIN_DISTINCT_USERS}
    )
    SELECT h.name, t.interactions, t.previous,
           (t.interactions - t.previous)::double precision
               / sqrt((t.previous + {PRIOR})::double precision) AS score
    FROM totals t
    JOIN listed USING (hashtag_id)
    JOIN {HASHTAG} h ON h.id = t.hashtag_id
    ORDER BY score DESC, t.interactions DESC, h.name
    LIMIT %(limit)s
"""


def trending_window_pieces(*, hours: int, end: datetime) -> dict[str, datetime]:
    """The bounds of the window `[end - hours, end)` and the previous one: whole hours read from
    TagHour, the partial hours at the three edges from TagSlice."""
    start = end - hours * HOUR
    previous_start = start - hours * HOUR
    return {
        "previous_start": previous_start,
        "previous_hours_from": hour_ceil(previous_start),
        "previous_hours_to": hour_floor(start),
        "start": start,
        "hours_from": hour_ceil(start),
        "hours_to": hour_floor(end),
        "end": end,
    }


def score_of(*, interactions: int, previous: int) -> float:
    return (interactions - previous) / math.sqrt(previous + PRIOR)


def trending_document(*, hours: int, limit: int, end: datetime | None = None) -> dict:
    """`GET hashtags/trending`: `end` defaults to the consumer's `as_of` (slice-aligned)."""
    end = trending_as_of() if end is None else end
    bounds = trending_window_pieces(hours=hours, end=end)
    with connection.cursor() as cursor:
        cursor.execute(_TRENDING_SQL, {**bounds, "limit": limit})
        rows = cursor.fetchall()
    return {
        "as_of": iso_utc(end),
        "window": {"hours": hours, "start": iso_utc(bounds["start"]), "end": iso_utc(end)},
        "results": [
            {
                "hashtag": name,
                "interactions": interactions,
                "previous": previous,
                "growth": (interactions - previous) / previous if previous else None,
                "score": score,
            }
            for name, interactions, previous, score in rows
        ],
    }
