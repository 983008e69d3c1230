"""Locks taken by integrity's case work, each named for what it locks (after Saleor's
`lock_objects.py`): transaction-scoped advisory locks and the case row.

Decisions are serialised among themselves (one advisory lock): each flips rows and reassesses
grants over sets that another decision may overlap. Opening a case is serialised per finding, so
two passes meeting the same finding at once open one case.
"""

from django.db import connection

from integrity.models import Case

DECISIONS_LOCK = "integrity-decisions"


def _advisory_xact_lock(name: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [name])


def finding_lock(fingerprint: str) -> None:
    """Until commit: the only transaction opening a case for this finding."""
    _advisory_xact_lock(f"integrity-case:{fingerprint}")


def case_for_decision(case: Case | int) -> Case:
    """Until commit: the only decision under way (DECISIONS_LOCK), on this case, locked FOR
    UPDATE and read afresh."""
    _advisory_xact_lock(DECISIONS_LOCK)
    case_id = case.pk if isinstance(case, Case) else case
    return Case.objects.select_for_update().get(pk=case_id)
