"""Tallies, closing and finalization. Every task is safe to run twice (acks_late)."""

from celery import shared_task

from polls.services import tally


@shared_task(acks_late=True)
def refresh_dirty_tallies() -> int:
    return len(tally.tallies_refresh_dirty())


@shared_task(acks_late=True)
def sweep_tallies() -> int:
    return len(tally.tallies_sweep())


@shared_task(acks_late=True)
def close_due_stickers() -> int:
    """Open scheduled stickers, close due ones and queue finalization of every closed one."""
    tally.stickers_open_due()
    closed = tally.stickers_close_due()
    for sticker_id in closed:
        tally.finalize_request(sticker_id=sticker_id)
    return len(closed)


@shared_task(acks_late=True)
def finalize_sticker(sticker_id: int) -> bool:
    return tally.sticker_finalize(sticker_id=sticker_id)


@shared_task(acks_late=True)
def recount_sticker(sticker_id: int) -> bool:
    return tally.sticker_recount(sticker_id=sticker_id)
