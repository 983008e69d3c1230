from django.conf import settings
from django.contrib import admin
from django.urls import URLPattern, URLResolver, include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from core.api import views as core_views
from core.metrics import views as metrics_views

# Django tries the patterns in order, so the hottest come first: a vote or a results read is
# matched after the polls app's few patterns, not after every other app's (docs/benchmarks.md).
api_v1 = [
    path("", include("polls.api.urls")),
    path("", include("engagement.api.urls")),
    path("", include("rewards.api.urls")),
    path("", include("analytics.api.discovery_urls")),
    path("", include("analytics.api.urls")),
]

urlpatterns: list[URLPattern | URLResolver] = [
    path("admin/", admin.site.urls),
    path("api/v1/", include(api_v1)),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("healthz", core_views.HealthView.as_view(), name="healthz"),
    path("readyz", core_views.ReadyView.as_view(), name="readyz"),
    # The same checks under the API's base path, for clients configured with only that.
    path("api/v1/healthz", core_views.HealthView.as_view(schema=None)),
    path("api/v1/readyz", core_views.ReadyView.as_view(schema=None)),
    # Prometheus; loopback and staff only, a 404 for everyone else (docs/observability.md).
    path("metrics", metrics_views.metrics, name="metrics"),
]


def bench_urlpatterns() -> list[URLPattern]:
    """The benchmark's baselines (core/api/bench.py, polls/api/bench.py)."""
    from core.api.bench import BareView, OpenView
    from polls.api.bench import tutorial_vote

    return [
        path("api/v1/_bench/bare", BareView.as_view()),
        path("api/v1/_bench/open", OpenView.as_view()),
        path("api/v1/_bench/tutorial/<int:sticker_id>/vote", tutorial_vote),
    ]


if settings.BENCH_ENDPOINTS:
    urlpatterns += bench_urlpatterns()

handler400 = "core.api.views.bad_request"
handler403 = "core.api.views.permission_denied"
handler404 = "core.api.views.page_not_found"
handler500 = "core.api.views.server_error"
