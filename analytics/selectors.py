"""The creator-centre documents, read from the rollups (docs/analytics.md, "Rollups").

A read sums the quarter-hour buckets that lie wholly in the window (at most 2 x 90 x 96 rows of
one creator or video) and counts the raw rows of the window's ragged start, `[start, the next
quarter hour)` (and, for the growth rate, the previous window's two ragged ends), with the same
`COUNTS` statement the consumer uses. The bucket holding `now` is read from the rollups: it
holds what the consumer has passed, which is what `as_of` says. Interests are summed from the
day tier (`CreatorHashtagDay`) over the whole UTC days of the window plus the raw rows of the
ragged start `[start, next UTC midnight)`; follower membership of a raw row is one probe of
`fanlink_unique`. A creator read is six statements and a video read six, whatever the history.
"""

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import connection
from django.utils import timezone

from analytics.documents import DocumentKey
from analytics.interest_cells import interest_day_cells
from analytics.parameters import Window, check_timezone, iso_utc, window_ending
from analytics.raw import statements as raw_sql
from analytics.raw.figures import (
    FirstHourCounts,
    _tool_group,
    growth_rate,
    lift,
    ratio,
    stickers,
)
from analytics.services import statements as sql
from analytics.services.consumer import analytics_as_of
from analytics.services.rollups import day_floor
from core.db import without_parallel_workers
from engagement.models import Hashtag, Video

QUARTER = timedelta(minutes=15)
DAY = timedelta(days=1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def quarter_floor(at: datetime) -> datetime:
    return at - (at - _EPOCH) % QUARTER


def quarter_ceil(at: datetime) -> datetime:
    floor = quarter_floor(at)
    return floor if floor == at else floor + QUARTER


def day_ceil(at: datetime) -> datetime:
    floor = day_floor(at)
    return floor if floor == at else floor + DAY


def _rows(statement: str, params: Any) -> list[tuple[Any, ...]]:
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        return list(cursor.fetchall())


def _bounds(window: Window) -> dict[str, Any]:
    return {
        "start": window.start,
        "end": window.end,
        "prev_start": window.previous_start,
        # whole buckets: current [cur, end), previous [prev_from, prev_to)
        "cur": quarter_ceil(window.start),
        "prev_from": quarter_ceil(window.previous_start),
        "prev_to": quarter_floor(window.start),
        # interests: whole days [day_cur, end), minus the day holding end's rows >= end
        "day_cur": day_ceil(window.start),
        "day_end": day_ceil(window.end),
    }


_INTERACTIONS = "likes + comments + shares + follows_gained"


_CURRENT_SUM = "COALESCE(sum({}) FILTER (WHERE bucket >= %(cur)s), 0)"


def _bucket_sums(table: str, key: str) -> str:
    return f"""
        SELECT {", ".join(_CURRENT_SUM.format(n) for n in sql.COUNTERS)},
               COALESCE(sum({_INTERACTIONS})
                   FILTER (WHERE bucket >= %(prev_from)s AND bucket < %(prev_to)s), 0)
        FROM {table}
        WHERE {key} = %(scope)s AND bucket >= %(prev_from)s AND bucket < %(end)s
    """


def _edges(scope: str, *, before: bool) -> str:
    """The counts of the windows' ragged edges, per video of the scope (`sql.edge_counts`,
    found by time), and with `before`, `COUNTS` over `[1970, start)` of each video published
    in the window (what the lifetime totals hold that the window does not). That is normally
    nothing, so only the videos with a stored bucket before `cur` are counted (the rows made
    before `start` lie in such buckets): one index probe per video instead of nine counts."""
    edges = sql.edge_counts(scope)
    if not before:
        return edges
    return f"""
        {edges.rstrip()}
        UNION ALL (
            WITH t (tag, video_id, creator_id, lo, hi) AS (
                SELECT 'before', v.id, v.creator_id, TIMESTAMPTZ '1970-01-01 00:00:00+00',
                       %(start)s::timestamptz
                FROM {sql.VIDEO} v WHERE {scope}
                  AND v.created_at >= %(start)s AND v.created_at < %(end)s
                  AND EXISTS (SELECT 1 FROM {sql.VIDEO_BUCKET} b
                              WHERE b.video_id = v.id AND b.bucket < %(cur)s)
            )
            {sql.COUNTS}
        )
    """


# The creator's follower as the rollups see it: one probe of `fanlink_unique` per row.
def _is_follower(alias: str) -> str:
    return (
        f"EXISTS (SELECT 1 FROM {sql.FAN_LINK} fl"
        f" WHERE fl.user_id = {alias}.user_id AND fl.creator_id = %(creator)s)"
    )


def _follower_edge_events(on_video: str) -> str:
    return " UNION ALL ".join(
        f"""SELECT x.created_at FROM {table} x
            WHERE x.counted AND x.created_at >= %(start)s AND x.created_at < %(cur)s {on_video}
              AND {_is_follower("x")}"""
        for table in (sql.LIKE, sql.COMMENT, sql.SHARE, sql.PLAY)
    )


def _grid(stored: str, edge: str) -> str:
    return f"""
        WITH cells (at, events) AS (
            {stored}
            UNION ALL
            SELECT created_at, 1 FROM ({edge}) e
        ),
        local AS (SELECT at AT TIME ZONE %(tz)s AS at, events FROM cells)
        SELECT extract(isodow FROM at)::int - 1, extract(hour FROM at)::int, sum(events)
        FROM local GROUP BY 1, 2
    """


CREATOR_GRID = _grid(
    f"""SELECT bucket AS at, events FROM {sql.CREATOR_FAN_BUCKET}
        WHERE creator_id = %(creator)s AND bucket >= %(cur)s AND bucket < %(end)s
          AND events <> 0""",
    _follower_edge_events(""),
)

VIDEO_GRID = _grid(
    f"""SELECT bucket AS at, follower_events FROM {sql.VIDEO_BUCKET}
        WHERE video_id = %(video)s AND bucket >= %(cur)s AND bucket < %(end)s
          AND follower_events <> 0""",
    _follower_edge_events("AND x.video_id = %(video)s"),
)


def _follower_plays_and_likes(lo: str, hi: str) -> str:
    """The followers' counted plays and likes made in `[lo, hi)`: (video, created_at, plays,
    likes), one row each."""
    return " UNION ALL ".join(
        f"""SELECT x.video_id, x.created_at, {plays} AS plays, {likes} AS likes FROM {table} x
            WHERE x.counted AND x.created_at >= {lo} AND x.created_at < {hi}
              AND {_is_follower("x")}"""
        for table, plays, likes in ((sql.PLAY, 1, 0), (sql.LIKE, 0, 1))
    )


# The creator's interest cells of one UTC day (`analytics.interest_cells`): per quarter hour and
# hashtag, the followers' plays and likes.
INTEREST_DAY_CELLS = f"""
    SELECT extract(epoch FROM date_bin('15 minutes', x.created_at, %(day)s))::bigint,
           vh.hashtag_id, sum(x.plays)::bigint, sum(x.likes)::bigint
    FROM ({_follower_plays_and_likes("%(day)s", "%(next_day)s")}) x
    JOIN {sql.VIDEO_HASHTAG} vh ON vh.video_id = x.video_id
    GROUP BY 1, 2
"""

# Whole UTC days from the day tier; the ragged first day `[start, day_cur)` from its cells from
# `cur` on (given as arrays) and from the rows of `[start, cur)`. The day holding `end` is read
# from the tier: it holds what the consumer has passed (`as_of`); the rows it holds made at or
# after `end` (none, unless `now` is in the past) are taken off again.
INTERESTS = f"""
    WITH stored AS (
        SELECT hashtag_id, plays, likes FROM {sql.CREATOR_HASHTAG_DAY}
        WHERE creator_id = %(creator)s AND day >= %(day_cur)s AND day < %(end)s
    ),
    head AS (
        SELECT vh.hashtag_id, x.plays, x.likes
        FROM ({_follower_plays_and_likes("%(start)s", "%(cur)s")}) x
        JOIN {sql.VIDEO_HASHTAG} vh ON vh.video_id = x.video_id
        UNION ALL
        SELECT * FROM unnest(%(cell_tags)s::bigint[], %(cell_plays)s::bigint[],
                             %(cell_likes)s::bigint[])
    ),
    tail AS (
        SELECT vh.hashtag_id, -x.plays, -x.likes
        FROM ({_follower_plays_and_likes("%(end)s", "%(day_end)s")}) x
        JOIN {sql.VIDEO_HASHTAG} vh ON vh.video_id = x.video_id
    ),
    summed AS (
        SELECT h.name AS hashtag, sum(s.plays)::bigint AS plays, sum(s.likes)::bigint AS likes
        FROM (SELECT * FROM stored UNION ALL SELECT * FROM head UNION ALL SELECT * FROM tail) s
        JOIN {Hashtag._meta.db_table} h ON h.id = s.hashtag_id
        GROUP BY h.name
    )
    SELECT hashtag, plays, likes FROM summed WHERE plays > 0 OR likes > 0
    ORDER BY likes DESC, plays DESC, hashtag COLLATE "C"
    LIMIT {raw_sql.INTEREST_PREFERENCES_LIMIT}
"""


def _interest_head(creator_id: int, params: dict[str, Any]) -> dict[str, Any]:
    """The parameters of INTERESTS' first day, whose rows it reads up to `cur`: its cells from
    `cur` on (`cur` <= `day_cur`: a midnight is a quarter hour)."""
    start, cur, day_cur = params["start"], params["cur"], params["day_cur"]
    cells: list[tuple[int, int, int, int]] = []
    if cur < day_cur:
        day = day_floor(start)
        cells = interest_day_cells(
            creator_id,
            day,
            lambda: [
                (int(at), int(tag), int(plays), int(likes))
                for at, tag, plays, likes in _rows(
                    INTEREST_DAY_CELLS,
                    {"creator": creator_id, "day": day, "next_day": day + timedelta(days=1)},
                )
            ],
        )
    first = cur.timestamp()
    used = [cell for cell in cells if cell[0] >= first]
    return {
        "cell_tags": [tag for _, tag, _, _ in used],
        "cell_plays": [plays for _, _, plays, _ in used],
        "cell_likes": [likes for _, _, _, likes in used],
    }


PUBLISHED_IN_WINDOW = f"""
    SELECT v.id, COALESCE(t.plays, 0), COALESCE(t.interactions, 0),
           COALESCE(t.first_hour_plays, 0), COALESCE(t.first_hour_interactions, 0),
           (SELECT count(DISTINCT s.kind) FROM {raw_sql.STICKER} s
            WHERE s.video_id = v.id AND s.created_at < %(end)s
              AND s.state <> ALL(%(uncounted_sticker_states)s))
    FROM {sql.VIDEO} v LEFT JOIN {sql.VIDEO_TOTAL} t ON t.video_id = v.id
    WHERE v.creator_id = %(creator)s AND v.created_at >= %(start)s AND v.created_at < %(end)s
"""

VIDEO_TOTAL_OF = f"""
    SELECT v.creator_id, v.created_at, COALESCE(t.first_hour_plays, 0),
           COALESCE(t.first_hour_interactions, 0)
    FROM {sql.VIDEO} v LEFT JOIN {sql.VIDEO_TOTAL} t ON t.video_id = v.id
    WHERE v.id = %(video)s
"""

_FIELD_INDEX = {name: index for index, name in enumerate(sql.FIELDS)}


class _Sums:
    """Window sums of the counters, current window, and previous-window interactions."""

    def __init__(self, stored: tuple[Any, ...]) -> None:
        self.current = {name: int(stored[i]) for i, name in enumerate(sql.COUNTERS)}
        self.previous_interactions = int(stored[len(sql.COUNTERS)])

    def add_edges(self, rows: list[tuple[Any, ...]]) -> dict[int, dict[str, int]]:
        """Add the `cur` and `prev` edge rows; return the `before` rows per video."""
        before: dict[int, dict[str, int]] = {}
        for tag, video_id, _creator, _lo, *values in rows:
            counts = dict(zip(sql.FIELDS, map(int, values), strict=True))
            if tag == "cur":
                for name in sql.COUNTERS:
                    self.current[name] += counts[name]
            elif tag == "prev":
                self.previous_interactions += _interactions(counts)
            else:
                before[video_id] = counts
        return before

    @property
    def interactions(self) -> int:
        return _interactions(self.current)


def _interactions(counts: dict[str, int]) -> int:
    return counts["likes"] + counts["comments"] + counts["shares"] + counts["follows_gained"]


def _shared(window: Window, sums: _Sums, first_hour: FirstHourCounts) -> dict[str, Any]:
    c = sums.current
    return {
        "window": window.as_document(),
        "totals": {
            "plays": c["plays"],
            "likes": c["likes"],
            "comments": c["comments"],
            "shares": c["shares"],
            "follows_gained": c["follows_gained"],
            "interactions": sums.interactions,
        },
        "interaction_rate": ratio(sums.interactions, c["plays"]),
        "interaction_growth_rate": growth_rate(sums.interactions, sums.previous_interactions),
        "first_hour_velocity": first_hour.velocity,
        "completion_rate": ratio(c["completed_plays"], c["plays"]),
        "replay_rate": ratio(c["replays"], c["plays"]),
        "effective_comment_share": ratio(c["effective_comments"], c["comments"]),
        "quick_like_share": ratio(c["quick_likes"], c["likes"]),
    }


def _grid_document(rows: list[tuple[Any, ...]], tz: str) -> dict[str, Any]:
    grid = [[0] * 24 for _ in range(7)]
    for weekday, hour, events in rows:
        grid[weekday][hour] += int(events)
    return {"timezone": tz, "grid": grid}


def _as_of() -> str | None:
    as_of = analytics_as_of()
    return iso_utc(as_of) if as_of is not None else None


def creator_analytics_document(
    *, creator_id: int, days: int, tz: str, now: datetime | None = None
) -> dict[str, Any]:
    """`GET creators/me/analytics` for `creator_id`. Raises the parameter errors of
    `analytics.parameters` (ValueErrors with a `field`)."""
    window = window_ending(days=days, now=now or timezone.now())
    check_timezone(tz)
    params = {**_bounds(window), "scope": creator_id, "creator": creator_id, "tz": tz}
    as_of = _as_of()
    sums = _Sums(_rows(_bucket_sums(sql.CREATOR_BUCKET, "creator_id"), params)[0])
    before = sums.add_edges(_rows(_edges("v.creator_id = %(creator)s", before=True), params))
    by_tools: dict[str, FirstHourCounts] = {}
    for video_id, plays, interactions, fh_plays, fh_interactions, kinds in _rows(
        PUBLISHED_IN_WINDOW,
        {**params, "uncounted_sticker_states": raw_sql.UNCOUNTED_STICKER_STATES},
    ):
        earlier = before.get(video_id)
        if earlier is not None:
            plays -= earlier["plays"]
            interactions -= _interactions(earlier)
        tools = "with_tools" if kinds >= 2 else "without_tools" if kinds == 0 else "one_kind"
        by_tools[tools] = by_tools.get(tools, FirstHourCounts()) + FirstHourCounts(
            videos=1,
            plays=plays,
            interactions=interactions,
            first_hour_plays=fh_plays,
            first_hour_interactions=fh_interactions,
        )
    all_published = FirstHourCounts()
    for counts in by_tools.values():
        all_published += counts
    with_tools = by_tools.get("with_tools", FirstHourCounts())
    without_tools = by_tools.get("without_tools", FirstHourCounts())
    return {
        "as_of": as_of,
        **_shared(window, sums, all_published),
        "fan_activity": _grid_document(_rows(CREATOR_GRID, params), tz),
        "interest_preferences": [
            {"hashtag": hashtag, "plays": plays, "likes": likes, "like_rate": ratio(likes, plays)}
            for hashtag, plays, likes in _rows(
                INTERESTS, {**params, **_interest_head(creator_id, params)}
            )
        ],
        "tool_effect": {
            "with_tools": _tool_group(with_tools),
            "without_tools": _tool_group(without_tools),
            "lift": lift(with_tools, without_tools),
        },
    }


def video_analytics_document(
    *, video_id: int, days: int, tz: str, now: datetime | None = None
) -> dict[str, Any]:
    """`GET videos/{id}/analytics`. Raises `Video.DoesNotExist` for an unknown video and the
    parameter errors of `analytics.parameters`."""
    window = window_ending(days=days, now=now or timezone.now())
    check_timezone(tz)
    found = _rows(VIDEO_TOTAL_OF, {"video": video_id})
    if not found:
        raise Video.DoesNotExist(f"No video {video_id}.")
    creator_id, published_at, fh_plays, fh_interactions = found[0]
    params = {
        **_bounds(window),
        "scope": video_id,
        "video": video_id,
        "creator": creator_id,
        "tz": tz,
    }
    as_of = _as_of()
    sums = _Sums(_rows(_bucket_sums(sql.VIDEO_BUCKET, "video_id"), params)[0])
    sums.add_edges(_rows(_edges("v.id = %(video)s", before=False), params))
    own = FirstHourCounts(
        videos=1, first_hour_plays=fh_plays, first_hour_interactions=fh_interactions
    )
    in_window = own if window.start <= published_at < window.end else FirstHourCounts()
    return {
        "as_of": as_of,
        **_shared(window, sums, in_window),
        "fan_activity": _grid_document(_rows(VIDEO_GRID, params), tz),
        "first_hour": {
            "plays": fh_plays,
            "interactions": fh_interactions,
            "velocity": own.velocity,
        },
        "stickers": stickers(video_id=video_id, window=window),
    }


def documents_owned(keys: Iterable[DocumentKey]) -> set[DocumentKey]:
    """The keys whose creator may read their document: a creator's own document, and a video's
    only for its creator (someone else's video and no video answer alike, SPEC §2.7). One query
    for all the video keys."""
    keys = list(keys)
    video_ids = {key.scope for key in keys if key.kind == "video"}
    creators = (
        dict(Video.objects.filter(pk__in=video_ids).values_list("pk", "creator_id"))
        if video_ids
        else {}
    )
    return {
        key
        for key in keys
        if (key.kind == "creator" and key.scope == key.creator)
        or (key.kind == "video" and creators.get(key.scope) == key.creator)
    }


def document_compute(key: DocumentKey) -> dict[str, Any]:
    """The document `key` names, computed now from the rollups (for the API's serve and the
    refresher alike). Raises `Video.DoesNotExist` when the key's creator may not read it."""
    if key not in documents_owned([key]):
        raise Video.DoesNotExist(f"No video {key.scope} of user {key.creator}.")
    # One core at most: a computation (~100 ms for a creator with millions of interactions)
    # runs next to the requests being served, from the refresher or from a request itself.
    with without_parallel_workers():
        if key.kind == "creator":
            return creator_analytics_document(creator_id=key.creator, days=key.days, tz=key.tz)
        return video_analytics_document(video_id=key.scope, days=key.days, tz=key.tz)
