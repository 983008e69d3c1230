"""The named SQL of the rollups (Zulip `analytics/lib/counts.py` style): one statement per job,
composed from shared fragments. The definitions are those of the raw oracle (`analytics.raw`,
docs/analytics.md): the same counted rows, the same replay, quick-like and repeat rules; the
oracle is what the tests and the reconciliation compare these with.

`COUNTS` is the heart: for each row of a CTE `t (tag, video_id, creator_id, lo, hi)` it counts
the video's counted rows made in `[lo, hi)`. The consumer runs it over quarter-hour buckets, the
first-hour job over `[published, published + 1 hour)`, and the API over the window's ragged
edges, so every one of them applies the same definitions.
"""

from analytics.models import (
    COUNTERS,
    CommentKey,
    CreatorBucket,
    CreatorFanBucket,
    CreatorHashtagDay,
    FanLink,
    VideoBucket,
    VideoTotal,
)
from analytics.raw.statements import QUICK_LIKE_WATCHED_MS
from analytics.tables import COMMENT, FOLLOW, LIKE, PLAY, SHARE, VIDEO, VIDEO_HASHTAG

VIDEO_BUCKET = VideoBucket._meta.db_table
CREATOR_BUCKET = CreatorBucket._meta.db_table
VIDEO_TOTAL = VideoTotal._meta.db_table
FAN_LINK = FanLink._meta.db_table
CREATOR_FAN_BUCKET = CreatorFanBucket._meta.db_table
CREATOR_HASHTAG_DAY = CreatorHashtagDay._meta.db_table
COMMENT_KEY = CommentKey._meta.db_table

BUCKET = "interval '15 minutes'"
DAY = "interval '1 day'"
_ORIGIN = "TIMESTAMPTZ '2000-01-01 00:00:00+00'"


def bucket_of(column: str) -> str:
    """The UTC quarter hour holding `column` (2000-01-01 is a multiple of 15 min since 1970)."""
    return f"date_bin({BUCKET}, {column}, {_ORIGIN})"


def day_of(column: str) -> str:
    """The UTC day (midnight) holding `column`."""
    return f"date_bin({DAY}, {column}, {_ORIGIN})"


def _in(alias: str, column: str = "created_at") -> str:
    return f"{alias}.{column} >= t.lo AND {alias}.{column} < t.hi"


# Follower of the target video's creator *now*, as the consumer last saw the follows.
_FOLLOWER = (
    f"EXISTS (SELECT 1 FROM {FAN_LINK} fl"
    " WHERE fl.creator_id = t.creator_id AND fl.user_id = {alias}.user_id)"
)

FIELDS = (*COUNTERS, "follower_events")

COUNTS = f"""
    SELECT t.tag, t.video_id, t.creator_id, t.lo,
           p.plays, p.completed_plays, p.replays, l.likes, l.quick_likes,
           c.comments, c.effective_comments, s.shares, f.follows_gained,
           fe.follower_events
    FROM t
    CROSS JOIN LATERAL (
        SELECT count(*) AS plays,
               count(*) FILTER (WHERE p.completed) AS completed_plays,
               count(*) FILTER (WHERE EXISTS (
                   SELECT 1 FROM {PLAY} e
                   WHERE e.video_id = p.video_id AND e.user_id = p.user_id AND e.counted
                     AND (e.created_at, e.id) < (p.created_at, p.id))) AS replays
        FROM {PLAY} p WHERE p.video_id = t.video_id AND p.counted AND {_in("p")}
    ) p
    CROSS JOIN LATERAL (
        SELECT count(*) AS likes,
               count(*) FILTER (WHERE COALESCE((
                   SELECT sum(w.watched_ms) FROM {PLAY} w
                   WHERE w.video_id = l.video_id AND w.user_id = l.user_id AND w.counted
               ), 0) < {QUICK_LIKE_WATCHED_MS}) AS quick_likes
        FROM {LIKE} l WHERE l.video_id = t.video_id AND l.counted AND {_in("l")}
    ) l
    CROSS JOIN LATERAL (
        SELECT count(*) AS comments,
               count(*) FILTER (WHERE NOT k.hollow AND NOT EXISTS (
                   SELECT 1 FROM {COMMENT_KEY} k2 JOIN {COMMENT} c2 ON c2.id = k2.comment_id
                   WHERE k2.user_id = k.user_id AND k2.key_hash = k.key_hash AND c2.counted
                     AND (k2.created_at, k2.comment_id) < (k.created_at, k.comment_id)
               )) AS effective_comments
        FROM {COMMENT_KEY} k JOIN {COMMENT} c ON c.id = k.comment_id
        WHERE k.video_id = t.video_id AND c.counted AND {_in("k")}
    ) c
    CROSS JOIN LATERAL (
        SELECT count(*) AS shares FROM {SHARE} s
        WHERE s.video_id = t.video_id AND s.counted AND {_in("s")}
    ) s
    CROSS JOIN LATERAL (
        SELECT count(*) AS follows_gained FROM {FOLLOW} f
        WHERE f.creator_id = t.creator_id AND f.source_video_id = t.video_id AND f.counted
          AND {_in("f")}
    ) f
    CROSS JOIN LATERAL (
        SELECT (SELECT count(*) FROM {LIKE} x WHERE x.video_id = t.video_id AND x.counted
                  AND {_in("x")} AND {_FOLLOWER.format(alias="x")})
             + (SELECT count(*) FROM {COMMENT_KEY} x JOIN {COMMENT} xc ON xc.id = x.comment_id
                WHERE x.video_id = t.video_id AND xc.counted AND {_in("x")}
                  AND {_FOLLOWER.format(alias="x")})
             + (SELECT count(*) FROM {SHARE} x WHERE x.video_id = t.video_id AND x.counted
                  AND {_in("x")} AND {_FOLLOWER.format(alias="x")})
             + (SELECT count(*) FROM {PLAY} x WHERE x.video_id = t.video_id AND x.counted
                  AND {_in("x")} AND {_FOLLOWER.format(alias="x")}) AS follower_events
    ) fe
"""

_DIRTY_VIDEO_BUCKETS = f"""
    t AS (
        SELECT DISTINCT 'b'::text AS tag, v.id AS video_id, v.creator_id, d.bucket AS lo,
               d.bucket + {BUCKET} AS hi
        FROM unnest(%(videos)s::bigint[], %(buckets)s::timestamptz[]) AS d(video_id, bucket)
        JOIN {VIDEO} v ON v.id = d.video_id
    )
"""

_INTERACTION_DELTA = "d.likes + d.comments + d.shares + d.follows_gained"

# Recount the given (video, bucket) pairs from the rows; write the rows that changed and add
# their changes to the creator's buckets and the video's lifetime totals. Applying it twice
# changes nothing the second time (the deltas are 0), so re-read events are harmless.
VIDEO_BUCKETS_RECOUNT = f"""
    WITH {_DIRTY_VIDEO_BUCKETS},
    fresh AS ({COUNTS}),
    delta AS (
        SELECT f.video_id, f.creator_id, f.lo AS bucket,
               {", ".join(f"f.{n} AS new_{n}" for n in FIELDS)},
               {", ".join(f"f.{n} - COALESCE(o.{n}, 0) AS {n}" for n in FIELDS)}
        FROM fresh f
        LEFT JOIN {VIDEO_BUCKET} o ON o.video_id = f.video_id AND o.bucket = f.lo
        WHERE o.id IS NULL OR {" OR ".join(f"f.{n} <> o.{n}" for n in FIELDS)}
    ),
    written AS (
        INSERT INTO {VIDEO_BUCKET} (video_id, creator_id, bucket, {", ".join(FIELDS)})
        SELECT video_id, creator_id, bucket, {", ".join(f"new_{n}" for n in FIELDS)} FROM delta
        ON CONFLICT (video_id, bucket) DO UPDATE SET
            {", ".join(f"{n} = EXCLUDED.{n}" for n in FIELDS)}
        RETURNING 1
    ),
    creators AS (
        INSERT INTO {CREATOR_BUCKET} (creator_id, bucket, {", ".join(COUNTERS)})
        SELECT creator_id, bucket, {", ".join(f"sum({n})" for n in COUNTERS)}
        FROM delta d GROUP BY creator_id, bucket
        ON CONFLICT (creator_id, bucket) DO UPDATE SET
            {", ".join(f"{n} = {CREATOR_BUCKET}.{n} + EXCLUDED.{n}" for n in COUNTERS)}
        RETURNING 1
    ),
    totals AS (
        INSERT INTO {VIDEO_TOTAL} (video_id, creator_id, published_at, plays, interactions,
                                   first_hour_plays, first_hour_interactions)
        SELECT d.video_id, d.creator_id, v.created_at, sum(d.plays), sum({_INTERACTION_DELTA}), 0, 0
        FROM delta d JOIN {VIDEO} v ON v.id = d.video_id
        GROUP BY d.video_id, d.creator_id, v.created_at
        ON CONFLICT (video_id) DO UPDATE SET
            plays = {VIDEO_TOTAL}.plays + EXCLUDED.plays,
            interactions = {VIDEO_TOTAL}.interactions + EXCLUDED.interactions
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM written), (SELECT count(*) FROM creators),
           (SELECT count(*) FROM totals)
"""


def _first_hours(videos: str) -> str:
    """Recount `[published, published + 1 hour)` of the videos `v.id IN ({videos})`."""
    return f"""
    WITH t AS (
        SELECT 'h'::text AS tag, v.id AS video_id, v.creator_id, v.created_at AS lo,
               v.created_at + interval '1 hour' AS hi
        FROM {VIDEO} v
        WHERE {videos}
    ),
    fresh AS ({COUNTS})
    INSERT INTO {VIDEO_TOTAL} (video_id, creator_id, published_at, plays, interactions,
                               first_hour_plays, first_hour_interactions)
    SELECT f.video_id, f.creator_id, f.lo, 0, 0, f.plays,
           f.likes + f.comments + f.shares + f.follows_gained
    FROM fresh f
    ON CONFLICT (video_id) DO UPDATE SET
        first_hour_plays = EXCLUDED.first_hour_plays,
        first_hour_interactions = EXCLUDED.first_hour_interactions
"""


# Recount the first hour of the videos among the given (video, bucket) pairs whose bucket
# overlaps `[published, published + 1 hour)`.
FIRST_HOURS_RECOUNT = _first_hours(
    f"""v.id IN (
            SELECT d.video_id
            FROM unnest(%(videos)s::bigint[], %(buckets)s::timestamptz[]) AS d(video_id, bucket)
            JOIN {VIDEO} dv ON dv.id = d.video_id
            WHERE d.bucket < dv.created_at + interval '1 hour'
              AND d.bucket + {BUCKET} > dv.created_at
        )"""
)

# Bring FanLink in line with the counted follows of the given (user, creator) pairs; returns
# (user, creator, +1 | -1) for each link made or undone.
FAN_LINKS_SYNC = f"""
    WITH p AS (
        SELECT DISTINCT d.user_id, d.creator_id
        FROM unnest(%(users)s::bigint[], %(creators)s::bigint[]) AS d(user_id, creator_id)
    ),
    wanted AS (
        SELECT p.user_id, p.creator_id FROM p
        WHERE EXISTS (SELECT 1 FROM {FOLLOW} f
                      WHERE f.user_id = p.user_id AND f.creator_id = p.creator_id AND f.counted)
    ),
    added AS (
        INSERT INTO {FAN_LINK} (user_id, creator_id) SELECT user_id, creator_id FROM wanted
        ON CONFLICT (user_id, creator_id) DO NOTHING
        RETURNING user_id, creator_id, 1 AS sign
    ),
    removed AS (
        DELETE FROM {FAN_LINK} fl USING p
        WHERE fl.user_id = p.user_id AND fl.creator_id = p.creator_id
          AND NOT EXISTS (SELECT 1 FROM wanted w
                          WHERE w.user_id = p.user_id AND w.creator_id = p.creator_id)
        RETURNING fl.user_id, fl.creator_id, -1 AS sign
    )
    SELECT user_id, creator_id, sign FROM added
    UNION ALL
    SELECT user_id, creator_id, sign FROM removed
"""

_LINK_CHANGES = """
    ch AS (
        SELECT * FROM unnest(%(users)s::bigint[], %(creators)s::bigint[], %(signs)s::int[])
            AS ch(user_id, creator_id, sign)
    )
"""

# The (video, bucket) pairs holding a changed follower's events on the creator's videos: their
# `follower_events` change with the link.
LINK_VIDEO_BUCKETS = f"""
    WITH {_LINK_CHANGES}
    SELECT DISTINCT x.video_id, {bucket_of("x.created_at")}
    FROM ch
    CROSS JOIN LATERAL (
        SELECT video_id, created_at FROM {LIKE} WHERE user_id = ch.user_id
        UNION ALL SELECT video_id, created_at FROM {COMMENT} WHERE user_id = ch.user_id
        UNION ALL SELECT video_id, created_at FROM {SHARE} WHERE user_id = ch.user_id
        UNION ALL SELECT video_id, created_at FROM {PLAY} WHERE user_id = ch.user_id
    ) x
    JOIN {VIDEO} v ON v.id = x.video_id AND v.creator_id = ch.creator_id
"""

# --- the fan side: cells recounted from the rows ----------------------------------------------
# A fan cell is (creator, quarter hour) of `CreatorFanBucket`, an interest cell (creator, UTC day)
# of `CreatorHashtagDay`. A cell is recounted from the rows: each distinct bucket (day) of the
# dirty cells is scanned once by time (`*_time_idx`), and each row's user is checked against
# the cells' creators through `fanlink_unique (user_id, creator_id)`. The fresh counts replace
# the stored ones; a cell that counts 0 loses its row. Recounting twice changes nothing.

_ACTIVITY = (LIKE, COMMENT, SHARE, PLAY)


def _made_in(alias: str, lo: str, width: str) -> str:
    return f"{alias}.counted AND {alias}.created_at >= {lo} AND {alias}.created_at < {lo} + {width}"


_FAN_CELLS = f"""
    cells AS (
        SELECT DISTINCT d.creator_id, d.bucket
        FROM unnest(%(creators)s::bigint[], %(buckets)s::timestamptz[]) AS d(creator_id, bucket)
    ),
    buckets AS (SELECT DISTINCT bucket FROM cells),
    events AS MATERIALIZED (
        SELECT b.bucket, x.user_id FROM buckets b
        CROSS JOIN LATERAL (
            {
    " UNION ALL ".join(
        f"SELECT x.user_id FROM {table} x WHERE {_made_in('x', 'b.bucket', BUCKET)}"
        for table in _ACTIVITY
    )
}
        ) x
    ),
    counted AS (
        SELECT fl.creator_id, e.bucket, count(*) AS events
        FROM events e
        JOIN {FAN_LINK} fl ON fl.user_id = e.user_id
        JOIN cells c ON c.creator_id = fl.creator_id AND c.bucket = e.bucket
        GROUP BY fl.creator_id, e.bucket
    ),
    fresh AS (
        SELECT c.creator_id, c.bucket, COALESCE(n.events, 0) AS events
        FROM cells c
        LEFT JOIN counted n ON n.creator_id = c.creator_id AND n.bucket = c.bucket
    )
"""

# Recount the given (creator, quarter hour) fan cells; returns (rows written, rows deleted).
FAN_CELLS_RECOUNT = f"""
    WITH {_FAN_CELLS},
    written AS (
        INSERT INTO {CREATOR_FAN_BUCKET} (creator_id, bucket, events)
        SELECT f.creator_id, f.bucket, f.events FROM fresh f
        WHERE f.events <> 0 AND NOT EXISTS (
            SELECT 1 FROM {CREATOR_FAN_BUCKET} o
            WHERE o.creator_id = f.creator_id AND o.bucket = f.bucket AND o.events = f.events)
        ORDER BY f.creator_id, f.bucket
        ON CONFLICT (creator_id, bucket) DO UPDATE SET events = EXCLUDED.events
        RETURNING 1
    ),
    gone AS (
        DELETE FROM {CREATOR_FAN_BUCKET} o USING fresh f
        WHERE o.creator_id = f.creator_id AND o.bucket = f.bucket AND f.events = 0
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM written), (SELECT count(*) FROM gone)
"""

_INTEREST_CELLS = f"""
    cells AS (
        SELECT DISTINCT d.creator_id, d.day
        FROM unnest(%(creators)s::bigint[], %(days)s::timestamptz[]) AS d(creator_id, day)
    ),
    days AS (SELECT DISTINCT day FROM cells),
    events AS MATERIALIZED (
        SELECT d.day, x.user_id, x.video_id, x.plays, x.likes FROM days d
        CROSS JOIN LATERAL (
            SELECT x.user_id, x.video_id, 1 AS plays, 0 AS likes FROM {PLAY} x
            WHERE {_made_in("x", "d.day", DAY)}
            UNION ALL
            SELECT x.user_id, x.video_id, 0, 1 FROM {LIKE} x WHERE {_made_in("x", "d.day", DAY)}
        ) x
    ),
    fresh AS (
        SELECT fl.creator_id, e.day, vh.hashtag_id, sum(e.plays) AS plays, sum(e.likes) AS likes
        FROM events e
        JOIN {FAN_LINK} fl ON fl.user_id = e.user_id
        JOIN cells c ON c.creator_id = fl.creator_id AND c.day = e.day
        JOIN {VIDEO_HASHTAG} vh ON vh.video_id = e.video_id
        GROUP BY fl.creator_id, e.day, vh.hashtag_id
    ),
    old AS (
        SELECT o.creator_id, o.day, o.hashtag_id, o.plays, o.likes
        FROM {CREATOR_HASHTAG_DAY} o JOIN cells c ON c.creator_id = o.creator_id AND c.day = o.day
    )
"""

# Recount the given (creator, UTC day) interest cells; returns (rows written, rows deleted).
INTEREST_CELLS_RECOUNT = f"""
    WITH {_INTEREST_CELLS},
    written AS (
        INSERT INTO {CREATOR_HASHTAG_DAY} (creator_id, day, hashtag_id, plays, likes)
        SELECT f.creator_id, f.day, f.hashtag_id, f.plays, f.likes FROM fresh f
        WHERE NOT EXISTS (
            SELECT 1 FROM old o
            WHERE o.creator_id = f.creator_id AND o.day = f.day AND o.hashtag_id = f.hashtag_id
              AND o.plays = f.plays AND o.likes = f.likes)
        ORDER BY f.creator_id, f.day, f.hashtag_id
        ON CONFLICT (creator_id, day, hashtag_id) DO UPDATE
            SET plays = EXCLUDED.plays, likes = EXCLUDED.likes
        RETURNING 1
    ),
    gone AS (
        DELETE FROM {CREATOR_HASHTAG_DAY} o USING old
        WHERE o.creator_id = old.creator_id AND o.day = old.day AND o.hashtag_id = old.hashtag_id
          AND NOT EXISTS (
              SELECT 1 FROM fresh f
              WHERE f.creator_id = old.creator_id AND f.day = old.day
                AND f.hashtag_id = old.hashtag_id)
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM written), (SELECT count(*) FROM gone)
"""

# The fan cells a user's (quarter hour of) activity feeds: one per creator the user follows.
FAN_CELLS_OF_USERS = f"""
    SELECT DISTINCT fl.creator_id, d.bucket
    FROM unnest(%(users)s::bigint[], %(buckets)s::timestamptz[]) AS d(user_id, bucket)
    JOIN {FAN_LINK} fl ON fl.user_id = d.user_id
"""

# A link made or undone: every quarter hour in which the follower has a row of the 4 tables
# (counted or not) is a fan cell of the creator (read by the `*_user_time_idx` indexes).
FAN_CELLS_OF_LINKS = f"""
    SELECT DISTINCT ch.creator_id, {bucket_of("x.created_at")}
    FROM unnest(%(users)s::bigint[], %(creators)s::bigint[]) AS ch(user_id, creator_id)
    CROSS JOIN LATERAL (
        {
    " UNION ALL ".join(
        f"SELECT created_at FROM {table} WHERE user_id = ch.user_id" for table in _ACTIVITY
    )
}
    ) x
"""


# --- what a batch of rows makes dirty ----------------------------------------------------------
_RANGE = "id > %(start)s AND id <= %(top)s"


def simple_dirty(table: str) -> str:
    """(video, bucket) and (user, bucket) of the rows of a batch (likes, shares)."""
    return f"""
        SELECT DISTINCT video_id, {bucket_of("created_at")}, user_id FROM {table}
        WHERE {_RANGE}
    """


# New plays: their buckets, the later plays of the same (user, video) (their replay bit may
# change when an earlier play commits late), and the pair's like (its quickness).
PLAY_PAIRS_OF_BATCH = f"""
    SELECT video_id, user_id, min(created_at) FROM {PLAY} WHERE {_RANGE}
    GROUP BY video_id, user_id
"""

PLAY_PAIRS_DIRTY = f"""
    WITH g AS (
        SELECT * FROM unnest(%(videos)s::bigint[], %(users)s::bigint[], %(since)s::timestamptz[])
            AS g(video_id, user_id, since)
    )
    SELECT DISTINCT p.video_id, {bucket_of("p.created_at")} FROM g
    JOIN {PLAY} p ON p.video_id = g.video_id AND p.user_id = g.user_id AND p.created_at >= g.since
    UNION
    SELECT l.video_id, {bucket_of("l.created_at")} FROM g
    JOIN {LIKE} l ON l.video_id = g.video_id AND l.user_id = g.user_id
"""

COMMENT_KEYS_INSERT = f"""
    INSERT INTO {COMMENT_KEY} (comment_id, user_id, video_id, created_at, key_hash, hollow)
    SELECT * FROM unnest(%s::bigint[], %s::bigint[], %s::bigint[], %s::timestamptz[],
                         %s::bytea[], %s::boolean[])
    ON CONFLICT (comment_id) DO NOTHING
"""

COMMENTS_WITHOUT_KEY = f"""
    SELECT c.id, c.user_id, c.video_id, c.created_at, c.text FROM {COMMENT} c
    WHERE c.id > %(start)s AND c.id <= %(top)s
      AND NOT EXISTS (SELECT 1 FROM {COMMENT_KEY} k WHERE k.comment_id = c.id)
"""

# The comments that share a (user, repeat key) with the given ones, from the earliest of them
# on: a comment made (flipped) may make a later one of the group a repeat (or not).
COMMENT_GROUPS_DIRTY = f"""
    WITH g AS (
        SELECT user_id, key_hash, min(created_at) AS since FROM {COMMENT_KEY}
        WHERE comment_id = ANY(%(comments)s)
        GROUP BY user_id, key_hash
    )
    SELECT DISTINCT k.video_id, {bucket_of("k.created_at")}, k.user_id FROM g
    JOIN {COMMENT_KEY} k ON k.user_id = g.user_id AND k.key_hash = g.key_hash
        AND k.created_at >= g.since
"""

FOLLOWS_OF_BATCH = f"""
    SELECT user_id, creator_id, source_video_id, {bucket_of("created_at")} FROM {FOLLOW}
    WHERE {_RANGE}
"""


def records_of_batch(table: str) -> str:
    """Removal and counted-flip records of a batch."""
    return f"""
        SELECT kind, row_id, user_id, target_id, video_id,
               interaction_created_at, {bucket_of("interaction_created_at")}
        FROM {table} WHERE {_RANGE}
    """


# --- the full rebuild: one INSERT ... SELECT ... GROUP BY per table --------------------------
# The same definitions as `COUNTS`, set-based over whole tables: a replay is a counted play that
# is not the first of its (video, user) in (created_at, id) order; a quick like's pair has
# counted plays summing to < 3 s; an effective comment is not hollow and the first counted one
# of its (user, repeat key); follower events probe FanLink (user, the video's creator). Rows go
# in in the unique index's order.

FAN_LINKS_INSERT_ALL = f"""
    INSERT INTO {FAN_LINK} (user_id, creator_id)
    SELECT user_id, creator_id FROM {FOLLOW} WHERE counted ORDER BY user_id, creator_id
"""


def _parts(**values: str) -> str:
    """One row of every FIELD, 0 unless given."""
    return ", ".join(f"{values.get(n, '0')} AS {n}" for n in FIELDS)


_EDGE_REPLAY = f"""count(*) FILTER (WHERE EXISTS (
    SELECT 1 FROM {PLAY} e
    WHERE e.video_id = x.video_id AND e.user_id = x.user_id AND e.counted
      AND (e.created_at, e.id) < (x.created_at, x.id)))"""
_EDGE_QUICK = f"""count(*) FILTER (WHERE COALESCE((
    SELECT sum(w.watched_ms) FROM {PLAY} w
    WHERE w.video_id = x.video_id AND w.user_id = x.user_id AND w.counted
), 0) < {QUICK_LIKE_WATCHED_MS})"""
_EDGE_EFFECTIVE = f"""count(*) FILTER (WHERE NOT k.hollow AND NOT EXISTS (
    SELECT 1 FROM {COMMENT_KEY} k2 JOIN {COMMENT} c2 ON c2.id = k2.comment_id
    WHERE k2.user_id = k.user_id AND k2.key_hash = k.key_hash AND c2.counted
      AND (k2.created_at, k2.comment_id) < (k.created_at, k.comment_id)))"""
_EDGE = "x.created_at >= r.lo AND x.created_at < r.hi"


def edge_counts(scope: str) -> str:
    """`COUNTS` of the rows made in the windows' ragged edges, per (tag, video) of the videos
    `scope` selects (SQL over `v`; `%(creator)s` is their creator), with the same definitions,
    found by time rather than per video: each edge is at most a quarter hour, so the rows of
    every video in it are a few hundred, read from the `created_at` indexes, then matched to
    the scope's videos. Per-video probes (`COUNTS` over one row per video and edge) cost 6,000
    index scans for a creator with 200 videos. `follower_events` is not counted (0): the reads
    take the fan side from their own statements. Rows: (tag, video, 0, NULL, *FIELDS)."""
    plays = _parts(
        plays="count(*)",
        completed_plays="count(*) FILTER (WHERE x.completed)",
        replays=_EDGE_REPLAY,
    )
    likes = _parts(likes="count(*)", quick_likes=_EDGE_QUICK)
    comments = _parts(comments="count(*)", effective_comments=_EDGE_EFFECTIVE)
    return f"""
        WITH r (tag, lo, hi) AS (
            SELECT * FROM (VALUES
                ('cur', %(start)s::timestamptz, %(cur)s::timestamptz),
                ('prev', %(prev_start)s::timestamptz, %(prev_from)s::timestamptz),
                ('prev', %(prev_to)s::timestamptz, %(start)s::timestamptz)) AS e(tag, lo, hi)
            WHERE lo < hi
        ),
        vids AS (SELECT v.id, v.creator_id FROM {VIDEO} v WHERE {scope}),
        parts AS (
            SELECT r.tag, x.video_id, {plays}
            FROM r JOIN {PLAY} x ON {_EDGE} JOIN vids v ON v.id = x.video_id
            WHERE x.counted GROUP BY 1, 2
            UNION ALL
            SELECT r.tag, x.video_id, {likes}
            FROM r JOIN {LIKE} x ON {_EDGE} JOIN vids v ON v.id = x.video_id
            WHERE x.counted GROUP BY 1, 2
            UNION ALL
            SELECT r.tag, x.video_id, {comments}
            FROM r JOIN {COMMENT} x ON {_EDGE} JOIN vids v ON v.id = x.video_id
            JOIN {COMMENT_KEY} k ON k.comment_id = x.id
            WHERE x.counted GROUP BY 1, 2
            UNION ALL
            SELECT r.tag, x.video_id, {_parts(shares="count(*)")}
            FROM r JOIN {SHARE} x ON {_EDGE} JOIN vids v ON v.id = x.video_id
            WHERE x.counted GROUP BY 1, 2
            UNION ALL
            SELECT r.tag, x.source_video_id, {_parts(follows_gained="count(*)")}
            FROM r CROSS JOIN LATERAL (
                SELECT f.source_video_id, f.creator_id FROM {FOLLOW} f
                WHERE f.creator_id = %(creator)s AND f.created_at >= r.lo
                  AND f.created_at < r.hi AND f.counted
                OFFSET 0  -- per edge: a range scan of follow_creator_time_idx
            ) x
            JOIN vids v ON v.id = x.source_video_id AND v.creator_id = x.creator_id
            GROUP BY 1, 2
        )
        SELECT tag, video_id, 0, NULL::timestamptz, {", ".join(f"sum({n})" for n in FIELDS)}
        FROM parts GROUP BY tag, video_id
    """
