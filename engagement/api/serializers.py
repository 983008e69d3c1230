from django.contrib.auth.validators import UnicodeUsernameValidator
from rest_framework import serializers

from core.fields import StrictBooleanField, StrictCharField, StrictIntegerField, StrictRegexField
from engagement.models import Comment, Play, Report, Share, User, Video

MAX_DURATION_MS = 10 * 60 * 60 * 1000  # ten hours


# --- accounts ----------------------------------------------------------------------------------
class RegisterInputSerializer(serializers.Serializer):
    username = StrictCharField(
        min_length=3, max_length=150, validators=[UnicodeUsernameValidator()]
    )
    password = StrictCharField(min_length=8, max_length=128, write_only=True, trim_whitespace=False)
    display_name = StrictCharField(max_length=64, required=False, allow_blank=True, default="")

    def validate_username(self, value: str) -> str:
        if User.objects.filter(username__iexact=value).exists():
            raise serializers.ValidationError(
                "A user with that username already exists.", code="unique"
            )
        return value


class LoginInputSerializer(serializers.Serializer):
    username = StrictCharField(max_length=150)
    password = StrictCharField(max_length=128, trim_whitespace=False)


class TokenOutputSerializer(serializers.Serializer):
    token = StrictCharField()
    expiry = serializers.DateTimeField(allow_null=True)


class UserPublicSerializer(serializers.ModelSerializer):
    class Meta:
        model = User
        fields = ["id", "username", "display_name"]


class RegisterOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    username = StrictCharField()
    display_name = StrictCharField()
    token = StrictCharField()
    expiry = serializers.DateTimeField(allow_null=True)


class MeSerializer(serializers.ModelSerializer):
    joined_at = serializers.DateTimeField(source="date_joined", read_only=True)

    class Meta:
        model = User
        fields = ["id", "username", "display_name", "is_staff", "joined_at"]
        read_only_fields = ["id", "username", "is_staff", "joined_at"]


class MeUpdateSerializer(serializers.Serializer):
    display_name = StrictCharField(max_length=64, allow_blank=False)


# --- videos ------------------------------------------------------------------------------------
class HashtagField(StrictCharField):
    def __init__(self, **kwargs: object) -> None:
        super().__init__(max_length=100, **kwargs)  # type: ignore[arg-type]

    def to_internal_value(self, data: object) -> str:
        value = super().to_internal_value(data)
        name = value.lstrip("#")
        if not name or not all(ch.isalnum() or ch == "_" for ch in name):
            raise serializers.ValidationError(
                "A hashtag is letters, digits and underscores, optionally after '#'."
            )
        return name.lower()


class VideoCreateSerializer(serializers.Serializer):
    title = StrictCharField(max_length=200)
    caption = StrictCharField(max_length=2200, required=False, allow_blank=True, default="")
    hashtags = serializers.ListField(
        child=HashtagField(), required=False, max_length=30, default=list
    )
    duration_ms = StrictIntegerField(min_value=1, max_value=MAX_DURATION_MS)


class VideoCountsSerializer(serializers.Serializer):
    likes = serializers.IntegerField()
    comments = serializers.IntegerField()
    shares = serializers.IntegerField()
    plays = serializers.IntegerField()


class VideoViewerSerializer(serializers.Serializer):
    liked = serializers.BooleanField()


class VideoSerializer(serializers.ModelSerializer):
    creator = UserPublicSerializer(read_only=True)
    hashtags = serializers.SerializerMethodField()
    counts = VideoCountsSerializer(read_only=True)
    viewer = serializers.SerializerMethodField()

    class Meta:
        model = Video
        fields = [
            "id",
            "creator",
            "title",
            "caption",
            "hashtags",
            "duration_ms",
            "created_at",
            "counts",
            "viewer",
        ]

    def get_hashtags(self, video: Video) -> list[str]:
        return [tag.name for tag in video.hashtags.all()]

    def get_viewer(self, video: Video) -> dict:
        return {"liked": getattr(video, "viewer_liked", False)}


class LikeStateSerializer(serializers.Serializer):
    liked = serializers.BooleanField()
    likes = serializers.IntegerField()


# --- comments ----------------------------------------------------------------------------------
class CommentCreateSerializer(serializers.Serializer):
    text = StrictCharField(max_length=2000)


class CommentSerializer(serializers.ModelSerializer):
    user = UserPublicSerializer(read_only=True)
    likes = serializers.IntegerField(source="like_count", read_only=True)
    viewer = serializers.SerializerMethodField()

    class Meta:
        model = Comment
        fields = ["id", "video_id", "user", "text", "created_at", "likes", "viewer"]

    def get_viewer(self, comment: Comment) -> dict:
        return {"liked": getattr(comment, "viewer_liked", False)}


class CommentLikeStateSerializer(serializers.Serializer):
    liked = serializers.BooleanField()
    likes = serializers.IntegerField()


# --- shares, plays, follows --------------------------------------------------------------------
class ShareCreateSerializer(serializers.Serializer):
    channel = StrictRegexField(r"^[a-z0-9_.-]{1,32}$", required=False, default="", allow_blank=True)


class ShareSerializer(serializers.ModelSerializer):
    class Meta:
        model = Share
        fields = ["id", "video_id", "channel", "created_at"]


class PlayCreateSerializer(serializers.Serializer):
    watched_ms = StrictIntegerField(min_value=0, max_value=MAX_DURATION_MS)
    completed = StrictBooleanField()


class PlaySerializer(serializers.ModelSerializer):
    replay = serializers.BooleanField(read_only=True)

    class Meta:
        model = Play
        fields = ["id", "video_id", "watched_ms", "completed", "replay", "created_at"]


class FollowInputSerializer(serializers.Serializer):
    video_id = StrictIntegerField(
        required=False, min_value=1, max_value=2**63 - 1, allow_null=True, default=None
    )


class FollowStateSerializer(serializers.Serializer):
    creator_id = serializers.IntegerField()
    following = serializers.BooleanField()


# --- reports -----------------------------------------------------------------------------------
class ReportCreateSerializer(serializers.Serializer):
    target_type = serializers.ChoiceField(choices=Report.TargetType.choices)
    target_id = StrictIntegerField(min_value=1, max_value=2**63 - 1)
    reason = StrictCharField(min_length=1, max_length=Report.REASON_MAX_LENGTH)


class ReportSerializer(serializers.ModelSerializer):
    class Meta:
        model = Report
        fields = ["id", "target_type", "target_id", "reason", "status", "created_at"]
