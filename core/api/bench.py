"""Bare authenticated endpoints that `make bench` compares the real ones against.

They go through the same server, middleware, authentication and renderer as every API view, and
do nothing else: the baseline for "how much do our writes and reads cost on top of DRF". Mounted
only when BENCH_ENDPOINTS is on (the benchmark's own server), never in production.
"""

from drf_spectacular.utils import extend_schema
from rest_framework import status
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
