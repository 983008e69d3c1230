"""The creator centre's reads. Views validate, call one selector, render."""

from functools import partial
from typing import Any

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from analytics.api import serializers as s
from analytics.documents import DocumentKey, cached_decode, cached_stage, document_serve
from analytics.parameters import (
    ALLOWED_DAYS,
    DEFAULT_DAYS,
    DEFAULT_TIMEZONE,
    InvalidAnalyticsParameter,
    check_timezone,
)
from analytics.selectors import document_compute
from core.api.base import BaseAPIView
from core.exceptions import InvalidInput, NotFound
from core.throttling import RequestThrottle, throttle_extra_replies
from engagement.models import Video

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


def _document_key(request: Request, view: APIView, parameters: dict[str, Any]) -> DocumentKey:
    user_id = int(request.user.pk or 0)
    video_id = view.kwargs.get("video_id")
    return DocumentKey(
        kind="creator" if video_id is None else "video",
        scope=user_id if video_id is None else int(video_id),
        creator=user_id,
        days=parameters["days"],
        tz=parameters["tz"],
    )


class DocumentThrottle(RequestThrottle):
    """The default throttle, with the document cache read (and the document's active mark and
    the refresher's arming) riding on its Redis round trip."""

    def stage_extra_commands(self, pipe: Any, request: Request, view: APIView) -> None:
        if not (request.user and request.user.is_authenticated):
            return
        try:
            parameters = _parameters(request)
        except InvalidInput:
            return  # the view answers 400
        token = cached_stage(pipe, _document_key(request, view, parameters))
        request.document_refresher_token = token  # type: ignore[attr-defined]


def _respond(request: Request, document: dict[str, Any], etag: str) -> Response:
    headers = {"ETag": etag, "Cache-Control": "private, no-cache"}
    if etag in [tag.strip() for tag in request.headers.get("If-None-Match", "").split(",")]:
        return Response(status=status.HTTP_304_NOT_MODIFIED, headers=headers)
    return Response(document, headers=headers)


def _cached_from_throttle(request: Request) -> Any:
    replies = throttle_extra_replies(request)
    token = getattr(request, "document_refresher_token", None)
    return cached_decode(replies, token=token) if replies else None


NOT_MODIFIED = OpenApiResponse(description="Not modified (If-None-Match)")
CACHING = (
    "Computed from the rollups and reused for up to 30 s (docs/analytics.md, Serving): a "
    "committed interaction shows within the consumer's lag + 20 s; `window` says which window "
    "the figures are for. Supports ETag / If-None-Match."
)


class CreatorAnalyticsView(BaseAPIView):
    throttle_classes = [DocumentThrottle]

    @extend_schema(
        parameters=PARAMETERS,
        responses={200: s.CreatorAnalyticsSerializer, 304: NOT_MODIFIED},
        tags=["analytics"],
        description=CACHING,
    )
    def get(self, request: Request) -> Response:
        key = _document_key(request, self, _parameters(request))
        document, etag = document_serve(
            key, cached=_cached_from_throttle(request), compute=partial(document_compute, key)
        )
        return _respond(request, document, etag)


class VideoAnalyticsView(BaseAPIView):
    throttle_classes = [DocumentThrottle]

    @extend_schema(
        parameters=PARAMETERS,
        responses={200: s.VideoAnalyticsSerializer, 304: NOT_MODIFIED},
        tags=["analytics"],
        description=CACHING,
    )
    def get(self, request: Request, video_id: int) -> Response:
        key = _document_key(request, self, _parameters(request))
        try:
            document, etag = document_serve(
                key, cached=_cached_from_throttle(request), compute=partial(document_compute, key)
            )
        except Video.DoesNotExist:
            # Someone else's video and no video answer alike (SPEC §2.7). A stored document
            # is only ever served to its creator (its key holds the caller's version).
            raise NotFound("No video with this id.", code="not_found") from None
        return _respond(request, document, etag)
