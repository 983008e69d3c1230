"""How fresh the analytics tables are: the age of each consumer's `as_of`.

SPEC: the creator centre, the hot list and trending trail the committed interactions by at most
60 seconds. Each consumer records the time up to which every committed interaction is applied
(its `as_of`); `now - as_of` is the lag an operator alerts on. Read from PostgreSQL (one small
query), so every web host reports the same values.

And how much the document refresher computes (in the worker that runs it): a counter per kind
of document, for the operator's "refreshes per second" (rate() of the counter).
"""

from collections.abc import Iterator

from django.utils import timezone
from prometheus_client import Counter
from prometheus_client.core import GaugeMetricFamily, Metric

from analytics.services import consumer, heat, trending
from core.eventlog import position_as_time
from core.metrics.collectors import scrape_cursor
from core.models import Watermark

DOCUMENT_REFRESHES = Counter(
    "chorus_analytics_document_refreshes",
    "Creator-centre documents recomputed ahead of their requests by the refresher, by kind "
    "(creator, video).",
    ["kind"],
)

# Each consumer's time watermark: every committed interaction before it has been applied.
AS_OF = {"creator_centre": consumer.AS_OF, "heat": heat.AS_OF, "trending": trending.AS_OF}


class AnalyticsLagCollector:
    name = "analytics_lag"

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "chorus_analytics_lag_seconds",
            "Age of the time up to which each analytics consumer has applied every committed "
            "interaction (SPEC: at most 60 s). Absent until its first pass.",
            labels=["consumer"],
        )
        now = timezone.now()
        with scrape_cursor():
            positions = dict(
                Watermark.objects.filter(name__in=AS_OF.values()).values_list("name", "position")
            )
        for name, watermark in AS_OF.items():
            if positions.get(watermark):  # none yet: no pass has finished
                at = position_as_time(positions[watermark])
                family.add_metric([name], max((now - at).total_seconds(), 0.0))
        yield family
