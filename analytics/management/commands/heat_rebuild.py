from typing import Any

from django.core.management.base import BaseCommand

from analytics.services.heat import heat_rebuild


class Command(BaseCommand):
    help = "Recompute every video's heat from the like and comment rows (one set-based pass)."

    def handle(self, *args: Any, **options: Any) -> None:
        written = heat_rebuild()
        self.stdout.write(f"heat rewritten for {written} videos")
