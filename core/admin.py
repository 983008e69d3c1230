from django.contrib import admin

from core.models import IdempotencyRecord, Watermark


@admin.register(IdempotencyRecord)
class IdempotencyRecordAdmin(admin.ModelAdmin):
    list_display = ("id", "user", "key", "response_status", "created_at")
    list_filter = ("response_status",)
    search_fields = ("key", "user__username")
    autocomplete_fields = ("user",)
    readonly_fields = (
        "user",
        "key",
        "request_fingerprint",
        "response_status",
        "response_body",
        "response_headers",
        "created_at",
    )
    show_full_result_count = False


@admin.register(Watermark)
class WatermarkAdmin(admin.ModelAdmin):
    list_display = ("name", "position", "updated_at")
    search_fields = ("name",)
