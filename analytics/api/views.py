"""The creator centre's reads. Views validate, call one selector, render."""

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from analytics import selectors
from analytics.api import serializers as s
from analytics.parameters import (
    ALLOWED_DAYS,
    DEFAULT_DAYS,
    DEFAULT_TIMEZONE,
    InvalidAnalyticsParameter,
    check_timezone,
)
from core.api.base import BaseAPIView
from core.exceptions import InvalidInput, NotFound
from engagement.models import User, Video

PARAMETERS = [
    OpenApiParameter("days", int, enum=list(ALLOWED_DAYS), description="default 28"),
    OpenApiParameter("tz", str, description="an IANA time zone, default UTC"),
]


def _parameters(request: Request) -> dict[str, Any]:
    """`days` and `tz` from the query string, or a 400 naming every bad one."""
    errors: dict[str, list[str]] = {}
    raw_days = request.query_params.get("days", str(DEFAULT_DAYS))
    days = int(raw_days) if raw_days in {str(d) for d in ALLOWED_DAYS} else None
    if days is None:
        errors["days"] = [f"Must be one of {', '.join(map(str, ALLOWED_DAYS))}."]
    tz = request.query_params.get("tz", DEFAULT_TIMEZONE)
    try:
        check_timezone(tz)
    except InvalidAnalyticsParameter as error:
        errors["tz"] = [error.message]
    if errors:
        summary = "; ".join(f"{field}: {messages[0]}" for field, messages in errors.items())
        raise InvalidInput(f"Invalid input: {summary}", errors=errors)
    return {"days": days, "tz": tz}


class CreatorAnalyticsView(BaseAPIView):
    @extend_schema(
        parameters=PARAMETERS, responses={200: s.CreatorAnalyticsSerializer}, tags=["analytics"]
    )
    def get(self, request: Request) -> Response:
        parameters = _parameters(request)
        assert isinstance(request.user, User)
        return Response(
            selectors.creator_analytics_document(creator_id=request.user.pk, **parameters)
        )


class VideoAnalyticsView(BaseAPIView):
    @extend_schema(
        parameters=PARAMETERS, responses={200: s.VideoAnalyticsSerializer}, tags=["analytics"]
    )
    def get(self, request: Request, video_id: int) -> Response:
        # Someone else's video and no video answer alike (SPEC §2.7).
        if not Video.objects.filter(pk=video_id, creator_id=request.user.pk).exists():
            raise NotFound("No video with this id.", code="not_found")
        parameters = _parameters(request)
        return Response(selectors.video_analytics_document(video_id=video_id, **parameters))
