"""A Celery worker keeps its database connection from task to task (core/task_connections.py),
as a web process does from request to request, instead of Celery's connection per task."""

import subprocess
import uuid
from datetime import timedelta
from functools import partial

import psutil
import pytest
from celery import current_app
from django.conf import settings
from django.utils import timezone

from core.models import IdempotencyRecord
from tests.conftest import wait_until
from tests.factories import UserFactory


def _database_connections(worker: subprocess.Popen) -> set[int]:
    """The worker's open TCP connections to PostgreSQL, by their local port."""
    port = int(settings.DATABASES["default"]["PORT"])
    return {
        conn.laddr.port
        for conn in psutil.Process(worker.pid).net_connections(kind="tcp")
        if conn.raddr and conn.raddr.port == port and conn.status == psutil.CONN_ESTABLISHED
    }


def _gone(record_id: int) -> bool:
    return not IdempotencyRecord.objects.filter(pk=record_id).exists()


@pytest.mark.celery_worker
@pytest.mark.django_db(transaction=True)
def test_the_worker_runs_task_after_task_on_one_database_connection(
    celery_worker: subprocess.Popen,
) -> None:
    user = UserFactory.create()
    expired = timezone.now() - settings.IDEMPOTENCY_KEY_TTL - timedelta(minutes=1)
    seen = []
    for _ in range(3):
        # given an expired idempotency record, when the worker runs the purge (a task that
        # queries the database), then the record is gone ...
        record = IdempotencyRecord.objects.create(
            user=user,
            key=uuid.uuid4().hex,
            request_fingerprint="f" * 64,
            response_status=201,
            created_at=expired,
        )
        IdempotencyRecord.objects.filter(pk=record.pk).update(created_at=expired)
        current_app.send_task("core.tasks.purge_idempotency_keys")
        assert wait_until(partial(_gone, record.pk), timeout=60)
        # ... and the worker still holds the connection it ran it on
        assert wait_until(lambda: len(_database_connections(celery_worker)) == 1, timeout=10)
        seen.append(_database_connections(celery_worker))
    assert seen[0] == seen[1] == seen[2]
