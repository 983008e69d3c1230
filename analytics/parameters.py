"""The parameters every creator-centre figure takes: the window (`days`, `now`) and the time zone.

The API maps `InvalidAnalyticsParameter` (a ValueError) to a 400 problem document; the raw
computation raises it too, so nothing computes figures for a window or zone SPEC does not define.
"""

import zoneinfo
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache

ALLOWED_DAYS = (7, 28, 90)
DEFAULT_DAYS = 28
DEFAULT_TIMEZONE = "UTC"

# Entries of the zoneinfo directory that are not IANA zones: `localtime` is the host's own
# setting (a symlink to /etc/localtime) and `posixrules` a compiler default; PostgreSQL knows
# neither by that name.
_NOT_ZONES = frozenset({"localtime", "posixrules"})


class InvalidAnalyticsParameter(ValueError):
    """A parameter outside what SPEC §3 allows (the API answers 400)."""

    field = ""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UnknownTimeZone(InvalidAnalyticsParameter):
    field = "tz"


class InvalidWindow(InvalidAnalyticsParameter):
    field = "days"


@lru_cache(maxsize=1)
def _known_zones() -> frozenset[str]:
    # available_timezones() walks the tz database on disk; the set does not change while a
    # process runs (a tzdata upgrade restarts it).
    return frozenset(zoneinfo.available_timezones()) - _NOT_ZONES


def check_timezone(tz: str) -> str:
    """Return `tz` when it names an IANA zone (exact spelling, as Python's zoneinfo knows it)."""
    if not isinstance(tz, str) or tz not in _known_zones():
        raise UnknownTimeZone(f"Unknown time zone {tz!r}: give an IANA name such as Europe/Berlin.")
    return tz


@dataclass(frozen=True)
class Window:
    """`[start, end)`; the window of the same length before it is `[previous_start, start)`."""

    days: int
    start: datetime
    end: datetime

    @property
    def previous_start(self) -> datetime:
        return self.start - timedelta(days=self.days)

    def as_document(self) -> dict[str, object]:
        return {"days": self.days, "start": iso_utc(self.start), "end": iso_utc(self.end)}


def window_ending(*, days: int, now: datetime) -> Window:
    """The window `[now - days, now)`; `now` must be aware (it is taken in UTC)."""
    if isinstance(days, bool) or days not in ALLOWED_DAYS:
        raise InvalidWindow(f"days must be one of {', '.join(map(str, ALLOWED_DAYS))}.")
    if now.tzinfo is None or now.utcoffset() is None:
        raise InvalidAnalyticsParameter("now must be an aware datetime.")
    end = now.astimezone(UTC)
    return Window(days=days, start=end - timedelta(days=days), end=end)


def iso_utc(value: datetime) -> str:
    """ISO 8601 in UTC with a `Z` (SPEC §3: timestamps are ISO 8601 UTC)."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
