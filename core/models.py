from django.conf import settings
from django.db import models


class IdempotencyRecord(models.Model):
    """The recorded response to the first POST carrying an `Idempotency-Key`, replayed to retries.

    Written at the end of the request in the transaction of its effect (core.idempotency), so a
    row exists exactly when the effect committed. Responses of 5xx are not kept, so a retry after
    a server failure runs again.
    """

    # (the unique (user, key) constraint is the user index)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, db_index=False)
    key = models.CharField(max_length=255)
    request_fingerprint = models.CharField(max_length=64)
    response_status = models.PositiveSmallIntegerField()
    # The JSON text as first sent (a text column keeps the key order jsonb would not).
    response_body = models.TextField(blank=True)
    response_headers = models.JSONField(default=dict, blank=True)
    # When the response was recorded (the key expires IDEMPOTENCY_KEY_TTL later).
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "key"], name="idempotency_unique_user_key"),
        ]
        indexes = [models.Index(fields=["created_at"], name="idempotency_created_idx")]

    def __str__(self) -> str:
        return f"{self.user_id}:{self.key} ({self.response_status})"


class Watermark(models.Model):
    """How far one consumer has read one event source (core.eventlog).

    Named `<consumer>:<source>` ("rewards:likes"), so the consumers to come keep their own
    positions over the same tables. `position` is an id for sources read by id (everything up
    to it is done) or microseconds since the epoch for sources read by time.
    """

    name = models.CharField(max_length=64, primary_key=True)
    position = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.name} @ {self.position}"
