"""`python manage.py integrity_evaluate EVENTS.csv --out FLAGGED.csv` (SPEC §5 "Evaluation").

See integrity.evaluation for the phases and docs/integrity-bench.md for the file formats.
"""

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from integrity.evaluation import (
    EngineUnavailable,
    EvaluationError,
    MalformedEvents,
    ScratchError,
    evaluate,
)


class Command(BaseCommand):
    help = (
        "Load like events (CSV: user_id,video_id,creator_id,ts,device_id,ip) into a scratch "
        "database, run detection on them and write the accounts it flags "
        "(CSV: user_id,score,signals). Progress goes to standard error."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("events", type=Path, help="the events CSV")
        parser.add_argument("--out", type=Path, help="where to write the flagged accounts")
        parser.add_argument(
            "--load-only",
            action="store_true",
            help="check, load and read the events back, then stop (no detection, no --out)",
        )
        parser.add_argument(
            "--report-json", type=Path, help="also write the phases' seconds and counts here"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        events_path: Path = options["events"]
        out_path: Path | None = options["out"]
        if out_path is None and not options["load_only"]:
            raise CommandError("--out FLAGGED.csv is required (or --load-only)")
        try:
            report = evaluate(
                events_path=events_path,
                out_path=out_path,
                stderr=self.stderr,
                load_only=options["load_only"],
            )
        except MalformedEvents as error:
            raise CommandError(f"{events_path}: {error}; refused, nothing was loaded") from None
        except (EngineUnavailable, EvaluationError, ScratchError) as error:
            raise CommandError(str(error)) from None
        except KeyboardInterrupt:
            raise CommandError(
                "interrupted; the scratch database was dropped", returncode=130
            ) from None
        if options["report_json"]:
            options["report_json"].write_text(json.dumps(report, indent=2) + "\n")
