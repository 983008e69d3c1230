"""`manage.py integrity_evaluate` (SPEC §5 "Evaluation"): refusals, the scratch database's life,
the load and the read-back, and the FLAGGED file, with a test double in place of the engine
(the command's own plumbing is what is tested here, not detection)."""

import ipaddress
import json
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from io import StringIO
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from integrity import detection
from integrity.detection import Events, Flag
from integrity.evaluation.csv_check import events_csv_check
from integrity.evaluation.scratch import SCRATCH_PREFIX

HEADER = "user_id,video_id,creator_id,ts,device_id,ip\n"
GOOD = [
    "alice,v1,cara,2026-10-01T10:00:00Z,dev-a,192.0.2.1",
    "bob,v1,cara,2026-10-01T10:00:05.250000+00:00,dev-b,2001:db8::1",
    "alice,v2,dan,2026-10-01T09:00:00+02:00,dev-a,",
    "cara,v2,dan,2026-10-01 11:30:00Z,,192.0.2.9",
    "bob,v2,dan,2026-10-01T11:31:00Z,dev-b,192.0.2.1",
]


def _scratch_databases() -> list[str]:
    """This test process's scratch databases (other xdist workers run their own)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT datname FROM pg_database WHERE starts_with(datname, %s)",
            [f"{SCRATCH_PREFIX}{os.getpid()}_"],
        )
        return [row[0] for row in cursor.fetchall()]


def _write(tmp_path: Path, content: str | bytes) -> Path:
    path = tmp_path / "events.csv"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def _run(events: Path, *args: str) -> str:
    stderr = StringIO()
    call_command("integrity_evaluate", str(events), *args, stderr=stderr, stdout=StringIO())
    return stderr.getvalue()


@pytest.fixture
def engine(monkeypatch: pytest.MonkeyPatch) -> Callable[..., list[Any]]:
    """integrity.detection.detect replaced by a stand-in that records the Events it is given
    and flags every account with at least two likes (score = its likes, signals fixed): what
    is tested here is the command's plumbing around the real loader, not detection."""
    seen: list[Any] = []

    def detect(events: Events) -> list[Flag]:
        seen.append(events)
        counts = np.bincount(events.user)
        return [
            Flag(int(u), float(counts[u]), ("lockstep", "velocity"))
            for u in np.flatnonzero(counts >= 2)
        ]

    monkeypatch.setattr(detection, "detect", detect)

    def install(replacement: Callable[[Events], list[Flag]] | None = None) -> list[Any]:
        if replacement is not None:
            monkeypatch.setattr(detection, "detect", replacement)
        return seen

    return install


MALFORMED = [
    pytest.param(b"", 1, "the file is empty", id="empty"),
    pytest.param(b"user_id,video_id,creator_id,ts,device,ip\n", 1, "the header is", id="header"),
    pytest.param(
        (HEADER + GOOD[0] + "\nbob,v1,cara,2026-10-01T10:00:00Z,dev\n").encode(),
        3,
        "5 fields, expected 6",
        id="fields",
    ),
    pytest.param(
        (HEADER + ",v1,cara,2026-10-01T10:00:00Z,d,\n").encode(),
        2,
        "user_id is empty",
        id="empty-id",
    ),
    pytest.param(
        (HEADER + GOOD[0] + "\nbob,v1,cara,2026-13-01T10:00:00Z,d,\n").encode(),
        3,
        "ts '2026-13-01T10:00:00Z' is not an ISO 8601",
        id="bad-date",
    ),
    pytest.param(
        (HEADER + "bob,v1,cara,2026-10-01T10:00:00,d,\n").encode(),
        2,
        "has no UTC offset",
        id="naive-ts",
    ),
    pytest.param(
        (HEADER + "bob,v1,cara,2026-10-01T10:00:00Z,d,300.1.2.3\n").encode(),
        2,
        "ip '300.1.2.3' is not an IPv4 or IPv6 address",
        id="bad-ip",
    ),
    pytest.param(
        (HEADER + "bob,v1,cara,2026-10-01T10:00:00Z,d,10.0.0.0/8\n").encode(),
        2,
        "ip '10.0.0.0/8'",
        id="cidr",
    ),
    pytest.param(
        (HEADER + GOOD[0] + "\n" + GOOD[1] + "\nbob,v1,dan,2026-10-01T10:00:00Z,d,\n").encode(),
        4,
        "video 'v1' has creator 'dan' here and 'cara' on an earlier line",
        id="two-creators",
    ),
    pytest.param(
        (HEADER + GOOD[0] + "\n\n" + GOOD[1] + "\n").encode(), 3, "blank line", id="blank"
    ),
    pytest.param(
        (HEADER + "bob,v1,cara,2026-10-01T10:00:00Z,d\x07x,\n").encode(),
        2,
        "device_id 'd\\x07x' contains a control character",
        id="control",
    ),
    pytest.param(
        HEADER.encode() + b"b\xffb,v1,cara,2026-10-01T10:00:00Z,d,\n",
        2,
        "user_id is not valid UTF-8",
        id="utf8",
    ),
    pytest.param(
        (HEADER + GOOD[0] + '\n"bob"x,v1,cara,2026-10-01T10:00:00Z,d,\n').encode(),
        3,
        "not valid CSV",
        id="quoting",
    ),
    pytest.param(
        (HEADER + "u" * 151 + ",v1,cara,2026-10-01T10:00:00Z,d,\n").encode(),
        2,
        "user_id is 151 characters long (at most 150)",
        id="long-id",
    ),
    pytest.param(
        (HEADER + "bob,v1,cara,2026-10-01T10:00:00Z," + "d" * 129 + ",\n").encode(),
        2,
        "device_id is 129 characters long (at most 128)",
        id="long-device",
    ),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("content", "line", "problem"), MALFORMED)
def test_a_malformed_file_is_refused_naming_the_line_and_nothing_changes(
    tmp_path: Path, content: bytes, line: int, problem: str, engine: Callable[..., list[Any]]
) -> None:
    # given a file with one malformed line, and the engine in place
    seen = engine()
    events, out = _write(tmp_path, content), tmp_path / "flagged.csv"
    databases_before = _scratch_databases()

    # when it is evaluated
    with pytest.raises(CommandError) as refusal:
        _run(events, "--out", str(out))

    # then the message names the line and the problem, and nothing was created or run
    message = str(refusal.value)
    assert message.startswith(f"{events}: line {line}: ")
    assert problem in message
    assert message.endswith("refused, nothing was loaded")
    assert _scratch_databases() == databases_before == []
    assert not out.exists()
    assert seen == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["events.csv"]


def test_the_check_takes_every_iso_8601_form_with_an_offset_and_passes_it_on_readably(
    tmp_path: Path,
) -> None:
    # given one like per form of timestamp, quoted fields, CRLF line ends and a byte-order mark
    forms = [
        ("2026-10-01T10:00:00.123456Z", "2026-10-01T10:00:00.123456Z"),
        ("2026-10-01 10:00:00+00:00", "2026-10-01 10:00:00+00:00"),
        ("2026-10-01T10:00:00.123456789Z", "2026-10-01T10:00:00.123456+00:00"),
        ("2026-10-01T10:00Z", "2026-10-01T10:00:00+00:00"),
        ("2026-10-01T10:00:00z", "2026-10-01T10:00:00+00:00"),
        ("20261001T100000Z", "2026-10-01T10:00:00+00:00"),
        ("2026-10-01T12:00:00.5+02:00", "2026-10-01T10:00:00.500000+00:00"),
    ]
    lines = [f'"u,{i}",v{i},c,{given},d\\x,::ffff:192.0.2.1' for i, (given, _) in enumerate(forms)]
    events = tmp_path / "events.csv"
    events.write_bytes(("\ufeff" + HEADER + "\r\n".join(lines) + "\r\n").encode())
    rows = StringIO()

    # when
    checked = events_csv_check(events, rows)

    # then
    assert checked.likes == len(forms)
    assert checked.account_ids == ["u,0", "c", *(f"u,{i}" for i in range(1, len(forms)))]
    written = [row.split("\t") for row in rows.getvalue().splitlines()]
    assert [row[2] for row in written] == [expected for _, expected in forms]
    assert {ipaddress.ip_address(row[3]) for row in written} == {
        ipaddress.ip_address("::ffff:192.0.2.1")
    }
    assert {row[4] for row in written} == {"d\\\\x"}  # a backslash, escaped for COPY


@pytest.mark.django_db
def test_without_the_detection_engine_it_stops_before_loading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a well-formed file and no integrity.detection
    monkeypatch.setitem(sys.modules, "integrity.detection", None)
    events, out = _write(tmp_path, HEADER + "\n".join(GOOD) + "\n"), tmp_path / "flagged.csv"

    # when / then
    with pytest.raises(
        CommandError, match=r"^detection engine not available .*nothing was loaded$"
    ):
        _run(events, "--out", str(out))
    assert _scratch_databases() == []
    assert not out.exists()


@pytest.mark.django_db
def test_a_missing_output_directory_is_refused_before_anything(tmp_path: Path) -> None:
    events = _write(tmp_path, HEADER + "\n".join(GOOD) + "\n")
    with pytest.raises(CommandError, match=r"the directory .* does not exist; nothing was loaded"):
        _run(events, "--out", str(tmp_path / "no" / "flagged.csv"))
    assert _scratch_databases() == []


@pytest.mark.django_db(transaction=True)
def test_it_loads_detects_and_writes_the_flagged_accounts_with_their_own_ids(
    tmp_path: Path, engine: Callable[..., list[Any]]
) -> None:
    # given five likes, one of them repeated later (the earliest stays), in no time order
    seen = engine()
    repeated = "alice,v1,cara,2026-10-02T00:00:00Z,dev-z,192.0.2.200"
    events = _write(tmp_path, HEADER + "\n".join([*GOOD, repeated]) + "\n")
    out, report = tmp_path / "flagged.csv", tmp_path / "report.json"

    # when
    progress = _run(events, "--out", str(out), "--report-json", str(report))

    # then the engine saw the likes in time order, densely coded, with the file's user ids
    (got,) = seen
    assert list(got.user_ids) == ["1", "2", "3"]  # alice, cara, bob: numbered as they appear
    assert got.ts.tolist() == [
        int(datetime(2026, 10, 1, h, m, s, us, tzinfo=UTC).timestamp() * 1_000_000)
        for h, m, s, us in [
            (7, 0, 0, 0),
            (10, 0, 0, 0),
            (10, 0, 5, 250_000),
            (11, 30, 0, 0),
            (11, 31, 0, 0),
        ]
    ]
    assert got.user.tolist() == [0, 0, 2, 1, 2]  # alice (09:00+02:00), alice, bob, cara, bob
    assert got.video.tolist() == [2, 1, 1, 2, 2]  # v1 and v2: the loader gives database ids
    assert got.creator.tolist() == [4, 2, 2, 4, 4]  # dan and cara
    device, ip = got.device.tolist(), got.ip.tolist()
    assert device[3] == -1  # cara sent no device id
    assert device[0] == device[1] != device[2] == device[4] and {device[0], device[2]} == {0, 1}
    assert ip[0] == -1  # nor did alice's first like carry an address
    assert ip[1] == ip[4] and len({ip[1], ip[2], ip[3]}) == 3 and set(ip[1:]) == {0, 1, 2}
    # and FLAGGED.csv has the accounts it flagged, highest score first, ties by id
    assert out.read_text() == (
        "user_id,score,signals\nalice,2,lockstep|velocity\nbob,2,lockstep|velocity\n"
    )
    timings = dict.fromkeys(["phases", "load_detail", "peak_rss_mb", "total_s"])
    assert json.loads(report.read_text()) | timings == timings | {
        "likes": 6,
        "accounts": 4,
        "videos": 2,
        "duplicates_dropped": 1,
        "flagged": 2,
    }
    assert "load: 6 likes by COPY, 1 repeated likes dropped" in progress
    assert "detect: 2 accounts flagged" in progress
    assert _scratch_databases() == []


@pytest.mark.django_db(transaction=True)
def test_an_interrupted_run_drops_its_scratch_database(
    tmp_path: Path, engine: Callable[..., list[Any]]
) -> None:
    # given an engine that is interrupted (Ctrl-C) half-way
    created: list[list[str]] = []

    def interrupted(events: Any) -> list[Any]:
        created.append(_scratch_databases())
        raise KeyboardInterrupt

    engine(interrupted)
    events, out = _write(tmp_path, HEADER + "\n".join(GOOD) + "\n"), tmp_path / "flagged.csv"

    # when / then: the scratch database existed during the run and is gone after it
    with pytest.raises(CommandError, match="interrupted; the scratch database was dropped") as stop:
        _run(events, "--out", str(out))
    assert stop.value.returncode == 130
    assert len(created) == 1 and len(created[0]) == 1
    assert _scratch_databases() == []
    assert not out.exists()


@pytest.mark.django_db(transaction=True)
def test_load_only_loads_and_reads_back_without_detecting(
    tmp_path: Path, engine: Callable[..., list[Any]]
) -> None:
    seen = engine()
    events, report = _write(tmp_path, HEADER + "\n".join(GOOD) + "\n"), tmp_path / "report.json"

    progress = _run(events, "--load-only", "--report-json", str(report))

    assert "read: 5 likes as Events by integrity.detection.load" in progress
    assert seen == []
    assert json.loads(report.read_text())["likes"] == 5
    assert set(json.loads(report.read_text())["phases"]) == {
        "check",
        "create",
        "load",
        "read",
        "drop",
    }
    assert _scratch_databases() == []
