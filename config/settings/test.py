"""Settings for the test suite: real PostgreSQL and Redis, isolated per xdist worker."""

import os

from .base import *  # noqa: F403
from .base import CACHES, THROTTLE_RATES

# Each xdist worker gets its own cache key prefix and its own broker queue prefix, so parallel
# test processes never see each other's throttle counters, cached results or tasks.
_worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
CACHES["default"]["KEY_PREFIX"] = f"test-{_worker}"
CELERY_BROKER_TRANSPORT_OPTIONS = {"global_keyprefix": f"test-{_worker}:", "visibility_timeout": 60}

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
THROTTLE_RATES.update(
    {"anon": "100000/min", "user": "100000/min", "writes": "100000/min", "auth": "100000/min"}
)
DEBUG = False

# Tests do not run collectstatic; static files are not served in tests.
MIDDLEWARE = [m for m in MIDDLEWARE if m != "whitenoise.middleware.WhiteNoiseMiddleware"]  # noqa: F405
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

# The suite's real Celery worker is shared by every test of a process, and a test's commits wake
# consumers there that then run beside later tests and their database flushes (a pass holding a
# table while a flush truncates them all deadlocks the flush). So commits wake nothing here;
# tests that use the worker get WAKE_ON_COMMIT_WITH_WORKER (tests/conftest.py), and let their
# passes finish before the flush. The analytics consumers run in-process in their tests, and
# tests/analytics/test_worker.py wakes them through the worker with the full mapping
# (config.settings.base.WAKE_ON_COMMIT).
WAKE_ON_COMMIT_WITH_WORKER = {
    topic: [task for task in tasks if not task.startswith("analytics.")]
    for topic, tasks in WAKE_ON_COMMIT.items()  # noqa: F405
}
WAKE_ON_COMMIT = {}

# A test reads its own writes: documents are reused only while the creator's rollups are
# unchanged (tests/analytics/test_documents.py sets the production periods).
ANALYTICS_DOCUMENT_FRESH_SECONDS = 0
ANALYTICS_HOT_CACHE_SECONDS = 0

# Serves mark no document active and arm no refresher: the suite's shared worker would compute
# documents beside other tests, from rows it cannot see (tests/analytics/test_refresh_ahead.py
# turns it on).
ANALYTICS_DOCUMENT_REFRESH_AHEAD = False
