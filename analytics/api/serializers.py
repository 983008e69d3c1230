"""Response shapes of the creator-centre documents (for the OpenAPI schema; the selectors build
the documents)."""

from rest_framework import serializers


class WindowSerializer(serializers.Serializer):
    days = serializers.IntegerField()
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()


class TotalsSerializer(serializers.Serializer):
    plays = serializers.IntegerField()
    likes = serializers.IntegerField()
    comments = serializers.IntegerField()
    shares = serializers.IntegerField()
    follows_gained = serializers.IntegerField()
    interactions = serializers.IntegerField()


class FanActivitySerializer(serializers.Serializer):
    timezone = serializers.CharField()
    grid = serializers.ListField(
        child=serializers.ListField(child=serializers.IntegerField(), min_length=24, max_length=24),
        min_length=7,
        max_length=7,
        help_text="7 rows (Monday first) of 24 local hours.",
    )


class InterestSerializer(serializers.Serializer):
    hashtag = serializers.CharField()
    plays = serializers.IntegerField()
    likes = serializers.IntegerField()
    like_rate = serializers.FloatField(allow_null=True)


class ToolGroupSerializer(serializers.Serializer):
    videos = serializers.IntegerField()
    plays = serializers.IntegerField()
    interactions = serializers.IntegerField()
    first_hour_velocity = serializers.FloatField(allow_null=True)


class ToolEffectSerializer(serializers.Serializer):
    with_tools = ToolGroupSerializer()
    without_tools = ToolGroupSerializer()
    lift = serializers.FloatField(allow_null=True)


class _AnalyticsSerializer(serializers.Serializer):
    as_of = serializers.DateTimeField(
        allow_null=True, help_text="Every interaction committed before this time is counted."
    )
    window = WindowSerializer()
    totals = TotalsSerializer()
    interaction_rate = serializers.FloatField(allow_null=True)
    interaction_growth_rate = serializers.FloatField(allow_null=True)
    first_hour_velocity = serializers.FloatField(allow_null=True)
    completion_rate = serializers.FloatField(allow_null=True)
    replay_rate = serializers.FloatField(allow_null=True)
    effective_comment_share = serializers.FloatField(allow_null=True)
    quick_like_share = serializers.FloatField(allow_null=True)
    fan_activity = FanActivitySerializer()


class CreatorAnalyticsSerializer(_AnalyticsSerializer):
    interest_preferences = InterestSerializer(many=True)
    tool_effect = ToolEffectSerializer()


class FirstHourSerializer(serializers.Serializer):
    plays = serializers.IntegerField()
    interactions = serializers.IntegerField()
    velocity = serializers.FloatField(allow_null=True)


class StickerParticipantsSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    kind = serializers.CharField()
    state = serializers.CharField()
    participants = serializers.IntegerField()


class VideoAnalyticsSerializer(_AnalyticsSerializer):
    first_hour = FirstHourSerializer()
    stickers = StickerParticipantsSerializer(many=True)
