"""Refresh-ahead of the active creator-centre documents (docs/analytics.md, "Serving").

A document served within the last `ANALYTICS_DOCUMENT_ACTIVE_SECONDS` is *active*. Every tick
(`ANALYTICS_DOCUMENT_REFRESH_TICK_SECONDS`) one run looks at the most recently served ones and
recomputes each that would no longer be served at the next run:

    not servable at now + tick + REFRESH_MARGIN_SECONDS   (Cached.servable, the serve's own rule)

that is, age + tick + margin >= max age, or (the creator's version moved) age + tick + margin >=
fresh, or nothing of its creator's is stored. So a dashboard opened again after a pause finds its
document stored, instead of one request computing it while the others wait. A document whose
rollups do not change is recomputed about once per max age while it is active (at an age between
max age - tick - margin and max age - margin); one whose creator's version keeps moving, once a
tick. One run at a time: see `analytics.documents.refresher_hold`.
"""

import logging
import time
from dataclasses import dataclass
from functools import partial

from redis.exceptions import RedisError

from analytics.documents import (
    REFRESH_MARGIN_SECONDS,
    cached_read_many,
    document_refresh,
    documents_active,
    documents_inactive,
    max_age_seconds,
    refresh_tick_seconds,
    refresher_hold,
    refresher_next,
)
from analytics.metrics import DOCUMENT_REFRESHES
from analytics.selectors import document_compute, documents_owned
from core.eventlog import consumer_lock
from engagement.models import Video

logger = logging.getLogger(__name__)

# Documents looked at per run, the most recently served first: a run's cost stays bounded (at
# most this many computations, ~80 ms each for the biggest creator) whatever the traffic.
RUN_LIMIT = 100
# One run at a time (a PostgreSQL advisory lock, as the consumers take).
REFRESHER_LOCK = "analytics-document-refresher"


@dataclass
class RefreshReport:
    # False when this run stopped at once: another run holds the refresher, or it is off.
    ran: bool = False
    # Active documents looked at, recomputed, and dropped (no longer their creator's to read).
    active: int = 0
    refreshed: int = 0
    dropped: int = 0
    # Whether the next run was queued (some document is still active).
    next_queued: bool = False


def documents_refresh_ahead(*, token: str | None = None) -> RefreshReport:
    """One refresher run (the task `analytics.tasks.refresh_analytics_documents`): `token` is
    the one it was queued with, None for the beat's safety net. Redis unreachable: logged, and
    nothing is done (the next serve arms the refresher again)."""
    report = RefreshReport()
    tick = refresh_tick_seconds()
    if tick <= 0 or max_age_seconds() <= 0:
        return report
    try:
        held = refresher_hold(token)
        if held is None:
            return report
        report.ran = True
        with consumer_lock(REFRESHER_LOCK) as taken:
            if taken:
                _refresh_active(report, within=tick + REFRESH_MARGIN_SECONDS)
        report.next_queued = refresher_next(held)
    except RedisError:
        logger.warning("Redis unreachable: no creator-centre document refreshed ahead")
    return report


def _refresh_active(report: RefreshReport, *, within: float) -> None:
    keys = documents_active(now=time.time(), limit=RUN_LIMIT)
    report.active = len(keys)
    now = time.time()
    due = [
        key
        for key, found in zip(keys, cached_read_many(keys), strict=True)
        if found.servable(key, now=now + within) is None
    ]
    owned = documents_owned(due)
    gone = [key for key in due if key not in owned]
    for key in due:
        if key not in owned:
            continue
        try:
            refreshed = document_refresh(key, within=within, compute=partial(document_compute, key))
        except Video.DoesNotExist:  # deleted (or given away) since the check above
            gone.append(key)
            continue
        if refreshed:
            report.refreshed += 1
            DOCUMENT_REFRESHES.labels(kind=key.kind).inc()
    documents_inactive(gone)
    report.dropped = len(gone)
