"""Staff: catalog, rules (with backfill and a preview), grants and entitlements (with revoke)."""

from django import forms
from django.contrib import admin, messages
from django.db import models
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html

from engagement.admin import BigTableAdmin
from rewards.models import (
    ActivityEvent,
    Badge,
    Entitlement,
    Grant,
    Perk,
    RewardRule,
)
from rewards.services.grants import backfill_enqueue, grants_revoke
from rewards.services.rules import rule_preview


@admin.register(Badge)
class BadgeAdmin(admin.ModelAdmin):
    # Django 6's default; saying it now keeps Django 5.2 from warning.
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}
    list_display = ("id", "slug", "name", "creator", "expires_at", "created_at")
    search_fields = ("slug", "name", "creator__username")
    autocomplete_fields = ("creator",)
    list_filter = ("expires_at",)


class PerkForm(forms.ModelForm):
    class Meta:
        model = Perk
        fields = [
            "slug",
            "name",
            "description",
            "stock",
            "per_user_limit",
            "valid_until",
            "code_prefix",
        ]

    def clean_stock(self) -> int | None:
        # redeemed_count is not on the form, so the model's check constraint is not validated
        # with it; without this a lower stock would fail as an IntegrityError (a 500).
        stock: int | None = self.cleaned_data.get("stock")
        if stock is not None and self.instance.pk is not None:
            redeemed = (
                Perk.objects.filter(pk=self.instance.pk)
                .values_list("redeemed_count", flat=True)
                .first()
            ) or 0
            if stock < redeemed:
                raise forms.ValidationError(
                    f"{redeemed} unit(s) were already redeemed; the stock cannot be lower."
                )
        return stock


@admin.register(Perk)
class PerkAdmin(admin.ModelAdmin):
    form = PerkForm
    list_display = (
        "id",
        "slug",
        "name",
        "stock",
        "redeemed_count",
        "remaining",
        "per_user_limit",
        "valid_until",
    )
    search_fields = ("slug", "name")
    readonly_fields = ("redeemed_count",)
    list_filter = ("valid_until",)

    @admin.display(description="remaining")
    def remaining(self, perk: Perk) -> str:
        return "unlimited" if perk.stock is None else str(perk.stock - perk.redeemed_count)

    def save_model(self, request: HttpRequest, obj: Perk, form: object, change: bool) -> None:
        if not change:
            super().save_model(request, obj, form, change)  # type: ignore[arg-type]
            return
        # Redemptions move redeemed_count while the form is open: never write back the value
        # read with it (a lost update would let the perk be redeemed beyond its stock).
        obj.save(
            update_fields=[
                field.name
                for field in Perk._meta.concrete_fields
                if not field.primary_key and field.name != "redeemed_count"
            ]
        )


@admin.register(RewardRule)
class RewardRuleAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "name",
        "trigger",
        "threshold",
        "reward",
        "period",
        "is_active",
        "backfilled_at",
    )
    list_filter = ("trigger", "is_active", "period")
    search_fields = ("name",)
    autocomplete_fields = ("creator", "badge", "perk")
    raw_id_fields = ("sticker",)
    readonly_fields = ("created_at", "backfilled_at", "would_grant")
    actions = ["backfill", "preview"]

    @admin.display(description="grants")
    def reward(self, rule: RewardRule) -> str:
        return f"badge {rule.badge}" if rule.badge_id else f"perk {rule.perk}"

    @admin.display(description="a backfill now would grant")
    def would_grant(self, rule: RewardRule) -> str:
        if rule.pk is None:
            return "—"
        return format_html("{} user(s)", rule_preview(rule))

    def save_model(self, request: HttpRequest, obj: RewardRule, form: object, change: bool) -> None:
        was_active = (
            RewardRule.objects.filter(pk=obj.pk).values_list("is_active", flat=True).first()
            if change
            else False
        )
        activated = obj.is_active and not was_active
        if activated:
            # A rule created or activated later applies to history: it is pending until a
            # backfill ran (the periodic sweep picks it up if the task below is lost).
            obj.backfilled_at = None
        super().save_model(request, obj, form, change)  # type: ignore[arg-type]
        if activated:
            backfill_enqueue(rule_id=obj.pk)
            self.message_user(request, "Backfill queued: the rule applies to history too.")

    @admin.action(description="Backfill: apply to history now")
    def backfill(self, request: HttpRequest, queryset: QuerySet[RewardRule]) -> None:
        from rewards.services.grants import rule_backfill

        total = sum(
            rule_backfill(rule_id=rule_id) for rule_id in queryset.values_list("pk", flat=True)
        )
        self.message_user(request, f"Backfill granted {total} reward(s).", messages.SUCCESS)

    @admin.action(description="Preview: how many users a backfill would grant")
    def preview(self, request: HttpRequest, queryset: QuerySet[RewardRule]) -> None:
        for rule in queryset.select_related("badge", "perk"):
            self.message_user(
                request, f"{rule.name}: {rule_preview(rule)} user(s) would be granted."
            )


@admin.register(Grant)
class GrantAdmin(BigTableAdmin):
    list_display = (
        "id",
        "user",
        "rule",
        "badge",
        "period_key",
        "granted_at",
        "source",
        "revoked_at",
    )
    list_filter = ("source", "rule", ("revoked_at", admin.EmptyFieldListFilter), "granted_at")
    search_fields = ("user__username", "rule__name")
    autocomplete_fields = ("user",)
    raw_id_fields = ("rule", "badge")
    readonly_fields = ("rule", "user", "period_key", "badge", "granted_at", "source", "revoked_at")
    actions = ["revoke"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        # Grants are written by rules only (every field of one is read-only here).
        return False

    @admin.action(description="Revoke (reason: revoked by staff)")
    def revoke(self, request: HttpRequest, queryset: QuerySet[Grant]) -> None:
        reason = f"revoked by staff ({request.user})"
        count = grants_revoke(grant_ids=list(queryset.values_list("pk", flat=True)), reason=reason)
        self.message_user(request, f"Revoked {count} grant(s).", messages.SUCCESS)


@admin.register(Entitlement)
class EntitlementAdmin(BigTableAdmin):
    list_display = ("id", "user", "perk", "created_at", "redeemed_at", "code", "revoked_at")
    list_filter = ("perk", ("redeemed_at", admin.EmptyFieldListFilter), "created_at")
    search_fields = ("user__username", "code")
    autocomplete_fields = ("user",)
    raw_id_fields = ("grant", "perk")
    readonly_fields = ("grant", "user", "perk", "created_at", "redeemed_at", "code", "revoked_at")

    # Entitlements are written with their grant and changed only by redemption or revocation;
    # saving the (all read-only) form would write back a redemption it raced with.
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(ActivityEvent)
class ActivityEventAdmin(BigTableAdmin):
    list_display = ("id", "user", "kind", "video", "created_at")
    list_filter = ("kind",)
    search_fields = ("user__username",)
    autocomplete_fields = ("user",)
    raw_id_fields = ("video",)
