"""Integrity: signals with their evidence, cases that group one finding, and the decisions on
them (SPEC §5, docs/integrity.md).

A case's decision flips `counted` on interaction, vote and answer rows through the lower apps'
services (engagement.services.counted, polls.services.counted); nothing here is deleted. The
rows a confirmation flipped are kept as `CaseFlip`, so a dismissal flips back exactly those.
"""

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils import timezone

from engagement.models import Report


class CaseStatus(models.TextChoices):
    OPEN = "open"
    CONFIRMED = "confirmed"
    DISMISSED = "dismissed"


class SignalKind(models.TextChoices):
    """The signals of SPEC §5."""

    VELOCITY = "velocity", "Abnormal velocity"
    LOCKSTEP = "lockstep", "Lockstep group"
    FRESH_BURST = "fresh_burst", "Burst from fresh accounts"
    DEVICE_CLUSTER = "device_cluster", "Device cluster"
    NETWORK_CLUSTER = "network_cluster", "Network cluster"
    THIN_HISTORY = "thin_history", "Accounts that exist for the group"
    SPOOFED_DEVICES = "spoofed_devices", "Devices no other like used"
    SPOOFED_ADDRESSES = "spoofed_addresses", "Addresses no other like used"
    PINNED_CONTEXT = "pinned_context", "One device and one address of their own for every like"
    REPORT = "report", "User report"


class RowKind(models.TextChoices):
    """The tables a decision flips: engagement's six interaction kinds, votes and answers."""

    LIKE = "like"
    COMMENT_LIKE = "comment_like"
    COMMENT = "comment"
    SHARE = "share"
    PLAY = "play"
    FOLLOW = "follow"
    VOTE = "vote"
    ANSWER = "answer"


class Case(models.Model):
    """One finding: accounts (each with the span it covers), the signals behind it, a score.

    `fingerprint` names the finding independently of the pass that found it, so a later pass
    finding it again meets the earlier case: a dismissed case is not reopened without new
    evidence (integrity.services.cases.case_open). `account_count` and `interaction_count` are
    written when the case opens, for the list columns (the interactions its accounts made in
    their spans, counted or not at that moment).
    """

    Status = CaseStatus

    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN)
    created_at = models.DateTimeField(default=timezone.now)
    decided_at = models.DateTimeField(null=True, blank=True)
    # Staff who made the latest decision; null for an automatic one.
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="integrity_cases_decided",
    )
    auto_confirmed = models.BooleanField(default=False)
    note = models.TextField(blank=True)
    score = models.FloatField(default=0.0)
    span_start = models.DateTimeField()
    span_end = models.DateTimeField()
    fingerprint = models.CharField(max_length=128)
    # The dismissed case this one reopens with new evidence, if any.
    reopens = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="reopened_by"
    )
    account_count = models.PositiveIntegerField(default=0)
    interaction_count = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=CaseStatus.values), name="case_status_valid"
            ),
            models.CheckConstraint(
                condition=Q(span_end__gt=F("span_start")), name="case_span_not_empty"
            ),
            models.CheckConstraint(
                condition=(Q(status=CaseStatus.OPEN) & Q(decided_at__isnull=True))
                | (~Q(status=CaseStatus.OPEN) & Q(decided_at__isnull=False)),
                name="case_decided_iff_not_open",
            ),
            models.CheckConstraint(condition=~Q(fingerprint=""), name="case_fingerprint_set"),
        ]
        indexes = [
            # The review queue: open cases, newest first.
            models.Index(fields=["status", "-created_at"], name="case_status_time_idx"),
            # case_open: the earlier cases of the same finding.
            models.Index(fields=["fingerprint", "status"], name="case_fingerprint_idx"),
        ]

    def __str__(self) -> str:
        return (
            f"case {self.pk} ({self.status}): {self.account_count} account"
            f"{'' if self.account_count == 1 else 's'}, score {self.score:.2f}"
        )


class CaseAccount(models.Model):
    """An account of a case and the span of its activity the case covers.

    Only the account's rows made inside [span_start, span_end) stop counting: a hijacked account
    keeps its owner's own activity outside the span.
    """

    # (both keys lead an index below: no single-column index of their own)
    case = models.ForeignKey(
        Case, on_delete=models.CASCADE, related_name="accounts", db_index=False
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="integrity_cases",
        db_index=False,
    )
    span_start = models.DateTimeField()
    span_end = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["case", "user"], name="caseaccount_unique"),
            models.CheckConstraint(
                condition=Q(span_end__gt=F("span_start")), name="caseaccount_span_not_empty"
            ),
        ]
        # A user's integrity history; "which confirmed cases cover this row" (dismissal).
        indexes = [models.Index(fields=["user", "case"], name="caseaccount_user_idx")]

    def __str__(self) -> str:
        return f"{self.user} in case {self.case_id}"


class Signal(models.Model):
    """One piece of evidence with its score; `evidence` holds what the review needs (accounts,
    videos, times, devices, networks, as JSON). A signal may exist before any case groups it
    (a report waits for detection), so `case` is nullable."""

    Kind = SignalKind

    case = models.ForeignKey(
        Case, null=True, blank=True, on_delete=models.PROTECT, related_name="signals"
    )
    kind = models.CharField(max_length=24, choices=Kind.choices)
    score = models.FloatField(default=0.0)
    evidence = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    # The account the signal is about, where there is one (a report's account).
    account = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="integrity_signals",
        db_index=False,  # signal_account_idx leads with it
    )
    # A report signal's report: each report becomes at most one signal.
    report = models.OneToOneField(
        Report, null=True, blank=True, on_delete=models.PROTECT, related_name="integrity_signal"
    )

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(kind__in=SignalKind.values), name="signal_kind_valid"
            ),
            models.CheckConstraint(
                condition=Q(report__isnull=True) | Q(kind=SignalKind.REPORT),
                name="signal_report_only_for_reports",
            ),
        ]
        indexes = [
            models.Index(fields=["kind", "-created_at"], name="signal_kind_time_idx"),
            models.Index(fields=["account", "-created_at"], name="signal_account_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} signal {self.pk} (score {self.score:.2f})"


class CaseFlip(models.Model):
    """A row this case flipped to uncounted and still holds (`released_at` null).

    A dismissal releases them: it flips them back, except rows that another confirmed case
    covers, which are handed to that case (a CaseFlip row of it) and stay uncounted.
    """

    Kind = RowKind

    case = models.ForeignKey(
        Case, on_delete=models.CASCADE, related_name="flips", db_index=False
    )  # caseflip_unique leads with it
    kind = models.CharField(max_length=16, choices=Kind.choices)
    row_id = models.BigIntegerField()
    flipped_at = models.DateTimeField()
    released_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["case", "kind", "row_id"], name="caseflip_unique"),
            models.CheckConstraint(
                condition=Q(kind__in=RowKind.values), name="caseflip_kind_valid"
            ),
        ]
        # "Which cases flipped this row" (the admin, a reviewer's question).
        indexes = [models.Index(fields=["kind", "row_id"], name="caseflip_row_idx")]

    def __str__(self) -> str:
        return f"case {self.case_id}: {self.kind} {self.row_id}"


class CaseDecision(models.Model):
    """The decision log: every confirmation and dismissal, by whom (null: automatic), why, and
    what it changed."""

    class Action(models.TextChoices):
        CONFIRM = "confirm"
        DISMISS = "dismiss"

    case = models.ForeignKey(
        Case, on_delete=models.CASCADE, related_name="decisions", db_index=False
    )  # casedecision_case_idx leads with it
    action = models.CharField(max_length=16, choices=Action.choices)
    by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="integrity_decisions",
    )
    note = models.TextField(blank=True)
    at = models.DateTimeField(default=timezone.now)
    auto = models.BooleanField(default=False)
    # Rows whose `counted` flag this decision changed; rows handed to another confirmed case.
    rows_flipped = models.BigIntegerField(default=0)
    rows_handed_over = models.BigIntegerField(default=0)
    grants_revoked = models.PositiveIntegerField(default=0)
    grants_restored = models.PositiveIntegerField(default=0)
    grants_granted = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(action__in=["confirm", "dismiss"]), name="casedecision_action_valid"
            ),
            # An automatic decision has no staff member.
            models.CheckConstraint(
                condition=Q(auto=False) | Q(by__isnull=True), name="casedecision_auto_has_no_staff"
            ),
        ]
        indexes = [models.Index(fields=["case", "at"], name="casedecision_case_idx")]

    def __str__(self) -> str:
        who = "automatic" if self.auto else str(self.by or "staff")
        return f"{self.action} case {self.case_id} ({who})"
