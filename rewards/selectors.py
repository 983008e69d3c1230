"""Reads for the rewards API."""

from typing import Any

from django.db.models import QuerySet
from django.utils import timezone

from engagement.models import User
from rewards.models import ActivityEvent, Badge, Entitlement, Grant


def badges_catalog() -> QuerySet[Badge]:
    return Badge.objects.select_related("creator").order_by("id")


def user_badges(*, user: User) -> QuerySet[Grant]:
    return (
        Grant.objects.filter(user=user, badge__isnull=False, revoked_at__isnull=True)
        .select_related("badge", "rule")
        .order_by("-id")
    )


def user_entitlements(*, user: User) -> QuerySet[Entitlement]:
    return (
        Entitlement.objects.filter(user=user, revoked_at__isnull=True)
        .select_related("perk", "grant__rule")
        .order_by("-id")
    )


def entitlement_status(entitlement: Entitlement) -> str:
    if entitlement.redeemed_at is not None:
        return "redeemed"
    valid_until = entitlement.perk.valid_until
    if valid_until is not None and valid_until <= timezone.now():
        return "expired"
    return "available"


def user_activity(*, user: User) -> QuerySet[ActivityEvent]:
    return ActivityEvent.objects.filter(user=user).order_by("-id")


def activity_text(event: ActivityEvent) -> str:
    data: dict[str, Any] = event.data
    if event.kind == ActivityEvent.Kind.LIKED_VIDEO:
        return (
            f'You liked {data.get("creator", "a creator")}\'s video "{data.get("video_title", "")}"'
        )
    if event.kind == ActivityEvent.Kind.EARNED_BADGE:
        return f'You earned the badge "{data.get("reward", "")}"'
    if event.kind == ActivityEvent.Kind.EARNED_PERK:
        return f'You earned the perk "{data.get("reward", "")}"'
    if event.kind == ActivityEvent.Kind.VOTE_CHOSE_ENDING:
        return f'Your vote chose the ending of "{data.get("video_title", "")}"'
    return event.kind
