"""Bare endpoints that `make bench` compares the real ones against.

They go through the same server, middleware and renderer as every API view and do nothing else:
the baselines for "how much do our writes and reads cost on top of DRF" (`BareView`, with the
API's authentication) and for "how much does authentication cost" (`OpenView`, without it).
Mounted only when BENCH_ENDPOINTS is on (the benchmark's own server), never in production.
"""

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView


@extend_schema(exclude=True)
class BareView(APIView):
    throttle_classes: list = []

    def get(self, request: Request) -> Response:
        return Response({"ok": True, "user": request.user.pk})

    def post(self, request: Request) -> Response:
        return Response({"ok": True, "user": request.user.pk}, status=status.HTTP_201_CREATED)


@extend_schema(exclude=True)
class OpenView(APIView):
    """The bare GET without authentication, permission or throttle: DRF's own cost."""

    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes: list = []

    def get(self, request: Request) -> Response:
        return Response({"ok": True, "user": None})
