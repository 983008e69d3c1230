"""The state a sticker is in now: the stored state, advanced by the clock between sweeps.

The clock moves a sticker from scheduled to open at `opens_at` and to closed at `closes_at`; the
closing sweep writes what the clock said, and finalization turns closed into final.
"""

from datetime import datetime

from polls.models import Sticker

# The stored states the clock advances (at opens_at and closes_at).
CLOCK_DRIVEN = (Sticker.State.SCHEDULED, Sticker.State.OPEN)
# The states nothing moves a sticker out of (a recount may still rewrite a final result).
TERMINAL = (Sticker.State.FINAL, Sticker.State.CANCELED, Sticker.State.MODERATED)
# Voting has ended: the terminal states and closed (awaiting its final result). The clock
# leaves these alone.
ENDED = (Sticker.State.CLOSED, *TERMINAL)


def effective_state(
    *, state: str, opens_at: datetime, closes_at: datetime | None, now: datetime
) -> str:
    if state in ENDED:
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
