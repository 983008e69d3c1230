"""Base classes for every API view: Idempotency-Key handling for POSTs."""

from typing import Any

from rest_framework import generics
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.idempotency import (
    IdempotencyClaim,
    IdempotentReplay,
    idempotency_claim,
    idempotency_complete,
)


class IdempotentMixin:
    # Claims the `Idempotency-Key` after auth, permissions and throttles; stores the answer.
    # (A comment, not a docstring: drf-spectacular would show it on every operation.)

    _idempotency: IdempotencyClaim | None = None

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
        if claim is not None:
            idempotency_complete(claim, response)
        return response


class BaseAPIView(IdempotentMixin, APIView):
    pass


class BaseGenericAPIView(IdempotentMixin, generics.GenericAPIView):
    pass
