"""In-process CPU of GET videos/hot against the bare GET, and of its two extra round trips
(docs/benchmarks.md, issue 9's hot figure): Django's test client, a real database and Redis.

    DATABASE_URL=postgres://…/a-loaded-bench-db BENCH_ENDPOINTS=1 DJANGO_DEBUG=0 \\
    THROTTLE_USER=100000000/min .venv/bin/python -m bench.hot_inprocess

The database needs a bench world (`bench.analytics_phases.world_create` + `world_load`) and a
heat rebuild. Prints the median CPU ms per request of 5 interleaved rounds of 1,500 requests:
bare GET, bare GET behind the hot throttle, hot GET without the viewer's likes query, hot GET.
"""

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
django.setup()

from django.test import Client  # noqa: E402

from analytics.api import discovery  # noqa: E402
from bench.cpu import inprocess_cpu_ms  # noqa: E402
from core.api.bench import BareView  # noqa: E402
from engagement.models import DeviceToken, User  # noqa: E402

ROUNDS, REQUESTS = 5, 1_500
BARE, HOT = "/api/v1/_bench/bare", "/api/v1/videos/hot"


def main() -> None:
    user = User.objects.filter(username__startswith="bench-ar").first()
    if user is None:
        raise SystemExit("no bench reader in this database (load a bench world first)")
    _, token = DeviceToken.objects.create(user)
    client = Client(HTTP_AUTHORIZATION=f"Bearer {token}")
    liked_by = discovery.engagement_selectors.videos_liked_by

    def hot_without_likes_query() -> None:
        discovery.engagement_selectors.videos_liked_by = lambda **kwargs: set()  # type: ignore[assignment]
        try:
            client.get(HOT)
        finally:
            discovery.engagement_selectors.videos_liked_by = liked_by  # type: ignore[assignment]

    def bare_behind_hot_throttle() -> None:
        BareView.throttle_classes = [discovery.HotThrottle]
        try:
            client.get(BARE)
        finally:
            BareView.throttle_classes = []

    cases = {
        "bare GET": lambda: client.get(BARE),
        "hot GET": lambda: client.get(HOT),
        "hot GET without the likes query": hot_without_likes_query,
        "bare GET + hot throttle": bare_behind_hot_throttle,
    }
    for name, ms in inprocess_cpu_ms(cases, ROUNDS, REQUESTS).items():
        print(f"{name}: median {ms:.3f} ms CPU per request")


if __name__ == "__main__":
    main()
