"""The analytics consumers' freshness on /metrics (analytics.metrics)."""

import re

import pytest
from django.test import Client

from analytics.services.consumer import analytics_events_process
from analytics.services.heat import heat_events_process
from analytics.services.trending import trending_events_process

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
    # given no pass yet: no sample (an alert on absent() catches a consumer that never ran)
    assert _lags() == {}

    # when each consumer runs a pass over nothing new
    analytics_events_process()
    heat_events_process()
    trending_events_process()

    # then each reports a small lag: about the safety lag its as_of keeps (5 s)
    lags = _lags()
    assert set(lags) == {"creator_centre", "heat", "trending"}
    assert all(0 <= lag < 30 for lag in lags.values()), lags
