"""Where the admin's creator centre gets its documents: the only import to change when
`analytics.selectors` (served from rollups) arrives.

Until then both functions compute the documents with the raw oracle at `timezone.now()`, with
the `as_of` the API adds. Same names and keyword arguments as the selectors to come, so
`analytics.admin` swaps `from analytics.admin_source import …` for
`from analytics.selectors import …` and nothing else. They raise what the selectors will:
`analytics.parameters.InvalidAnalyticsParameter` (a ValueError) for a bad `days` or `tz`,
`Video.DoesNotExist` for an unknown video.
"""

from typing import Any

from django.utils import timezone

from analytics.parameters import iso_utc
from analytics.raw import creator_figures_raw, video_figures_raw


def creator_analytics_document(*, creator_id: int, days: int, tz: str) -> dict[str, Any]:
    now = timezone.now()
    figures = creator_figures_raw(creator_id=creator_id, days=days, tz=tz, now=now)
    return {"as_of": iso_utc(now), **figures}


def video_analytics_document(*, video_id: int, days: int, tz: str) -> dict[str, Any]:
    now = timezone.now()
    figures = video_figures_raw(video_id=video_id, days=days, tz=tz, now=now)
    return {"as_of": iso_utc(now), **figures}
