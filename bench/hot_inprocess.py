"""In-process CPU of GET videos/hot against the bare GET, and of its two extra round trips
(docs/benchmarks.md, issue 9's hot figure): Django's test client, a real database and Redis.

    DATABASE_URL=postgres://…/a-loaded-bench-db BENCH_ENDPOINTS=1 DJANGO_DEBUG=0 \\
    THROTTLE_USER=100000000/min .venv/bin/python -m bench.hot_inprocess

The database needs a bench world (`bench.analytics_phases.world_create` + `world_load`) and a
heat rebuild. Prints the median CPU ms per request of 5 interleaved rounds of 1,500 requests:
bare GET, bare GET behind the hot throttle, hot GET without the viewer's likes query, hot GET.
"""

import os
import statistics
import time
from collections import defaultdict

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
django.setup()

from django.test import Client  # noqa: E402

from analytics.api import discovery  # noqa: E402
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
    cpu: dict[str, list[float]] = defaultdict(list)

    def rounds(name: str, path: str) -> None:
        client.get(path)
        started = time.process_time()
        for _ in range(REQUESTS):
            client.get(path)
        cpu[name].append((time.process_time() - started) / REQUESTS * 1000)

    for _ in range(ROUNDS):
        rounds("bare GET", BARE)
        rounds("hot GET", HOT)
        discovery.engagement_selectors.videos_liked_by = lambda **kwargs: set()  # type: ignore[assignment]
        rounds("hot GET without the likes query", HOT)
        discovery.engagement_selectors.videos_liked_by = liked_by  # type: ignore[assignment]
        BareView.throttle_classes = [discovery.HotThrottle]
        rounds("bare GET + hot throttle", BARE)
        BareView.throttle_classes = []
    for name, values in cpu.items():
        print(f"{name}: median {statistics.median(values):.3f} ms CPU per request")


if __name__ == "__main__":
    main()
