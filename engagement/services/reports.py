"""User reports of users, videos and comments, and their review by staff (docs/reports.md).

One open report per (reporter, target) is the partial unique index
`report_one_open_per_target`; filing is an INSERT … ON CONFLICT DO NOTHING against it, so
concurrent duplicates make exactly one row and every other request answers with that row.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from core.client import ClientInfo
from core.exceptions import InvalidInput, NotFound
from engagement.models import Comment, Report, ReportStatus, User, Video

# The conflict target names the partial index by its columns and predicate (PostgreSQL infers
# the index from them); the predicate's value comes from the model.
_REPORT_INSERT_IF_NONE_OPEN = f"""
    INSERT INTO {Report._meta.db_table}
        (reporter_id, target_type, target_id, reason, status, created_at, ip, device_id,
         review_note)
    VALUES (%(reporter)s, %(target_type)s, %(target_id)s, %(reason)s, %(open)s, %(now)s,
            %(ip)s, %(device_id)s, '')
    ON CONFLICT (reporter_id, target_type, target_id) WHERE status = '{Report.Status.OPEN}'
    DO NOTHING
    RETURNING id
"""

# How often filing retries when the open report it collided with was reviewed before it could
# be read (each retry needs a reviewer to close the report in that instant: one is plenty).
_FILE_ATTEMPTS = 3


@dataclass(frozen=True)
class ReportResult:
    report: Report
    created: bool


def _check_target(*, reporter: User, target_type: str, target_id: int) -> None:
    if target_type == Report.TargetType.USER:
        if target_id == reporter.pk:
            raise InvalidInput("You cannot report yourself.", code="cannot_report_self")
        # A deactivated account is gone for other users (as for follows): a 404.
        if not User.objects.filter(pk=target_id, is_active=True).exists():
            raise NotFound("No user with this id.", code="not_found")
    elif target_type == Report.TargetType.VIDEO:
        if not Video.objects.filter(pk=target_id).exists():
            raise NotFound("No video with this id.", code="not_found")
    elif target_type == Report.TargetType.COMMENT:
        # An uncounted comment (integrity) still exists: it can be reported.
        if not Comment.objects.filter(pk=target_id).exists():
            raise NotFound("No comment with this id.", code="not_found")
    else:
        raise InvalidInput(
            f"Invalid input: target_type: unknown target type {target_type!r}.",
            errors={"target_type": [f"Unknown target type {target_type!r}."]},
        )


@transaction.atomic
def report_file(
    *, reporter: User, target_type: str, target_id: int, reason: str, client: ClientInfo
) -> ReportResult:
    """Open a report, or answer with the reporter's open report on the same target (unchanged)."""
    _check_target(reporter=reporter, target_type=target_type, target_id=target_id)
    values: dict[str, Any] = {
        "reporter": reporter.pk,
        "target_type": target_type,
        "target_id": target_id,
        "reason": reason,
        "open": Report.Status.OPEN.value,
        "ip": client.ip,
        "device_id": client.device_id,
    }
    for _ in range(_FILE_ATTEMPTS):
        now = timezone.now()
        with connection.cursor() as cursor:
            cursor.execute(_REPORT_INSERT_IF_NONE_OPEN, {**values, "now": now})
            row = cursor.fetchone()
        if row is not None:
            report = Report(
                pk=row[0],
                reporter=reporter,
                target_type=target_type,
                target_id=target_id,
                reason=reason,
                status=Report.Status.OPEN,
                created_at=now,
                ip=client.ip,
                device_id=client.device_id,
            )
            return ReportResult(report=report, created=True)
        # The conflicting row has committed (PostgreSQL waited for it); this statement's
        # snapshot sees it, unless staff reviewed it in between: then file again.
        existing = Report.objects.filter(
            reporter=reporter,
            target_type=target_type,
            target_id=target_id,
            status=Report.Status.OPEN,
        ).first()
        if existing is not None:
            return ReportResult(report=existing, created=False)
    raise RuntimeError("report_file: the open report kept changing under the insert")


@dataclass(frozen=True)
class ReviewResult:
    reviewed: int
    """Open reports that this review closed."""
    skipped: int
    """Selected reports that were already reviewed (left as they were) or no longer exist."""


def _reports_review(
    *, report_ids: Iterable[int], staff: User, note: str, status: ReportStatus
) -> ReviewResult:
    ids = sorted(set(report_ids))
    note = note.strip()
    if not note:
        raise InvalidInput(
            "Invalid input: note: a review needs a note.",
            errors={"note": ["A review needs a note."]},
        )
    if len(note) > Report.REVIEW_NOTE_MAX_LENGTH:
        message = f"Ensure this field has no more than {Report.REVIEW_NOTE_MAX_LENGTH} characters."
        raise InvalidInput(f"Invalid input: note: {message}", errors={"note": [message]})
    # One UPDATE for the whole selection; the status condition makes a review final: a report
    # already actioned or dismissed (also by another reviewer a moment ago) is left untouched.
    reviewed = Report.objects.filter(pk__in=ids, status=Report.Status.OPEN).update(
        status=status, reviewed_at=timezone.now(), reviewed_by=staff, review_note=note
    )
    return ReviewResult(reviewed=reviewed, skipped=len(ids) - reviewed)


def reports_action(*, report_ids: Iterable[int], staff: User, note: str) -> ReviewResult:
    """Staff acted on these open reports (the note says what they did)."""
    return _reports_review(
        report_ids=report_ids, staff=staff, note=note, status=Report.Status.ACTIONED
    )


def reports_dismiss(*, report_ids: Iterable[int], staff: User, note: str) -> ReviewResult:
    """Staff found nothing to act on in these open reports."""
    return _reports_review(
        report_ids=report_ids, staff=staff, note=note, status=Report.Status.DISMISSED
    )


def report_action(*, report_id: int, staff: User, note: str) -> bool:
    """Action one report; False when it was not open (already reviewed, or unknown)."""
    return reports_action(report_ids=[report_id], staff=staff, note=note).reviewed == 1


def report_dismiss(*, report_id: int, staff: User, note: str) -> bool:
    """Dismiss one report; False when it was not open (already reviewed, or unknown)."""
    return reports_dismiss(report_ids=[report_id], staff=staff, note=note).reviewed == 1
