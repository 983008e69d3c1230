"""Badges, perks, the rules that grant them, grants, entitlements and the activity feed.

Exactly once (SPEC §2.5): a rule grants at most once per user and period, by the unique
constraint on Grant; a perk never oversells, by a conditional UPDATE of its redeemed count.
"""

from django.conf import settings
from django.db import models
from django.db.models import Q

from engagement.models import Video
from polls.models import Sticker


class Badge(models.Model):
    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=100)
    description = models.CharField(max_length=500, blank=True)
    image_url = models.URLField(max_length=500, blank=True)
    # A creator's exclusive badge ("like creator X's videos -> X's badge").
    creator = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    # After this moment the badge is no longer granted (earned ones are kept).
    expires_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.name


class Perk(models.Model):
    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=100)
    description = models.CharField(max_length=500, blank=True)
    # None: unlimited.
    stock = models.PositiveIntegerField(null=True, blank=True)
    redeemed_count = models.PositiveIntegerField(default=0)
    per_user_limit = models.PositiveIntegerField(default=1)
    valid_until = models.DateTimeField(null=True, blank=True)
    code_prefix = models.CharField(max_length=16, default="CHORUS")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(stock__isnull=True) | Q(redeemed_count__lte=models.F("stock")),
                name="perk_never_oversold",
            ),
            models.CheckConstraint(condition=Q(per_user_limit__gte=1), name="perk_limit_positive"),
        ]

    def __str__(self) -> str:
        return self.name


class RewardRule(models.Model):
    class Trigger(models.TextChoices):
        TOTAL_LIKES = "total_likes", "The user's counted likes >= N"
        CREATOR_LIKES = "creator_likes", "The user's counted likes on one creator's videos >= N"
        STICKER_PARTICIPATION = "sticker_participation", "Took part in a sticker"
        WINNING_ENDING = "winning_ending", "Voted for the winning ending"
        QUIZ_SCORE = "quiz_score", "Completed a quiz with score >= S"
        VIDEO_LIKES = "video_likes", "One of the creator's videos reached N counted likes"

    class Period(models.TextChoices):
        NONE = "", "Once ever"
        DAY = "day", "Once a day"
        WEEK = "week", "Once a week"
        MONTH = "month", "Once a month"

    name = models.CharField(max_length=120)
    trigger = models.CharField(max_length=32, choices=Trigger.choices)
    threshold = models.PositiveIntegerField(
        default=1, help_text="N likes, or the quiz score S; ignored for participation/ending."
    )
    creator = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="+",
        help_text="creator_likes: whose videos count.",
    )
    sticker = models.ForeignKey(
        Sticker,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="+",
        help_text="Participation / quiz / ending: only this sticker.",
    )
    sticker_kind = models.CharField(
        max_length=16, choices=Sticker.Kind.choices, blank=True, help_text="Participation: kind."
    )
    badge = models.ForeignKey(Badge, null=True, blank=True, on_delete=models.PROTECT)
    perk = models.ForeignKey(Perk, null=True, blank=True, on_delete=models.PROTECT)
    # Only interactions in [starts_at, ends_at) count.
    starts_at = models.DateTimeField(null=True, blank=True)
    ends_at = models.DateTimeField(null=True, blank=True)
    period = models.CharField(max_length=8, choices=Period.choices, blank=True, default="")
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    backfilled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=(Q(badge__isnull=False) & Q(perk__isnull=True))
                | (Q(badge__isnull=True) & Q(perk__isnull=False)),
                name="rule_grants_badge_xor_perk",
            ),
            models.CheckConstraint(
                condition=Q(trigger="creator_likes", creator__isnull=False)
                | ~Q(trigger="creator_likes"),
                name="rule_creator_likes_needs_creator",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class Grant(models.Model):
    """A rule fired for a user (in a period). Never granted twice: the unique constraint.

    Kept when the user later falls below the threshold (an unlike): rules never take a grant
    back, and meeting the threshold again grants nothing new. Staff revoke one explicitly
    (grants_revoke), with a recorded reason. An integrity decision reassesses the grants of the
    users it affects (rewards.services.reassess): revoked when the decision undercut them,
    restored when a later decision makes them qualify again (docs/rewards.md).
    """

    rule = models.ForeignKey(RewardRule, on_delete=models.PROTECT, related_name="grants")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="grants"
    )
    # '' for rules without a period, else e.g. '2026-11' (month), '2026-W47' (week), '2026-11-22'.
    period_key = models.CharField(max_length=16, blank=True, default="")
    badge = models.ForeignKey(Badge, null=True, blank=True, on_delete=models.PROTECT)
    granted_at = models.DateTimeField()
    source = models.CharField(max_length=16, default="event")
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoke_reason = models.CharField(max_length=500, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["rule", "user", "period_key"], name="grant_once_per_rule_user_period"
            ),
        ]
        indexes = [models.Index(fields=["user", "-granted_at"], name="grant_user_time_idx")]

    def __str__(self) -> str:
        return f"{self.rule_id} -> {self.user_id} {self.period_key}"


class Entitlement(models.Model):
    """A perk a grant gave a user: available until redeemed (once) or expired."""

    grant = models.OneToOneField(Grant, on_delete=models.CASCADE, related_name="entitlement")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="entitlements"
    )
    perk = models.ForeignKey(Perk, on_delete=models.PROTECT, related_name="entitlements")
    created_at = models.DateTimeField()
    redeemed_at = models.DateTimeField(null=True, blank=True)
    code = models.CharField(max_length=64, null=True, blank=True, unique=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["user", "-id"], name="entitlement_user_idx"),
            models.Index(fields=["user", "perk"], name="entitlement_user_perk_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.perk_id} for {self.user_id}"


class ActivityEvent(models.Model):
    """The feed: "you liked X's video", "you earned badge Y", "your vote chose the ending of Z"."""

    class Kind(models.TextChoices):
        LIKED_VIDEO = "liked_video"
        EARNED_BADGE = "earned_badge"
        EARNED_PERK = "earned_perk"
        VOTE_CHOSE_ENDING = "vote_chose_ending"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=24, choices=Kind.choices)
    # The row that caused it (like id, grant id, vote id): re-processing never duplicates.
    source_id = models.BigIntegerField()
    video = models.ForeignKey(
        Video, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    data = models.JSONField(default=dict)
    created_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["kind", "source_id"], name="activity_unique_source"),
        ]
        indexes = [models.Index(fields=["user", "-id"], name="activity_user_idx")]

    def __str__(self) -> str:
        return f"{self.kind} for {self.user_id}"
