"""`GET videos/hot` and `GET hashtags/trending` (SPEC §3). Views validate, call one selector,
render; the formulas are in docs/discovery.md."""

import hashlib
from functools import lru_cache, partial
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.http import HttpResponse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from analytics import discovery
from analytics.parameters import iso_utc
from core.api.base import BaseAPIView
from core.exceptions import InvalidInput
from core.memo import ContentMemo
from core.renderers import JSONRenderer
from core.throttling import RequestThrottle, throttle_extra_replies
from engagement import selectors as engagement_selectors
from engagement.api.serializers import VideoSerializer
from engagement.likes_version import viewer_likes_version, viewer_likes_version_key
from engagement.models import User


class HotEntrySerializer(serializers.Serializer):
    video = VideoSerializer()
    heat = serializers.FloatField()


class HotListSerializer(serializers.Serializer):
    as_of = serializers.DateTimeField(
        help_text="Every like and comment committed before this time is in the heat."
    )
    results = HotEntrySerializer(many=True)


class TrendingWindowSerializer(serializers.Serializer):
    hours = serializers.IntegerField()
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()


class TrendingEntrySerializer(serializers.Serializer):
    hashtag = serializers.CharField()
    interactions = serializers.IntegerField(help_text="Counted interactions in the window.")
    previous = serializers.IntegerField(help_text="Counted interactions in the window before.")
    growth = serializers.FloatField(
        allow_null=True, help_text="(interactions - previous) / previous; null when previous is 0."
    )
    score = serializers.FloatField(help_text="(interactions - previous) / sqrt(previous + 10).")


class TrendingSerializer(serializers.Serializer):
    as_of = serializers.DateTimeField(
        help_text="The window's end: every interaction committed before it is counted."
    )
    window = TrendingWindowSerializer()
    results = TrendingEntrySerializer(many=True)


LIMIT_PARAMETER = OpenApiParameter(
    "limit", int, description="How many results: 1-100 (default 20); anything else is a 400."
)


_HOT_KEY = "analytics:hot:{limit}"
# The viewer's likes among a hot list's videos, kept under the viewer's likes version
# (engagement.likes_version) and the list's video ids.
_HOT_LIKED_KEY = "analytics:hot:liked:{user}:{limit}"
HOT_LIKED_SECONDS = 60
HOT_BODIES_KEPT = 1024


def _hot_limit(request: Request) -> int | None:
    try:
        return discovery.check_limit(request.query_params.get("limit"))
    except InvalidInput:  # the view answers 400
        return None


class HotThrottle(RequestThrottle):
    """The default throttle, with the hot list's cache reads riding on its Redis round trip:
    the list, the viewer's likes version and the viewer's likes stored under it."""

    def stage_extra_commands(self, pipe: Any, request: Request, view: APIView) -> None:
        limit = _hot_limit(request)
        viewer = request.user  # (throttles run after the permission check: a user)
        if limit is not None and isinstance(viewer, User):
            pipe.get(cache.make_key(_HOT_KEY.format(limit=limit)))
            pipe.get(cache.make_key(viewer_likes_version_key(viewer.pk)))
            pipe.get(cache.make_key(_HOT_LIKED_KEY.format(user=viewer.pk, limit=limit)))


_LIKED_FALSE = b'"viewer":{"liked":false}'


def _hot_document(limit: int) -> dict[str, Any]:
    """The list as everyone sees it, pre-rendered: each video's JSON split around its
    `viewer.liked` value, so a request only joins bytes (`_hot_body`)."""
    hot = discovery.hot_list(limit=limit)
    render = JSONRenderer().render
    entries = []
    # one serializer for the list: its fields are built once, not once per video
    for video, data in zip(hot.videos, VideoSerializer(hot.videos, many=True).data, strict=True):
        rendered = render({**data, "viewer": {"liked": False}})
        # (quotes inside strings are escaped: the only such bytes are the key itself)
        cut = rendered.index(_LIKED_FALSE) + len(_LIKED_FALSE) - len(b"false}")
        heat = render(video.heat_value)  # type: ignore[attr-defined]
        entries.append((video.pk, rendered[:cut], rendered[cut + len(b"false") :], heat))
    return {"as_of": render(iso_utc(hot.as_of)), "entries": entries}


def _hot_body(document: dict[str, Any], liked: set[int]) -> bytes:
    results = b",".join(
        b'{"video":'
        + before
        + (b"true" if video_id in liked else b"false")
        + after
        + b',"heat":'
        + heat
        + b"}"
        for video_id, before, after, heat in document["entries"]
    )
    return b'{"as_of":' + document["as_of"] + b',"results":[' + results + b"]}"


class HotVideosView(BaseAPIView):
    """The list is the same for everyone but each viewer's own likes: it is stored for
    ANALYTICS_HOT_CACHE_SECONDS (5 s; heat is a slow score, and `as_of` says how fresh) and
    each request adds the viewer's likes of the listed videos, themselves kept under the
    viewer's likes version (one query per viewer per HOT_LIKED_SECONDS or own like)."""

    throttle_classes = [HotThrottle]

    @extend_schema(
        parameters=[LIMIT_PARAMETER],
        responses={200: HotListSerializer},
        tags=["discovery"],
        description=(
            "Videos ranked by heat = log10(max(points, 1)) + (published - 2026-01-01) / 45000 s, "
            "points = counted likes + likes by commenters + likes in the first hour "
            "(docs/discovery.md). Only videos with a counted like are listed."
        ),
    )
    def get(self, request: Request) -> HttpResponse:
        limit = discovery.check_limit(request.query_params.get("limit"))
        assert isinstance(request.user, User)
        seconds = settings.ANALYTICS_HOT_CACHE_SECONDS
        raw_document, raw_version, raw_stored = throttle_extra_replies(request) or [None] * 3
        document, digest = _hot_decoded(raw_document) if raw_document is not None else (None, None)
        version, stored = _decode(raw_version), _decode(raw_stored)
        if seconds <= 0 or not isinstance(document, dict) or "entries" not in document:
            document, digest = _hot_document(limit), None
            if seconds > 0:
                cache.set(_HOT_KEY.format(limit=limit), document, seconds)
        ids = [entry[0] for entry in document["entries"]]
        liked = _viewer_liked(request.user, limit, ids, version, stored)
        if digest is None:
            body = _hot_body(document, liked)
        else:  # (the same list and likes: the same body, joined once per process)
            body = _hot_bodies.get((digest, frozenset(liked)), partial(_hot_body, document, liked))
        return HttpResponse(body, content_type="application/json")


def _decode(raw: bytes | None) -> Any:
    return cache.client.decode(raw) if raw is not None else None  # type: ignore[attr-defined]


# The stored list, decoded once per process for the bytes Redis sent (shared: read-only), with
# a digest of those bytes, and its bodies by that digest and the viewer's likes among its videos
# (core.memo).
@lru_cache(maxsize=16)
def _hot_decoded(raw: bytes) -> tuple[Any, str]:
    return _decode(raw), hashlib.blake2b(raw, digest_size=16).hexdigest()


_hot_bodies: ContentMemo[tuple[str, frozenset[int]], bytes] = ContentMemo(HOT_BODIES_KEPT)


def _viewer_liked(viewer: User, limit: int, ids: list[int], version: Any, stored: Any) -> set[int]:
    """Which of `ids` the viewer likes: stored while the viewer's likes version (read before,
    with the throttle) and the ids are those it was stored with, else one query, stored under
    the version read before it (docs/discovery.md, "Serving")."""
    if (
        isinstance(version, str)
        and isinstance(stored, dict)
        and stored.get("version") == version
        and stored.get("ids") == ids
    ):
        return set(stored["liked"])
    if not isinstance(version, str):
        version = viewer_likes_version(viewer.pk)
    liked = engagement_selectors.videos_liked_by(viewer=viewer, video_ids=ids)
    if version is not None:
        cache.set(
            _HOT_LIKED_KEY.format(user=viewer.pk, limit=limit),
            {"version": version, "ids": ids, "liked": sorted(liked)},
            HOT_LIKED_SECONDS,
        )
    return liked


class TrendingHashtagsView(BaseAPIView):
    @extend_schema(
        parameters=[
            OpenApiParameter(
                "hours",
                int,
                description="The window [as_of - hours, as_of): 1-168 (default 24).",
            ),
            LIMIT_PARAMETER,
        ],
        responses={200: TrendingSerializer},
        tags=["discovery"],
        description=(
            "Hashtags ranked by (interactions - previous) / sqrt(previous + 10) over counted "
            "likes, comments, shares and follows gained of their videos; a hashtag needs "
            "interactions from at least 3 distinct users in the window (docs/discovery.md)."
        ),
    )
    def get(self, request: Request) -> Response:
        hours = discovery.check_hours(request.query_params.get("hours"))
        limit = discovery.check_limit(request.query_params.get("limit"))
        return Response(discovery.trending_document(hours=hours, limit=limit))
