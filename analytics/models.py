"""The analytics tables: the creator centre's rollups (docs/analytics.md, "Rollups"), the heat
of each video and the per-slice trending rollups (docs/discovery.md).

Every table is derived from the interaction rows and can be rebuilt from them
(`analytics.services.rollups.analytics_rollups_rebuild`, `heat_rebuild`, `trending_rebuild`);
the analytics consumers keep them current incrementally. Rollup buckets are UTC quarter hours
(`date_bin('15 minutes', created_at, '2000-01-01Z')`): every zone offset in use is a multiple of
15 minutes and DST changes happen on quarter hours, so a bucket lies in exactly one local hour of
any IANA zone. Rollup ids are plain integers, not foreign keys: the rollups are rewritten by
set-based statements and must not cascade or check parents on every write.
"""

from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import Q

from engagement.models import Video

COUNTERS = (
    "plays",
    "completed_plays",
    "replays",
    "likes",
    "quick_likes",
    "comments",
    "effective_comments",
    "shares",
    "follows_gained",
)


class _Row(models.Model):
    class Meta:
        abstract = True

    def __str__(self) -> str:
        return f"{type(self).__name__} {self.pk}"


class _Counts(_Row):
    plays = models.BigIntegerField(default=0)
    completed_plays = models.BigIntegerField(default=0)
    replays = models.BigIntegerField(default=0)
    likes = models.BigIntegerField(default=0)
    quick_likes = models.BigIntegerField(default=0)
    comments = models.BigIntegerField(default=0)
    effective_comments = models.BigIntegerField(default=0)
    shares = models.BigIntegerField(default=0)
    follows_gained = models.BigIntegerField(default=0)

    class Meta:
        abstract = True


class VideoBucket(_Counts):
    """A video's counted figures made in one UTC quarter hour, plus `follower_events`: the
    counted likes, comments, shares and plays on it by users who follow its creator now."""

    video_id = models.BigIntegerField()
    creator_id = models.BigIntegerField()
    bucket = models.DateTimeField()
    follower_events = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["video_id", "bucket"], name="videobucket_unique")
        ]


class CreatorBucket(_Counts):
    """The sum of the creator's `VideoBucket` rows of one quarter hour (kept by the deltas of
    those rows), so a creator's read does not grow with the number of videos."""

    creator_id = models.BigIntegerField()
    bucket = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["creator_id", "bucket"], name="creatorbucket_unique")
        ]


class VideoTotal(_Row):
    """A video's lifetime counted plays and interactions (deltas of its buckets) and its own
    first hour `[published_at, published_at + 1 hour)` (recomputed from the rows whenever a
    row in that hour changes)."""

    video_id = models.BigIntegerField(primary_key=True)
    creator_id = models.BigIntegerField()
    published_at = models.DateTimeField()
    plays = models.BigIntegerField(default=0)
    interactions = models.BigIntegerField(default=0)
    first_hour_plays = models.BigIntegerField(default=0)
    first_hour_interactions = models.BigIntegerField(default=0)

    class Meta:
        indexes = [
            models.Index(fields=["creator_id", "published_at"], name="videototal_creator_idx")
        ]


class FanLink(_Row):
    """The follows whose user's activity is included in the creator's fan rollups: exactly the
    counted follows, as of the consumer's last pass."""

    user_id = models.BigIntegerField()
    creator_id = models.BigIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user_id", "creator_id"], name="fanlink_unique")
        ]
        indexes = [models.Index(fields=["creator_id"], name="fanlink_creator_idx")]


class CreatorFanBucket(_Row):
    """The counted likes, comments, shares and plays (anywhere) made in one quarter hour by the
    creator's `FanLink` users. Recounted per dirty (creator, quarter hour) cell from the rows;
    a cell that counts 0 has no row."""

    creator_id = models.BigIntegerField()
    bucket = models.DateTimeField()
    events = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["creator_id", "bucket"], name="creatorfanbucket_unique")
        ]


class CreatorHashtagDay(_Row):
    """The counted plays and likes made in one UTC day by the creator's `FanLink` users on
    videos carrying the hashtag (anywhere). Recounted per dirty (creator, day) cell from the
    rows; a day, not a quarter hour, because (creator x hashtag) is wide and the interests need
    no finer time than the window's ragged start, which the read takes from the rows."""

    creator_id = models.BigIntegerField()
    day = models.DateTimeField()
    hashtag_id = models.BigIntegerField()
    plays = models.BigIntegerField(default=0)
    likes = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["creator_id", "day", "hashtag_id"], name="creatorhashtagday_unique"
            )
        ]


class CommentKey(_Row):
    """What the Unicode rules say about one comment (analytics.comments), computed once in
    Python: `hollow`, and the sha256 of its repeat key. A comment is effective when it is not
    hollow and no counted comment of the same user with the same key precedes it."""

    comment_id = models.BigIntegerField(primary_key=True)
    user_id = models.BigIntegerField()
    video_id = models.BigIntegerField()
    created_at = models.DateTimeField()
    key_hash = models.BinaryField(max_length=32)
    hollow = models.BooleanField()

    class Meta:
        indexes = [
            models.Index(
                fields=["user_id", "key_hash", "created_at"], name="commentkey_repeat_idx"
            ),
            models.Index(fields=["video_id", "created_at"], name="commentkey_video_time_idx"),
        ]


class VideoHeat(models.Model):
    """A video's heat and the counts it is made of (counted likes only)."""

    video = models.OneToOneField(
        Video, primary_key=True, on_delete=models.CASCADE, related_name="heat"
    )
    # The video's created_at, copied so the list's index breaks ties by the newer video.
    published_at = models.DateTimeField()
    likes = models.BigIntegerField(default=0)
    deep_likes = models.BigIntegerField(default=0)
    first_hour_likes = models.BigIntegerField(default=0)
    points = models.BigIntegerField(default=0)
    heat = models.FloatField()
    updated_at = models.DateTimeField()

    class Meta:
        indexes = [
            # GET videos/hot: the first `limit` rows of this index, videos with a counted like.
            models.Index(
                models.F("heat").desc(),
                models.F("published_at").desc(),
                models.F("video").desc(),
                name="videoheat_hot_idx",
                condition=Q(points__gte=1),
            )
        ]

    def __str__(self) -> str:
        return f"video {self.video_id} heat {self.heat:.4f}"


class ActivityBucket(models.Model):
    """Counted interactions in a bucket of time and up to 3 distinct users who made them.

    `users` holds the smallest min(3, distinct) user ids of the bucket: enough to decide
    "at least 3 distinct users" exactly over any union of buckets (docs/discovery.md).
    """

    id = models.BigAutoField(primary_key=True)
    interactions = models.BigIntegerField()
    users = ArrayField(models.BigIntegerField(), default=list)

    class Meta:
        abstract = True


class VideoSlice(ActivityBucket):
    """A video's counted interactions in one 10-second slice."""

    video_id = models.BigIntegerField()
    slice = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["video_id", "slice"], name="videoslice_unique")
        ]
        indexes = [models.Index(fields=["slice", "video_id"], name="videoslice_slice_idx")]

    def __str__(self) -> str:
        return f"video {self.video_id} at {self.slice:%Y-%m-%d %H:%M:%S}: {self.interactions}"


class TagSlice(ActivityBucket):
    """A hashtag's counted interactions in one 10-second slice (the sum over its videos)."""

    hashtag_id = models.BigIntegerField()
    slice = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["hashtag_id", "slice"], name="tagslice_unique")
        ]
        indexes = [models.Index(fields=["slice", "hashtag_id"], name="tagslice_slice_idx")]

    def __str__(self) -> str:
        return f"tag {self.hashtag_id} at {self.slice:%Y-%m-%d %H:%M:%S}: {self.interactions}"


class TagHour(ActivityBucket):
    """A hashtag's counted interactions in one UTC hour (the sum of its slices)."""

    hashtag_id = models.BigIntegerField()
    hour = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["hashtag_id", "hour"], name="taghour_unique")
        ]
        indexes = [models.Index(fields=["hour", "hashtag_id"], name="taghour_hour_idx")]

    def __str__(self) -> str:
        return f"tag {self.hashtag_id} at {self.hour:%Y-%m-%d %H}h: {self.interactions}"
