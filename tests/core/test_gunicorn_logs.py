"""gunicorn's own lines go through Django's LOGGING (config/gunicorn.py): a real gunicorn."""

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tests.conftest import ROOT, wait_until


def _json_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_gunicorn_logs_json_lines_and_its_access_line_carries_the_request_id(
    tmp_path: Path,
) -> None:
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "LOG_")) and key != "PYTEST_XDIST_WORKER"
    }
    environment.update(
        DJANGO_SETTINGS_MODULE="config.settings.production",
        DJANGO_SECRET_KEY="g" * 40,
        DJANGO_SECURE_SSL_REDIRECT="false",
        PYTHONWARNINGS="ignore",
    )
    stderr_path = tmp_path / "gunicorn.err"
    with stderr_path.open("w") as stderr:
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "-c",
                "python:config.gunicorn",
                "config.wsgi:application",
                "--bind",
                "127.0.0.1:0",  # any free port; gunicorn logs which
                "--workers",
                "1",
                "--no-control-socket",
                "--access-logfile",
                "-",
            ],
            cwd=ROOT,
            env=environment,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
        try:
            assert wait_until(lambda: "Booting worker" in stderr_path.read_text(), timeout=60)
            [port] = re.findall(r"Listening at: http://127\.0\.0\.1:(\d+)", stderr_path.read_text())
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/healthz", headers={"X-Request-Id": "test-gunicorn"}
            )
            deadline = time.monotonic() + 30
            while True:  # the worker may still be loading the application
                try:
                    with urllib.request.urlopen(request, timeout=5) as response:
                        assert response.headers["X-Request-Id"] == "test-gunicorn"
                    break
                except OSError:
                    assert time.monotonic() < deadline
                    time.sleep(0.2)
            assert wait_until(lambda: "gunicorn.access" in stderr_path.read_text(), timeout=30)
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)

    records = _json_lines(stderr_path)
    messages = [record["message"] for record in records]
    assert messages[0].startswith("Starting gunicorn ")
    assert messages[-1] == "Shutting down: Master"
    for record in records:
        assert list(record)[:6] == [
            "timestamp",
            "level",
            "logger",
            "message",
            "request_id",
            "task_id",
        ]
    [access] = [record for record in records if record["logger"] == "gunicorn.access"]
    assert access["request_id"] == "test-gunicorn"
    assert '"GET /healthz HTTP/1.1" 200' in access["message"]
