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
    CreatorHashtagBucket,
    FanLink,
    UserBucket,
    UserHashtagBucket,
    VideoBucket,
    VideoTotal,
)
from analytics.raw.statements import QUICK_LIKE_WATCHED_MS
from analytics.tables import COMMENT, FOLLOW, LIKE, PLAY, SHARE, VIDEO, VIDEO_HASHTAG

VIDEO_BUCKET = VideoBucket._meta.db_table
CREATOR_BUCKET = CreatorBucket._meta.db_table
VIDEO_TOTAL = VideoTotal._meta.db_table
USER_BUCKET = UserBucket._meta.db_table
USER_HASHTAG_BUCKET = UserHashtagBucket._meta.db_table
FAN_LINK = FanLink._meta.db_table
CREATOR_FAN_BUCKET = CreatorFanBucket._meta.db_table
CREATOR_HASHTAG_BUCKET = CreatorHashtagBucket._meta.db_table
COMMENT_KEY = CommentKey._meta.db_table

BUCKET = "interval '15 minutes'"


def bucket_of(column: str) -> str:
    """The UTC quarter hour holding `column` (2000-01-01 is a multiple of 15 min since 1970)."""
    return f"date_bin({BUCKET}, {column}, TIMESTAMPTZ '2000-01-01 00:00:00+00')"


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

# Recount the first hour of the videos among the given (video, bucket) pairs whose bucket
# overlaps `[published, published + 1 hour)`.
FIRST_HOURS_RECOUNT = f"""
    WITH t AS (
        SELECT 'h'::text AS tag, v.id AS video_id, v.creator_id, v.created_at AS lo,
               v.created_at + interval '1 hour' AS hi
        FROM {VIDEO} v
        WHERE v.id IN (
            SELECT d.video_id
            FROM unnest(%(videos)s::bigint[], %(buckets)s::timestamptz[]) AS d(video_id, bucket)
            JOIN {VIDEO} dv ON dv.id = d.video_id
            WHERE d.bucket < dv.created_at + interval '1 hour'
              AND d.bucket + {BUCKET} > dv.created_at
        )
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

_DIRTY_USER_BUCKETS = """
    u AS (
        SELECT DISTINCT d.user_id, d.bucket
        FROM unnest(%(users)s::bigint[], %(buckets)s::timestamptz[]) AS d(user_id, bucket)
    )
"""


def _user_events(table: str, alias: str) -> str:
    return f"""SELECT count(*) FROM {table} {alias}
        WHERE {alias}.user_id = u.user_id AND {alias}.counted
          AND {alias}.created_at >= u.bucket AND {alias}.created_at < u.bucket + {BUCKET}"""


# Recount each given (user, quarter hour) of activity and pass the change on to the fan grid of
# every creator the user follows (FanLink): the fan-out is by delta, so it is idempotent too.
USER_BUCKETS_RECOUNT = f"""
    WITH {_DIRTY_USER_BUCKETS},
    fresh AS (
        SELECT u.user_id, u.bucket,
               ({_user_events(LIKE, "x")}) + ({_user_events(COMMENT, "x")})
             + ({_user_events(SHARE, "x")}) + ({_user_events(PLAY, "x")}) AS events
        FROM u
    ),
    delta AS (
        SELECT f.user_id, f.bucket, f.events, f.events - COALESCE(o.events, 0) AS change
        FROM fresh f
        LEFT JOIN {USER_BUCKET} o ON o.user_id = f.user_id AND o.bucket = f.bucket
        WHERE f.events <> COALESCE(o.events, 0)
    ),
    written AS (
        INSERT INTO {USER_BUCKET} (user_id, bucket, events)
        SELECT user_id, bucket, events FROM delta
        ON CONFLICT (user_id, bucket) DO UPDATE SET events = EXCLUDED.events
        RETURNING 1
    ),
    fans AS (
        INSERT INTO {CREATOR_FAN_BUCKET} (creator_id, bucket, events)
        SELECT fl.creator_id, d.bucket, sum(d.change)
        FROM delta d JOIN {FAN_LINK} fl ON fl.user_id = d.user_id
        GROUP BY fl.creator_id, d.bucket
        ON CONFLICT (creator_id, bucket) DO UPDATE
            SET events = {CREATOR_FAN_BUCKET}.events + EXCLUDED.events
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM written), (SELECT count(*) FROM fans)
"""

USER_HASHTAG_BUCKETS_RECOUNT = f"""
    WITH {_DIRTY_USER_BUCKETS},
    fresh AS (
        SELECT u.user_id, u.bucket, vh.hashtag_id, sum(x.plays) AS plays, sum(x.likes) AS likes
        FROM u
        CROSS JOIN LATERAL (
            SELECT p.video_id, 1 AS plays, 0 AS likes FROM {PLAY} p
            WHERE p.user_id = u.user_id AND p.counted
              AND p.created_at >= u.bucket AND p.created_at < u.bucket + {BUCKET}
            UNION ALL
            SELECT l.video_id, 0, 1 FROM {LIKE} l
            WHERE l.user_id = u.user_id AND l.counted
              AND l.created_at >= u.bucket AND l.created_at < u.bucket + {BUCKET}
        ) x
        JOIN {VIDEO_HASHTAG} vh ON vh.video_id = x.video_id
        GROUP BY u.user_id, u.bucket, vh.hashtag_id
    ),
    old AS (
        SELECT o.user_id, o.bucket, o.hashtag_id, o.plays, o.likes
        FROM {USER_HASHTAG_BUCKET} o JOIN u ON u.user_id = o.user_id AND u.bucket = o.bucket
    ),
    delta AS (
        SELECT COALESCE(f.user_id, o.user_id) AS user_id, COALESCE(f.bucket, o.bucket) AS bucket,
               COALESCE(f.hashtag_id, o.hashtag_id) AS hashtag_id,
               COALESCE(f.plays, 0) AS plays, COALESCE(f.likes, 0) AS likes,
               COALESCE(f.plays, 0) - COALESCE(o.plays, 0) AS plays_change,
               COALESCE(f.likes, 0) - COALESCE(o.likes, 0) AS likes_change
        FROM fresh f
        FULL JOIN old o
            ON o.user_id = f.user_id AND o.bucket = f.bucket AND o.hashtag_id = f.hashtag_id
        WHERE COALESCE(f.plays, 0) <> COALESCE(o.plays, 0)
           OR COALESCE(f.likes, 0) <> COALESCE(o.likes, 0)
    ),
    written AS (
        INSERT INTO {USER_HASHTAG_BUCKET} (user_id, bucket, hashtag_id, plays, likes)
        SELECT user_id, bucket, hashtag_id, plays, likes FROM delta
        ON CONFLICT (user_id, bucket, hashtag_id) DO UPDATE
            SET plays = EXCLUDED.plays, likes = EXCLUDED.likes
        RETURNING 1
    ),
    fans AS (
        INSERT INTO {CREATOR_HASHTAG_BUCKET} (creator_id, bucket, hashtag_id, plays, likes)
        SELECT fl.creator_id, d.bucket, d.hashtag_id, sum(d.plays_change), sum(d.likes_change)
        FROM delta d JOIN {FAN_LINK} fl ON fl.user_id = d.user_id
        GROUP BY fl.creator_id, d.bucket, d.hashtag_id
        ON CONFLICT (creator_id, bucket, hashtag_id) DO UPDATE
            SET plays = {CREATOR_HASHTAG_BUCKET}.plays + EXCLUDED.plays,
                likes = {CREATOR_HASHTAG_BUCKET}.likes + EXCLUDED.likes
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM written), (SELECT count(*) FROM fans)
"""

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

# A follow made (undone): the follower's whole activity joins (leaves) the creator's fan grid.
FAN_GRID_APPLY_LINKS = f"""
    WITH {_LINK_CHANGES}
    INSERT INTO {CREATOR_FAN_BUCKET} (creator_id, bucket, events)
    SELECT ch.creator_id, ub.bucket, sum(ch.sign * ub.events)
    FROM ch JOIN {USER_BUCKET} ub ON ub.user_id = ch.user_id
    GROUP BY ch.creator_id, ub.bucket
    ON CONFLICT (creator_id, bucket) DO UPDATE
        SET events = {CREATOR_FAN_BUCKET}.events + EXCLUDED.events
"""

INTERESTS_APPLY_LINKS = f"""
    WITH {_LINK_CHANGES}
    INSERT INTO {CREATOR_HASHTAG_BUCKET} (creator_id, bucket, hashtag_id, plays, likes)
    SELECT ch.creator_id, h.bucket, h.hashtag_id, sum(ch.sign * h.plays), sum(ch.sign * h.likes)
    FROM ch JOIN {USER_HASHTAG_BUCKET} h ON h.user_id = ch.user_id
    GROUP BY ch.creator_id, h.bucket, h.hashtag_id
    ON CONFLICT (creator_id, bucket, hashtag_id) DO UPDATE
        SET plays = {CREATOR_HASHTAG_BUCKET}.plays + EXCLUDED.plays,
            likes = {CREATOR_HASHTAG_BUCKET}.likes + EXCLUDED.likes
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
