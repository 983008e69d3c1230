from datetime import datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from analytics.services.rollups import analytics_rollups_rebuild


class Command(BaseCommand):
    help = "Recount the analytics rollups from the rows (all, or some videos from a time on)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--video", type=int, action="append", dest="videos")
        parser.add_argument("--since", type=datetime.fromisoformat, help="ISO 8601, with offset")

    def handle(self, *args: Any, **options: Any) -> None:
        buckets = analytics_rollups_rebuild(video_ids=options["videos"], since=options["since"])
        self.stdout.write(f"recounted {buckets} video buckets")
