"""The URLs with the benchmark's endpoints mounted (as BENCH_ENDPOINTS mounts them)."""

from config.urls import bench_urlpatterns, handler400, handler403, handler404, handler500
from config.urls import urlpatterns as base

urlpatterns = [*base, *bench_urlpatterns()]

__all__ = ["handler400", "handler403", "handler404", "handler500", "urlpatterns"]
