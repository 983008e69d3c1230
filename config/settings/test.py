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
