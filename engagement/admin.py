"""Staff views of users, videos and interactions.

The interaction tables grow to millions of rows: their change lists never run a full-table
COUNT (show_full_result_count off, and an estimated count for the paginator), filters are on
indexed or low-cardinality columns, and foreign keys use autocomplete or raw ids.
"""

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.core.paginator import Paginator
from django.db import connection
from django.db.models import Count, QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.functional import cached_property
from django.utils.html import format_html, format_html_join
from django.utils.http import urlencode
from django.utils.safestring import SafeString

from engagement.models import (
    Comment,
    CommentLike,
    CountedFlip,
    DeviceToken,
    Follow,
    Hashtag,
    Like,
    Play,
    Removal,
    Report,
    Share,
    User,
    Video,
    VideoCounter,
)
from engagement.services.counters import video_counters_recount, video_counts
from engagement.services.interactions import comment_likes_recount
from engagement.services.reports import ReviewResult, reports_action, reports_dismiss


class EstimatedCountPaginator(Paginator):
    """Uses the planner's row estimate for unfiltered lists of big tables."""

    @cached_property
    def count(self) -> int:  # type: ignore[override]
        query = getattr(self.object_list, "query", None)
        if query is None:
            return super().count
        if query.where:
            return super().count
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT reltuples::bigint FROM pg_class WHERE relname = %s",
                [self.object_list.model._meta.db_table],  # type: ignore[attr-defined]
            )
            row = cursor.fetchone()
        estimate = int(row[0]) if row and row[0] and row[0] > 0 else 0
        return estimate if estimate > 10_000 else super().count


class BigTableAdmin(admin.ModelAdmin):
    # No date_hierarchy: it runs MIN/MAX and SELECT DISTINCT date_trunc over the whole table on
    # every page load. The created_at list filter offers the same ranges without any query.
    paginator = EstimatedCountPaginator
    show_full_result_count = False
    list_per_page = 50


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    list_display = ("id", "username", "display_name", "is_staff", "is_active", "date_joined")
    list_filter = ("is_staff", "is_active", "is_superuser")
    search_fields = ("username", "display_name", "email")
    ordering = ("-id",)
    fieldsets = (
        *DjangoUserAdmin.fieldsets,  # type: ignore[misc]
        ("Profile", {"fields": ("display_name",)}),
        ("Reports", {"fields": ("reports_filed", "reports_against")}),
    )
    readonly_fields = ("reports_filed", "reports_against")

    @admin.display(description="Reports filed")
    def reports_filed(self, user: User) -> SafeString:
        return _reports_summary(
            Report.objects.filter(reporter=user), {"reporter__id__exact": user.pk}
        )

    @admin.display(description="Reports against this user")
    def reports_against(self, user: User) -> SafeString:
        reports = Report.objects.filter(target_type=Report.TargetType.USER, target_id=user.pk)
        return _reports_summary(
            reports, {"target_type__exact": Report.TargetType.USER.value, "target_id": user.pk}
        )


@admin.register(DeviceToken)
class DeviceTokenAdmin(admin.ModelAdmin):
    list_display = ("token_key", "user", "device_id", "created", "expiry")
    search_fields = ("user__username", "device_id", "token_key")
    autocomplete_fields = ("user",)
    readonly_fields = ("digest", "token_key", "created")
    list_filter = ("created",)


@admin.register(Hashtag)
class HashtagAdmin(admin.ModelAdmin):
    list_display = ("id", "name", "created_at")
    search_fields = ("name",)


class VideoHashtagInline(admin.TabularInline):
    model = Video.hashtags.through
    autocomplete_fields = ("hashtag",)
    extra = 0


@admin.register(Video)
class VideoAdmin(admin.ModelAdmin):
    list_display = ("id", "title", "creator", "duration_ms", "created_at")
    list_filter = ("created_at",)
    search_fields = ("title", "caption", "creator__username")
    autocomplete_fields = ("creator",)
    readonly_fields = ("created_at", "counts")
    inlines = [VideoHashtagInline]
    show_full_result_count = False
    actions = ["recount_counters"]

    @admin.display(description="Counted likes / comments / shares / plays")
    def counts(self, video: Video) -> str:
        counts = video_counts([video.pk])[video.pk]
        return " / ".join(str(counts[name]) for name in ("likes", "comments", "shares", "plays"))

    @admin.action(description="Recount counters from the interaction rows")
    def recount_counters(self, request: HttpRequest, queryset: QuerySet[Video]) -> None:
        for video_id in queryset.values_list("pk", flat=True):
            video_counters_recount(video_id=video_id)
        self.message_user(request, "Counters rebuilt.", messages.SUCCESS)


@admin.register(VideoCounter)
class VideoCounterAdmin(admin.ModelAdmin):
    list_display = ("video", "shard", "likes", "comments", "shares", "plays")
    raw_id_fields = ("video",)
    search_fields = ("video__title",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


# `counted` changes only through engagement.services.counted (integrity decisions): that recounts
# what the rows touch and leaves the flip record consumers read. Edited here it would do neither.
INTERACTION_READONLY = ("created_at", "ip", "device_id", "counted")


@admin.register(Like)
class LikeAdmin(BigTableAdmin):
    list_display = ("id", "user", "video", "counted", "created_at", "ip", "device_id")
    list_filter = ("counted", "created_at")
    search_fields = ("user__username", "device_id")
    autocomplete_fields = ("user", "video")
    readonly_fields = INTERACTION_READONLY


@admin.register(Comment)
class CommentAdmin(BigTableAdmin):
    list_display = ("id", "user", "video", "short_text", "like_count", "counted", "created_at")
    list_filter = ("counted", "created_at")
    search_fields = ("user__username", "text")
    autocomplete_fields = ("user", "video")
    readonly_fields = (*INTERACTION_READONLY, "like_count")
    actions = ["recount_likes"]

    @admin.display(description="text")
    def short_text(self, comment: Comment) -> str:
        return comment.text[:80]

    @admin.action(description="Recount likes from the rows")
    def recount_likes(self, request: HttpRequest, queryset: QuerySet[Comment]) -> None:
        for comment_id in queryset.values_list("pk", flat=True):
            comment_likes_recount(comment_id=comment_id)
        self.message_user(request, "Comment likes recounted.", messages.SUCCESS)


@admin.register(CommentLike)
class CommentLikeAdmin(BigTableAdmin):
    list_display = ("id", "user", "comment", "counted", "created_at", "ip", "device_id")
    list_filter = ("counted", "created_at")
    search_fields = ("user__username", "device_id")
    autocomplete_fields = ("user",)
    raw_id_fields = ("comment",)
    readonly_fields = INTERACTION_READONLY


@admin.register(Share)
class ShareAdmin(BigTableAdmin):
    list_display = ("id", "user", "video", "channel", "counted", "created_at")
    list_filter = ("counted", "created_at")
    search_fields = ("user__username", "device_id")
    autocomplete_fields = ("user", "video")
    readonly_fields = INTERACTION_READONLY


@admin.register(Play)
class PlayAdmin(BigTableAdmin):
    list_display = ("id", "user", "video", "watched_ms", "completed", "counted", "created_at")
    list_filter = ("counted", "completed", "created_at")
    search_fields = ("user__username", "device_id")
    autocomplete_fields = ("user", "video")
    readonly_fields = INTERACTION_READONLY


@admin.register(Follow)
class FollowAdmin(BigTableAdmin):
    list_display = ("id", "user", "creator", "source_video", "counted", "created_at")
    list_filter = ("counted", "created_at")
    search_fields = ("user__username", "creator__username")
    autocomplete_fields = ("user", "creator", "source_video")
    readonly_fields = INTERACTION_READONLY


# --- reports -----------------------------------------------------------------------------------
USER_PAGE_REPORTS = 10


def _report_target_link(report: Report) -> SafeString:
    url = reverse(f"admin:engagement_{report.target_type}_change", args=[report.target_id])
    return format_html('<a href="{}">{} {}</a>', url, report.target_type, report.target_id)


def _reports_summary(
    reports: QuerySet[Report], changelist_filter: dict[str, str | int]
) -> SafeString:
    """Counts by status, the latest few, and a link to all of them in the report list.

    One user's reports are few (at most one open per target), and both reads use an index.
    """
    by_status = dict(reports.values_list("status").annotate(count=Count("id")).order_by())
    if not by_status:
        return format_html("{}", "None.")
    latest = reports.select_related("reporter").order_by("-id")[:USER_PAGE_REPORTS]
    url = reverse("admin:engagement_report_changelist") + "?" + urlencode(changelist_filter)
    counts = ", ".join(
        f"{by_status[status]} {status}" for status in Report.Status.values if status in by_status
    )
    rows = format_html_join(
        "",
        '<li><a href="{}">report {}</a>: {} by {} on {}, {} — {}</li>',
        (
            (
                reverse("admin:engagement_report_change", args=[report.pk]),
                report.pk,
                report.status,
                report.reporter,
                report.created_at.strftime("%Y-%m-%d %H:%M"),
                _report_target_link(report),
                report.reason[:80],
            )
            for report in latest
        ),
    )
    return format_html(
        '{} (<a href="{}">see all in the report list</a>)<ul>{}</ul>', counts, url, rows
    )


class ReviewNoteForm(forms.Form):
    note = forms.CharField(
        max_length=Report.REVIEW_NOTE_MAX_LENGTH,
        widget=forms.Textarea(attrs={"rows": 4, "cols": 80}),
        help_text="Required: what you did, or why there is nothing to do. Kept with each report.",
    )


@admin.register(Report)
class ReportAdmin(BigTableAdmin):
    """The review queue: filter to open reports, select, then "Mark actioned" or "Dismiss".

    Both actions ask for a note on a confirmation page, then review every selected open report
    in one UPDATE. A review is final: reports already actioned or dismissed are left as they
    are (a new report by the same user opens a new review). Reports are never edited by hand
    nor deleted: they are integrity evidence.
    """

    list_display = (
        "id",
        "reporter",
        "target",
        "reason_excerpt",
        "status",
        "created_at",
        "reviewed_at",
        "reviewed_by",
    )
    list_filter = ("status", "target_type", "created_at")
    search_fields = ("reporter__username",)
    search_help_text = "A reporter's username, or a target id."
    list_select_related = ("reporter", "reviewed_by")
    ordering = ("-id",)
    actions = ["mark_actioned", "dismiss"]
    fields = (
        "reporter",
        "target",
        "reason",
        "status",
        "created_at",
        "ip",
        "device_id",
        "reviewed_at",
        "reviewed_by",
        "review_note",
    )
    readonly_fields = fields

    @admin.display(description="target")
    def target(self, report: Report) -> SafeString:
        return _report_target_link(report)

    @admin.display(description="reason")
    def reason_excerpt(self, report: Report) -> str:
        return report.reason if len(report.reason) <= 80 else report.reason[:79] + "…"

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Report], search_term: str
    ) -> tuple[QuerySet[Report], bool]:
        results, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        term = search_term.strip()
        # isdigit() alone accepts non-ASCII digits, which int() refuses.
        if term.isascii() and term.isdigit() and len(term) <= 18:
            results = results | queryset.filter(target_id=int(term))
        return results, may_have_duplicates

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        # The list's review actions need change permission; a report's own page is read-only.
        return obj is None and super().has_change_permission(request, obj)

    @admin.action(description="Mark selected reports actioned…", permissions=["change"])
    def mark_actioned(
        self, request: HttpRequest, queryset: QuerySet[Report]
    ) -> TemplateResponse | None:
        return self._review(request, queryset, "mark_actioned", "Mark reports actioned")

    @admin.action(description="Dismiss selected reports…", permissions=["change"])
    def dismiss(self, request: HttpRequest, queryset: QuerySet[Report]) -> TemplateResponse | None:
        return self._review(request, queryset, "dismiss", "Dismiss reports")

    def _review(
        self, request: HttpRequest, queryset: QuerySet[Report], action: str, title: str
    ) -> TemplateResponse | None:
        selected = list(queryset.values_list("pk", flat=True))
        select_across = request.POST.get("select_across") == "1"
        open_reports = queryset.filter(status=Report.Status.OPEN)
        open_count = open_reports.count()
        if open_count == 0:
            self.message_user(
                request,
                "None of the selected reports is open: a review is final, nothing was changed.",
                messages.WARNING,
            )
            return None
        form = ReviewNoteForm(request.POST if "apply" in request.POST else None)
        if form.is_valid():
            review = reports_action if action == "mark_actioned" else reports_dismiss
            result = review(report_ids=selected, staff=request.user, note=form.cleaned_data["note"])  # type: ignore[arg-type]
            self.message_user(request, _review_message(result, action), messages.SUCCESS)
            return None
        context = {
            **self.admin_site.each_context(request),
            "title": title,
            "opts": self.model._meta,
            "action": action,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "select_across": select_across,
            # With "select all", the confirmation re-selects by the list's filters (the page's
            # query string): posting every id could pass the request's field limit.
            "selected": selected[:1] if select_across else selected,
            "shown": open_reports.select_related("reporter").order_by("id")[:100],
            "open_count": open_count,
            "skipped_count": len(selected) - open_count,
            "form": form,
            "submit_label": "Mark actioned" if action == "mark_actioned" else "Dismiss",
            "media": self.media,
        }
        return TemplateResponse(
            request, "admin/engagement/report/review_confirmation.html", context
        )


def _review_message(result: ReviewResult, action: str) -> str:
    done = "marked actioned" if action == "mark_actioned" else "dismissed"
    message = f"{result.reviewed} report{'s' if result.reviewed != 1 else ''} {done}."
    if result.skipped:
        message += f" {result.skipped} already reviewed, left as they were."
    return message


class AppendOnlyAdmin(BigTableAdmin):
    """A record table written only by services: staff read it, nobody edits it here."""

    ordering = ("-id",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(CountedFlip)
class CountedFlipAdmin(AppendOnlyAdmin):
    list_display = (
        "id",
        "kind",
        "row_id",
        "user_id",
        "target_id",
        "video_id",
        "counted",
        "interaction_created_at",
        "created_at",
    )
    list_filter = ("kind", "counted", "created_at")


@admin.register(Removal)
class RemovalAdmin(AppendOnlyAdmin):
    list_display = (
        "id",
        "kind",
        "row_id",
        "user_id",
        "target_id",
        "video_id",
        "counted",
        "interaction_created_at",
        "created_at",
    )
    list_filter = ("kind", "counted", "created_at")
