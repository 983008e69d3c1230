"""Staff look up any creator's analytics, read-only (issue 9 §5; SPEC §3, §4).

`engagement` cannot import `analytics` (the layers run one way), so this module extends
engagement's User and Video admins: the user page gets a "Creator centre" section with links,
and two read-only views show the figures

- `/admin/engagement/user/<id>/analytics/?days=28&tz=UTC`: the creator's document (totals,
  rates, the 7 x 24 fan-activity grid as a heat table, interest preferences, tool effect) and a
  table of their videos with links to each video's figures;
- `/admin/engagement/video/<id>/analytics/?days=28&tz=UTC`: one video's document.

Both take the documents from `analytics.selectors`, served from the rollups as the API's are.
A bad `days` or `tz` is a form error on the page, never a 500.
"""

from typing import Any

from django import forms
from django.contrib import admin
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import Model
from django.http import Http404, HttpRequest, HttpResponseBase
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.http import urlencode
from django.utils.safestring import SafeString

from analytics.parameters import (
    ALLOWED_DAYS,
    DEFAULT_DAYS,
    DEFAULT_TIMEZONE,
    InvalidAnalyticsParameter,
    check_timezone,
)
from analytics.selectors import creator_analytics_document, video_analytics_document
from engagement.admin import UserAdmin, VideoAdmin
from engagement.models import User, Video
from engagement.services.counters import video_counts

WEEKDAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
VIDEOS_SHOWN = 100


class WindowForm(forms.Form):
    days = forms.TypedChoiceField(
        choices=[(days, f"last {days} days") for days in ALLOWED_DAYS], coerce=int
    )
    tz = forms.CharField(
        label="Time zone",
        max_length=64,
        help_text="An IANA zone such as Europe/Berlin: the fan-activity grid's weekdays and hours.",
    )

    def clean_tz(self) -> str:
        tz: str = self.cleaned_data["tz"]
        try:
            return check_timezone(tz)
        except InvalidAnalyticsParameter as error:
            raise forms.ValidationError(error.message) from error


def _window_form(request: HttpRequest) -> WindowForm:
    return WindowForm(
        {
            "days": request.GET.get("days", str(DEFAULT_DAYS)),
            "tz": request.GET.get("tz", DEFAULT_TIMEZONE),
        }
    )


def _document(form: WindowForm, fetch: Any, **ids: int) -> dict[str, Any] | None:
    """The document for a valid form; None (with the error on the form) otherwise."""
    if not form.is_valid():
        return None
    try:
        document: dict[str, Any] = fetch(
            **ids, days=form.cleaned_data["days"], tz=form.cleaned_data["tz"]
        )
    except InvalidAnalyticsParameter as error:
        form.add_error(error.field or None, error.message)
        return None
    return document


# --- shaping the documents for the templates ---------------------------------------------------
def _share(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"


def _growth(value: float | None) -> str:
    return "—" if value is None else f"{value:+.1%}"


def _plain(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def _figures(document: dict[str, Any]) -> list[tuple[str, str, Any, str]]:
    """(label, shown, exact value, what it is) for the rates of a document."""
    rows = [
        ("Interaction rate", _share, "interaction_rate", "interactions / plays"),
        (
            "Interaction growth",
            _growth,
            "interaction_growth_rate",
            "vs the window of the same length before",
        ),
        (
            "First-hour velocity",
            _plain,
            "first_hour_velocity",
            "first-hour interactions / first-hour plays, videos published in the window",
        ),
        ("Completion rate", _share, "completion_rate", "completed plays / plays"),
        ("Replay rate", _share, "replay_rate", "replays / plays"),
        (
            "Effective comments",
            _share,
            "effective_comment_share",
            "not emoji-only, not repeated by the same user",
        ),
        ("Quick likes", _share, "quick_like_share", "likes by viewers who watched < 3 s"),
    ]
    return [(label, shown(document[key]), document[key], help) for label, shown, key, help in rows]


TOTALS = [
    ("plays", "Plays"),
    ("likes", "Likes"),
    ("comments", "Comments"),
    ("shares", "Shares"),
    ("follows_gained", "Follows gained"),
    ("interactions", "Interactions"),
]


def _totals(document: dict[str, Any]) -> list[tuple[str, str, int]]:
    """(key, label, count) for the totals of a document."""
    return [(key, label, document["totals"][key]) for key, label in TOTALS]


def _heat_rows(grid: list[list[int]]) -> list[tuple[str, int, list[tuple[int, str]]]]:
    """(weekday, total, [(count, cell style)]) with the cell shaded by its share of the max."""
    highest = max((count for row in grid for count in row), default=0)
    rows = []
    for weekday, row in zip(WEEKDAYS, grid, strict=True):
        cells = []
        for count in row:
            alpha = 0 if not highest else 0.08 + 0.92 * count / highest
            text = "#fff" if alpha > 0.55 else "inherit"
            cells.append((count, f"background: rgba(65, 118, 144, {alpha:.2f}); color: {text}"))
        rows.append((weekday, sum(row), cells))
    return rows


def _query(form: WindowForm) -> str:
    """The window of a valid form as a query string, for the links to other figures."""
    days: int = form.cleaned_data["days"]
    tz: str = form.cleaned_data["tz"]
    return urlencode({"days": str(days), "tz": tz})


def _context(
    model_admin: admin.ModelAdmin, request: HttpRequest, obj: Model, title: str
) -> dict[str, Any]:
    return {
        **model_admin.admin_site.each_context(request),
        "title": title,
        "subtitle": None,
        "opts": model_admin.model._meta,
        "original": obj,
        "change_url": reverse(
            f"admin:{obj._meta.app_label}_{obj._meta.model_name}_change", args=[obj.pk]
        ),
    }


# --- the admins --------------------------------------------------------------------------------
def _analytics_url(name: str, pk: int, days: int = DEFAULT_DAYS) -> str:
    url = reverse(f"admin:engagement_{name}_analytics", args=[pk])
    return f"{url}?{urlencode({'days': str(days), 'tz': DEFAULT_TIMEZONE})}"


class CreatorCentreUserAdmin(UserAdmin):
    """engagement's user admin, plus the creator centre."""

    fieldsets = (
        *UserAdmin.fieldsets,
        ("Creator centre", {"fields": ("creator_centre",)}),
    )

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        return (*super().get_readonly_fields(request, obj), "creator_centre")

    @admin.display(description="Analytics")
    def creator_centre(self, user: User) -> SafeString:
        videos = Video.objects.filter(creator=user).count()
        if not videos:
            return format_html("{}", "No videos published.")
        links = format_html_join(
            " · ",
            '<a href="{}">last {} days</a>',
            ((_analytics_url("user", user.pk, days), days) for days in ALLOWED_DAYS),
        )
        return format_html(
            "{} video{} published. Figures (read-only): {}",
            videos,
            "" if videos == 1 else "s",
            links,
        )

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view(self.analytics_view)
        return [
            path("<path:object_id>/analytics/", view, name="engagement_user_analytics"),
            *super().get_urls(),
        ]

    def analytics_view(self, request: HttpRequest, object_id: str) -> HttpResponseBase:
        user = self.get_object(request, unquote(object_id))
        if user is None:
            raise Http404("No such object.")
        if not self.has_view_permission(request, user):
            raise PermissionDenied
        form = _window_form(request)
        document = _document(form, creator_analytics_document, creator_id=user.pk)
        context = _context(self, request, user, f"Creator centre: {user}")
        context.update(form=form, document=document, query=_query(form) if document else "")
        if document is not None:
            videos = list(
                Video.objects.filter(creator=user)
                .prefetch_related("hashtags")
                .order_by("-created_at", "-id")[:VIDEOS_SHOWN]
            )
            counts = video_counts([video.pk for video in videos])
            context.update(
                figures=_figures(document),
                totals=_totals(document),
                heat=_heat_rows(document["fan_activity"]["grid"]),
                hours=range(24),
                videos=[
                    (
                        video,
                        counts[video.pk],
                        reverse("admin:engagement_video_analytics", args=[video.pk])
                        + "?"
                        + context["query"],
                    )
                    for video in videos
                ],
                videos_total=Video.objects.filter(creator=user).count(),
                videos_shown=VIDEOS_SHOWN,
            )
        return TemplateResponse(request, "admin/analytics/creator_centre.html", context)


class VideoFiguresAdmin(VideoAdmin):
    """engagement's video admin, plus the video's figures."""

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        return (*super().get_readonly_fields(request, obj), "figures")

    @admin.display(description="Analytics")
    def figures(self, video: Video) -> SafeString:
        if video.pk is None:
            return format_html("{}", "—")
        return format_html(
            '<a href="{}">Figures of this video (read-only)</a>', _analytics_url("video", video.pk)
        )

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view(self.analytics_view)
        return [
            path("<path:object_id>/analytics/", view, name="engagement_video_analytics"),
            *super().get_urls(),
        ]

    def analytics_view(self, request: HttpRequest, object_id: str) -> HttpResponseBase:
        video = self.get_object(request, unquote(object_id))
        if video is None:
            raise Http404("No such object.")
        if not self.has_view_permission(request, video):
            raise PermissionDenied
        form = _window_form(request)
        document = _document(form, video_analytics_document, video_id=video.pk)
        context = _context(self, request, video, f"Figures of “{video}”")
        creator_url = reverse("admin:engagement_user_analytics", args=[video.creator_id])
        context.update(
            form=form,
            document=document,
            creator=video.creator,
            creator_url=f"{creator_url}?{_query(form)}" if document else creator_url,
        )
        if document is not None:
            context.update(
                figures=_figures(document),
                totals=_totals(document),
                heat=_heat_rows(document["fan_activity"]["grid"]),
                hours=range(24),
            )
        return TemplateResponse(request, "admin/analytics/video_figures.html", context)


admin.site.unregister(User)
admin.site.register(User, CreatorCentreUserAdmin)
admin.site.unregister(Video)
admin.site.register(Video, VideoFiguresAdmin)
