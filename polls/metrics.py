"""The stickers' figures an operator watches: votes written, live tally lag, overdue closings.

The collectors are named in settings.METRICS_COLLECTORS and run when /metrics is scraped; they
read PostgreSQL, so every web host reports the same values (core.metrics.collectors).
"""

from collections.abc import Iterator
from datetime import timedelta

from django.db.models import Count
from django.utils import timezone
from prometheus_client import Counter
from prometheus_client.core import GaugeMetricFamily, Metric

from core.metrics.collectors import scrape_cursor
from polls.models import VOTABLE_KINDS, Sticker, StickerTally, Vote
from polls.state import CLOCK_DRIVEN

VOTES = Counter(
    "chorus_votes",
    "Votes written (new or changed), counted once committed; rate() gives votes per second.",
)

# The close sweep runs every CLOSE_SWEEP_SECONDS (2 s) and finalization takes well under a
# second even for a million votes; a sticker this late is stuck, not just between sweeps.
OVERDUE_AFTER = timedelta(seconds=10)

# Not yet final (nor canceled or moderated): what a live tally or a closing is still due for.
_LIVE_STATES = [*CLOCK_DRIVEN, Sticker.State.CLOSED]

# Per sticker that can still take votes or has not been finalized: its oldest counted vote
# newer than its live tally, found by the (sticker, voted_at) index with one probe per sticker.
_TALLY_LAG_SQL = f"""
    SELECT coalesce(extract(epoch FROM now() - min(pending.voted_at)), 0)
    FROM {Sticker._meta.db_table} s
    LEFT JOIN {StickerTally._meta.db_table} t ON t.sticker_id = s.id
    CROSS JOIN LATERAL (
        SELECT v.voted_at FROM {Vote._meta.db_table} v
        WHERE v.sticker_id = s.id AND v.counted
          AND v.voted_at > coalesce(t.as_of, '-infinity'::timestamptz)
        ORDER BY v.voted_at LIMIT 1
    ) pending
    WHERE s.state = ANY(%(states)s) AND s.kind = ANY(%(kinds)s)
"""


class LiveTallyLagCollector:
    """How far live results trail the committed votes (SPEC §2.3: at most 2 s): the age of the
    oldest counted vote that its sticker's live tally does not include yet, 0 when every tally
    is current.

    Read from PostgreSQL rather than from the Redis marks: a mark lost with Redis, or one kept
    fresh by a stream of votes while no refresh runs, would hide the lag the guarantee is about.
    """

    name = "live_tally_lag"

    def collect(self) -> Iterator[Metric]:
        with scrape_cursor() as cursor:
            cursor.execute(
                _TALLY_LAG_SQL,
                {"states": [str(state) for state in _LIVE_STATES], "kinds": list(VOTABLE_KINDS)},
            )
            (lag,) = cursor.fetchone()
        yield GaugeMetricFamily(
            "chorus_live_tally_lag_seconds",
            "Age of the oldest counted vote not yet in its sticker's live tally (0: all current).",
            value=max(float(lag), 0.0),
        )


class StickersOverdueCollector:
    """Stickers that should have closed (scheduled, open) or been finalized (closed) more than
    OVERDUE_AFTER ago: SPEC §2.6 says within a few seconds of closes_at."""

    name = "stickers_overdue"

    def collect(self) -> Iterator[Metric]:
        cutoff = timezone.now() - OVERDUE_AFTER
        with scrape_cursor():
            # (the partial index sticker_due_idx holds exactly the scheduled and open ones)
            late = dict(
                Sticker.objects.filter(state__in=CLOCK_DRIVEN, closes_at__lt=cutoff)
                .values_list("state")
                .annotate(count=Count("id"))
                .order_by()
            )
            late[str(Sticker.State.CLOSED)] = Sticker.objects.filter(
                state=Sticker.State.CLOSED, closed_at__lt=cutoff
            ).count()
        family = GaugeMetricFamily(
            "chorus_stickers_overdue",
            f"Stickers still scheduled or open more than {OVERDUE_AFTER.seconds} s after "
            f"closes_at, and closed ones not final that long after closing.",
            labels=["state"],
        )
        for state in _LIVE_STATES:
            family.add_metric([str(state)], late.get(str(state), 0))
        yield family
