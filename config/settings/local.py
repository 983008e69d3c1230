"""Settings for `make run` on a developer's machine: debug on, generous throttles."""

from .base import *  # noqa: F403
from .base import THROTTLE_RATES, env

DEBUG = env.bool("DJANGO_DEBUG", default=True)
# A test client must be able to register a hundred users and send bursts of a few dozen
# requests a second against `make run`.
THROTTLE_RATES.update(
    {
        "anon": env("THROTTLE_ANON", default="2000/min"),
        "user": env("THROTTLE_USER", default="6000/min"),
        "writes": env("THROTTLE_WRITES", default="3000/min"),
        "auth": env("THROTTLE_AUTH", default="600/min"),
    }
)
