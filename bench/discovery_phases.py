"""The discovery phases (import only after django.setup()).

- `trending`: the trending detector measured on a generated stream (analytics.trending_eval):
  200 background tags with stable Poisson activity and a daily rhythm, 20 planted real trends
  (1,000 -> 1,500 and other sizes), and decoys (1 -> 5, one creator spamming a tag with two
  accounts, 2,000 uncounted bot likes, a falling tag); precision and recall of the top 20.
  In-process against the scratch database: it measures ranking quality, not speed.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

from analytics.services.trending import slice_floor
from analytics.trending_eval import detector_measure, world_generate, world_load
from bench.plan import Plan
from bench.stack import say


def phase_trending(plan: Plan) -> dict[str, Any]:
    started = time.monotonic()
    end = slice_floor(datetime.now(UTC) - timedelta(minutes=5))
    world = world_generate(
        end=end,
        background_tags=100 if plan.quick else 400,
        positives=20,
        users=20_000 if plan.quick else 60_000,
    )
    world_load(world, prefix="bench-trend")
    loaded = time.monotonic()
    measure = detector_measure(world, prefix="bench-trend", top=20)
    say(
        f"trending: {len(world.events):,} interactions on {len(world.videos):,} videos, "
        f"loaded in {loaded - started:.1f} s, consumed and ranked in "
        f"{time.monotonic() - loaded:.1f} s; top 20: {', '.join(measure.top)}"
    )
    return {
        "trending_precision": measure.precision,
        "trending_recall": measure.recall,
        "trending_interactions": len(world.events),
        "trending_tags": len({tag for tag, _ in world.videos}),
        "trending_positives": measure.positives,
        "trending_top": measure.top,
    }
