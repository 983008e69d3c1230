"""The detector measurement, run small: planted trends land in the top 20, decoys do not."""

from datetime import UTC, datetime, timedelta

import pytest

from analytics.discovery import trending_document
from analytics.services.trending import slice_floor
from analytics.trending_eval import detector_measure, world_generate, world_load

pytestmark = pytest.mark.django_db


def test_planted_trends_are_found_and_decoys_are_not() -> None:
    end = slice_floor(datetime.now(UTC) - timedelta(minutes=5))
    world = world_generate(end=end, background_tags=40, positives=10, users=4000)
    world_load(world)

    # (10 planted trends here, so the top 10; the bench plants 20 and measures the top 20)
    measure = detector_measure(world, top=10)

    assert (measure.precision, measure.recall) == (1.0, 1.0)
    assert set(measure.top) == world.positives
    for decoy in world.negatives:
        assert decoy not in measure.top
    listed = {row["hashtag"] for row in trending_document(hours=24, limit=100, end=end)["results"]}
    # the spammer's and the bots' tags are not even listed (2 users; no counted rows)
    assert "tw-creator-spam" not in listed
    assert "tw-bot-burst" not in listed
    # 1 -> 5 is listed (5 users) but ranks below every real trend
    assert "tw-small-riser" in listed
