"""gunicorn settings: `gunicorn -c python:config.gunicorn config.wsgi:application …`.

gunicorn's own lines ("Booting worker", worker timeouts and crashes) and its access log, when
one is asked for, go through Django's LOGGING: the same format (JSON lines in production) and
the same fields. The access line is written before the response is closed, so it carries the
request's id. Command-line flags still override anything set here.
"""

import os
from typing import Any

from django.conf import settings
from gunicorn import glogging

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

# No handlers of their own: they propagate to the root logger's handler. No level either, so
# --log-level still sets gunicorn.error's.
_GUNICORN_LOGGERS = {
    "gunicorn.error": {"handlers": [], "propagate": True},
    "gunicorn.access": {"handlers": [], "propagate": True},
}
logconfig_dict = {
    **settings.LOGGING,
    "loggers": {**settings.LOGGING["loggers"], **_GUNICORN_LOGGERS},
}


class Logger(glogging.Logger):
    """gunicorn's logger, with an access log only when one is asked for (--access-logfile).

    A logging configuration alone turns gunicorn's access log on, and building an access line
    costs every request some microseconds; the API's hot paths are measured without it.
    """

    def access(self, resp: Any, req: Any, environ: Any, request_time: Any) -> None:
        if self.cfg.accesslog is not None:
            super().access(resp, req, environ, request_time)


logger_class = "config.gunicorn.Logger"
