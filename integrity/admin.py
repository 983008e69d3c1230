"""Staff review of integrity cases (SPEC §4, §5): the case list, a case's page (its accounts,
signals with their evidence as numbers, decisions, flips by kind), the confirm and dismiss
actions (each asks for a note on a confirmation page, then calls the service), and a user's
integrity history on the user's admin page.

The picture of a case's evidence comes later; this page shows its numbers.
"""

import json
from typing import Any, cast

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.db.models import Count, Exists, OuterRef, QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.http import urlencode
from django.utils.safestring import SafeString, mark_safe

from analytics.admin import CreatorCentreUserAdmin
from engagement.admin import AppendOnlyAdmin
from engagement.models import User
from integrity.models import Case, CaseAccount, CaseDecision, CaseFlip, Signal, SignalKind
from integrity.picture import case_dots, evidence_svg
from integrity.services.cases import DecisionResult, case_confirm, case_dismiss

NOTE_MAX_LENGTH = 2000
HISTORY_SHOWN = 10


def _case_link(case_id: int) -> SafeString:
    url = reverse("admin:integrity_case_change", args=[case_id])
    return format_html('<a href="{}">case {}</a>', url, case_id)


class SignalKindFilter(admin.SimpleListFilter):
    title = "signal kind"
    parameter_name = "signal"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(kind.value, kind.label) for kind in SignalKind]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Case]) -> QuerySet[Case]:
        if not self.value():
            return queryset
        # EXISTS rather than a join: a case with two signals of the kind is listed once.
        return queryset.filter(
            Exists(Signal.objects.filter(case=OuterRef("pk"), kind=self.value()))
        )


class SizeFilter(admin.SimpleListFilter):
    title = "size (accounts)"
    parameter_name = "size"
    RANGES = {"1": (1, 1), "2-9": (2, 9), "10-99": (10, 99), "100+": (100, None)}

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(key, f"{key} account{'' if key == '1' else 's'}") for key in self.RANGES]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Case]) -> QuerySet[Case]:
        if self.value() not in self.RANGES:
            return queryset
        low, high = self.RANGES[self.value()]  # type: ignore[index]
        queryset = queryset.filter(account_count__gte=low)
        return queryset if high is None else queryset.filter(account_count__lte=high)


class AccountFilter(admin.SimpleListFilter):
    """`?account=<user id>`: the cases a user is in (the link on the user's admin page). Its
    only choice is the user asked for, so the sidebar shows it only while it filters."""

    title = "account"
    parameter_name = "account"

    def _user_id(self, request: HttpRequest) -> str | None:
        value = request.GET.get(self.parameter_name, "")
        return value if value.isascii() and value.isdigit() and len(value) <= 18 else None

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        user_id = self._user_id(request)
        return [(user_id, f"user {user_id}")] if user_id else []

    def queryset(self, request: HttpRequest, queryset: QuerySet[Case]) -> QuerySet[Case]:
        value = self.value() or ""
        if not (value.isascii() and value.isdigit() and len(value) <= 18):
            return queryset
        return queryset.filter(
            Exists(CaseAccount.objects.filter(case=OuterRef("pk"), user_id=int(value)))
        )


class CaseAccountInline(admin.TabularInline):
    model = CaseAccount
    extra = 0
    fields = ("user", "span_start", "span_end")
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


def _evidence_rows(evidence: Any) -> SafeString:
    """Evidence JSON as a small table of keys and readable values (numbers with separators,
    lists as their items)."""
    if not isinstance(evidence, dict) or not evidence:
        return format_html("<code>{}</code>", json.dumps(evidence))

    def shown(value: Any) -> str:
        if isinstance(value, bool) or value is None:
            return json.dumps(value)
        if isinstance(value, int):
            return f"{value:,}"
        if isinstance(value, float):
            return f"{value:,.3f}"
        if isinstance(value, list):
            items = [shown(item) for item in value[:50]]
            more = f" … ({len(value):,} in all)" if len(value) > 50 else ""
            return ", ".join(items) + more
        if isinstance(value, dict):
            return "; ".join(f"{key}: {shown(item)}" for key, item in value.items())
        return str(value)

    rows = format_html_join(
        "", "<tr><th>{}</th><td>{}</td></tr>", ((key, shown(evidence[key])) for key in evidence)
    )
    return format_html("<table>{}</table>", rows)


class SignalInline(admin.TabularInline):
    model = Signal
    fk_name = "case"
    extra = 0
    fields = ("kind", "score", "account", "created_at", "evidence_shown")
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    @admin.display(description="evidence")
    def evidence_shown(self, signal: Signal) -> SafeString:
        return _evidence_rows(signal.evidence)


class CaseDecisionInline(admin.TabularInline):
    model = CaseDecision
    extra = 0
    fields = (
        "at",
        "action",
        "by",
        "auto",
        "note",
        "rows_flipped",
        "rows_handed_over",
        "grants_revoked",
        "grants_restored",
        "grants_granted",
    )
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


class DecisionNoteForm(forms.Form):
    note = forms.CharField(
        max_length=NOTE_MAX_LENGTH,
        widget=forms.Textarea(attrs={"rows": 4, "cols": 80}),
        help_text="Required: why. Kept in the case's decision log with your name and the time.",
    )


@admin.register(Case)
class CaseAdmin(admin.ModelAdmin):
    """The review queue. Confirm: the cases' accounts' interactions in their spans stop counting
    and everything they touched is recounted. Dismiss: they count again (except rows another
    confirmed case covers). Both ask for a note; both are logged."""

    list_display = (
        "id",
        "status",
        "score",
        "account_count",
        "interaction_count",
        "signal_kinds",
        "span_start",
        "span_end",
        "created_at",
        "decided_at",
        "decided_by",
        "auto_confirmed",
    )
    list_filter = (
        "status",
        SignalKindFilter,
        SizeFilter,
        "auto_confirmed",
        AccountFilter,
        "created_at",
    )
    list_select_related = ("decided_by",)
    search_fields = ("fingerprint", "note")
    ordering = ("-id",)
    actions = ["confirm_cases", "dismiss_cases"]
    fields = (
        "status",
        "score",
        "fingerprint",
        "reopens",
        "span_start",
        "span_end",
        "account_count",
        "interaction_count",
        "flips_held",
        "created_at",
        "decided_at",
        "decided_by",
        "auto_confirmed",
        "note",
        "evidence_picture",
    )
    readonly_fields = fields
    inlines = [CaseAccountInline, SignalInline, CaseDecisionInline]

    @admin.display(description="evidence")
    def evidence_picture(self, case: Case) -> SafeString | str:
        accounts, dots, left_out = case_dots(case)
        if not dots:
            return "No likes of the case's accounts in their spans."
        pictures = [
            evidence_svg(accounts, dots, key=key, start=case.span_start, end=case.span_end)
            for key in ("device", "network")
        ]
        more = f"<p>… and {left_out} more accounts</p>" if left_out else ""
        # the SVG is built from escaped text and numbers only (integrity.picture)
        return mark_safe("<div>" + "<br>".join(pictures) + more + "</div>")

    show_full_result_count = False

    def get_queryset(self, request: HttpRequest) -> QuerySet[Case]:
        return super().get_queryset(request).prefetch_related("signals")

    @admin.display(description="signals")
    def signal_kinds(self, case: Case) -> str:
        kinds = sorted({signal.kind for signal in case.signals.all()})
        return ", ".join(kinds) or "—"

    @admin.display(description="rows held (uncounted by this case)")
    def flips_held(self, case: Case) -> str:
        held = dict(
            CaseFlip.objects.filter(case=case, released_at__isnull=True)
            .values_list("kind")
            .annotate(count=Count("id"))
            .order_by()
        )
        released = CaseFlip.objects.filter(case=case, released_at__isnull=False).count()
        total = sum(held.values())
        parts = ", ".join(f"{kind} {count:,}" for kind, count in sorted(held.items()))
        text = f"{total:,}" + (f" ({parts})" if parts else "")
        return text + (f"; {released:,} released" if released else "")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # cases come from detection (integrity.services.cases.case_open)

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False  # decisions are reversible; nothing is deleted

    @admin.action(description="Confirm selected cases…", permissions=["change"])
    def confirm_cases(
        self, request: HttpRequest, queryset: QuerySet[Case]
    ) -> TemplateResponse | None:
        return self._decide(request, queryset, "confirm_cases")

    @admin.action(description="Dismiss selected cases…", permissions=["change"])
    def dismiss_cases(
        self, request: HttpRequest, queryset: QuerySet[Case]
    ) -> TemplateResponse | None:
        return self._decide(request, queryset, "dismiss_cases")

    def _decide(
        self, request: HttpRequest, queryset: QuerySet[Case], action: str
    ) -> TemplateResponse | None:
        confirming = action == "confirm_cases"
        # Cases the action would change: confirm open or dismissed ones, dismiss the others.
        target = Case.Status.CONFIRMED if confirming else Case.Status.DISMISSED
        to_change = queryset.exclude(status=target).order_by("pk")
        selected = list(queryset.values_list("pk", flat=True))
        if not to_change.exists():
            self.message_user(
                request,
                f"Every selected case is already {target}: nothing was changed.",
                messages.WARNING,
            )
            return None
        form = DecisionNoteForm(request.POST if "apply" in request.POST else None)
        if form.is_valid():
            staff = cast(User, request.user)
            note = form.cleaned_data["note"]
            results: list[DecisionResult] = [
                case_confirm(case_id, by=staff, note=note)
                if confirming
                else case_dismiss(case_id, by=staff, note=note)
                for case_id in to_change.values_list("pk", flat=True)
            ]
            changed = [result for result in results if result.changed]
            flipped = sum(result.rows_flipped for result in changed)
            verb = "Confirmed" if confirming else "Dismissed"
            self.message_user(
                request,
                f"{verb} {len(changed)} case{'' if len(changed) == 1 else 's'}: "
                f"{flipped:,} row{'' if flipped == 1 else 's'} flipped; grants revoked "
                f"{sum(len(r.grants_revoked) for r in changed)}, restored "
                f"{sum(len(r.grants_restored) for r in changed)}, granted "
                f"{sum(r.grants_granted for r in changed)}.",
                messages.SUCCESS,
            )
            return None
        context = {
            **self.admin_site.each_context(request),
            "title": "Confirm cases" if confirming else "Dismiss cases",
            "opts": self.model._meta,
            "action": action,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "selected": selected,
            "shown": to_change[:100],
            "change_count": to_change.count(),
            "skipped_count": len(selected) - to_change.count(),
            "target": target,
            "confirming": confirming,
            "form": form,
            "submit_label": "Confirm" if confirming else "Dismiss",
            "media": self.media,
        }
        return TemplateResponse(request, "admin/integrity/case/decision_confirmation.html", context)


@admin.register(Signal)
class SignalAdmin(admin.ModelAdmin):
    list_display = ("id", "kind", "score", "case", "account", "created_at")
    list_filter = ("kind", "created_at")
    search_fields = ("account__username",)
    raw_id_fields = ("case", "account", "report")
    fields = ("kind", "score", "case", "account", "report", "created_at", "evidence_shown")
    readonly_fields = fields
    ordering = ("-id",)
    show_full_result_count = False

    @admin.display(description="evidence")
    def evidence_shown(self, signal: Signal) -> SafeString:
        return _evidence_rows(signal.evidence)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(CaseDecision)
class CaseDecisionAdmin(AppendOnlyAdmin):
    list_display = (
        "id",
        "case",
        "action",
        "by",
        "auto",
        "at",
        "rows_flipped",
        "grants_revoked",
        "grants_restored",
    )
    list_filter = ("action", "auto", "at")
    raw_id_fields = ("case", "by")


@admin.register(CaseFlip)
class CaseFlipAdmin(AppendOnlyAdmin):
    list_display = ("id", "case", "kind", "row_id", "flipped_at", "released_at")
    list_filter = ("kind",)
    raw_id_fields = ("case",)
    search_fields = ("=row_id", "=case__id")


class IntegrityUserAdmin(CreatorCentreUserAdmin):
    """The user admin (engagement's, with analytics' creator centre), plus the user's integrity
    history: the cases they are in, newest first, and a link to all of them in the case list."""

    fieldsets = (
        *CreatorCentreUserAdmin.fieldsets,
        ("Integrity", {"fields": ("integrity_history",)}),
    )

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        return (*super().get_readonly_fields(request, obj), "integrity_history")

    @admin.display(description="Cases")
    def integrity_history(self, user: User) -> SafeString:
        memberships = list(
            CaseAccount.objects.filter(user=user)
            .select_related("case")
            .order_by("-case_id")[: HISTORY_SHOWN + 1]
        )
        if not memberships:
            return format_html("{}", "In no integrity case.")
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{} to {}</td><td>{}</td></tr>",
            (
                (
                    _case_link(member.case_id),
                    member.case.status,
                    member.span_start,
                    member.span_end,
                    member.case.decided_at or "—",
                )
                for member in memberships[:HISTORY_SHOWN]
            ),
        )
        url = reverse("admin:integrity_case_changelist") + "?" + urlencode({"account": user.pk})
        return format_html(
            "<table><tr><th>case</th><th>status</th><th>span</th><th>decided</th></tr>{}</table>"
            '<p><a href="{}">All cases of this user</a></p>',
            rows,
            url,
        )


admin.site.unregister(User)
admin.site.register(User, IntegrityUserAdmin)
