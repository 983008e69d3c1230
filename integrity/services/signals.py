"""Signals that do not come from detection: user reports (SPEC §3 Reports, §5; docs/reports.md).

A report names a user, a video or a comment; its signal is about the account behind it (the
user, the video's creator, the comment's author). Reports whose reporter is that account (a
creator reporting their own video) are left out, as docs/reports.md asks. Turning reports into
signals is one INSERT … SELECT for any number of reports, and each report becomes at most one
signal (a unique key on the report). A signal confirms nothing by itself: detection groups it
into a case with its other evidence, or staff do, and staff actioning a report in the report
queue changes no case and no count.
"""

from collections.abc import Sequence

from django.db import connection, transaction

from engagement.models import Comment, Report, Video
from integrity.models import Signal, SignalKind

# One report is weak evidence on its own: a reviewer sees how many independent reporters there
# are by the signals' count, each at this score.
REPORT_SCORE = 1.0

_ACCOUNT_OF_TARGET = f"""
    CASE r.target_type
        WHEN '{Report.TargetType.USER}' THEN r.target_id
        WHEN '{Report.TargetType.VIDEO}' THEN (
            SELECT v.creator_id FROM {Video._meta.db_table} v WHERE v.id = r.target_id)
        WHEN '{Report.TargetType.COMMENT}' THEN (
            SELECT c.user_id FROM {Comment._meta.db_table} c WHERE c.id = r.target_id)
    END
"""


@transaction.atomic
def report_signals_record(*, report_ids: Sequence[int] | None = None) -> int:
    """Turn reports (these, or every report not yet a signal) into `report` signals without a
    case. Returns how many signals were written; a report already recorded is skipped."""
    only = "AND r.id = ANY(%(ids)s::bigint[])" if report_ids is not None else ""
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            INSERT INTO {Signal._meta.db_table}
                (case_id, kind, score, evidence, created_at, account_id, report_id)
            SELECT NULL, %(kind)s, %(score)s,
                   jsonb_build_object(
                       'report_id', r.id, 'reporter_id', r.reporter_id,
                       'target_type', r.target_type, 'target_id', r.target_id,
                       'account_id', a.account_id, 'reason', r.reason,
                       'reported_at', r.created_at, 'reporter_ip', r.ip,
                       'reporter_device', r.device_id, 'report_status', r.status),
                   now(), a.account_id, r.id
            FROM {Report._meta.db_table} r
            CROSS JOIN LATERAL (SELECT {_ACCOUNT_OF_TARGET} AS account_id) a
            WHERE a.account_id IS NOT NULL AND a.account_id <> r.reporter_id {only}
            ORDER BY r.id
            ON CONFLICT (report_id) DO NOTHING
            """,
            {
                "kind": SignalKind.REPORT.value,
                "score": REPORT_SCORE,
                "ids": list(report_ids or []),
            },
        )
        return cursor.rowcount
