from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from analytics.services.reconcile import analytics_rollups_reconcile


class Command(BaseCommand):
    help = "Compare the analytics rollups with a recount from the rows, repair and report."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--video", type=int, action="append", dest="videos")
        parser.add_argument("--sample", type=int, help="check this many random videos")
        parser.add_argument("--dry-run", action="store_true", help="report, do not repair")

    def handle(self, *args: Any, **options: Any) -> None:
        report = analytics_rollups_reconcile(
            video_ids=options["videos"], sample=options["sample"], repair=not options["dry_run"]
        )
        self.stdout.write(
            f"checked {report.videos} videos: {report.differences} differences"
            + (", repaired" if report.repaired else "")
        )
