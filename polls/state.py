"""The state a sticker is in now: the stored state, advanced by the clock between sweeps."""

from datetime import datetime

from polls.models import Sticker

TERMINAL = (
    Sticker.State.CLOSED,
    Sticker.State.FINAL,
    Sticker.State.CANCELED,
    Sticker.State.MODERATED,
)


def effective_state(
    *, state: str, opens_at: datetime, closes_at: datetime | None, now: datetime
) -> str:
    if state in TERMINAL:
        return state
    if closes_at is not None and now >= closes_at:
        return Sticker.State.CLOSED
    if now >= opens_at:
        return Sticker.State.OPEN
    return Sticker.State.SCHEDULED


def sticker_state(sticker: Sticker, now: datetime) -> str:
    return effective_state(
        state=sticker.state, opens_at=sticker.opens_at, closes_at=sticker.closes_at, now=now
    )
