"""Discovery tables: the heat of each video and the per-slice trending rollups (docs/discovery.md).

Everything here is derived from the interaction tables and can be rebuilt from them
(`heat_rebuild`, `trending_rebuild`); the analytics consumers keep it current incrementally.
"""

from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import Q

from engagement.models import Video


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
