"""Users, videos and the interaction tables.

The interaction tables (likes, comment likes, comments, shares, plays, follows) are the event log
that higher apps read with watermarks. Every row records when, from which IP and device, and
whether it *counts* (SPEC §2.4): integrity decisions flip `counted`, nothing is deleted by them.
"""

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.db import models
from django.db.models import F, Q
from knox.models import AbstractAuthToken


class User(AbstractUser):
    display_name = models.CharField(max_length=64, blank=True)

    def __str__(self) -> str:
        return self.username


class DeviceToken(AbstractAuthToken):
    """A knox token (stored hashed) issued to one device; revoked on logout."""

    device_id: "models.CharField[str, str]" = models.CharField(max_length=128, blank=True)
    user_agent: "models.CharField[str, str]" = models.CharField(max_length=256, blank=True)

    class Meta:
        indexes = [models.Index(fields=["expiry"], name="devicetoken_expiry_idx")]


class Hashtag(models.Model):
    name = models.CharField(max_length=100, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"#{self.name}"


class Video(models.Model):
    creator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="videos"
    )
    title = models.CharField(max_length=200)
    caption = models.CharField(max_length=2200, blank=True)
    duration_ms = models.PositiveIntegerField()
    hashtags: "models.ManyToManyField[Hashtag, VideoHashtag]" = models.ManyToManyField(
        Hashtag, through="VideoHashtag", related_name="videos"
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        indexes = [models.Index(fields=["creator", "-id"], name="video_creator_idx")]
        constraints = [
            models.CheckConstraint(condition=Q(duration_ms__gt=0), name="video_duration_positive"),
        ]

    def __str__(self) -> str:
        return self.title


class VideoHashtag(models.Model):
    video = models.ForeignKey(Video, on_delete=models.CASCADE)
    hashtag = models.ForeignKey(Hashtag, on_delete=models.CASCADE)
    position = models.PositiveSmallIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["video", "hashtag"], name="videohashtag_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.video_id}#{self.hashtag_id}"


class VideoCounter(models.Model):
    """Counted likes, comments, shares and plays of a video, spread over a few shard rows.

    Each write adds to one shard picked at random in the writer's own transaction, so the count
    is exact at commit and a viral video does not serialise every like on one row. A read sums
    at most COUNTER_SHARDS rows. `engagement.services.counters.video_counters_recount` rebuilds
    them from the interaction rows.
    """

    video = models.ForeignKey(Video, on_delete=models.CASCADE, related_name="counter_shards")
    shard = models.PositiveSmallIntegerField()
    likes = models.BigIntegerField(default=0)
    comments = models.BigIntegerField(default=0)
    shares = models.BigIntegerField(default=0)
    plays = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["video", "shard"], name="videocounter_unique_shard"),
        ]

    def __str__(self) -> str:
        return f"video {self.video_id} shard {self.shard}"


class Interaction(models.Model):
    """Fields every interaction row carries.

    Foreign keys get no index of their own (`db_index=False`) where a composite index or unique
    constraint of the table already leads with the column: one index fewer to write per row on
    the hottest tables, and the same lookups and cascades.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, db_index=False)
    created_at = models.DateTimeField(auto_now_add=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    device_id = models.CharField(max_length=128, blank=True)
    counted = models.BooleanField(default=True)

    class Meta:
        abstract = True


class Like(Interaction):
    video = models.ForeignKey(Video, on_delete=models.CASCADE, related_name="likes", db_index=False)

    class Meta:
        constraints = [
            # `counted` rides along so that a pass over the likes in (user, video) order (the
            # heat rebuild's merge join with the commenters) never reads the table.
            models.UniqueConstraint(
                fields=["user", "video"], include=["counted"], name="like_unique_user_video"
            ),
        ]
        indexes = [
            models.Index(fields=["video", "created_at"], name="like_video_time_idx"),
            models.Index(fields=["user", "created_at"], name="like_user_time_idx"),
            # analytics: one quarter hour (a day) of every user's rows, by time
            models.Index(fields=["created_at"], name="like_time_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.user_id} likes video {self.video_id}"


class Comment(Interaction):
    video = models.ForeignKey(
        Video, on_delete=models.CASCADE, related_name="comments", db_index=False
    )
    text = models.CharField(max_length=2000)
    # Counted likes of this comment, kept exact in the liker's transaction.
    like_count = models.BigIntegerField(default=0)

    class Meta:
        indexes = [
            models.Index(fields=["video", "-id"], name="comment_video_idx"),
            models.Index(fields=["user", "created_at"], name="comment_user_time_idx"),
            # The counted (commenter, video) pairs in order: which likes are deep (heat).
            models.Index(
                fields=["user", "video"], name="comment_user_video_idx", condition=Q(counted=True)
            ),
            # analytics: one quarter hour (a day) of every user's rows, by time
            models.Index(fields=["created_at"], name="comment_time_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(like_count__gte=0), name="comment_like_count_nonneg"
            ),
        ]

    def __str__(self) -> str:
        return f"comment {self.pk} on video {self.video_id}"


class CommentLike(Interaction):
    comment = models.ForeignKey(
        Comment, on_delete=models.CASCADE, related_name="likes", db_index=False
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["user", "comment"], name="commentlike_unique_user_comment"
            ),
        ]
        indexes = [
            models.Index(fields=["comment", "created_at"], name="commentlike_comment_time_idx")
        ]

    def __str__(self) -> str:
        return f"{self.user_id} likes comment {self.comment_id}"


class Share(Interaction):
    video = models.ForeignKey(
        Video, on_delete=models.CASCADE, related_name="shares", db_index=False
    )
    channel = models.CharField(max_length=32, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["video", "created_at"], name="share_video_time_idx"),
            models.Index(fields=["user", "created_at"], name="share_user_time_idx"),
            # analytics: one quarter hour (a day) of every user's rows, by time
            models.Index(fields=["created_at"], name="share_time_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.user_id} shared video {self.video_id}"


class Play(Interaction):
    """One play. A user's second and later plays of a video are replays (derived, not stored)."""

    video = models.ForeignKey(Video, on_delete=models.CASCADE, related_name="plays", db_index=False)
    watched_ms = models.PositiveIntegerField()
    completed = models.BooleanField(default=False)

    class Meta:
        indexes = [
            models.Index(fields=["video", "created_at"], name="play_video_time_idx"),
            models.Index(fields=["video", "user"], name="play_video_user_idx"),
            models.Index(fields=["user", "created_at"], name="play_user_time_idx"),
            # analytics: one quarter hour (a day) of every user's rows, by time
            models.Index(fields=["created_at"], name="play_time_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.user_id} played video {self.video_id}"


class Follow(Interaction):
    """`user` follows `creator`; `source_video` is the video the follow came from, if any."""

    creator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="followers", db_index=False
    )
    source_video = models.ForeignKey(
        Video, null=True, blank=True, on_delete=models.SET_NULL, related_name="follows_gained"
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "creator"], name="follow_unique_user_creator"),
            models.CheckConstraint(condition=~Q(user=F("creator")), name="follow_not_self"),
        ]
        indexes = [models.Index(fields=["creator", "created_at"], name="follow_creator_time_idx")]

    def __str__(self) -> str:
        return f"{self.user_id} follows {self.creator_id}"


class ReportTargetType(models.TextChoices):
    USER = "user"
    VIDEO = "video"
    COMMENT = "comment"


class ReportStatus(models.TextChoices):
    OPEN = "open"
    ACTIONED = "actioned"
    DISMISSED = "dismissed"


class Report(models.Model):
    """A user's report of a user, video or comment, for staff to review (SPEC §3 Reports).

    A reporter has at most one *open* report per target (a partial unique constraint), so a
    repeated report answers with the open one; once staff action or dismiss it, a new report
    can open. Like interaction rows it keeps the reporter's IP and device: reports are an
    integrity signal, and a burst of reports from one device is evidence too. The target is a
    (type, id) pair, not a foreign key: one table for three kinds of target, read by integrity
    through the (target_type, target_id, status) index.
    """

    TargetType = ReportTargetType
    Status = ReportStatus

    REASON_MAX_LENGTH = 500
    REVIEW_NOTE_MAX_LENGTH = 1000

    reporter = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="reports_filed",
        db_index=False,
    )
    target_type = models.CharField(max_length=16, choices=TargetType.choices)
    target_id = models.BigIntegerField()
    reason = models.CharField(max_length=REASON_MAX_LENGTH)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN)
    created_at = models.DateTimeField(auto_now_add=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    device_id = models.CharField(max_length=128, blank=True)
    reviewed_at = models.DateTimeField(null=True, blank=True)
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="reports_reviewed",
    )
    review_note = models.CharField(max_length=REVIEW_NOTE_MAX_LENGTH, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["reporter", "target_type", "target_id"],
                condition=Q(status=ReportStatus.OPEN),
                name="report_one_open_per_target",
            ),
            models.CheckConstraint(
                condition=Q(target_type__in=ReportTargetType.values),
                name="report_target_type_valid",
            ),
            models.CheckConstraint(condition=Q(target_id__gt=0), name="report_target_id_positive"),
            models.CheckConstraint(
                condition=Q(status__in=ReportStatus.values),
                name="report_status_valid",
            ),
            models.CheckConstraint(condition=~Q(reason=""), name="report_reason_not_empty"),
            # An open report has no review; a reviewed one says when (its reviewer may be
            # deleted later, so reviewed_by is not required).
            models.CheckConstraint(
                condition=(Q(status=ReportStatus.OPEN) & Q(reviewed_at__isnull=True))
                | (~Q(status=ReportStatus.OPEN) & Q(reviewed_at__isnull=False)),
                name="report_reviewed_iff_not_open",
            ),
        ]
        indexes = [
            # GET me/reports (newest first) and the user's admin page; covers the reporter FK.
            models.Index(fields=["reporter", "-id"], name="report_reporter_idx"),
            # Integrity and the admin: the reports of one target, by status.
            models.Index(fields=["target_type", "target_id", "status"], name="report_target_idx"),
            # The admin's review queue: open reports, oldest first.
            models.Index(fields=["status", "created_at"], name="report_status_time_idx"),
        ]

    def __str__(self) -> str:
        return f"report {self.pk}: {self.target_type} {self.target_id} ({self.status})"


# --- records of changes that leave no row behind -------------------------------------------------
class InteractionKind(models.TextChoices):
    """The interaction tables, by the name their flip and removal records use."""

    LIKE = "like"
    COMMENT_LIKE = "comment_like"
    COMMENT = "comment"
    SHARE = "share"
    PLAY = "play"
    FOLLOW = "follow"


# Kinds whose rows their users can take back (the rest are never deleted by a request).
REMOVABLE_KINDS = [
    InteractionKind.LIKE.value,
    InteractionKind.COMMENT_LIKE.value,
    InteractionKind.FOLLOW.value,
]


class CountedFlip(models.Model):
    """One row per interaction row whose `counted` flag a flip changed (SPEC §2.4, §5).

    Written only by `engagement.services.counted`, in the transaction of the flip; append-only
    (a trigger refuses UPDATE). Consumers read it by id past a watermark, with a safety lag on
    `created_at` (when the flip was recorded): an id watermark over the interaction tables never
    sees a later flip of a row it has passed. No foreign keys: a record outlives its row, and an
    insert of a million records checks no parent. See docs/counted-flips.md.
    """

    id = models.BigAutoField(primary_key=True)
    kind = models.CharField(max_length=16, choices=InteractionKind.choices)
    row_id = models.BigIntegerField()
    # Who made the interaction; its target (video, comment for a comment like, creator for a
    # follow); its video (a comment like's comment's video, a follow's source video or null).
    user_id = models.BigIntegerField()
    target_id = models.BigIntegerField()
    video_id = models.BigIntegerField(null=True, blank=True)
    # The flag's new value.
    counted = models.BooleanField()
    interaction_created_at = models.DateTimeField()
    created_at = models.DateTimeField()

    class Meta:
        verbose_name = "counted flip"

    def __str__(self) -> str:
        state = "counted" if self.counted else "uncounted"
        return f"{self.kind} {self.row_id} {state}"


class Removal(models.Model):
    """One row per like, comment like or follow that its user took back (unlike, unfollow).

    The interaction tables hold current state, so a removal deletes the row; this record, written
    by the same statement, keeps what was removed for the consumers (churn). Append-only, read by
    id past a watermark with a safety lag on `created_at` (when the removal happened).
    """

    id = models.BigAutoField(primary_key=True)
    kind = models.CharField(max_length=16, choices=InteractionKind.choices)
    # The removed row: who, its target (video, comment or creator), its video (a comment like's
    # comment's video, a follow's source video or null), its flag and its time.
    row_id = models.BigIntegerField()
    user_id = models.BigIntegerField()
    target_id = models.BigIntegerField()
    video_id = models.BigIntegerField(null=True, blank=True)
    counted = models.BooleanField()
    interaction_created_at = models.DateTimeField()
    created_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(kind__in=REMOVABLE_KINDS), name="removal_kind_removable"
            ),
        ]
        # "Removals of this video in a window" (an analytics rollup recomputing a video's churn)
        # without scanning the table; the watermark read goes by the primary key.
        indexes = [models.Index(fields=["video_id", "created_at"], name="removal_video_time_idx")]

    def __str__(self) -> str:
        return f"{self.user_id} removed {self.kind} {self.row_id}"
