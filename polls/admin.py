"""Staff views of stickers: state, tallies (read-only), and the actions of SPEC §4."""

from typing import Any

from django.contrib import admin, messages
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest

from core.exceptions import ServiceError
from engagement.admin import AppendOnlyAdmin, BigTableAdmin
from engagement.models import User
from polls.models import (
    Answer,
    Checkpoint,
    CheckpointOption,
    CountedFlip,
    Sticker,
    StickerOption,
    StickerResult,
    StickerTally,
    Vote,
)
from polls.services import finalizing, lifecycle
from polls.services.results_cache import sticker_cache_forget


class StickerOptionInline(admin.TabularInline):
    model = StickerOption
    extra = 0
    fields = ("position", "label", "payload")


class CheckpointInline(admin.StackedInline):
    model = Checkpoint
    extra = 0
    fields = ("position", "at_ms", "question", "explanation")
    show_change_link = True


class StickerResultInline(admin.TabularInline):
    model = StickerResult
    extra = 0
    fields = ("rank", "option", "comment", "votes", "reached_at")
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(Sticker)
class StickerAdmin(admin.ModelAdmin):
    list_display = ("id", "kind", "prompt", "video", "state", "votes", "opens_at", "closes_at")
    list_filter = ("kind", "state", "results_visibility")
    search_fields = ("prompt", "video__title", "video__creator__username")
    autocomplete_fields = ("video",)
    raw_id_fields = ("winner_option", "winner_comment")
    readonly_fields = (
        "state",
        "created_at",
        "updated_at",
        "closed_at",
        "finalized_at",
        "winner_option",
        "winner_comment",
        "total_votes",
        "live_tally",
    )
    inlines = [StickerOptionInline, CheckpointInline, StickerResultInline]
    actions = ["close_now", "cancel", "moderate", "recount"]
    show_full_result_count = False

    def save_model(self, request: HttpRequest, obj: Sticker, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        # Results reads cache the visibility, times and options; an edit must not leave them stale.
        sticker_id = obj.pk
        transaction.on_commit(lambda: sticker_cache_forget(sticker_id))

    @admin.display(description="votes")
    def votes(self, sticker: Sticker) -> int | None:
        if sticker.total_votes is not None:
            return sticker.total_votes
        live = StickerTally.objects.filter(sticker=sticker).values_list("total_votes", flat=True)
        return live[0] if live else 0

    @admin.display(description="live tally")
    def live_tally(self, sticker: Sticker) -> str:
        live = StickerTally.objects.filter(sticker=sticker).first()
        if live is None:
            return "—"
        entries = ", ".join(f"{entry['id']}: {entry['votes']}" for entry in live.entries)
        return f"{live.total_votes} votes as of {live.as_of:%Y-%m-%d %H:%M:%S} ({entries})"

    def _each(self, request: HttpRequest, queryset: QuerySet[Sticker], action, verb: str) -> None:  # type: ignore[no-untyped-def]
        assert isinstance(request.user, User)
        done = 0
        for sticker_id in queryset.values_list("pk", flat=True):
            try:
                action(actor=request.user, sticker_id=sticker_id)
                done += 1
            except ServiceError as error:
                self.message_user(
                    request, f"Sticker {sticker_id}: {error.detail}", messages.WARNING
                )
        self.message_user(request, f"{verb} {done} sticker(s).", messages.SUCCESS)

    @admin.action(description="Close now (and finalize)")
    def close_now(self, request: HttpRequest, queryset: QuerySet[Sticker]) -> None:
        self._each(request, queryset, lifecycle.sticker_close, "Closed")

    @admin.action(description="Cancel")
    def cancel(self, request: HttpRequest, queryset: QuerySet[Sticker]) -> None:
        self._each(request, queryset, lifecycle.sticker_cancel, "Canceled")

    @admin.action(description="Moderate (hide from viewers)")
    def moderate(self, request: HttpRequest, queryset: QuerySet[Sticker]) -> None:
        def moderate_one(*, actor: User, sticker_id: int) -> Sticker:
            return lifecycle.sticker_moderate(
                actor=actor, sticker_id=sticker_id, reason="moderated in the admin"
            )

        self._each(request, queryset, moderate_one, "Moderated")

    @admin.action(description="Recount from the vote rows")
    def recount(self, request: HttpRequest, queryset: QuerySet[Sticker]) -> None:
        for sticker_id in queryset.values_list("pk", flat=True):
            finalizing.sticker_recount(sticker_id=sticker_id)
        self.message_user(request, "Recounted.", messages.SUCCESS)


class CheckpointOptionInline(admin.TabularInline):
    model = CheckpointOption
    extra = 0


@admin.register(Checkpoint)
class CheckpointAdmin(admin.ModelAdmin):
    list_display = ("id", "sticker", "position", "at_ms", "question")
    search_fields = ("question",)
    raw_id_fields = ("sticker",)
    inlines = [CheckpointOptionInline]


@admin.register(Vote)
class VoteAdmin(BigTableAdmin):
    list_display = ("id", "sticker", "user", "option_ids", "counted", "created_at", "voted_at")
    list_filter = ("counted", "created_at")
    search_fields = ("user__username", "device_id")
    autocomplete_fields = ("user",)
    raw_id_fields = ("sticker",)
    # `counted` changes only through polls.services.counted (recount + flip record).
    readonly_fields = ("created_at", "voted_at", "ip", "device_id", "option_ids", "counted")


@admin.register(Answer)
class AnswerAdmin(BigTableAdmin):
    list_display = ("id", "sticker", "checkpoint", "user", "is_correct", "counted", "created_at")
    list_filter = ("counted", "is_correct")
    search_fields = ("user__username",)
    autocomplete_fields = ("user",)
    raw_id_fields = ("sticker", "checkpoint")
    readonly_fields = ("created_at", "ip", "device_id", "option_ids", "is_correct", "counted")


@admin.register(StickerTally)
class StickerTallyAdmin(admin.ModelAdmin):
    list_display = ("sticker", "as_of", "total_votes")
    raw_id_fields = ("sticker",)
    readonly_fields = ("sticker", "as_of", "total_votes", "entries")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(CountedFlip)
class CountedFlipAdmin(AppendOnlyAdmin):
    list_display = (
        "id",
        "kind",
        "row_id",
        "user_id",
        "sticker_id",
        "counted",
        "interaction_created_at",
        "created_at",
    )
    list_filter = ("kind", "counted", "created_at")
