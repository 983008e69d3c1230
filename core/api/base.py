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
    AnswerOnRecord,
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
    # are not recorded either.
    #
    # A view whose effect is a single SQL statement may set `answer_in_statement`: then no
    # transaction is opened; the view takes the key from `idempotency` and records its answer in
    # that statement (core.idempotency.InStatementAnswer), calling `answer_recorded()`, or
    # raises AnswerOnRecord when the key turns out to have an answer. An answer the view did not
    # record (an error, or nothing written) is recorded here on its own: there is no effect to
    # commit with it.
    # (Comments, not a docstring: drf-spectacular would show it on every operation.)

    answer_in_statement = False
    _idempotency: IdempotencyKey | None = None

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if (
            request.method != "POST"
            or IDEMPOTENCY_HEADER not in request.META
            or self.answer_in_statement
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

    def answer_recorded(self) -> None:
        """The view recorded its answer itself (in its write's statement)."""
        self._idempotency = None

    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, AnswerOnRecord) and self._idempotency is not None:
            claim, self._idempotency = self._idempotency, None
            try:
                return idempotency_replay(claim)
            except ServiceError as error:
                return super().handle_exception(error)  # type: ignore[misc]
        return super().handle_exception(exc)  # type: ignore[misc]

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
        if not self.answer_in_statement:
            transaction.set_rollback(True)
        return super().finalize_response(request, replay, *args, **kwargs)  # type: ignore[misc]


class BaseAPIView(IdempotentMixin, APIView):
    pass


class BaseGenericAPIView(IdempotentMixin, generics.GenericAPIView):
    pass


class BaseListAPIView(IdempotentMixin, generics.ListAPIView):
    """GET answers a page of `get_queryset()` rendered by `serializer_class`.

    A list view, so the OpenAPI schema describes the page (`Paginated…List`, with the `cursor`
    and `page_size` parameters) rather than one item.
    """
