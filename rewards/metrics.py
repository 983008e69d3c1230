"""How far the rewards consumer trails the newest events (rewards.services.events).

Per watermark: `..._lag_events`, the ids past the watermark (gaps left by rolled-back inserts
count too, so it is an upper bound), and `..._lag_seconds`, the age of the oldest event past it.
The consumer leaves rows younger than SAFETY_LAG (5 s) for its next run on purpose, and runs
woken after commits or every REWARDS_SWEEP_SECONDS, so a few seconds to a sweep interval of lag
is normal; minutes mean it is stuck or down.
"""

from collections.abc import Iterator

from django.db.models import Count, Min
from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily, Metric

from core.eventlog import position_as_time
from core.metrics.collectors import scrape_cursor
from core.models import Watermark
from polls.models import Sticker
from rewards.services.events import EVENT_TABLES, FINALS, watermark_name


class RewardConsumerLagCollector:
    name = "reward_consumer_lag"

    def collect(self) -> Iterator[Metric]:
        events = GaugeMetricFamily(
            "chorus_reward_consumer_lag_events",
            "Events past the rewards consumer's watermark, by source (ids past it for the "
            "event tables, stickers finalized after it for finals).",
            labels=["source"],
        )
        seconds = GaugeMetricFamily(
            "chorus_reward_consumer_lag_seconds",
            "Age of the oldest event past the rewards consumer's watermark, by source (0: none).",
            labels=["source"],
        )
        with scrape_cursor() as cursor:
            names = {watermark_name(source): source for source in [*EVENT_TABLES, FINALS]}
            positions = {
                names[name]: position
                for name, position in Watermark.objects.filter(name__in=names).values_list(
                    "name", "position"
                )
            }
            for source, model in EVENT_TABLES.items():
                position = positions.get(source, 0)
                table = model._meta.db_table
                # Both by the primary key index: the newest id, and the first row past the mark.
                cursor.execute(
                    f"SELECT (SELECT max(id) FROM {table}), "
                    f"(SELECT extract(epoch FROM now() - created_at) FROM {table} "
                    f"WHERE id > %s ORDER BY id LIMIT 1)",
                    [position],
                )
                newest, age = cursor.fetchone()
                events.add_metric([source], max((newest or 0) - position, 0))
                seconds.add_metric([source], max(float(age or 0), 0.0))
            since = position_as_time(positions.get(FINALS, 0))
            finals = Sticker.objects.filter(
                state=Sticker.State.FINAL, kind=Sticker.Kind.ENDING, finalized_at__gt=since
            ).aggregate(count=Count("id"), oldest=Min("finalized_at"))
        events.add_metric([FINALS], finals["count"])
        oldest = finals["oldest"]
        seconds.add_metric(
            [FINALS], max((timezone.now() - oldest).total_seconds(), 0.0) if oldest else 0.0
        )
        yield events
        yield seconds
