"""Base classes for every API view: Idempotency-Key handling for POSTs."""

from typing import Any

from django.db import transaction
from django.http import HttpRequest
from django.http.response import HttpResponseBase
from rest_framework import generics
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.exceptions import ServiceError
from core.idempotency import HEADER as IDEMPOTENCY_HEADER
from core.idempotency import (
    IdempotencyKey,
    idempotency_key,
    idempotency_record,
    idempotency_replay,
)


class IdempotentMixin:
    # A POST with an `Idempotency-Key` runs in one durable transaction: the view's service runs
    # (its own atomic block becomes a savepoint), then the rendered answer is recorded under the
    # key, and both commit together, so an answer is on record exactly when its effect is. When
    # the key already has an answer (a retry, or a concurrent duplicate that committed first),
    # this request's work is rolled back and that answer is replayed. A 5xx rolls everything
    # back and records nothing. Failures before the view runs (401, 403, 429, a malformed key)
    # are not recorded either. (A comment, not a docstring: drf-spectacular would show it on
    # every operation.)

    _idempotency: IdempotencyKey | None = None

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if request.method != "POST" or IDEMPOTENCY_HEADER not in request.META:
            return super().dispatch(request, *args, **kwargs)  # type: ignore[misc]
        with transaction.atomic(durable=True):
            response: HttpResponseBase = super().dispatch(request, *args, **kwargs)  # type: ignore[misc]
            if response.status_code >= 500:
                transaction.set_rollback(True)
        return response

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)  # type: ignore[misc]
        self._idempotency = idempotency_key(request)

    def finalize_response(
        self, request: Request, response: Response, *args: Any, **kwargs: Any
    ) -> Response:
        response = super().finalize_response(request, response, *args, **kwargs)  # type: ignore[misc]
        claim, self._idempotency = self._idempotency, None
        if claim is None or response.status_code >= 500:
            return response
        response.render()
        if idempotency_record(claim, response):
            return response
        # The key has an answer already: this request's work is dropped, that answer replayed.
        try:
            replay = idempotency_replay(claim)
        except ServiceError as exc:
            replay = super().handle_exception(exc)  # type: ignore[misc]
        transaction.set_rollback(True)
        return super().finalize_response(request, replay, *args, **kwargs)  # type: ignore[misc]


class BaseAPIView(IdempotentMixin, APIView):
    pass


class BaseGenericAPIView(IdempotentMixin, generics.GenericAPIView):
    pass
