"""Base classes for every API view: Idempotency-Key handling for POSTs."""

from typing import Any

from django.db import transaction
from django.http import HttpRequest
from django.http.response import HttpResponseBase
from rest_framework import generics
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.idempotency import HEADER as IDEMPOTENCY_HEADER
from core.idempotency import (
    IdempotencyClaim,
    IdempotentReplay,
    idempotency_claim,
    idempotency_complete,
)


class IdempotentMixin:
    # A POST with an `Idempotency-Key` runs in one durable transaction: the key is claimed after
    # auth, permissions and throttles, the view's service runs (its own atomic block becomes a
    # savepoint), and the answer is stored, all committed together, so an answer is on record
    # exactly when its effect is. A concurrent request with the same key waits on the claim and
    # then replays the answer. A 5xx rolls everything back, the claim included.
    # (A comment, not a docstring: drf-spectacular would show it on every operation.)

    _idempotency: IdempotencyClaim | None = None

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
        self._idempotency = idempotency_claim(request)

    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, IdempotentReplay):
            return exc.response
        return super().handle_exception(exc)  # type: ignore[misc]

    def finalize_response(
        self, request: Request, response: Response, *args: Any, **kwargs: Any
    ) -> Response:
        response = super().finalize_response(request, response, *args, **kwargs)  # type: ignore[misc]
        claim, self._idempotency = self._idempotency, None
        if claim is not None and response.status_code < 500:
            idempotency_complete(claim, response)
        return response


class BaseAPIView(IdempotentMixin, APIView):
    pass


class BaseGenericAPIView(IdempotentMixin, generics.GenericAPIView):
    pass
