"""Stickers of every kind, their options, votes, quiz checkpoints and answers, and tallies.

Votes and answers are interaction rows like likes: they record when, IP, device and whether they
*count*. Live results live in StickerTally (rebuilt by the tallies worker, never on the write
path); final results are StickerResult rows computed once, in SQL, when a sticker closes.
"""

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import Q

from engagement.models import Comment, Video


class Sticker(models.Model):
    class Kind(models.TextChoices):
        POLL = "poll", "Vote"
        ENDING = "ending", "Likes choose the ending"
        QUIZ = "quiz", "Quiz checkpoints"
        UNLOCK = "unlock", "Like to unlock"
        COMMENT_PICK = "comment_pick", "Top comment decides"

    class State(models.TextChoices):
        SCHEDULED = "scheduled"
        OPEN = "open"
        CLOSED = "closed"
        FINAL = "final"
        CANCELED = "canceled"
        MODERATED = "moderated"

    class Visibility(models.TextChoices):
        ALWAYS = "always"
        AFTER_VOTE = "after_vote"
        AFTER_CLOSE = "after_close"

    video = models.ForeignKey(Video, on_delete=models.CASCADE, related_name="stickers")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    prompt = models.CharField(max_length=300)
    max_choices = models.PositiveSmallIntegerField(default=1)
    results_visibility = models.CharField(
        max_length=16, choices=Visibility.choices, default=Visibility.ALWAYS
    )
    allow_vote_change = models.BooleanField(default=True)
    # The hidden tip of an `unlock` sticker: {"text": ..., "media_url": ...}.
    payload = models.JSONField(null=True, blank=True)
    opens_at = models.DateTimeField()
    closes_at = models.DateTimeField(null=True, blank=True)
    # The stored state; `polls.state.sticker_state` derives scheduled/open/closed from the
    # clock between sweeps.
    state = models.CharField(
        max_length=16, choices=State.choices, default=State.SCHEDULED, db_index=True
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    finalized_at = models.DateTimeField(null=True, blank=True, db_index=True)
    winner_option = models.ForeignKey(
        "StickerOption", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    winner_comment = models.ForeignKey(
        Comment, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    total_votes = models.BigIntegerField(null=True, blank=True)
    moderation_reason = models.CharField(max_length=500, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["video", "id"], name="sticker_video_idx"),
            models.Index(
                fields=["closes_at"],
                name="sticker_due_idx",
                condition=Q(state__in=["scheduled", "open"]),
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(max_choices__gte=1) & Q(max_choices__lte=10),
                name="sticker_max_choices_range",
            ),
            models.CheckConstraint(
                condition=Q(closes_at__isnull=True) | Q(closes_at__gt=models.F("opens_at")),
                name="sticker_closes_after_opens",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.prompt[:40]}"


# The kinds that take votes, whose results count votes per option (comment_pick's count likes).
VOTABLE_KINDS = (Sticker.Kind.POLL, Sticker.Kind.ENDING)


class StickerOption(models.Model):
    sticker = models.ForeignKey(Sticker, on_delete=models.CASCADE, related_name="options")
    position = models.PositiveSmallIntegerField()
    label = models.CharField(max_length=120)
    # The ending itself, for `ending` stickers: {"text": ..., "media_url": ...}; hidden until final.
    payload = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["position"]
        constraints = [
            models.UniqueConstraint(fields=["sticker", "position"], name="option_unique_position"),
        ]

    def __str__(self) -> str:
        return self.label


class Checkpoint(models.Model):
    sticker = models.ForeignKey(Sticker, on_delete=models.CASCADE, related_name="checkpoints")
    position = models.PositiveSmallIntegerField()
    at_ms = models.PositiveIntegerField()
    question = models.CharField(max_length=300)
    explanation = models.CharField(max_length=1000, blank=True)

    class Meta:
        ordering = ["position"]
        constraints = [
            models.UniqueConstraint(
                fields=["sticker", "position"], name="checkpoint_unique_position"
            ),
        ]

    def __str__(self) -> str:
        return f"@{self.at_ms}ms {self.question[:40]}"


class CheckpointOption(models.Model):
    checkpoint = models.ForeignKey(Checkpoint, on_delete=models.CASCADE, related_name="options")
    position = models.PositiveSmallIntegerField()
    label = models.CharField(max_length=120)
    is_correct = models.BooleanField(default=False)

    class Meta:
        ordering = ["position"]
        constraints = [
            models.UniqueConstraint(
                fields=["checkpoint", "position"], name="checkpoint_option_unique_position"
            ),
        ]

    def __str__(self) -> str:
        return self.label


class Vote(models.Model):
    """One vote per (user, sticker); `option_ids` are the chosen options (1..max_choices)."""

    # (both keys lead an index below: no single-column index of their own to write)
    sticker = models.ForeignKey(
        Sticker, on_delete=models.CASCADE, related_name="votes", db_index=False
    )
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, db_index=False)
    option_ids = ArrayField(models.BigIntegerField())
    created_at = models.DateTimeField()
    # When the current choice was made (equals created_at unless the vote was changed); the
    # tie rule uses it.
    voted_at = models.DateTimeField()
    ip = models.GenericIPAddressField(null=True, blank=True)
    device_id = models.CharField(max_length=128, blank=True)
    counted = models.BooleanField(default=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["sticker", "user"], name="vote_unique_user_sticker"),
        ]
        indexes = [
            models.Index(fields=["sticker", "voted_at"], name="vote_sticker_time_idx"),
            models.Index(fields=["user", "created_at"], name="vote_user_time_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.user_id} on sticker {self.sticker_id}: {self.option_ids}"


class Answer(models.Model):
    """One answer per (user, checkpoint)."""

    # (both keys lead an index below: no single-column index of their own to write)
    sticker = models.ForeignKey(
        Sticker, on_delete=models.CASCADE, related_name="answers", db_index=False
    )
    checkpoint = models.ForeignKey(
        Checkpoint, on_delete=models.CASCADE, related_name="answers", db_index=False
    )
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    option_ids = ArrayField(models.BigIntegerField())
    is_correct = models.BooleanField()
    created_at = models.DateTimeField(auto_now_add=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    device_id = models.CharField(max_length=128, blank=True)
    counted = models.BooleanField(default=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["checkpoint", "user"], name="answer_unique_user_checkpoint"
            ),
        ]
        indexes = [models.Index(fields=["sticker", "user"], name="answer_sticker_user_idx")]

    def __str__(self) -> str:
        return f"{self.user_id} on checkpoint {self.checkpoint_id}"


class StickerTally(models.Model):
    """The live tally of a sticker, rebuilt from the rows by the tallies worker.

    `entries` is [{"id": option or comment id, "votes": n, "reached_at": iso}], ordered by rank.
    """

    sticker = models.OneToOneField(
        Sticker, on_delete=models.CASCADE, primary_key=True, related_name="tally"
    )
    as_of = models.DateTimeField()
    total_votes = models.BigIntegerField(default=0)
    entries = models.JSONField(default=list)

    def __str__(self) -> str:
        return f"tally of {self.sticker_id} as of {self.as_of:%H:%M:%S}"


class StickerResult(models.Model):
    """Exact final result rows, written in one INSERT … SELECT when the sticker is finalized."""

    sticker = models.ForeignKey(Sticker, on_delete=models.CASCADE, related_name="results")
    option = models.ForeignKey(StickerOption, null=True, blank=True, on_delete=models.CASCADE)
    comment = models.ForeignKey(Comment, null=True, blank=True, on_delete=models.CASCADE)
    votes = models.BigIntegerField()
    # When the option (or comment) reached its final count: the tie rule's key.
    reached_at = models.DateTimeField(null=True, blank=True)
    rank = models.PositiveIntegerField()

    class Meta:
        ordering = ["rank"]
        constraints = [
            models.UniqueConstraint(fields=["sticker", "rank"], name="result_unique_rank"),
            models.CheckConstraint(
                condition=Q(option__isnull=False) | Q(comment__isnull=False),
                name="result_has_target",
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.rank} of {self.sticker_id}: {self.votes}"


class CountedFlip(models.Model):
    """One row per vote or quiz answer whose `counted` flag a flip changed (SPEC §2.4, §5).

    Written only by `polls.services.counted`, in the transaction of the flip; append-only (a
    trigger refuses UPDATE). Consumers read it by id past a watermark, with a safety lag on
    `created_at` (when the flip was recorded). No foreign keys, as engagement.CountedFlip.
    See docs/counted-flips.md.
    """

    class Kind(models.TextChoices):
        VOTE = "vote"
        ANSWER = "answer"

    id = models.BigAutoField(primary_key=True)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    row_id = models.BigIntegerField()
    user_id = models.BigIntegerField()
    sticker_id = models.BigIntegerField()
    # The flag's new value.
    counted = models.BooleanField()
    interaction_created_at = models.DateTimeField()
    created_at = models.DateTimeField()

    class Meta:
        verbose_name = "counted flip"

    def __str__(self) -> str:
        state = "counted" if self.counted else "uncounted"
        return f"{self.kind} {self.row_id} {state}"
