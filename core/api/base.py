"""Base classes for every API view: Idempotency-Key handling for POSTs."""

from typing import Any

from django.db import transaction
from django.http import HttpRequest
from django.http.response import HttpResponseBase
from django.template.response import SimpleTemplateResponse
from rest_framework import generics
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.exceptions import ServiceError
from core.idempotency import HEADER as IDEMPOTENCY_HEADER
from core.idempotency import (
    IdempotencyKey,
    ResponseOnRecord,
    idempotency_key,
    idempotency_record,
    idempotency_replay,
)


class IdempotentMixin:
    # A POST with an `Idempotency-Key` runs in one durable transaction: the view's service runs
    # (its own atomic block becomes a savepoint), then the rendered response is recorded under
    # the key, and both commit together, so a response is on record exactly when its effect is.
    # When the key already has a recorded response (a retry, or a concurrent duplicate that
    # committed first), this request's work is rolled back and that response is replayed. A 5xx
    # rolls everything back and records nothing. Failures before the view runs (401, 403, 429, a
    # malformed key) are not recorded either.
    #
    # A view whose effect is a single SQL statement may set `records_in_statement`: then no
    # transaction is opened; the view takes the key from `idempotency` and records its response
    # in that statement (core.idempotency.InStatementRecord), calling `response_recorded()`, or
    # raises ResponseOnRecord when the key turns out to have a recorded response. A response the
    # view did not record (an error, or nothing written) is recorded here on its own: there is no
    # effect to commit with it.
    # (Comments, not a docstring: drf-spectacular would show it on every operation.)

    records_in_statement = False
    _idempotency: IdempotencyKey | None = None

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if (
            request.method != "POST"
            or IDEMPOTENCY_HEADER not in request.META
            or self.records_in_statement
        ):
            return super().dispatch(request, *args, **kwargs)  # type: ignore[misc]
        with transaction.atomic(durable=True):
            response: HttpResponseBase = super().dispatch(request, *args, **kwargs)  # type: ignore[misc]
            if response.status_code >= 500:
                transaction.set_rollback(True)
        return response

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)  # type: ignore[misc]
        self._idempotency = idempotency_key(request)

    @property
    def idempotency(self) -> IdempotencyKey | None:
        """The request's checked Idempotency-Key (None without one)."""
        return self._idempotency

    def response_recorded(self) -> None:
        """The view recorded its response itself (in its write's statement)."""
        self._idempotency = None

    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, ResponseOnRecord) and self._idempotency is not None:
            key, self._idempotency = self._idempotency, None
            try:
                return idempotency_replay(key)
            except ServiceError as error:
                return super().handle_exception(error)  # type: ignore[misc]
        return super().handle_exception(exc)  # type: ignore[misc]

    def finalize_response(
        self, request: Request, response: Response, *args: Any, **kwargs: Any
    ) -> Response:
        response = super().finalize_response(request, response, *args, **kwargs)  # type: ignore[misc]
        key, self._idempotency = self._idempotency, None
        if key is None or response.status_code >= 500:
            return response
        if isinstance(response, SimpleTemplateResponse):  # (a plain HttpResponse has its body)
            response.render()
        if idempotency_record(key, response):
            return response
        # The key has a recorded response already: this request's work is dropped, that response
        # replayed.
        try:
            replay = idempotency_replay(key)
        except ServiceError as exc:
            replay = super().handle_exception(exc)  # type: ignore[misc]
        if not self.records_in_statement:
            transaction.set_rollback(True)
        return super().finalize_response(request, replay, *args, **kwargs)  # type: ignore[misc]


class BaseAPIView(IdempotentMixin, APIView):
    pass


class BaseGenericAPIView(IdempotentMixin, generics.GenericAPIView):
    pass


class BaseListAPIView(IdempotentMixin, generics.ListAPIView):
    """GET returns a page of `get_queryset()` rendered by `serializer_class`.

    A list view, so the OpenAPI schema describes the page (`Paginated…List`, with the `cursor`
    and `page_size` parameters) rather than one item.
    """
