"""Operations endpoints (SPEC §3 "Operations"): health, readiness, OpenAPI schema, docs."""

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from django.contrib.staticfiles import finders
from django.urls import URLPattern, URLResolver, get_resolver
from drf_spectacular.validation import validate_schema
from rest_framework.test import APIClient

from config.celery import app as celery_app

pytestmark = pytest.mark.django_db

# A port nothing listens on: a real, refused connection (no mocks).
UNREACHABLE_REDIS = "redis://127.0.0.1:1/0"


# --- health and readiness -----------------------------------------------------------------------
@pytest.mark.parametrize("path", ["/healthz", "/api/v1/healthz"])
def test_healthz_answers_ok_without_auth(
    api_client: APIClient, path: str, django_assert_num_queries: Any
) -> None:
    with django_assert_num_queries(0):  # the process is up: nothing else is touched
        response = api_client.get(path)

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"status": "ok"}


@pytest.mark.parametrize("path", ["/readyz", "/api/v1/readyz"])
def test_readyz_checks_database_redis_and_broker(
    api_client: APIClient, path: str, django_assert_num_queries: Any
) -> None:
    with django_assert_num_queries(1):  # the database check's SELECT 1 (Redis and broker: pings)
        response = api_client.get(path)

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response.json() == {
        "status": "ok",
        "checks": {"database": "ok", "redis": "ok", "broker": "ok"},
    }


def test_readyz_is_503_when_redis_is_unreachable(api_client: APIClient, settings: Any) -> None:
    settings.CACHES = {
        "default": {
            **settings.CACHES["default"],
            "LOCATION": UNREACHABLE_REDIS,
            "OPTIONS": {**settings.CACHES["default"]["OPTIONS"], "IGNORE_EXCEPTIONS": False},
        }
    }

    response = api_client.get("/readyz")

    assert response.status_code == 503
    assert response.json() == {
        "status": "unavailable",
        "checks": {"database": "ok", "redis": "error: ConnectionError", "broker": "ok"},
    }


@pytest.fixture
def unreachable_broker() -> Iterator[None]:
    """Points this process's Celery app at a port nothing listens on, for one test."""
    original = celery_app.conf.get("broker_write_url")
    celery_app.conf.update(broker_write_url=UNREACHABLE_REDIS)
    try:
        yield
    finally:
        celery_app.conf.update(broker_write_url=original)


@pytest.mark.usefixtures("unreachable_broker")
def test_readyz_is_503_when_the_broker_is_unreachable(api_client: APIClient) -> None:
    response = api_client.get("/readyz")

    assert response.status_code == 503
    assert response.json() == {
        "status": "unavailable",
        "checks": {"database": "ok", "redis": "ok", "broker": "error: OperationalError"},
    }


@pytest.mark.parametrize("method", ["post", "put", "delete"])
def test_health_endpoints_refuse_writes_with_a_problem_document(
    api_client: APIClient, method: str
) -> None:
    response = getattr(api_client, method)("/healthz")

    assert response.status_code == 405
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == "method_not_allowed"


# --- OpenAPI schema -----------------------------------------------------------------------------
def _routes(patterns: list, prefix: str = "") -> Iterator[str]:
    for pattern in patterns:
        route = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            yield from _routes(pattern.url_patterns, route)
        elif isinstance(pattern, URLPattern):
            yield route


def _api_v1_paths() -> set[str]:
    """Every route under /api/v1/ as OpenAPI writes it: `<id:video_id>` -> `{video_id}`."""
    return {
        "/" + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", route)
        for route in _routes(get_resolver().url_patterns)
        if route.startswith("api/v1/")
    } - OPERATIONS_ALIASES


# /healthz and /readyz are documented once, at the root; their /api/v1/ aliases are not.
OPERATIONS_ALIASES = {"/api/v1/healthz", "/api/v1/readyz"}


ENGAGEMENT_PATHS = {
    "/api/v1/auth/register",
    "/api/v1/auth/token",
    "/api/v1/auth/logout",
    "/api/v1/auth/logout-all",
    "/api/v1/me",
    "/api/v1/videos",
    "/api/v1/videos/{video_id}",
    "/api/v1/videos/{video_id}/like",
    "/api/v1/videos/{video_id}/comments",
    "/api/v1/videos/{video_id}/shares",
    "/api/v1/videos/{video_id}/plays",
    "/api/v1/comments/{comment_id}/like",
    "/api/v1/creators/{user_id}/follow",
}


def _schema_json(client: APIClient) -> dict[str, Any]:
    response = client.get("/api/schema/?format=json")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/vnd.oai.openapi+json")
    return json.loads(response.content)


def test_schema_is_valid_openapi_3_json_listing_every_api_v1_path(api_client: APIClient) -> None:
    schema = _schema_json(api_client)

    validate_schema(schema)
    assert schema["openapi"].startswith("3.")
    assert schema["info"]["title"] == "Chorus API"
    assert _api_v1_paths() >= ENGAGEMENT_PATHS
    assert _api_v1_paths() <= set(schema["paths"])


def test_schema_is_valid_openapi_3_yaml_too(
    api_client: APIClient, django_assert_num_queries: Any
) -> None:
    with django_assert_num_queries(0):  # generated from the code, no token needed
        response = api_client.get("/api/schema/")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/vnd.oai.openapi")
    schema = yaml.safe_load(response.content)
    validate_schema(schema)
    assert schema == _schema_json(api_client)


def test_schema_declares_bearer_auth_and_which_operations_need_it(api_client: APIClient) -> None:
    schema = _schema_json(api_client)

    assert schema["components"]["securitySchemes"] == {
        "bearerAuth": {
            "type": "http",
            "scheme": "bearer",
            "description": "A device token from POST /api/v1/auth/register or /auth/token.",
        }
    }
    assert schema["paths"]["/api/v1/me"]["get"]["security"] == [{"bearerAuth": []}]
    assert schema["paths"]["/api/v1/videos/{video_id}/like"]["put"]["security"] == [
        {"bearerAuth": []}
    ]
    # registration and login are open
    assert "bearerAuth" not in json.dumps(schema["paths"]["/api/v1/auth/register"])
    assert "bearerAuth" not in json.dumps(schema["paths"]["/api/v1/auth/token"])


def test_schema_operation_ids_are_unique_and_every_operation_has_responses(
    api_client: APIClient,
) -> None:
    schema = _schema_json(api_client)
    operations = [
        operation
        for path_item in schema["paths"].values()
        for method, operation in path_item.items()
        if method in {"get", "put", "post", "patch", "delete"}
    ]

    operation_ids = [operation["operationId"] for operation in operations]
    assert len(operation_ids) == len(set(operation_ids))
    assert all(operation["responses"] for operation in operations)


# --- interactive docs ---------------------------------------------------------------------------
_URL_ATTRIBUTE = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']""")


def test_docs_use_only_local_static_assets(
    api_client: APIClient, django_assert_num_queries: Any
) -> None:
    with django_assert_num_queries(0):
        response = api_client.get("/api/docs/")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    html = response.content.decode()
    assert "http://" not in html
    assert "https://" not in html
    assets = _URL_ATTRIBUTE.findall(html)
    assert assets, "the page loads its UI from somewhere"
    for asset in assets:
        assert asset.startswith("/static/"), asset
        # the asset really is shipped with the app (collectstatic will find it)
        assert finders.find(asset.removeprefix("/static/")), asset
