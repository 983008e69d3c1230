"""Operational endpoints and Django-level error pages rendered as problem documents."""

from typing import Any

from celery import current_app
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django_redis import get_redis_connection
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.errors import problem_response


class HealthView(APIView):
    """The process is up. Touches nothing else."""

    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes: list = []

    @extend_schema(
        responses=inline_serializer("Health", {"status": serializers.CharField()}),
        tags=["operations"],
    )
    def get(self, request: Request) -> Response:
        return Response({"status": "ok"})


def _check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def _check_redis() -> None:
    get_redis_connection("default").ping()


def _check_broker() -> None:
    # Celery's current app is config.celery's (core imports no config).
    with current_app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=2)
        conn.default_channel.client.ping()  # type: ignore[attr-defined]


class ReadyView(APIView):
    """Database, Redis (cache, throttles) and the Celery broker are reachable."""

    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes: list = []

    @extend_schema(
        responses={
            200: inline_serializer(
                "Ready", {"status": serializers.CharField(), "checks": serializers.DictField()}
            ),
            503: inline_serializer(
                "NotReady", {"status": serializers.CharField(), "checks": serializers.DictField()}
            ),
        },
        tags=["operations"],
    )
    def get(self, request: Request) -> Response:
        checks: dict[str, str] = {}
        for name, check in (
            ("database", _check_database),
            ("redis", _check_redis),
            ("broker", _check_broker),
        ):
            try:
                check()
                checks[name] = "ok"
            except Exception as exc:  # any failure means "not ready", never a 500
                checks[name] = f"error: {type(exc).__name__}"
        ready = all(value == "ok" for value in checks.values())
        return Response(
            {"status": "ok" if ready else "unavailable", "checks": checks},
            status=200 if ready else 503,
        )


# Django's own error views (any path): the same problem documents as the middleware's.
def bad_request(request: HttpRequest, exception: Any = None) -> JsonResponse:
    return problem_response(request, 400)


def permission_denied(request: HttpRequest, exception: Any = None) -> JsonResponse:
    return problem_response(request, 403)


def page_not_found(request: HttpRequest, exception: Any = None) -> JsonResponse:
    return problem_response(request, 404)


def server_error(request: HttpRequest) -> JsonResponse:
    return problem_response(request, 500)
