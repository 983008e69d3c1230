"""The events CSV of `integrity_evaluate`, checked line by line before anything is changed.

`events_csv_check` reads the whole file once, refuses the first malformed line with
MalformedEvents (its line number and what is wrong), and writes the likes as COPY text rows of
`engagement_like` to `target` while it goes, numbering accounts and videos in the order they
first appear. What it accepts (docs/integrity-bench.md, "The events file"):

- UTF-8 (a byte-order mark is allowed), RFC 4180 CSV, the header exactly
  `user_id,video_id,creator_id,ts,device_id,ip`, then one like a line, 6 fields, no blank line;
- user_id, video_id, creator_id: opaque, 1-150 printable characters (150: the longest username);
  a user_id and a creator_id that are equal are the same account; a video has one creator;
- ts: an ISO 8601 date and time with an explicit offset (`Z` or RFC 3339's `z`, `+00:00`, or any
  other offset: it names an instant), as Python's fromisoformat reads it (decimals past the
  microsecond are dropped); a time without an offset is refused;
- device_id: 0-128 printable characters (empty: the app sent none, stored blank as the API does);
- ip: empty (unknown, stored NULL) or an IPv4 or IPv6 address without a zone or a mask.

The file need not be in time order. The same user liking the same video twice is not refused:
the earliest like counts, as the database's one-like rule keeps it (the loader reports them).
"""

from __future__ import annotations

import csv
import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

HEADER = ["user_id", "video_id", "creator_id", "ts", "device_id", "ip"]
ID_MAX_LENGTH = 150
DEVICE_MAX_LENGTH = 128
WRITE_EVERY = 100_000
# The usual form after the date (`2026-10-01` checked apart, once per date): a time of day with
# seconds, up to 6 decimals, in UTC. PostgreSQL's timestamptz input reads it as Python does.
_USUAL_TIME = re.compile(r"[T ](?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d(?:\.\d{1,6})?(?:Z|\+00:00)")
_IP_CACHE_LIMIT = 2_000_000


class MalformedEvents(ValueError):
    def __init__(self, line: int, problem: str) -> None:
        super().__init__(f"line {line}: {problem}")
        self.line = line
        self.problem = problem


@dataclass
class CheckedEvents:
    likes: int = 0
    account_ids: list[str] = field(default_factory=list)  # account number - 1 -> id text
    video_ids: list[str] = field(default_factory=list)  # video number - 1 -> id text
    video_creator: list[int] = field(default_factory=list)  # video number - 1 -> account number
    first_ts: datetime | None = None


def _field_problem(name: str, value: str, limit: int, *, required: bool) -> str | None:
    if required and not value:
        return f"{name} is empty"
    if len(value) > limit:
        return f"{name} is {len(value)} characters long (at most {limit})"
    if not value.isprintable():
        if any(0xD800 <= ord(c) <= 0xDFFF for c in value):
            return f"{name} is not valid UTF-8"
        return f"{name} {value!r} contains a control character"
    return None


def _ids_problem(user: str, video: str, creator: str, device: str) -> str | None:
    for name, value, limit, required in (
        ("user_id", user, ID_MAX_LENGTH, True),
        ("video_id", video, ID_MAX_LENGTH, True),
        ("creator_id", creator, ID_MAX_LENGTH, True),
        ("device_id", device, DEVICE_MAX_LENGTH, False),
    ):
        problem = _field_problem(name, value, limit, required=required)
        if problem:
            return problem
    return None


def _ip_text(ip: str) -> str:
    """The address as PostgreSQL's inet takes it, or ValueError."""
    address = ipaddress.ip_address(ip)
    if isinstance(address, ipaddress.IPv6Address) and address.scope_id:
        raise ValueError("zone")
    return str(address)


def events_csv_check(
    source: Path, target: TextIO, progress: Callable[[int], None] | None = None
) -> CheckedEvents:
    """Check the whole file; write `user_id, video_id, created_at, ip, device_id, counted` COPY
    text rows to target (a like's id is its row's place: the table's identity numbers them in
    order). Raises MalformedEvents at the first bad line.

    A line without a double quote is split on commas (the ids are opaque but rarely quoted);
    one with a quote goes through the csv module. Lines are physical lines: a quoted field may
    not hold a line break (no field may hold a control character)."""
    checked = CheckedEvents()
    accounts: dict[str, str] = {}  # id -> account number, as text
    videos: dict[str, str] = {}  # id -> video number, as text
    creator_of: dict[str, str] = {}  # video number -> account number
    ips: dict[str, str] = {}
    dates: dict[str, bool] = {}
    account_ids, video_ids, video_creator = (
        checked.account_ids,
        checked.video_ids,
        checked.video_creator,
    )
    rows: list[str] = []
    line_number = 1
    usual_time = _USUAL_TIME.fullmatch
    with source.open(newline="", encoding="utf-8-sig", errors="surrogateescape") as handle:
        header_line = handle.readline()
        if not header_line:
            raise MalformedEvents(1, f"the file is empty; expected the header {','.join(HEADER)}")
        header = _csv_fields(header_line.rstrip("\r\n"), 1)
        if header != HEADER:
            raise MalformedEvents(
                1, f"the header is {','.join(header)!r}, expected {','.join(HEADER)!r}"
            )
        for line in handle:
            line_number += 1
            line = line.rstrip("\r\n")
            fields = line.split(",") if '"' not in line else _csv_fields(line, line_number)
            if len(fields) != 6:
                if not line:
                    raise MalformedEvents(line_number, "blank line")
                raise MalformedEvents(
                    line_number, f"{len(fields)} fields, expected 6 ({','.join(HEADER)})"
                )
            user, video, creator, ts, device, ip = fields
            joined = user + video + creator + device
            # (all four together within the smallest limit: each is within its own)
            if (
                not (user and video and creator)
                or len(joined) > DEVICE_MAX_LENGTH
                or not joined.isprintable()
            ):
                problem = _ids_problem(user, video, creator, device)
                if problem:
                    raise MalformedEvents(line_number, problem)
            # the usual form (…T…Z or +00:00, seconds, up to 6 decimals) is checked by pattern,
            # its date once; anything else by fromisoformat, and passed on in UTC isoformat
            date = dates.get(ts[:10])
            if date is None or not usual_time(ts, 10):
                ts = _ts_other(ts, line_number, dates)
            if checked.first_ts is None:
                checked.first_ts = datetime.fromisoformat(ts)
            if ip:
                ip_text = ips.get(ip)
                if ip_text is None:
                    try:
                        ip_text = _ip_text(ip)
                    except ValueError:
                        raise MalformedEvents(
                            line_number, f"ip {ip!r} is not an IPv4 or IPv6 address (or empty)"
                        ) from None
                    if len(ips) >= _IP_CACHE_LIMIT:
                        ips.clear()
                    ips[ip] = ip_text
            else:
                ip_text = "\\N"
            user_number = accounts.get(user)
            if user_number is None:
                account_ids.append(user)
                user_number = accounts[user] = str(len(account_ids))
            creator_number = accounts.get(creator)
            if creator_number is None:
                account_ids.append(creator)
                creator_number = accounts[creator] = str(len(account_ids))
            video_number = videos.get(video)
            if video_number is None:
                video_ids.append(video)
                video_creator.append(int(creator_number))
                video_number = videos[video] = str(len(video_ids))
                creator_of[video_number] = creator_number
            elif creator_of[video_number] != creator_number:
                earlier = account_ids[int(creator_of[video_number]) - 1]
                raise MalformedEvents(
                    line_number,
                    f"video {video!r} has creator {creator!r} here and {earlier!r} on an "
                    "earlier line (a video has one creator)",
                )
            if "\\" in device:
                device = device.replace("\\", "\\\\")
            rows.append(f"{user_number}\t{video_number}\t{ts}\t{ip_text}\t{device}\tt\n")
            if len(rows) >= WRITE_EVERY:
                target.write("".join(rows))
                rows.clear()
                if progress:
                    progress(line_number - 1)
    target.write("".join(rows))
    checked.likes = line_number - 1
    return checked


def _csv_fields(line: str, line_number: int) -> list[str]:
    try:
        return next(csv.reader([line], strict=True), [])
    except csv.Error as error:
        raise MalformedEvents(
            line_number, f"not valid CSV ({error}; a line break inside a field is refused too)"
        ) from None


def _ts_other(ts: str, line_number: int, dates: dict[str, bool]) -> str:
    """A timestamp not in the usual form (or on a date not seen yet): checked by fromisoformat;
    returned as PostgreSQL will read it."""
    try:
        # (RFC 3339 allows a lowercase z; fromisoformat does not)
        moment = datetime.fromisoformat(ts[:-1] + "Z" if ts.endswith("z") else ts)
    except ValueError:
        raise MalformedEvents(line_number, f"ts {ts!r} is not an ISO 8601 date and time") from None
    if moment.tzinfo is None:
        raise MalformedEvents(line_number, f"ts {ts!r} has no UTC offset (end it with Z or +00:00)")
    if _USUAL_TIME.fullmatch(ts, 10):
        dates[ts[:10]] = True  # a valid date: the usual form is checked by pattern from now on
        return ts
    return moment.astimezone(UTC).isoformat()
