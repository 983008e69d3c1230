"""Staff views of users, videos and interactions.

The interaction tables grow to millions of rows: their change lists never run a full-table
COUNT (show_full_result_count off, and an estimated count for the paginator), filters are on
indexed or low-cardinality columns, and foreign keys use autocomplete or raw ids.
"""

from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.core.paginator import Paginator
from django.db import connection
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.functional import cached_property

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
    Share,
    User,
    Video,
    VideoCounter,
)
from engagement.services.counters import video_counters_recount, video_counts
from engagement.services.interactions import comment_likes_recount


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
    fieldsets = (*DjangoUserAdmin.fieldsets, ("Profile", {"fields": ("display_name",)}))  # type: ignore[misc]


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


INTERACTION_READONLY = ("created_at", "ip", "device_id")


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
