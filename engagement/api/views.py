"""Accounts, videos and interactions. Views validate, call one service, render."""

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response

from core.api.base import BaseAPIView, BaseGenericAPIView, BaseListAPIView
from core.client import client_info
from core.exceptions import InvalidInput, NotFound
from core.throttling import AuthThrottle
from engagement import selectors
from engagement.api import serializers as s
from engagement.models import Comment, DeviceToken, Report, User, Video
from engagement.services import accounts, interactions, reports, videos
from engagement.services.counters import video_counts


def _user_agent(request: Request) -> str:
    return request.META.get("HTTP_USER_AGENT", "")


# --- accounts ----------------------------------------------------------------------------------
class AnonymousAuthView(BaseAPIView):
    """Register and log in: no token needed (a bad one is ignored), throttled per client IP."""

    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes = [AuthThrottle]


class RegisterView(AnonymousAuthView):
    @extend_schema(
        request=s.RegisterInputSerializer,
        responses={201: s.RegisterOutputSerializer},
        tags=["accounts"],
        auth=[],
    )
    def post(self, request: Request) -> Response:
        data = s.RegisterInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        client = client_info(request)
        issued = accounts.user_register(
            **data.validated_data, device_id=client.device_id, user_agent=_user_agent(request)
        )
        body = {
            "id": issued.user.pk,
            "username": issued.user.username,
            "display_name": issued.user.display_name,
            "token": issued.token,
            "expiry": issued.expiry,
        }
        return Response(s.RegisterOutputSerializer(body).data, status=status.HTTP_201_CREATED)


class TokenView(AnonymousAuthView):
    @extend_schema(
        request=s.LoginInputSerializer,
        responses={200: s.TokenOutputSerializer},
        tags=["accounts"],
        auth=[],
    )
    def post(self, request: Request) -> Response:
        data = s.LoginInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        client = client_info(request)
        issued = accounts.token_login(
            **data.validated_data, device_id=client.device_id, user_agent=_user_agent(request)
        )
        return Response(
            s.TokenOutputSerializer({"token": issued.token, "expiry": issued.expiry}).data
        )


class LogoutView(BaseAPIView):
    @extend_schema(request=None, responses={204: None}, tags=["accounts"])
    def post(self, request: Request) -> Response:
        assert isinstance(request.auth, DeviceToken)
        accounts.token_revoke(token=request.auth)
        return Response(status=status.HTTP_204_NO_CONTENT)


class LogoutAllView(BaseAPIView):
    @extend_schema(request=None, responses={204: None}, tags=["accounts"])
    def post(self, request: Request) -> Response:
        assert isinstance(request.user, User)
        accounts.tokens_revoke_all(user=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class MeView(BaseAPIView):
    @extend_schema(responses={200: s.MeSerializer}, tags=["accounts"])
    def get(self, request: Request) -> Response:
        return Response(s.MeSerializer(request.user).data)

    @extend_schema(request=s.MeUpdateSerializer, responses={200: s.MeSerializer}, tags=["accounts"])
    def patch(self, request: Request) -> Response:
        data = s.MeUpdateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        assert isinstance(request.user, User)
        user = accounts.user_update_profile(user=request.user, **data.validated_data)
        return Response(s.MeSerializer(user).data)


# --- videos ------------------------------------------------------------------------------------
class VideoListCreateView(BaseGenericAPIView):
    serializer_class = s.VideoSerializer

    def get_queryset(self) -> QuerySet[Video]:
        queryset = selectors.videos_queryset()
        creator = self.request.query_params.get("creator")
        if creator is not None:
            # isdigit() alone accepts non-ASCII digits ("²", which int() refuses: a 500).
            if not (creator.isascii() and creator.isdigit()) or len(creator) > 18:
                raise InvalidInput(
                    "Invalid input: creator: must be a user id.",
                    errors={"creator": ["Must be a user id."]},
                )
            queryset = queryset.filter(creator_id=int(creator))
        return queryset

    @extend_schema(
        parameters=[OpenApiParameter("creator", int, description="Only this creator's videos")],
        responses={200: s.VideoSerializer(many=True)},
        tags=["videos"],
    )
    def get(self, request: Request) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        assert page is not None and isinstance(request.user, User)
        selectors.videos_decorate(page, viewer=request.user)
        return self.get_paginated_response(s.VideoSerializer(page, many=True).data)

    @extend_schema(
        request=s.VideoCreateSerializer, responses={201: s.VideoSerializer}, tags=["videos"]
    )
    def post(self, request: Request) -> Response:
        data = s.VideoCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        assert isinstance(request.user, User)
        video = videos.video_create(creator=request.user, **data.validated_data)
        video = selectors.video_get(video_id=video.pk)
        selectors.videos_decorate([video], viewer=request.user)
        return Response(s.VideoSerializer(video).data, status=status.HTTP_201_CREATED)


class VideoDetailView(BaseAPIView):
    @extend_schema(responses={200: s.VideoSerializer}, tags=["videos"])
    def get(self, request: Request, video_id: int) -> Response:
        video = selectors.video_get(video_id=video_id)
        assert isinstance(request.user, User)
        selectors.videos_decorate([video], viewer=request.user)
        return Response(s.VideoSerializer(video).data)


class VideoLikeView(BaseAPIView):
    @extend_schema(
        request=None,
        responses={201: s.LikeStateSerializer, 200: s.LikeStateSerializer},
        tags=["interactions"],
        description="Like the video: 201 the first time, 200 when it was already liked.",
    )
    def put(self, request: Request, video_id: int) -> Response:
        assert isinstance(request.user, User)
        result = interactions.video_like(
            user=request.user, video_id=video_id, client=client_info(request)
        )
        likes = video_counts([video_id])[video_id]["likes"]
        return Response(
            {"liked": True, "likes": likes},
            status=status.HTTP_201_CREATED if result.created else status.HTTP_200_OK,
        )

    @extend_schema(responses={204: None}, tags=["interactions"])
    def delete(self, request: Request, video_id: int) -> Response:
        assert isinstance(request.user, User)
        interactions.video_unlike(user=request.user, video_id=video_id)
        return Response(status=status.HTTP_204_NO_CONTENT)


class CommentListCreateView(BaseGenericAPIView):
    serializer_class = s.CommentSerializer

    def get_queryset(self) -> QuerySet[Comment]:
        return selectors.comments_queryset(video_id=self.kwargs["video_id"])

    @extend_schema(responses={200: s.CommentSerializer(many=True)}, tags=["interactions"])
    def get(self, request: Request, video_id: int) -> Response:
        if not selectors.video_exists(video_id=video_id):
            raise NotFound("No video with this id.", code="not_found")
        page = self.paginate_queryset(self.get_queryset())
        assert page is not None and isinstance(request.user, User)
        selectors.comments_decorate(page, viewer=request.user)
        return self.get_paginated_response(s.CommentSerializer(page, many=True).data)

    @extend_schema(
        request=s.CommentCreateSerializer,
        responses={201: s.CommentSerializer},
        tags=["interactions"],
    )
    def post(self, request: Request, video_id: int) -> Response:
        data = s.CommentCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        assert isinstance(request.user, User)
        comment = interactions.comment_create(
            user=request.user, video_id=video_id, client=client_info(request), **data.validated_data
        )
        return Response(s.CommentSerializer(comment).data, status=status.HTTP_201_CREATED)


class CommentLikeView(BaseAPIView):
    @extend_schema(
        request=None,
        responses={201: s.CommentLikeStateSerializer, 200: s.CommentLikeStateSerializer},
        tags=["interactions"],
    )
    def put(self, request: Request, comment_id: int) -> Response:
        assert isinstance(request.user, User)
        result = interactions.comment_like(
            user=request.user, comment_id=comment_id, client=client_info(request)
        )
        likes = Comment.objects.values_list("like_count", flat=True).get(pk=comment_id)
        return Response(
            {"liked": True, "likes": likes},
            status=status.HTTP_201_CREATED if result.created else status.HTTP_200_OK,
        )

    @extend_schema(responses={204: None}, tags=["interactions"])
    def delete(self, request: Request, comment_id: int) -> Response:
        assert isinstance(request.user, User)
        interactions.comment_unlike(user=request.user, comment_id=comment_id)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ShareCreateView(BaseAPIView):
    @extend_schema(
        request=s.ShareCreateSerializer, responses={201: s.ShareSerializer}, tags=["interactions"]
    )
    def post(self, request: Request, video_id: int) -> Response:
        data = s.ShareCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        assert isinstance(request.user, User)
        share = interactions.share_create(
            user=request.user, video_id=video_id, client=client_info(request), **data.validated_data
        )
        return Response(s.ShareSerializer(share).data, status=status.HTTP_201_CREATED)


class PlayCreateView(BaseAPIView):
    @extend_schema(
        request=s.PlayCreateSerializer, responses={201: s.PlaySerializer}, tags=["interactions"]
    )
    def post(self, request: Request, video_id: int) -> Response:
        data = s.PlayCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        assert isinstance(request.user, User)
        result = interactions.play_create(
            user=request.user, video_id=video_id, client=client_info(request), **data.validated_data
        )
        result.play.replay = result.replay  # type: ignore[attr-defined]
        return Response(s.PlaySerializer(result.play).data, status=status.HTTP_201_CREATED)


class FollowView(BaseAPIView):
    @extend_schema(
        request=s.FollowInputSerializer,
        responses={201: s.FollowStateSerializer, 200: s.FollowStateSerializer},
        tags=["interactions"],
        description="Follow a creator: 201 the first time, 200 when already following. "
        "`video_id` optionally names the video the follow came from (creator analytics).",
    )
    def put(self, request: Request, user_id: int) -> Response:
        # No body parses as {}; any other non-object body (a list, false, 0) is refused.
        data = s.FollowInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        assert isinstance(request.user, User)
        result = interactions.creator_follow(
            user=request.user,
            creator_id=user_id,
            source_video_id=data.validated_data["video_id"],
            client=client_info(request),
        )
        return Response(
            {"creator_id": user_id, "following": True},
            status=status.HTTP_201_CREATED if result.created else status.HTTP_200_OK,
        )

    @extend_schema(responses={204: None}, tags=["interactions"])
    def delete(self, request: Request, user_id: int) -> Response:
        assert isinstance(request.user, User)
        interactions.creator_unfollow(user=request.user, creator_id=user_id)
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- reports -----------------------------------------------------------------------------------
class ReportCreateView(BaseAPIView):
    @extend_schema(
        request=s.ReportCreateSerializer,
        responses={201: s.ReportSerializer, 200: s.ReportSerializer},
        tags=["reports"],
        description="Report a user, video or comment to staff: 201 with the new report, or 200 "
        "with your open report on the same target (unchanged) when you have one. 404 for an "
        "unknown target, 400 `cannot_report_self` for reporting yourself.",
    )
    def post(self, request: Request) -> Response:
        data = s.ReportCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        assert isinstance(request.user, User)
        result = reports.report_file(
            reporter=request.user, client=client_info(request), **data.validated_data
        )
        return Response(
            s.ReportSerializer(result.report).data,
            status=status.HTTP_201_CREATED if result.created else status.HTTP_200_OK,
        )


@extend_schema(
    tags=["reports"],
    description="Your reports, newest first, with their status: `open` until staff review it, "
    "then `actioned` or `dismissed`.",
)
class MyReportsView(BaseListAPIView):
    serializer_class = s.ReportSerializer

    def get_queryset(self) -> QuerySet[Report]:
        assert isinstance(self.request.user, User)
        return selectors.user_reports(user=self.request.user)
