"""Sticker endpoints. Views validate, call one service or selector, render."""

import json
from functools import partial
from typing import Any

from django.http import HttpResponse, HttpResponseNotModified
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils.encoders import JSONEncoder as DRFJSONEncoder
from rest_framework.views import APIView

from core.api.base import BaseAPIView, BaseGenericAPIView
from core.api.parsing import request_json
from core.client import client_info
from core.idempotency import InStatementRecord
from core.pagination import IdCursorPagination
from core.renderers import JSONRenderer
from core.throttling import RequestThrottle, throttle_extra_replies
from engagement.models import User
from engagement.selectors import video_exists
from polls import selectors
from polls.api import serializers as s
from polls.api.documents import results_body, results_etag, sticker_documents
from polls.services import authoring, lifecycle, voting
from polls.services.authoring import StickerSpec
from polls.services.results import sticker_results_read
from polls.services.results_cache import results_cache_decode, results_cache_stage
from polls.services.tallies import tally_mark_sent, tally_mark_stage


def _viewer(request: Request) -> User:
    assert isinstance(request.user, User)
    return request.user


def _present_one(sticker_id: int, viewer: User) -> dict[str, Any]:
    sticker = selectors.sticker_get(sticker_id=sticker_id, viewer=viewer)
    return sticker_documents([sticker], viewer=viewer)[0]


class StickerCursorPagination(IdCursorPagination):
    """A video's stickers in the order they were added."""

    ordering = "id"


class VideoStickersView(BaseGenericAPIView):
    pagination_class = StickerCursorPagination

    @extend_schema(responses={200: s.StickerSerializer(many=True)}, tags=["stickers"])
    def get(self, request: Request, video_id: int) -> Response:
        viewer = _viewer(request)
        if not video_exists(video_id=video_id):
            from core.exceptions import NotFound

            raise NotFound("No video with this id.")
        page = self.paginate_queryset(
            selectors.stickers_for_video(video_id=video_id, viewer=viewer)
        )
        assert page is not None
        data = sticker_documents(page, viewer=viewer)
        return self.get_paginated_response(s.StickerSerializer(data, many=True).data)

    @extend_schema(
        request=s.StickerCreateSerializer,
        responses={201: s.StickerSerializer},
        tags=["stickers"],
        description="Add a sticker to your video. See SPEC §3 for the rules of each kind.",
    )
    def post(self, request: Request, video_id: int) -> Response:
        data = s.StickerCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        viewer = _viewer(request)
        sticker = authoring.sticker_create(
            creator=viewer, video_id=video_id, spec=StickerSpec(**data.validated_data)
        )
        return Response(
            s.StickerSerializer(_present_one(sticker.pk, viewer)).data,
            status=status.HTTP_201_CREATED,
        )


class StickerDetailView(BaseAPIView):
    @extend_schema(responses={200: s.StickerSerializer}, tags=["stickers"])
    def get(self, request: Request, sticker_id: int) -> Response:
        return Response(s.StickerSerializer(_present_one(sticker_id, _viewer(request))).data)

    @extend_schema(
        request=s.StickerChangeSerializer,
        responses={200: s.StickerSerializer},
        tags=["stickers"],
        description="Edit a scheduled sticker (creator only). Lists given replace the old ones.",
    )
    def patch(self, request: Request, sticker_id: int) -> Response:
        data = s.StickerChangeSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        viewer = _viewer(request)
        authoring.sticker_update(actor=viewer, sticker_id=sticker_id, changes=data.validated_data)
        return Response(s.StickerSerializer(_present_one(sticker_id, viewer)).data)


class StickerCloseView(BaseAPIView):
    @extend_schema(request=None, responses={200: s.StickerSerializer}, tags=["stickers"])
    def post(self, request: Request, sticker_id: int) -> Response:
        viewer = _viewer(request)
        lifecycle.sticker_close(actor=viewer, sticker_id=sticker_id)
        return Response(s.StickerSerializer(_present_one(sticker_id, viewer)).data)


class StickerCancelView(BaseAPIView):
    @extend_schema(request=None, responses={200: s.StickerSerializer}, tags=["stickers"])
    def post(self, request: Request, sticker_id: int) -> Response:
        viewer = _viewer(request)
        lifecycle.sticker_cancel(actor=viewer, sticker_id=sticker_id)
        return Response(s.StickerSerializer(_present_one(sticker_id, viewer)).data)


class StickerModerateView(BaseAPIView):
    @extend_schema(
        request=s.ModerateInputSerializer, responses={200: s.StickerSerializer}, tags=["stickers"]
    )
    def post(self, request: Request, sticker_id: int) -> Response:
        data = s.ModerateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        viewer = _viewer(request)
        lifecycle.sticker_moderate(actor=viewer, sticker_id=sticker_id, **data.validated_data)
        return Response(s.StickerSerializer(_present_one(sticker_id, viewer)).data)


class VoteThrottle(RequestThrottle):
    """The default throttle; the mark of the sticker's live tally is sent in its Redis round trip
    (before the vote commits: see TALLY_MARK_GRACE_SECONDS)."""

    def stage_extra_commands(self, pipe: Any, request: Request, view: APIView) -> None:
        tally_mark_stage(pipe, view.kwargs["sticker_id"])


class VoteView(BaseAPIView):
    # The vote's one statement records the Idempotency-Key's response too (no transaction).
    records_in_statement = True
    throttle_classes = [VoteThrottle]

    @extend_schema(
        request=s.VoteInputSerializer,
        responses={201: s.VoteOutSerializer, 200: s.VoteOutSerializer},
        tags=["stickers"],
        description="Vote (poll, ending): 201 for a new vote, 200 when it replaced (or repeated) "
        "your vote.",
    )
    def post(self, request: Request, sticker_id: int) -> HttpResponse:
        key = self.idempotency
        marked = throttle_extra_replies(request)  # None: Redis was unreachable
        if marked:
            tally_mark_sent(marked)
        result = voting.vote_cast(
            user=_viewer(request),
            sticker_id=sticker_id,
            option_ids=_vote_option_ids(request_json(request)),
            client=client_info(request),
            record=None
            if key is None
            else InStatementRecord(key=key, render=partial(_vote_rendered, sticker_id)),
            tally_marked=bool(marked),
        )
        if result.recorded:
            self.response_recorded()
        return HttpResponse(
            _vote_rendered(sticker_id, result),
            status=status.HTTP_201_CREATED if result.created else status.HTTP_200_OK,
            content_type=JSONRenderer.media_type,
        )


def _vote_body(sticker_id: int, result: voting.VoteResult) -> dict[str, Any]:
    # (the shape of VoteOutSerializer, built directly: this is the hottest write)
    return {
        "sticker_id": sticker_id,
        "option_ids": result.option_ids,
        "voted_at": result.voted_at,
        "changed": result.changed,
    }


def _vote_rendered(sticker_id: int, result: voting.VoteResult) -> str:
    """The answer's body exactly as JSONRenderer renders it (compact, unescaped, strict), for
    the answer and the two its statement may record: the standard library's encoder, the time
    written by DRF's encoder first. A vote renders three bodies, and DRF's renderer and Response
    cost more than the encoding (docs/benchmarks.md; tests/polls compares the two)."""
    body = _vote_body(sticker_id, result)
    body["voted_at"] = _DRF_ENCODER.default(result.voted_at)
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


_DRF_ENCODER = DRFJSONEncoder()


def _vote_option_ids(data: Any) -> list[int]:
    """The vote body's option ids, as VoteInputSerializer validates them.

    A well-formed body (a list of at most MAX_VOTE_OPTIONS ids) is taken as it is; anything else
    goes through the serializer, which words the errors.
    """
    if isinstance(data, dict):
        ids = data.get("option_ids")
        if (
            type(ids) is list
            and len(ids) <= s.MAX_VOTE_OPTIONS
            and all(type(item) is int and 1 <= item <= s.ID_MAX for item in ids)
        ):
            return ids
    serializer = s.VoteInputSerializer(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data["option_ids"]


class ResultsThrottle(RequestThrottle):
    """The default throttle; the results cache read is sent in its Redis round trip."""

    def stage_extra_commands(self, pipe: Any, request: Request, view: APIView) -> None:
        results_cache_stage(pipe, view.kwargs["sticker_id"])


class ResultsView(BaseAPIView):
    # The results cache read (polls.services.results_cache: the sticker's cache version, metadata
    # and tally) shares the throttle's Redis round trip, so a read costs one round trip, not two
    # (docs/benchmarks.md): ResultsThrottle stages it with the rate counters, `get` decodes the
    # reply. When Redis could not be reached, the results read tries on its own.
    throttle_classes = [ResultsThrottle]

    @extend_schema(
        responses={
            200: s.ResultsSerializer,
            304: OpenApiResponse(description="Not modified (If-None-Match)"),
        },
        tags=["stickers"],
        description="Live results (eventually consistent, `as_of` says when they were counted) "
        "or, once `final`, the exact result. Supports ETag / If-None-Match.",
    )
    def get(self, request: Request, sticker_id: int) -> HttpResponse:
        replies = throttle_extra_replies(request)
        cached = results_cache_decode(replies[0]) if replies else None
        read = sticker_results_read(sticker_id=sticker_id, viewer=_viewer(request), cached=cached)
        etag = results_etag(read)
        headers = {"ETag": etag, "Cache-Control": "private, no-cache"}
        if etag in [tag.strip() for tag in request.META.get("HTTP_IF_NONE_MATCH", "").split(",")]:
            return HttpResponseNotModified(headers=headers)
        # (the body as JSONRenderer renders it, rendered once per ETag: polls.api.documents)
        return HttpResponse(
            results_body(read, etag), content_type=JSONRenderer.media_type, headers=headers
        )


class AnswerView(BaseAPIView):
    @extend_schema(
        request=s.AnswerInputSerializer, responses={201: s.AnswerOutSerializer}, tags=["stickers"]
    )
    def post(self, request: Request, sticker_id: int, checkpoint_id: int) -> Response:
        data = s.AnswerInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        result = voting.answer_submit(
            user=_viewer(request),
            sticker_id=sticker_id,
            checkpoint_id=checkpoint_id,
            option_ids=data.validated_data["option_ids"],
            client=client_info(request),
        )
        body = {
            "correct": result.answer.is_correct,
            "correct_option_ids": result.correct_option_ids,
            "explanation": result.explanation,
            "progress": result.progress.__dict__,
        }
        return Response(s.AnswerOutSerializer(body).data, status=status.HTTP_201_CREATED)


class ProgressView(BaseAPIView):
    @extend_schema(responses={200: s.ProgressSerializer}, tags=["stickers"])
    def get(self, request: Request, sticker_id: int) -> Response:
        viewer = _viewer(request)
        sticker = selectors.sticker_get(sticker_id=sticker_id, viewer=viewer)
        progress = voting.quiz_progress(user=viewer, sticker_id=sticker.pk)
        return Response(s.ProgressSerializer(progress.__dict__).data)
