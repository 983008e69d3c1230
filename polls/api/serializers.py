from typing import Any

from rest_framework import serializers

from core.fields import StrictBooleanField, StrictCharField, StrictIntegerField
from polls.models import Sticker
from polls.services.authoring import CheckpointSpec

ID_MAX = 2**63 - 1
MAX_VOTE_OPTIONS = 10


class PayloadSerializer(serializers.Serializer):
    text = StrictCharField(max_length=5000, required=False, allow_blank=True)
    media_url = serializers.URLField(max_length=2000, required=False, allow_blank=True)

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        if not isinstance(data, dict):
            raise serializers.ValidationError("Must be an object with text and/or media_url.")
        unknown = set(data) - {"text", "media_url"}
        if unknown:
            raise serializers.ValidationError(f"Unknown keys: {sorted(unknown)}.")
        return super().to_internal_value(data)


class OptionInputSerializer(serializers.Serializer):
    label = StrictCharField(max_length=120)  # type: ignore[assignment]
    payload = PayloadSerializer(required=False, allow_null=True)


class CheckpointOptionInputSerializer(serializers.Serializer):
    label = StrictCharField(max_length=120)  # type: ignore[assignment]


class CheckpointInputSerializer(serializers.Serializer):
    at_ms = StrictIntegerField(min_value=0, max_value=10 * 60 * 60 * 1000)
    question = StrictCharField(max_length=300)
    options = serializers.ListField(child=CheckpointOptionInputSerializer(), max_length=6)
    correct = serializers.ListField(
        child=StrictIntegerField(min_value=0, max_value=5), max_length=6, allow_empty=False
    )
    explanation = StrictCharField(max_length=1000, required=False, allow_blank=True, default="")

    def to_internal_value(self, data: Any) -> CheckpointSpec:  # type: ignore[override]
        values = super().to_internal_value(data)
        return CheckpointSpec(
            at_ms=values["at_ms"],
            question=values["question"],
            options=[option["label"] for option in values["options"]],
            correct=values["correct"],
            explanation=values["explanation"],
        )


class StickerChangeSerializer(serializers.Serializer):
    """The fields a PATCH may change (and, with `kind`, what a POST sends)."""

    prompt = StrictCharField(max_length=300)
    options = serializers.ListField(child=OptionInputSerializer(), max_length=10, required=False)
    max_choices = StrictIntegerField(min_value=1, max_value=10, required=False)
    results_visibility = serializers.ChoiceField(choices=Sticker.Visibility.choices, required=False)
    allow_vote_change = StrictBooleanField(required=False)
    opens_at = serializers.DateTimeField(required=False)
    closes_at = serializers.DateTimeField(required=False, allow_null=True)
    checkpoints = serializers.ListField(
        child=CheckpointInputSerializer(), max_length=20, required=False
    )
    payload = PayloadSerializer(required=False, allow_null=True)


class StickerCreateSerializer(StickerChangeSerializer):
    kind = serializers.ChoiceField(choices=Sticker.Kind.choices)


class VoteInputSerializer(serializers.Serializer):
    option_ids = serializers.ListField(
        child=StrictIntegerField(min_value=1, max_value=ID_MAX), max_length=MAX_VOTE_OPTIONS
    )


class AnswerInputSerializer(serializers.Serializer):
    option_ids = serializers.ListField(
        child=StrictIntegerField(min_value=1, max_value=ID_MAX), max_length=6
    )


class ModerateInputSerializer(serializers.Serializer):
    reason = StrictCharField(max_length=500, required=False, allow_blank=True, default="")


# --- output (documents the shapes the selectors build) ---------------------------------------
class StickerOptionOutSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    label = serializers.CharField()  # type: ignore[assignment]
    payload = serializers.JSONField(
        required=False, allow_null=True, help_text="ending: only the winner's, once final"
    )
    locked = serializers.BooleanField(required=False)


class CheckpointOptionOutSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    label = serializers.CharField()  # type: ignore[assignment]


class CheckpointOutSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    at_ms = serializers.IntegerField()
    question = serializers.CharField()
    options = CheckpointOptionOutSerializer(many=True)
    answered = serializers.BooleanField()
    correct_option_ids = serializers.ListField(child=serializers.IntegerField(), allow_null=True)
    explanation = serializers.CharField(allow_null=True)


class ProgressSerializer(serializers.Serializer):
    answered = serializers.IntegerField()
    total = serializers.IntegerField()
    correct = serializers.IntegerField()
    completed = serializers.BooleanField()


class ViewerVoteSerializer(serializers.Serializer):
    option_ids = serializers.ListField(child=serializers.IntegerField())
    voted_at = serializers.DateTimeField()


class ViewerAnswerSerializer(serializers.Serializer):
    checkpoint_id = serializers.IntegerField()
    option_ids = serializers.ListField(child=serializers.IntegerField())
    correct = serializers.BooleanField()


class StickerViewerSerializer(serializers.Serializer):
    vote = ViewerVoteSerializer(allow_null=True)
    answers = ViewerAnswerSerializer(many=True)
    progress = ProgressSerializer(allow_null=True)
    unlocked = serializers.BooleanField(allow_null=True)


class StickerSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    video_id = serializers.IntegerField()
    kind = serializers.ChoiceField(choices=Sticker.Kind.choices)
    prompt = serializers.CharField()
    state = serializers.ChoiceField(choices=Sticker.State.choices)
    opens_at = serializers.DateTimeField()
    closes_at = serializers.DateTimeField(allow_null=True)
    max_choices = serializers.IntegerField()
    results_visibility = serializers.ChoiceField(choices=Sticker.Visibility.choices)
    allow_vote_change = serializers.BooleanField()
    options = StickerOptionOutSerializer(many=True)
    checkpoints = CheckpointOutSerializer(many=True)
    payload = serializers.JSONField(
        allow_null=True, help_text="unlock: only once the viewer liked the video"
    )
    winner_option_id = serializers.IntegerField(allow_null=True)
    winner_comment_id = serializers.IntegerField(allow_null=True)
    created_at = serializers.DateTimeField()
    viewer = StickerViewerSerializer()


class VoteOutSerializer(serializers.Serializer):
    sticker_id = serializers.IntegerField()
    option_ids = serializers.ListField(child=serializers.IntegerField())
    voted_at = serializers.DateTimeField()
    changed = serializers.BooleanField()


class AnswerOutSerializer(serializers.Serializer):
    correct = serializers.BooleanField()
    correct_option_ids = serializers.ListField(child=serializers.IntegerField())
    explanation = serializers.CharField()
    progress = ProgressSerializer()


class ResultOptionSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    label = serializers.CharField()  # type: ignore[assignment]
    votes = serializers.IntegerField()
    percent = serializers.FloatField()


class LeaderboardEntrySerializer(serializers.Serializer):
    comment_id = serializers.IntegerField()
    likes = serializers.IntegerField()


class ResultsSerializer(serializers.Serializer):
    sticker_id = serializers.IntegerField()
    state = serializers.ChoiceField(choices=Sticker.State.choices)
    final = serializers.BooleanField()
    as_of = serializers.DateTimeField(allow_null=True)
    total_votes = serializers.IntegerField()
    options = ResultOptionSerializer(many=True, required=False)
    winner_option_id = serializers.IntegerField(allow_null=True, required=False)
    leaderboard = LeaderboardEntrySerializer(many=True, required=False)
    winner_comment_id = serializers.IntegerField(allow_null=True, required=False)
