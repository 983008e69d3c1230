"""The named SQL statements of the raw computation, composed from shared fragments.

As in Zulip's `analytics/lib/counts.py`, each statistic is one named statement built from named
pieces, so a reader can check one figure against SPEC §3 at a time. Table names and enum
values come from the models.

Every statement takes `%(end)s` (the window's end, exclusive) and never counts a row created at
or after it, so a figure computed "as of" a past `now` is exactly what it was then (modulo rows
deleted since: unlikes, unfollows). Only `counted` rows count, everywhere.

Scopes: a statement runs over the videos of one creator (`CREATOR_SCOPE`, `%(creator)s`) or one
video (`VIDEO_SCOPE`, `%(video)s`), given as the CTE `scope (id, created_at, creator_id)`.
"""

from analytics.tables import (
    ANSWER,
    COMMENT,
    COMMENT_LIKE,
    FOLLOW,
    HASHTAG,
    LIKE,
    PLAY,
    SHARE,
    STICKER,
    VIDEO,
    VIDEO_HASHTAG,
    VOTE,
)
from polls.models import Sticker

# A liker who watched the video for less than this in all "liked and left" (quick_like_share).
QUICK_LIKE_WATCHED_MS = 3000

# Stickers in these states do not make a video one "with tools" (SPEC: tool_effect).
UNCOUNTED_STICKER_STATES = [Sticker.State.CANCELED.value, Sticker.State.MODERATED.value]

CREATOR_SCOPE = f"SELECT id, created_at, creator_id FROM {VIDEO} WHERE creator_id = %(creator)s"
VIDEO_SCOPE = f"SELECT id, created_at, creator_id FROM {VIDEO} WHERE id = %(video)s"


def _made_in_range(alias: str) -> str:
    return f"{alias}.created_at >= %(since)s AND {alias}.created_at < %(end)s"


def _interactions_of(videos: str) -> str:
    """One row `(video_id, created_at, kind)` per counted interaction made in
    `[%(since)s, %(end)s)` on the videos of the CTE named `videos`.

    Interactions are likes, comments, shares and follows gained: a follow of the video's
    creator that names the video as its source (comment likes and follows naming no video are
    not interactions).
    """
    return f"""
        SELECT l.video_id, l.created_at, 'likes' AS kind FROM {LIKE} l
        WHERE l.counted AND {_made_in_range("l")} AND l.video_id IN (SELECT id FROM {videos})
        UNION ALL
        SELECT c.video_id, c.created_at, 'comments' FROM {COMMENT} c
        WHERE c.counted AND {_made_in_range("c")} AND c.video_id IN (SELECT id FROM {videos})
        UNION ALL
        SELECT s.video_id, s.created_at, 'shares' FROM {SHARE} s
        WHERE s.counted AND {_made_in_range("s")} AND s.video_id IN (SELECT id FROM {videos})
        UNION ALL
        SELECT f.source_video_id, f.created_at, 'follows_gained' FROM {FOLLOW} f
        JOIN {videos} fv ON fv.id = f.source_video_id AND fv.creator_id = f.creator_id
        WHERE f.counted AND {_made_in_range("f")}
    """


def _plays_of(videos: str) -> str:
    """One row `(id, video_id, user_id, created_at, watched_ms, completed)` per counted play
    made in `[%(since)s, %(end)s)` on the videos of the CTE named `videos`."""
    return f"""
        SELECT p.id, p.video_id, p.user_id, p.created_at, p.watched_ms, p.completed
        FROM {PLAY} p
        WHERE p.counted AND {_made_in_range("p")} AND p.video_id IN (SELECT id FROM {videos})
    """


# --- totals ------------------------------------------------------------------------------------
def interactions_by_kind(scope: str) -> str:
    """Per kind of interaction: how many in the window `[%(start)s, %(end)s)` and how many in
    the one before it, `[%(since)s, %(start)s)` (`since` = start - days)."""
    return f"""
        WITH scope AS ({scope}), interactions AS ({_interactions_of("scope")})
        SELECT kind,
               count(*) FILTER (WHERE created_at >= %(start)s) AS in_window,
               count(*) FILTER (WHERE created_at < %(start)s) AS in_previous_window
        FROM interactions
        GROUP BY kind
    """


def plays(scope: str) -> str:
    """Counted plays in `[%(since)s, %(end)s)`, the completed ones, and the replays: plays by a
    user who had already played that video (a counted play earlier in (created_at, id) order,
    at any time, inside the window or before it)."""
    return f"""
        WITH scope AS ({scope})
        SELECT count(*) AS plays,
               count(*) FILTER (WHERE p.completed) AS completed,
               count(*) FILTER (WHERE EXISTS (
                   SELECT 1 FROM {PLAY} earlier
                   WHERE earlier.video_id = p.video_id AND earlier.user_id = p.user_id
                     AND earlier.counted
                     AND (earlier.created_at, earlier.id) < (p.created_at, p.id)
               )) AS replays
        FROM ({_plays_of("scope")}) p
    """


def quick_likes(scope: str) -> str:
    """Counted likes in `[%(since)s, %(end)s)` whose liker's counted plays of that video, at any
    time before `%(end)s` (before or after the like), add up to less than 3 s (none = 0)."""
    return f"""
        WITH scope AS ({scope})
        SELECT count(*) AS likes,
               count(*) FILTER (WHERE COALESCE(watched.total_ms, 0) < {QUICK_LIKE_WATCHED_MS})
                   AS quick_likes
        FROM {LIKE} l
        LEFT JOIN LATERAL (
            SELECT sum(p.watched_ms) AS total_ms FROM {PLAY} p
            WHERE p.video_id = l.video_id AND p.user_id = l.user_id AND p.counted
              AND p.created_at < %(end)s
        ) watched ON true
        WHERE l.counted AND l.created_at >= %(since)s AND l.created_at < %(end)s
          AND l.video_id IN (SELECT id FROM scope)
    """


# --- first hour and tools ---------------------------------------------------------------------
def first_hour_by_tools(scope: str) -> str:
    """Over the videos of the scope published in `[%(since)s, %(end)s)`, grouped by how many
    kinds of sticker they carry (`with_tools`: 2 or more kinds, `one_kind`, `without_tools`;
    canceled and moderated stickers do not count): how many videos, their counted plays and
    interactions in `[%(since)s, %(end)s)`, and those made in each video's first hour,
    `[created_at, created_at + 1 hour)`."""
    return f"""
        WITH scope AS ({scope}),
        published AS (
            SELECT id, created_at, creator_id FROM scope
            WHERE created_at >= %(since)s AND created_at < %(end)s
        ),
        kinds AS (
            SELECT v.id, count(DISTINCT s.kind) AS kinds
            FROM published v
            LEFT JOIN {STICKER} s ON s.video_id = v.id AND s.created_at < %(end)s
                AND s.state <> ALL(%(uncounted_sticker_states)s)
            GROUP BY v.id
        ),
        interactions AS ({_interactions_of("published")}),
        plays AS ({_plays_of("published")})
        SELECT CASE WHEN k.kinds >= 2 THEN 'with_tools'
                    WHEN k.kinds = 0 THEN 'without_tools'
                    ELSE 'one_kind' END AS tools,
               count(*) AS videos,
               sum(p.plays)::bigint AS plays,
               sum(i.interactions)::bigint AS interactions,
               sum(p.first_hour)::bigint AS first_hour_plays,
               sum(i.first_hour)::bigint AS first_hour_interactions
        FROM published v
        JOIN kinds k ON k.id = v.id
        CROSS JOIN LATERAL (
            SELECT count(*) AS plays,
                   count(*) FILTER (WHERE pl.created_at >= v.created_at
                                      AND pl.created_at < v.created_at + interval '1 hour')
                       AS first_hour
            FROM plays pl WHERE pl.video_id = v.id
        ) p
        CROSS JOIN LATERAL (
            SELECT count(*) AS interactions,
                   count(*) FILTER (WHERE e.created_at >= v.created_at
                                      AND e.created_at < v.created_at + interval '1 hour')
                       AS first_hour
            FROM interactions e WHERE e.video_id = v.id
        ) i
        GROUP BY 1
    """


# --- comments ---------------------------------------------------------------------------------
def comments_in_window(scope: str) -> str:
    """The counted comments made in `[%(since)s, %(end)s)` on the scope's videos."""
    return f"""
        WITH scope AS ({scope})
        SELECT c.id, c.user_id, c.created_at, c.text FROM {COMMENT} c
        WHERE c.counted AND c.created_at >= %(since)s AND c.created_at < %(end)s
          AND c.video_id IN (SELECT id FROM scope)
    """


# Every counted comment, on any video, of the given users made before the window's end: what a
# comment of the window may repeat.
COMMENTS_OF_USERS = f"""
    SELECT c.id, c.user_id, c.created_at, c.text FROM {COMMENT} c
    WHERE c.counted AND c.created_at < %(end)s AND c.user_id = ANY(%(users)s)
"""


# --- followers --------------------------------------------------------------------------------
# The users who follow the creator now: counted follows made before `%(end)s`. (Unfollowing
# deletes the row, so "now" is the only time follower sets are known.)
_FOLLOWERS = f"""
    SELECT user_id FROM {FOLLOW}
    WHERE creator_id = %(creator)s AND counted AND created_at < %(end)s
"""


def fan_activity(*, one_video: bool) -> str:
    """The creator's followers' counted likes, comments, shares and plays made in
    `[%(since)s, %(end)s)` — anywhere on Chorus, or on `%(video)s` only — counted by the local
    weekday (Monday = 0) and hour of their `created_at` in the zone `%(tz)s`."""
    on_video = "AND video_id = %(video)s" if one_video else ""
    events = " UNION ALL ".join(
        f"""SELECT created_at FROM {table}
            WHERE counted AND created_at >= %(since)s AND created_at < %(end)s {on_video}
              AND user_id IN (SELECT user_id FROM followers)"""
        for table in (LIKE, COMMENT, SHARE, PLAY)
    )
    return f"""
        WITH followers AS ({_FOLLOWERS}),
        events AS ({events}),
        local AS (SELECT created_at AT TIME ZONE %(tz)s AS at FROM events)
        SELECT extract(isodow FROM at)::int - 1 AS weekday, extract(hour FROM at)::int AS hour,
               count(*) AS events
        FROM local
        GROUP BY 1, 2
    """


INTEREST_PREFERENCES_LIMIT = 10

# The followers' counted plays and likes made in `[%(since)s, %(end)s)` on videos carrying each
# hashtag (anywhere on Chorus), the top 10 by likes, then plays, then the hashtag's name in code
# point order (COLLATE "C": the same order on every database and in Python).
INTEREST_PREFERENCES = f"""
    WITH followers AS ({_FOLLOWERS}),
    per_video AS (
        SELECT video_id, count(*) AS plays, 0 AS likes FROM {PLAY}
        WHERE counted AND created_at >= %(since)s AND created_at < %(end)s
          AND user_id IN (SELECT user_id FROM followers)
        GROUP BY video_id
        UNION ALL
        SELECT video_id, 0, count(*) FROM {LIKE}
        WHERE counted AND created_at >= %(since)s AND created_at < %(end)s
          AND user_id IN (SELECT user_id FROM followers)
        GROUP BY video_id
    )
    SELECT h.name AS hashtag, sum(pv.plays)::bigint AS plays, sum(pv.likes)::bigint AS likes
    FROM per_video pv
    JOIN {VIDEO_HASHTAG} vh ON vh.video_id = pv.video_id
    JOIN {HASHTAG} h ON h.id = vh.hashtag_id
    GROUP BY h.name
    ORDER BY likes DESC, plays DESC, h.name COLLATE "C"
    LIMIT {INTEREST_PREFERENCES_LIMIT}
"""


# --- stickers ---------------------------------------------------------------------------------
# Participants of each sticker of `%(video)s` created before `%(end)s`, over the sticker's
# whole life up to `%(end)s` (not the window): counted voters (poll, ending), users with a
# counted quiz answer (quiz), counted likers of the video (unlock), and users with a counted
# like on a counted comment of the video made before the sticker closed — the likes its result
# counts (comment_pick).
STICKERS = f"""
    SELECT s.id, s.kind, s.state, s.opens_at, s.closes_at,
           CASE
           WHEN s.kind IN ('{Sticker.Kind.POLL.value}', '{Sticker.Kind.ENDING.value}') THEN (
               SELECT count(*) FROM {VOTE} vo
               WHERE vo.sticker_id = s.id AND vo.counted AND vo.created_at < %(end)s)
           WHEN s.kind = '{Sticker.Kind.QUIZ.value}' THEN (
               SELECT count(DISTINCT a.user_id) FROM {ANSWER} a
               WHERE a.sticker_id = s.id AND a.counted AND a.created_at < %(end)s)
           WHEN s.kind = '{Sticker.Kind.UNLOCK.value}' THEN (
               SELECT count(*) FROM {LIKE} l
               WHERE l.video_id = s.video_id AND l.counted AND l.created_at < %(end)s)
           WHEN s.kind = '{Sticker.Kind.COMMENT_PICK.value}' THEN (
               SELECT count(DISTINCT cl.user_id) FROM {COMMENT_LIKE} cl
               JOIN {COMMENT} c ON c.id = cl.comment_id
               WHERE c.video_id = s.video_id AND c.counted AND cl.counted
                 AND cl.created_at < LEAST(%(end)s, COALESCE(s.closed_at, s.closes_at, %(end)s))
                 AND c.created_at < LEAST(%(end)s, COALESCE(s.closed_at, s.closes_at, %(end)s)))
           END AS participants
    FROM {STICKER} s
    WHERE s.video_id = %(video)s AND s.created_at < %(end)s
    ORDER BY s.id
"""
