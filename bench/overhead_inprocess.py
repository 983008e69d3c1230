"""Where an authenticated request's time goes, in process (docs/benchmarks.md, "What a request
costs"): Django's test client through the whole middleware stack, a real database and Redis.

    BENCH_ENDPOINTS=1 DJANGO_DEBUG=0 THROTTLE_USER=100000000/min THROTTLE_WRITES=100000000/min \\
    .venv/bin/python -m bench.overhead_inprocess [--profile NAME]

Makes its own user, device token and poll sticker in the configured database. Prints the median
CPU ms per request of 5 interleaved rounds of 1,000 requests each: /healthz, the open GET (no
authentication), the bare authenticated GET without and with the throttle, the tutorial vote,
the full vote and the sticker's results; with --profile, the functions that took the most CPU
in that one's requests (cProfile with a CPU clock, cumulative).
"""

import argparse
import cProfile
import os
import pstats
import time
import uuid
from collections.abc import Callable

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
django.setup()

from django.conf import settings  # noqa: E402
from django.test import Client  # noqa: E402

from bench.cpu import inprocess_cpu_ms  # noqa: E402
from core.api.bench import BareView  # noqa: E402
from core.throttling import RequestThrottle  # noqa: E402
from engagement.models import DeviceToken, User  # noqa: E402
from polls.services.tallies import sticker_tally_refresh  # noqa: E402

ROUNDS, REQUESTS = 5, 1_000


def _world() -> tuple[Client, Client, int, list[int]]:
    from bench.fixtures import creator_video, poll_stickers_create

    creator, video_id = creator_video(f"bench-overhead-{uuid.uuid4().hex[:8]}")
    sticker = poll_stickers_create(creator, video_id, 1)[0]
    sticker_tally_refresh(sticker_id=sticker.id)
    voter = User.objects.create_user(f"bench-overhead-voter-{uuid.uuid4().hex[:8]}")
    _, token = DeviceToken.objects.create(voter)
    authed = Client(
        HTTP_AUTHORIZATION=f"Bearer {token}", HTTP_X_DEVICE_ID=f"bench-device-{voter.pk}"
    )
    return authed, Client(), sticker.id, sticker.option_ids


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--profile", default=None, help="one of the names printed")
    args = parser.parse_args()
    if not settings.BENCH_ENDPOINTS:
        raise SystemExit("set BENCH_ENDPOINTS=1: the baselines are mounted only then")
    authed, anonymous, sticker_id, options = _world()
    flip = [0]

    def vote() -> None:
        flip[0] += 1
        authed.post(
            f"/api/v1/stickers/{sticker_id}/votes",
            {"option_ids": [options[flip[0] % 2]]},
            content_type="application/json",
            HTTP_IDEMPOTENCY_KEY=uuid.uuid4().hex,
        )

    def throttled_bare() -> None:
        BareView.throttle_classes = [RequestThrottle]
        try:
            authed.get("/api/v1/_bench/bare")
        finally:
            BareView.throttle_classes = []

    cases: dict[str, Callable[[], object]] = {
        "healthz": lambda: anonymous.get("/healthz"),
        "open GET": lambda: anonymous.get("/api/v1/_bench/open"),
        "bare GET": lambda: authed.get("/api/v1/_bench/bare"),
        "bare GET + throttle": throttled_bare,
        "tutorial vote": lambda: anonymous.post(
            f"/api/v1/_bench/tutorial/{sticker_id}/vote", {"choice": options[0]}
        ),
        "full vote": vote,
        "results GET": lambda: authed.get(f"/api/v1/stickers/{sticker_id}/results"),
    }
    if args.profile:
        run = cases[args.profile]
        run()
        profile = cProfile.Profile(time.process_time)  # CPU, not waits
        profile.enable()
        for _ in range(REQUESTS):
            run()
        profile.disable()
        order = os.environ.get("PROFILE_SORT", "cumulative")  # or tottime
        pstats.Stats(profile).sort_stats(order).print_stats(45)
        return
    for name, ms in inprocess_cpu_ms(cases, ROUNDS, REQUESTS).items():
        print(f"{name:22} median {ms:.3f} ms CPU per request")


if __name__ == "__main__":
    main()
