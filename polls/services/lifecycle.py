"""A sticker's state changes: by the clock (opening and closing due stickers: the closing sweep)
and by people (closing, canceling, moderating: the video's creator or staff).

Every closed sticker is then finalized (polls.services.finalizing). The stored state lags the
clock between sweeps; readers derive the state now with polls.state.
"""

from django.db import connection, transaction
from django.utils import timezone

from core.db import sql_literals
from core.exceptions import Conflict, Forbidden, NotFound
from engagement.models import User
from polls.locks import sticker_and_video_for_update
from polls.models import Sticker
from polls.services.finalizing import finalize_enqueue
from polls.services.results_cache import sticker_cache_forget
from polls.state import CLOCK_DRIVEN, TERMINAL, sticker_state
from polls.visibility import check_sticker_visible, is_creator_or_staff

_STICKER = Sticker._meta.db_table
_OPEN = sql_literals([Sticker.State.OPEN])
_SCHEDULED = sql_literals([Sticker.State.SCHEDULED])
_CLOSED = sql_literals([Sticker.State.CLOSED])

# Scheduled stickers whose opens_at has passed (and closes_at has not) become open.
OPEN_DUE_SQL = f"""
    UPDATE {_STICKER} SET state = {_OPEN}, updated_at = now()
    WHERE state = {_SCHEDULED} AND opens_at <= now()
      AND (closes_at IS NULL OR closes_at > now())
    RETURNING id
"""
# Scheduled or open stickers whose closes_at has passed become closed, at closes_at.
CLOSE_DUE_SQL = f"""
    UPDATE {_STICKER}
    SET state = {_CLOSED}, closed_at = closes_at, updated_at = now()
    WHERE state IN ({sql_literals(CLOCK_DRIVEN)}) AND closes_at <= now()
    RETURNING id
"""
AWAITING_FINAL_SQL = f"SELECT id FROM {_STICKER} WHERE state = {_CLOSED}"


def stickers_open_due() -> int:
    with connection.cursor() as cursor:
        cursor.execute(OPEN_DUE_SQL)
        opened = [row[0] for row in cursor.fetchall()]
    for sticker_id in opened:
        sticker_cache_forget(sticker_id)
    return len(opened)


def stickers_close_due() -> list[int]:
    """Close every sticker whose closes_at has passed; returns the ids awaiting finalization."""
    with connection.cursor() as cursor:
        cursor.execute(CLOSE_DUE_SQL)
        for (sticker_id,) in cursor.fetchall():
            sticker_cache_forget(sticker_id)
        cursor.execute(AWAITING_FINAL_SQL)
        return [row[0] for row in cursor.fetchall()]


def _locked_sticker(sticker_id: int) -> Sticker:
    sticker = sticker_and_video_for_update(sticker_id)
    if sticker is None:
        raise NotFound("No sticker with this id.")
    return sticker


def _check_creator_or_staff(actor: User, sticker: Sticker) -> None:
    creator_id = sticker.video.creator_id
    check_sticker_visible(viewer=actor, state=sticker.state, creator_id=creator_id)
    if not is_creator_or_staff(actor, creator_id=creator_id):
        raise Forbidden("Only the video's creator or staff may do this.", code="not_video_creator")


@transaction.atomic
def sticker_close(*, actor: User, sticker_id: int) -> Sticker:
    sticker = _locked_sticker(sticker_id)
    _check_creator_or_staff(actor, sticker)
    now = timezone.now()
    state = sticker_state(sticker, now)
    if state not in CLOCK_DRIVEN:
        raise Conflict(f"The sticker is {state}; it cannot be closed.", code="sticker_not_open")
    sticker.state = Sticker.State.CLOSED
    sticker.closed_at = now
    sticker.save(update_fields=["state", "closed_at", "updated_at"])
    transaction.on_commit(lambda: sticker_cache_forget(sticker_id))
    finalize_enqueue(sticker_id=sticker_id)
    return sticker


@transaction.atomic
def sticker_cancel(*, actor: User, sticker_id: int) -> Sticker:
    sticker = _locked_sticker(sticker_id)
    _check_creator_or_staff(actor, sticker)
    state = sticker_state(sticker, timezone.now())
    if state in TERMINAL:
        raise Conflict(
            f"The sticker is {state}; it cannot be canceled.", code="sticker_not_cancelable"
        )
    sticker.state = Sticker.State.CANCELED
    sticker.closed_at = sticker.closed_at or timezone.now()
    sticker.save(update_fields=["state", "closed_at", "updated_at"])
    transaction.on_commit(lambda: sticker_cache_forget(sticker_id))
    return sticker


@transaction.atomic
def sticker_moderate(*, actor: User, sticker_id: int, reason: str) -> Sticker:
    sticker = _locked_sticker(sticker_id)
    check_sticker_visible(viewer=actor, state=sticker.state, creator_id=sticker.video.creator_id)
    if not actor.is_staff:
        raise Forbidden("Only staff moderate stickers.", code="staff_only")
    if sticker.state == Sticker.State.MODERATED:
        return sticker
    sticker.state = Sticker.State.MODERATED
    sticker.moderation_reason = reason
    sticker.closed_at = sticker.closed_at or timezone.now()
    sticker.save(update_fields=["state", "moderation_reason", "closed_at", "updated_at"])
    transaction.on_commit(lambda: sticker_cache_forget(sticker_id))
    return sticker
