"""`GET videos/hot` and `GET hashtags/trending` (SPEC §3). Views validate, call one selector,
render; the formulas are in docs/discovery.md."""

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from analytics import discovery
from analytics.parameters import iso_utc
from core.api.base import BaseAPIView
from engagement.api.serializers import VideoSerializer
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


class HotVideosView(BaseAPIView):
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
    def get(self, request: Request) -> Response:
        limit = discovery.check_limit(request.query_params.get("limit"))
        assert isinstance(request.user, User)
        hot = discovery.hot_list(limit=limit, viewer=request.user)
        return Response(
            {
                "as_of": iso_utc(hot.as_of),
                "results": [
                    {"video": VideoSerializer(video).data, "heat": video.heat_value}  # type: ignore[attr-defined]
                    for video in hot.videos
                ],
            }
        )


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
