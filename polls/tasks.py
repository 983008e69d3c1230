"""Live tallies, closing and finalization. Every task is safe to run twice (acks_late).

Task names are the dotted paths of these functions: beat schedules, routes and queued messages
name them, so a task keeps its name (and this module its path) when its service moves.
"""

from celery import shared_task

from polls.services import finalizing, lifecycle, tallies


@shared_task(acks_late=True)
def refresh_dirty_tallies() -> int:
    return len(tallies.tallies_refresh_dirty())


@shared_task(acks_late=True)
def sweep_tallies() -> int:
    return len(tallies.tallies_sweep())


@shared_task(acks_late=True)
def close_due_stickers() -> int:
    """Open scheduled stickers, close due ones and enqueue finalization of every closed one."""
    lifecycle.stickers_open_due()
    closed = lifecycle.stickers_close_due()
    for sticker_id in closed:
        finalizing.finalize_enqueue(sticker_id=sticker_id)
    return len(closed)


@shared_task(acks_late=True)
def finalize_sticker(sticker_id: int) -> bool:
    return finalizing.sticker_finalize(sticker_id=sticker_id)


@shared_task(acks_late=True)
def recount_sticker(sticker_id: int) -> bool:
    return finalizing.sticker_recount(sticker_id=sticker_id)
