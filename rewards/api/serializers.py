from rest_framework import serializers

from rewards.models import ActivityEvent, Badge, Entitlement, Grant
from rewards.selectors import activity_text, entitlement_status


class BadgeSerializer(serializers.ModelSerializer):
    creator_id = serializers.IntegerField(allow_null=True, read_only=True)

    class Meta:
        model = Badge
        fields = ["id", "slug", "name", "description", "image_url", "creator_id", "expires_at"]


class MyBadgeSerializer(serializers.ModelSerializer):
    badge = BadgeSerializer(read_only=True)
    rule = serializers.CharField(source="rule.name", read_only=True)

    class Meta:
        model = Grant
        fields = ["id", "badge", "rule", "period_key", "granted_at"]


class PerkSummarySerializer(serializers.Serializer):
    id = serializers.IntegerField()
    slug = serializers.CharField()
    name = serializers.CharField()
    description = serializers.CharField()
    valid_until = serializers.DateTimeField(allow_null=True)


class EntitlementSerializer(serializers.ModelSerializer):
    perk = PerkSummarySerializer(read_only=True)
    status = serializers.SerializerMethodField()
    rule = serializers.CharField(source="grant.rule.name", read_only=True)

    class Meta:
        model = Entitlement
        fields = ["id", "perk", "rule", "status", "created_at", "redeemed_at", "code"]

    def get_status(self, entitlement: Entitlement) -> str:
        return entitlement_status(entitlement)


class RedeemOutputSerializer(serializers.Serializer):
    entitlement_id = serializers.IntegerField()
    code = serializers.CharField()
    redeemed_at = serializers.DateTimeField()


class ActivitySerializer(serializers.ModelSerializer):
    text = serializers.SerializerMethodField()

    class Meta:
        model = ActivityEvent
        fields = ["id", "kind", "text", "video_id", "data", "created_at"]

    def get_text(self, event: ActivityEvent) -> str:
        return activity_text(event)
