"""Reconciliation: recount rollup rows from the interaction rows, repair what differs, and say
how many differed. Run nightly (`analytics.tasks.reconcile_analytics_rollups`, a sample) and by
hand (`manage.py analytics_reconcile`, all or some videos).

What is compared, per checked video: every (video, quarter hour) with a row or a rollup row
against `COUNTS` over the rows (the same statement the consumer uses, whose definitions the
property tests hold equal to the raw oracle); the creators' buckets against the sums of their
videos' buckets; the videos' lifetime totals against the sums of their buckets. A difference
is repaired by recounting it (the video bucket's delta goes to its creator and total) and then
re-summing the creator buckets and totals of the checked videos.
"""

import logging
from dataclasses import dataclass

from django.db import transaction

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
            differences = len(differing) + creators + totals
            if differences and repair:
                dirty_recount(Dirty(video_buckets=set(differing)))
                _creator_buckets_resum(video_ids, None)
                _video_totals_resum(video_ids)
        logger.info(
            "analytics reconciliation",
            extra={"videos": len(video_ids), "differences": differences},
        )
        return Reconciliation(
            videos=len(video_ids), differences=differences, repaired=bool(differences and repair)
        )
