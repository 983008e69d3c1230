"""Load demo data: each installed app may provide `<app>/demo.py` with `seed(log)`.

Apps are seeded in INSTALLED_APPS order (lower layers first). Every seed is idempotent: running
the command twice leaves the same data.
"""

from importlib import import_module
from typing import Any

from django.apps import apps
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Create demo creators, videos and interactions (idempotent)."

    def handle(self, *args: Any, **options: Any) -> None:
        for config in apps.get_app_configs():
            try:
                module = import_module(f"{config.name}.demo")
            except ModuleNotFoundError as error:
                if error.name != f"{config.name}.demo":
                    raise
                continue
            module.seed(self.stdout.write)
        self.stdout.write(self.style.SUCCESS("Demo data ready."))
