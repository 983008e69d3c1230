"""The analytics consumers' freshness on /metrics (analytics.metrics)."""

import re

import pytest
from django.test import Client

from analytics.metrics import AS_OF
from analytics.services.consumer import analytics_events_process
from analytics.services.heat import heat_events_process
from analytics.services.trending import trending_events_process
from core.models import Watermark

pytestmark = pytest.mark.django_db


def _lags() -> dict[str, float]:
    page = Client().get("/metrics").content.decode()
    return {
        consumer: float(value)
        for consumer, value in re.findall(
            r'^chorus_analytics_lag_seconds\{consumer="(\w+)"\} (\S+)$', page, re.M
        )
    }


def test_each_consumer_reports_its_lag_once_it_has_run() -> None:
    # given no pass yet (a real worker of another test may have run them: forget its as_of
    # within this test's transaction): no sample, and absent() catches a consumer never run
    Watermark.objects.filter(name__in=AS_OF.values()).delete()
    assert _lags() == {}

    # when each consumer runs a pass over nothing new
    analytics_events_process()
    heat_events_process()
    trending_events_process()

    # then each reports a small lag: about the safety lag its as_of keeps (5 s)
    lags = _lags()
    assert set(lags) == {"creator_centre", "heat", "trending"}
    assert all(0 <= lag < 30 for lag in lags.values()), lags
