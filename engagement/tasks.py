from celery import shared_task

from engagement.services.accounts import tokens_expired_purge
from engagement.services.counters import video_counters_recount


@shared_task(acks_late=True)
def recount_video_counters(video_id: int) -> dict[str, int] | None:
    """Rebuild a video's counters from its counted rows (after an integrity decision, or repair)."""
    return video_counters_recount(video_id=video_id)


@shared_task(acks_late=True)
def purge_expired_tokens() -> int:
    return tokens_expired_purge()
