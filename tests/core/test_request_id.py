"""Request ids (core.log_context): accepted or generated, returned, on every log line, and carried
into the tasks a request enqueues, as far as a real worker's log."""

import io
import json
import logging
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from config.celery import app as celery_app
from core.log_context import HEADER, LogContext, reset_log_context, set_log_context
from polls.models import Sticker
from polls.tasks import close_due_stickers
from tests.conftest import PROBLEM_CONTENT_TYPE, ROOT, wait_until
from tests.core.error_urls import FAILING_PATH
from tests.factories import StickerFactory, UserFactory, VideoFactory

pytestmark = pytest.mark.django_db

GENERATED = re.compile(r"[0-9a-f]{32}")
ALL_ACCEPTED_PUNCTUATION = "a.b_c:d@e/f+g=h-i"


# --- the response header -------------------------------------------------------------------------
@pytest.mark.parametrize(
    "request_id",
    [
        "test-1",
        ALL_ACCEPTED_PUNCTUATION,
        "Root=1-5759e988-bd862e3fe1be46a994272793",
        "x" * 128,
        "7",
    ],
)
def test_an_acceptable_request_id_is_returned_as_sent(
    api_client: APIClient, request_id: str
) -> None:
    response = api_client.get("/healthz", HTTP_X_REQUEST_ID=request_id)

    assert response.status_code == 200
    assert response[HEADER] == request_id


@pytest.mark.parametrize(
    "request_id",
    [
        "",
        "x" * 129,
        "two words",
        "line\nbreak",
        "tab\t",
        '{"json": 1}',
        "<script>",
        "caf\u00e9",
        "semi;colon",
        "quote'",
        "back\\slash",
        "percent%20",
    ],
)
def test_any_other_request_id_is_replaced_not_echoed(
    api_client: APIClient, request_id: str
) -> None:
    response = api_client.get("/healthz", HTTP_X_REQUEST_ID=request_id)

    assert response.status_code == 200
    assert GENERATED.fullmatch(response[HEADER])


def test_without_a_request_id_each_request_gets_a_new_one(api_client: APIClient) -> None:
    first = api_client.get("/healthz")
    second = api_client.get("/healthz")

    assert GENERATED.fullmatch(first[HEADER])
    assert GENERATED.fullmatch(second[HEADER])
    assert first[HEADER] != second[HEADER]


def test_problem_documents_carry_the_request_id(api_client: APIClient) -> None:
    # 404 for an unknown API path (Django's resolver), 401 and 405 from DRF
    not_found = api_client.get("/api/v1/no-such-thing", HTTP_X_REQUEST_ID="test-404")
    unauthenticated = api_client.get("/api/v1/me", HTTP_X_REQUEST_ID="test-401")
    not_allowed = api_client.delete("/healthz", HTTP_X_REQUEST_ID="test-405")

    for response, status, request_id in [
        (not_found, 404, "test-404"),
        (unauthenticated, 401, "test-401"),
        (not_allowed, 405, "test-405"),
    ]:
        assert response.status_code == status
        assert response["Content-Type"] == PROBLEM_CONTENT_TYPE
        assert response[HEADER] == request_id


def test_html_pages_outside_the_api_carry_it_too(api_client: APIClient) -> None:
    response = api_client.get("/admin/login/", HTTP_X_REQUEST_ID="test-admin")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    assert response[HEADER] == "test-admin"


# --- log records -------------------------------------------------------------------------------
@pytest.fixture
def console_output() -> Iterator[io.StringIO]:
    """What the configured console handler (LOGGING) writes, captured for one test."""
    handler = next(h for h in logging.getLogger().handlers if h.name == "console")
    assert isinstance(handler, logging.StreamHandler)
    output = io.StringIO()
    original = handler.setStream(output)
    try:
        yield output
    finally:
        handler.setStream(original)


@pytest.mark.urls("tests.core.error_urls")
def test_an_unhandled_error_is_a_problem_document_logged_with_the_request_id(
    api_client: APIClient, caplog: pytest.LogCaptureFixture, console_output: io.StringIO
) -> None:
    response = api_client.get(FAILING_PATH, HTTP_X_REQUEST_ID="test-500")

    assert response.status_code == 500
    assert response["Content-Type"] == PROBLEM_CONTENT_TYPE
    assert response[HEADER] == "test-500"
    # the middleware's own line and Django's, written after the middleware chain returned
    logged = [
        (record.name, record.getMessage(), record.request_id)  # type: ignore[attr-defined]
        for record in caplog.records
    ]
    assert logged == [
        ("core.middleware", f"unhandled error on {FAILING_PATH}", "test-500"),
        ("django.request", f"Internal Server Error: {FAILING_PATH}", "test-500"),
    ]
    lines = console_output.getvalue().splitlines()
    assert re.fullmatch(
        rf"\S+ \S+ ERROR core\.middleware \[test-500\] unhandled error on {FAILING_PATH}", lines[0]
    )
    assert "RuntimeError: a bug" in console_output.getvalue()


def test_a_line_logged_after_the_request_has_no_request_id(
    api_client: APIClient, console_output: io.StringIO
) -> None:
    assert api_client.get("/healthz", HTTP_X_REQUEST_ID="test-finished").status_code == 200

    logging.getLogger("tests").warning("between requests")

    assert re.fullmatch(
        r"\S+ \S+ WARNING tests \[-\] between requests\n", console_output.getvalue()
    )


def test_django_not_found_warning_carries_the_request_id(
    api_client: APIClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="django.request"):
        api_client.get("/api/v1/no-such-thing", HTTP_X_REQUEST_ID="test-not-found")

    [record] = caplog.records
    assert record.getMessage() == "Not Found: /api/v1/no-such-thing"
    assert record.request_id == "test-not-found"  # type: ignore[attr-defined]
    assert (record.task_id, record.task_name) == ("-", "-")  # type: ignore[attr-defined]


# --- production: JSON lines ----------------------------------------------------------------------
PRODUCTION_SCRIPT = """
import logging
import django

django.setup()
from django.test import Client

# Django logs 404s as warnings; production settings keep only errors of django.request.
logging.getLogger("django.request").setLevel(logging.WARNING)
logging.getLogger("chorus.test").info("outside a request")
response = Client().get("/api/v1/no-such-thing", HTTP_X_REQUEST_ID="test-json", secure=True)
assert response.status_code == 404, response.status_code
assert response["X-Request-Id"] == "test-json"
try:
    1 / 0
except ZeroDivisionError:
    logging.getLogger("chorus.test").exception("failed: %s", "division", extra={"sticker_id": 7})
"""


def _production_python(script: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "LOG_")) and key != "PYTEST_XDIST_WORKER"
    }
    environment.update(
        {
            "DJANGO_SETTINGS_MODULE": "config.settings.production",
            "DJANGO_SECRET_KEY": "p" * 40,
            **env,
        }
    )
    return subprocess.run(
        [sys.executable, "-W", "ignore", "-c", script],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )


ISO_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00")


def test_production_logs_one_json_object_a_line() -> None:
    result = _production_python(PRODUCTION_SCRIPT)

    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stderr.splitlines()]
    for record in records:
        assert ISO_UTC.fullmatch(record.pop("timestamp"))
    assert records[0] == {
        "level": "INFO",
        "logger": "chorus.test",
        "message": "outside a request",
        "request_id": "-",
        "task_id": "-",
        "task_name": "-",
    }
    assert records[1] == {
        "level": "WARNING",
        "logger": "django.request",
        "message": "Not Found: /api/v1/no-such-thing",
        "request_id": "test-json",
        "task_id": "-",
        "task_name": "-",
        "status_code": 404,
        "request": "<WSGIRequest: GET '/api/v1/no-such-thing'>",
    }
    exception = records[2].pop("exception")
    assert exception.startswith("Traceback (most recent call last):\n")
    assert exception.endswith("ZeroDivisionError: division by zero")
    assert records[2] == {
        "level": "ERROR",
        "logger": "chorus.test",
        "message": "failed: division",
        "request_id": "-",
        "task_id": "-",
        "task_name": "-",
        "sticker_id": 7,
    }
    assert len(records) == 3


def test_log_format_plain_overrides_production_json() -> None:
    result = _production_python(
        "import django, logging; django.setup(); logging.getLogger('chorus.test').info('hi')",
        LOG_FORMAT="plain",
    )

    assert result.returncode == 0, result.stderr
    assert re.fullmatch(r"\S+ \S+ INFO chorus\.test \[-\] hi\n", result.stderr)


def test_an_unknown_log_format_refuses_to_start() -> None:
    result = _production_python("import django; django.setup()", LOG_FORMAT="xml")

    assert result.returncode == 1
    assert "LOG_FORMAT must be one of json, plain." in result.stderr


# --- into the tasks a request enqueues ------------------------------------------------------------
def _worker_log() -> str:
    worker_name = os.environ.get("PYTEST_XDIST_WORKER", "main")
    return Path(ROOT / ".local" / f"test-celery-{worker_name}.log").read_text()


def _worker_lines_with(request_id: str) -> list[str]:
    return [line for line in _worker_log().splitlines() if f"[{request_id}]" in line]


@pytest.mark.celery_worker
@pytest.mark.django_db(transaction=True)
def test_a_requests_id_reaches_the_worker_running_the_task_it_enqueued(
    celery_worker: object, make_client: Callable[..., APIClient]
) -> None:
    # given a request id a client chose
    request_id = f"test-{uuid.uuid4()}"
    client = make_client(UserFactory.create())
    video = VideoFactory.create()

    # when a like commits, which wakes the rewards consumer (a task sent by name, after commit)
    response = client.put(f"/api/v1/videos/{video.pk}/like", HTTP_X_REQUEST_ID=request_id)
    assert response.status_code == 201
    assert response[HEADER] == request_id

    # then the worker logs the task's start and Celery's own "succeeded" line with that id
    def task_lines_logged() -> bool:
        lines = _worker_lines_with(request_id)
        return any(" succeeded in " in line for line in lines)

    assert wait_until(task_lines_logged, timeout=60)
    started, *_ = _worker_lines_with(request_id)
    assert re.fullmatch(
        rf"\S+ \S+ INFO core\.task_log_context \[{request_id}\] "
        rf"Task rewards\.tasks\.process_reward_events\[[0-9a-f-]{{36}}\] started for request "
        rf"{request_id}",
        started,
    )


@pytest.mark.celery_worker
@pytest.mark.django_db(transaction=True)
def test_a_task_enqueued_by_a_task_inherits_the_request_id(celery_worker: object) -> None:
    # given a poll past its closing time
    sticker = StickerFactory.create(options=["A", "B"])
    closes_at = timezone.now() - timedelta(seconds=1)
    Sticker.objects.filter(pk=sticker.pk).update(
        opens_at=closes_at - timedelta(hours=1), closes_at=closes_at
    )
    request_id = f"test-{uuid.uuid4()}"

    # when a request (here: its log context) enqueues the closing sweep, which in the worker
    # closes the poll and enqueues its finalization
    token = set_log_context(LogContext(request_id=request_id))
    try:
        close_due_stickers.delay()
    finally:
        reset_log_context(token)

    # then the finalization, two hops from the request, logs with the request's id
    assert wait_until(lambda: Sticker.objects.get(pk=sticker.pk).state == "final", timeout=60)
    assert wait_until(
        lambda: any(
            "Task polls.tasks.finalize_sticker[" in line and " succeeded in " in line
            for line in _worker_lines_with(request_id)
        ),
        timeout=30,
    )


SCRATCH_QUEUE = "test-request-id-headers"


def test_only_tasks_sent_while_a_request_id_is_current_carry_one() -> None:
    # The publishing side alone, on the real broker: the message headers as a worker gets them.
    with celery_app.connection_for_write() as connection:
        queue = connection.SimpleQueue(SCRATCH_QUEUE)  # no worker consumes it
        try:
            celery_app.send_task("tests.never_run", queue=SCRATCH_QUEUE, connection=connection)
            token = set_log_context(LogContext(request_id="test-header"))
            try:
                celery_app.send_task("tests.never_run", queue=SCRATCH_QUEUE, connection=connection)
            finally:
                reset_log_context(token)
            messages = [queue.get(timeout=5), queue.get(timeout=5)]
            for message in messages:
                message.ack()
        finally:
            queue.queue.delete()
            queue.close()

    assert [message.headers.get("request_id") for message in messages] == [None, "test-header"]
