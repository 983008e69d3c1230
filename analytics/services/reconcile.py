"""Reconciliation: recount rollup rows from the interaction rows, repair what differs, and say
how many differed. Run nightly (`analytics.tasks.reconcile_analytics_rollups`, a sample) and by
hand (`manage.py analytics_reconcile`, all or some videos).

What is compared, per checked video: every (video, quarter hour) with a row or a rollup row
against `COUNTS` over the rows (the same statement the consumer uses, whose definitions the
property tests hold equal to the raw oracle); the creators' buckets against the sums of their
videos' buckets; the videos' lifetime totals against the sums of their buckets. Per checked
creator, the fan side: `FanLink` against the counted follows, and every fan cell (creator,
quarter hour) and interest row (creator, day, hashtag) against a recount of the `FanLink`
users' rows (read per follower by the `*_user_time_idx` indexes: the cost of a check grows with
the followers' history, which is why it runs nightly on a sample).

A difference is repaired by the incremental recounts (the video bucket's delta goes to its
creator and total; a link is synced, which dirties the follower's cells; a cell is recounted)
and then the creator buckets and totals of the checked videos are re-summed.
"""

import logging
from dataclasses import dataclass

from django.db import transaction

from analytics.documents import documents_all_changed
from analytics.services import statements as sql
from analytics.services.consumer import CONSUMER_LOCK
from analytics.services.rollups import (
    Dirty,
    _creator_buckets_resum,
    _execute,
    _fetch,
    _rebuild_targets,
    _video_totals_resum,
    dirty_recount,
)
from core.eventlog import consumer_lock

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Reconciliation:
    videos: int
    differences: int
    repaired: bool


# The recount of every checked (video, bucket), kept for the comparisons of one run.
_FRESH = f"""
    CREATE TEMPORARY TABLE analytics_reconcile_fresh ON COMMIT DROP AS
    WITH {sql._DIRTY_VIDEO_BUCKETS.strip()}
    {sql.COUNTS}
"""

_DIFFERING_VIDEO_BUCKETS = f"""
    SELECT f.video_id, f.lo FROM analytics_reconcile_fresh f
    LEFT JOIN {sql.VIDEO_BUCKET} o ON o.video_id = f.video_id AND o.bucket = f.lo
    WHERE {" OR ".join(f"f.{n} <> COALESCE(o.{n}, 0)" for n in sql.FIELDS)}
"""

# Creator buckets and lifetime totals against the sums of the recount (all the videos of the
# checked creators are recounted, so the sums are whole).
_DIFFERING_CREATOR_BUCKETS = f"""
    WITH sums AS (
        SELECT creator_id, lo AS bucket, {", ".join(f"sum({n}) AS {n}" for n in sql.COUNTERS)}
        FROM analytics_reconcile_fresh GROUP BY creator_id, lo
    ),
    stored AS (
        SELECT cb.* FROM {sql.CREATOR_BUCKET} cb
        WHERE cb.creator_id IN (SELECT creator_id FROM analytics_reconcile_fresh)
    )
    SELECT count(*) FROM sums s
    FULL JOIN stored o ON o.creator_id = s.creator_id AND o.bucket = s.bucket
    WHERE {" OR ".join(f"COALESCE(s.{n}, 0) <> COALESCE(o.{n}, 0)" for n in sql.COUNTERS)}
"""

_DIFFERING_TOTALS = f"""
    SELECT count(*) FROM {sql.VIDEO_TOTAL} t
    JOIN (
        SELECT video_id, sum(plays) AS plays,
               sum(likes + comments + shares + follows_gained) AS interactions
        FROM analytics_reconcile_fresh GROUP BY video_id
    ) s ON s.video_id = t.video_id
    WHERE t.plays <> s.plays OR t.interactions <> s.interactions
"""


_DIFFERING_LINKS = f"""
    WITH wanted AS (
        SELECT user_id, creator_id FROM {sql.FOLLOW}
        WHERE counted AND creator_id = ANY(%(creators)s)
    ),
    have AS (SELECT user_id, creator_id FROM {sql.FAN_LINK} WHERE creator_id = ANY(%(creators)s))
    SELECT COALESCE(w.user_id, h.user_id), COALESCE(w.creator_id, h.creator_id)
    FROM wanted w FULL JOIN have h ON h.user_id = w.user_id AND h.creator_id = w.creator_id
    WHERE w.user_id IS NULL OR h.user_id IS NULL
"""


def _followers_rows(columns: str, tables: tuple[str, ...]) -> str:
    """Every counted row of the checked creators' FanLink users in `tables`, with the link."""
    return f"""
        SELECT fl.creator_id, x.* FROM {sql.FAN_LINK} fl
        CROSS JOIN LATERAL (
            {
        " UNION ALL ".join(
            f"SELECT {columns} FROM {table} x WHERE x.user_id = fl.user_id AND x.counted"
            for table in tables
        )
    }
        ) x
        WHERE fl.creator_id = ANY(%(creators)s)
    """


_DIFFERING_FAN_CELLS = f"""
    WITH fresh AS (
        SELECT creator_id, {sql.bucket_of("created_at")} AS bucket, count(*) AS events
        FROM ({_followers_rows("x.created_at", (sql.LIKE, sql.COMMENT, sql.SHARE, sql.PLAY))}) r
        GROUP BY 1, 2
    ),
    stored AS (
        SELECT creator_id, bucket, events FROM {sql.CREATOR_FAN_BUCKET}
        WHERE creator_id = ANY(%(creators)s)
    )
    SELECT COALESCE(f.creator_id, s.creator_id), COALESCE(f.bucket, s.bucket)
    FROM fresh f FULL JOIN stored s ON s.creator_id = f.creator_id AND s.bucket = f.bucket
    WHERE COALESCE(f.events, 0) <> COALESCE(s.events, 0)
"""

_DIFFERING_INTEREST_ROWS = f"""
    WITH fresh AS (
        SELECT r.creator_id, {sql.day_of("r.created_at")} AS day, vh.hashtag_id,
               sum(r.plays) AS plays, sum(r.likes) AS likes
        FROM ({_followers_rows("x.created_at, x.video_id, 1 AS plays, 0 AS likes", (sql.PLAY,))}
              UNION ALL
              {_followers_rows("x.created_at, x.video_id, 0 AS plays, 1 AS likes", (sql.LIKE,))}
        ) r
        JOIN {sql.VIDEO_HASHTAG} vh ON vh.video_id = r.video_id
        GROUP BY 1, 2, 3
    ),
    stored AS (
        SELECT creator_id, day, hashtag_id, plays, likes FROM {sql.CREATOR_HASHTAG_DAY}
        WHERE creator_id = ANY(%(creators)s)
    )
    SELECT COALESCE(f.creator_id, s.creator_id), COALESCE(f.day, s.day)
    FROM fresh f
    FULL JOIN stored s
        ON s.creator_id = f.creator_id AND s.day = f.day AND s.hashtag_id = f.hashtag_id
    WHERE COALESCE(f.plays, 0) <> COALESCE(s.plays, 0)
       OR COALESCE(f.likes, 0) <> COALESCE(s.likes, 0)
"""


def analytics_rollups_reconcile(
    *, video_ids: list[int] | None = None, sample: int | None = None, repair: bool = True
) -> Reconciliation:
    """Check `video_ids` (or a random `sample` of videos, or all); repair unless told not to."""
    with consumer_lock(CONSUMER_LOCK) as taken:
        if not taken:  # the consumer is writing: try again on the next run
            return Reconciliation(videos=0, differences=0, repaired=False)
        with transaction.atomic():
            if video_ids is None:
                order = "ORDER BY random() LIMIT %(sample)s" if sample else ""
                video_ids = [
                    row[0]
                    for row in _fetch(f"SELECT id FROM {sql.VIDEO} {order}", {"sample": sample})
                ]
            if not video_ids:
                return Reconciliation(videos=0, differences=0, repaired=False)
            # every video of the checked videos' creators, so creator sums are whole
            video_ids = [
                row[0]
                for row in _fetch(
                    f"""SELECT id FROM {sql.VIDEO} WHERE creator_id IN (
                            SELECT creator_id FROM {sql.VIDEO} WHERE id = ANY(%(videos)s))""",
                    {"videos": video_ids},
                )
            ]
            targets = sorted(_rebuild_targets(video_ids, None).video_buckets)
            _execute("DROP TABLE IF EXISTS analytics_reconcile_fresh", [])
            _execute(
                _FRESH, {"videos": [v for v, _ in targets], "buckets": [b for _, b in targets]}
            )
            differing = _fetch(_DIFFERING_VIDEO_BUCKETS, [])
            creators = _fetch(_DIFFERING_CREATOR_BUCKETS, [])[0][0]
            totals = _fetch(_DIFFERING_TOTALS, [])[0][0]
            checked = {
                "creators": [
                    row[0]
                    for row in _fetch(
                        f"SELECT DISTINCT creator_id FROM {sql.VIDEO} WHERE id = ANY(%(videos)s)",
                        {"videos": video_ids},
                    )
                ]
            }
            links = _fetch(_DIFFERING_LINKS, checked)
            fan_cells = _fetch(_DIFFERING_FAN_CELLS, checked)
            interest_rows = _fetch(_DIFFERING_INTEREST_ROWS, checked)
            differences = (
                len(differing)
                + creators
                + totals
                + len(links)
                + len(fan_cells)
                + len(interest_rows)
            )
            if differences and repair:
                dirty_recount(
                    Dirty(
                        video_buckets=set(differing),
                        follow_pairs=set(links),
                        fan_cells=set(fan_cells),
                        interest_cells=set(interest_rows),
                    )
                )
                _creator_buckets_resum(video_ids, None)
                _video_totals_resum(video_ids)
                transaction.on_commit(documents_all_changed)
        logger.info(
            "analytics reconciliation",
            extra={"videos": len(video_ids), "differences": differences},
        )
        return Reconciliation(
            videos=len(video_ids), differences=differences, repaired=bool(differences and repair)
        )
