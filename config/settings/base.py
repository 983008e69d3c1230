"""Settings shared by every environment. Everything that varies comes from the environment."""

import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import environ
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured

from core.metrics.timing import TimedRedisConnection

BASE_DIR = Path(__file__).resolve().parent.parent.parent

env = environ.Env()

DEBUG = env.bool("DJANGO_DEBUG", default=False)
SECRET_KEY = env("DJANGO_SECRET_KEY", default="insecure-dev-key-change-me")
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "rest_framework",
    "knox",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "drf_standardized_errors",
    "django_celery_beat",
    "core",
    "engagement",
    "polls",
    "rewards",
    "analytics",
    "integrity",
]

MIDDLEWARE = [
    # First: its id is on every response and on every line logged while the request runs.
    "core.log_context.RequestIdMiddleware",
    # Then the request metrics, whose latency covers every other middleware.
    "core.metrics.middleware.MetricsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "core.middleware.ProblemDetailsMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database --------------------------------------------------------------------------------
DATABASES = {
    "default": env.db("DATABASE_URL", default="postgres://chorus:chorus@127.0.0.1:15432/chorus"),
}
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DJANGO_CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
# Django's PostgreSQL backend, its health check made a poll of the socket (core/postgres/base.py).
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    DATABASES["default"]["ENGINE"] = "core.postgres"
DATABASES["default"].setdefault("OPTIONS", {})
DATABASES["default"]["OPTIONS"].setdefault("connect_timeout", 5)
# Server-side prepared statements only for the hot statements that ask for them
# (core.db.fetch_prepared): psycopg prepares a query automatically after `prepare_threshold` runs,
# so a threshold out of reach leaves every other query unprepared. False (a pooler in transaction
# mode without prepared-statement support) turns them off altogether.
DATABASES["default"]["OPTIONS"].setdefault(
    "prepare_threshold", 2**31 - 1 if env.bool("DB_PREPARED_STATEMENTS", default=True) else None
)
# JIT compilation off (DB_JIT=true turns it back on): the analytics reads' plans are estimated
# above jit_above_cost (generic ranges over tables of millions of rows) while they touch a few
# hundred rows, and compiling took 0.9 s of a 90 ms statement. PGOPTIONS (the benchmark's
# statement_timeout for its rebuild processes) is kept: libpq takes one `options`.
_PG_OPTIONS = os.environ.get("PGOPTIONS", "")
if not env.bool("DB_JIT", default=False):
    _PG_OPTIONS = f"{_PG_OPTIONS} -c jit=off".strip()
if _PG_OPTIONS:
    DATABASES["default"]["OPTIONS"].setdefault("options", _PG_OPTIONS)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_USER_MODEL = "engagement.User"
KNOX_TOKEN_MODEL = "engagement.DeviceToken"
# knox's own migration creates its default token table even when the model is swapped out;
# our DeviceToken replaces it, so knox gets no migrations (and no orphan table).
MIGRATION_MODULES = {"knox": None}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# --- Redis: cache and throttles (only data that can be rebuilt from PostgreSQL) --------------
REDIS_URL = env("REDIS_URL", default="redis://127.0.0.1:16379/0")
CACHES = {
    "default": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": env("CACHE_KEY_PREFIX", default="chorus"),
        "OPTIONS": {
            "CLIENT_CLASS": "django_redis.client.DefaultClient",
            "SOCKET_CONNECT_TIMEOUT": 2,
            "SOCKET_TIMEOUT": 2,
            # A cache outage must not take the API down: reads miss, writes are dropped.
            "IGNORE_EXCEPTIONS": True,
        },
    }
}
if REDIS_URL.startswith("redis://"):
    # Redis time per request (core.metrics.timing). Only for plain TCP: redis-py would take this
    # class instead of the one a rediss:// (TLS) or unix:// URL asks for.
    CACHES["default"]["OPTIONS"]["CONNECTION_POOL_KWARGS"] = {
        "connection_class": TimedRedisConnection
    }
DJANGO_REDIS_LOG_IGNORED_EXCEPTIONS = True

# --- Internationalisation --------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = env("DJANGO_STATIC_ROOT", default=str(BASE_DIR / "staticfiles"))
# Swagger UI, ReDoc and the admin's assets are served by the app itself (no CDN).
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

# --- REST framework ---------------------------------------------------------------------------
THROTTLE_RATES = {
    "anon": env("THROTTLE_ANON", default="60/min"),
    "user": env("THROTTLE_USER", default="600/min"),
    "writes": env("THROTTLE_WRITES", default="120/min"),
    "auth": env("THROTTLE_AUTH", default="10/min"),
}
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["core.authentication.BearerTokenAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_THROTTLE_CLASSES": [
        "core.throttling.RequestThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": THROTTLE_RATES,
    "DEFAULT_RENDERER_CLASSES": ["core.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_PAGINATION_CLASS": "core.pagination.IdCursorPagination",
    "PAGE_SIZE": 20,
    "EXCEPTION_HANDLER": "drf_standardized_errors.handler.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DATETIME_FORMAT": "iso-8601",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
    "NUM_PROXIES": env.int("NUM_PROXIES", default=0),
}
DRF_STANDARDIZED_ERRORS = {
    "EXCEPTION_HANDLER_CLASS": "core.errors.ProblemExceptionHandler",
    "EXCEPTION_FORMATTER_CLASS": "core.errors.ProblemFormatter",
    "ENABLE_IN_DEBUG_FOR_UNHANDLED_EXCEPTIONS": True,
}
REST_KNOX = {
    "AUTH_HEADER_PREFIX": "Bearer",
    "TOKEN_TTL": timedelta(days=env.int("TOKEN_TTL_DAYS", default=30)),
    "AUTO_REFRESH": True,
    "MIN_REFRESH_INTERVAL": 3600,
    "TOKEN_LIMIT_PER_USER": env.int("TOKEN_LIMIT_PER_USER", default=20),
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Chorus API",
    "DESCRIPTION": (
        "Interactive stickers for short videos (votes, endings chosen by likes, quiz checkpoints, "
        "like-to-unlock, top comment decides) and the rewards viewers earn by taking part. "
        "Errors are RFC 9457 problem documents (application/problem+json)."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": "/api/v1",
    "ENUM_NAME_OVERRIDES": {
        "StickerKindEnum": "polls.models.Sticker.Kind",
        "StickerStateEnum": "polls.models.Sticker.State",
        "ResultsVisibilityEnum": "polls.models.Sticker.Visibility",
        "ActivityKindEnum": "rewards.models.ActivityEvent.Kind",
    },
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
    ],
}

# Bare endpoints for `make bench` (never in production).
BENCH_ENDPOINTS = env.bool("BENCH_ENDPOINTS", default=False)

# --- Idempotency ------------------------------------------------------------------------------
# How long a stored answer to an Idempotency-Key is replayed.
IDEMPOTENCY_KEY_TTL = timedelta(hours=env.int("IDEMPOTENCY_KEY_TTL_HOURS", default=24))

# --- Celery -----------------------------------------------------------------------------------
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default="redis://127.0.0.1:16379/1")
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_TIMEZONE = "UTC"
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=600)
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=540)
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "default"
# Celery's Django fixup would close the database connections around every task; it does so
# only every this many tasks, and core/task_connections.py applies CONN_MAX_AGE and the health
# check around each task instead, as for requests.
CELERY_DB_REUSE_MAX = env.int("CELERY_DB_REUSE_MAX", default=1000)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Back on the broker within 2 s of its return, not up to 30 s (core/broker.py).
CELERY_WORKER_CONSUMER = "core.broker:PromptlyReconnectingConsumer"
# A task that is not acknowledged within this time is delivered again (Redis transport).
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", 3600)}
CELERY_TASK_QUEUE_NAMES = ["default", "tallies", "closing", "rewards", "integrity", "analytics"]
CELERY_TASK_ROUTES = {
    "polls.tasks.close_due_stickers": {"queue": "closing"},
    "polls.tasks.finalize_sticker": {"queue": "closing"},
    "polls.tasks.*": {"queue": "tallies"},
    "rewards.tasks.*": {"queue": "rewards"},
    "integrity.tasks.*": {"queue": "integrity"},
    "engagement.tasks.*": {"queue": "analytics"},
    "analytics.tasks.*": {"queue": "analytics"},
}
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
# The beat schedule lives in code; django-celery-beat mirrors it into the database.
CELERY_BEAT_SCHEDULE: dict = {
    # Stickers close within a few seconds of closes_at; no per-sticker ETA tasks (on Redis they
    # are redelivered after the visibility timeout and lost with the broker's memory).
    "close-due-stickers": {
        "task": "polls.tasks.close_due_stickers",
        "schedule": timedelta(seconds=env.int("CLOSE_SWEEP_SECONDS", default=2)),
        "options": {"expires": 10},
    },
    # Catches tally refreshes whose on-commit request was lost (broker or Redis down).
    "sweep-tallies": {
        "task": "polls.tasks.sweep_tallies",
        "schedule": timedelta(seconds=env.int("TALLY_SWEEP_SECONDS", default=5)),
        "options": {"expires": 10},
    },
    # The rewards consumer also runs on a clock, so a lost wake-up only delays grants.
    "sweep-reward-events": {
        "task": "rewards.tasks.process_reward_events",
        "schedule": timedelta(seconds=env.int("REWARDS_SWEEP_SECONDS", default=10)),
        "options": {"expires": 30},
    },
    # The discovery consumers (heat, trending) also run on a clock: comments, shares and follows
    # wake nobody, and a lost wake-up only delays. Well inside SPEC §3's 60 s.
    "sweep-heat-events": {
        "task": "analytics.tasks.process_heat_events",
        "schedule": timedelta(seconds=env.int("DISCOVERY_SWEEP_SECONDS", default=10)),
        "options": {"expires": 30},
    },
    "sweep-trending-events": {
        "task": "analytics.tasks.process_trending_events",
        "schedule": timedelta(seconds=env.int("DISCOVERY_SWEEP_SECONDS", default=10)),
        "options": {"expires": 30},
    },
    "backfill-pending-rules": {
        "task": "rewards.tasks.backfill_pending_rules",
        "schedule": timedelta(seconds=60),
        "options": {"expires": 120},
    },
    # The analytics consumer on a clock: a lost wake-up delays the rollups by this much at most.
    "sweep-analytics-events": {
        "task": "analytics.tasks.process_analytics_events",
        "schedule": timedelta(seconds=env.int("ANALYTICS_SWEEP_SECONDS", default=15)),
        "options": {"expires": 30},
    },
    # The creator-centre documents' refresher queues its own next run while documents are
    # active; this starts it again when its queued run was lost (docs/analytics.md, Serving).
    "refresh-analytics-documents": {
        "task": "analytics.tasks.refresh_analytics_documents",
        "schedule": timedelta(seconds=30),
        "options": {"expires": 30},
    },
    # Nightly: recount a sample of videos' rollups from the rows, repair and report differences.
    "reconcile-analytics-rollups": {
        "task": "analytics.tasks.reconcile_analytics_rollups",
        "schedule": crontab(hour=3, minute=17),
        "options": {"expires": 3600},
    },
    # Integrity (SPEC §5 "Jobs"): a light pass over recent likes, so an attack in progress is
    # discounted within minutes, and a full pass over the rolling window at night.
    "integrity-light-pass": {
        "task": "integrity.tasks.integrity_light",
        "schedule": timedelta(seconds=env.int("INTEGRITY_LIGHT_PASS_SECONDS", default=180)),
        "options": {"expires": 170},
    },
    "integrity-full-pass": {
        "task": "integrity.tasks.integrity_full",
        "schedule": crontab(hour=3, minute=47),
        "options": {"expires": 3600},
    },
    "purge-expired-tokens": {
        "task": "engagement.tasks.purge_expired_tokens",
        "schedule": timedelta(hours=6),
        "options": {"expires": 3600},
    },
    "purge-idempotency-keys": {
        "task": "core.tasks.purge_idempotency_keys",
        "schedule": timedelta(hours=1),
        "options": {"queue": "default", "expires": 3600},
    },
}

# Integrity passes read this much history (docs/integrity.md, "Passes").
INTEGRITY_LIGHT_WINDOW_HOURS = env.int("INTEGRITY_LIGHT_WINDOW_HOURS", default=6)
INTEGRITY_FULL_WINDOW_DAYS = env.int("INTEGRITY_FULL_WINDOW_DAYS", default=28)

# Live tallies: votes within this window are counted by one aggregation (SPEC: <= 2 s behind).
TALLY_DEBOUNCE_SECONDS = env.float("TALLY_DEBOUNCE_SECONDS", default=0.25)
# A vote marks its sticker dirty before its statement commits (on the throttle's round trip); the
# sticker keeps being refreshed until this long after its latest mark (polls.services.tallies).
TALLY_MARK_GRACE_SECONDS = env.float("TALLY_MARK_GRACE_SECONDS", default=1.0)
# Consumers woken after a lower app commits: a burst of commits within this window is one run.
WAKE_DEBOUNCE_SECONDS = env.float("WAKE_DEBOUNCE_SECONDS", default=1.0)

ANALYTICS_CONSUMER = "analytics.tasks.process_analytics_events"
# Creator-centre documents are reused this long whatever changes (docs/analytics.md, Serving)...
ANALYTICS_DOCUMENT_FRESH_SECONDS = env.float("ANALYTICS_DOCUMENT_FRESH_SECONDS", default=10)
# ...and up to this long while the creator's rollups do not change (0 turns the cache off).
ANALYTICS_DOCUMENT_MAX_AGE_SECONDS = env.float("ANALYTICS_DOCUMENT_MAX_AGE_SECONDS", default=30)
# Refresh-ahead: a document served within the last ACTIVE seconds is recomputed before it would
# stop being served, by a refresher that runs every TICK seconds while some are active (0: off).
ANALYTICS_DOCUMENT_ACTIVE_SECONDS = env.float("ANALYTICS_DOCUMENT_ACTIVE_SECONDS", default=300)
ANALYTICS_DOCUMENT_REFRESH_TICK_SECONDS = env.float(
    "ANALYTICS_DOCUMENT_REFRESH_TICK_SECONDS", default=5
)
# Serves mark their documents active and arm the refresher (false: refresh-ahead off).
ANALYTICS_DOCUMENT_REFRESH_AHEAD = env.bool("ANALYTICS_DOCUMENT_REFRESH_AHEAD", default=True)
# The hot list (the same for everyone but the viewer's own likes) is reused this long.
ANALYTICS_HOT_CACHE_SECONDS = env.float("ANALYTICS_HOT_CACHE_SECONDS", default=5)
# Consumers woken after a lower app commits (see core/wakeups.py): topic -> task names.
WAKE_ON_COMMIT: dict[str, list[str]] = {
    "interactions": [
        "rewards.tasks.process_reward_events",
        ANALYTICS_CONSUMER,
        "analytics.tasks.process_heat_events",
        "analytics.tasks.process_trending_events",
    ],
    "votes": ["rewards.tasks.process_reward_events"],
    "stickers_final": ["rewards.tasks.process_reward_events"],
    # engagement.CountedFlip and polls.CountedFlip rows (docs/counted-flips.md).
    "counted_flips": [
        ANALYTICS_CONSUMER,
        "analytics.tasks.process_heat_events",
        "analytics.tasks.process_trending_events",
    ],
    # engagement.Removal rows: unlikes, comment unlikes, unfollows.
    "removals": [
        ANALYTICS_CONSUMER,
        "analytics.tasks.process_heat_events",
        "analytics.tasks.process_trending_events",
    ],
}

# --- Metrics (docs/observability.md) ---------------------------------------------------------
METRICS_ENABLED = env.bool("METRICS_ENABLED", default=True)
# Who may scrape /metrics by address (staff may from anywhere); everyone else gets a 404.
METRICS_ALLOWED_NETWORKS = env.list("METRICS_ALLOWED_NETWORKS", default=["127.0.0.0/8", "::1/128"])
# Figures read from PostgreSQL and Redis when /metrics is scraped; the apps own theirs.
METRICS_COLLECTORS = [
    "core.metrics.collectors.QueueLengthCollector",
    "polls.metrics.LiveTallyLagCollector",
    "polls.metrics.StickersOverdueCollector",
    "rewards.metrics.RewardConsumerLagCollector",
    "analytics.metrics.AnalyticsLagCollector",
]

# --- Logging ----------------------------------------------------------------------------------
# Every line carries `request_id` ("-" outside a request) and, in workers, `task_id` and
# `task_name` (core.log_context.LogContextFilter). `plain` is for people reading a terminal;
# `json` (one JSON object a line, production's default) is for a log pipeline.
LOG_FORMATS = ("json", "plain")
LOG_FORMAT = env("LOG_FORMAT", default="plain")
if LOG_FORMAT not in LOG_FORMATS:
    raise ImproperlyConfigured(f"LOG_FORMAT must be one of {', '.join(LOG_FORMATS)}.")
LOGGING: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"log_context": {"()": "core.log_context.LogContextFilter"}},
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"},
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            # The fields in this order first; `extra=` fields of a call follow.
            "fmt": "%(levelname)s %(name)s %(message)s %(request_id)s %(task_id)s %(task_name)s",
            "rename_fields": {"levelname": "level", "name": "logger", "exc_info": "exception"},
            # "timestamp": ISO 8601 in UTC from the record's creation time, whatever the TZ;
            # a default puts the key first in each line.
            "timestamp": True,
            "defaults": {"timestamp": None},
        },
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["log_context"],
        }
    },
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
    "loggers": {
        "django.request": {"level": "ERROR"},
        "django_redis": {"level": "WARNING"},
    },
}
