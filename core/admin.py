from django.contrib import admin

from core.models import IdempotencyRecord


@admin.register(IdempotencyRecord)
class IdempotencyRecordAdmin(admin.ModelAdmin):
    list_display = ("id", "user", "key", "state", "response_status", "created_at")
    list_filter = ("state", "response_status")
    search_fields = ("key", "user__username")
    autocomplete_fields = ("user",)
    readonly_fields = (
        "user",
        "key",
        "request_fingerprint",
        "state",
        "response_status",
        "response_body",
        "response_headers",
        "created_at",
        "completed_at",
    )
    show_full_result_count = False
