"""Closing, canceling and moderating stickers (creator or staff)."""

from django.db import transaction
from django.utils import timezone

from core.exceptions import Conflict, Forbidden, NotFound
from engagement.models import User
from polls.models import Sticker
from polls.services.cache import sticker_cache_forget
from polls.services.tally import finalize_request
from polls.state import sticker_state


def _locked_sticker(sticker_id: int) -> Sticker:
    sticker = (
        Sticker.objects.select_for_update().select_related("video").filter(pk=sticker_id).first()
    )
    if sticker is None:
        raise NotFound("No sticker with this id.")
    return sticker


def _check_creator_or_staff(actor: User, sticker: Sticker) -> None:
    if not (actor.is_staff or sticker.video.creator_id == actor.pk):
        if sticker.state == Sticker.State.MODERATED:
            raise NotFound("No sticker with this id.")
        raise Forbidden("Only the video's creator or staff may do this.", code="not_video_creator")


@transaction.atomic
def sticker_close(*, actor: User, sticker_id: int) -> Sticker:
    sticker = _locked_sticker(sticker_id)
    _check_creator_or_staff(actor, sticker)
    now = timezone.now()
    state = sticker_state(sticker, now)
    if state not in (Sticker.State.SCHEDULED, Sticker.State.OPEN):
        raise Conflict(f"The sticker is {state}; it cannot be closed.", code="sticker_not_open")
    sticker.state = Sticker.State.CLOSED
    sticker.closed_at = now
    sticker.save(update_fields=["state", "closed_at", "updated_at"])
    transaction.on_commit(lambda: sticker_cache_forget(sticker_id))
    finalize_request(sticker_id=sticker_id)
    return sticker


@transaction.atomic
def sticker_cancel(*, actor: User, sticker_id: int) -> Sticker:
    sticker = _locked_sticker(sticker_id)
    _check_creator_or_staff(actor, sticker)
    state = sticker_state(sticker, timezone.now())
    if state in (Sticker.State.FINAL, Sticker.State.CANCELED, Sticker.State.MODERATED):
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
    if not actor.is_staff:
        if sticker.state == Sticker.State.MODERATED and sticker.video.creator_id != actor.pk:
            raise NotFound("No sticker with this id.")  # hidden from them, as everywhere
        raise Forbidden("Only staff moderate stickers.", code="staff_only")
    if sticker.state == Sticker.State.MODERATED:
        return sticker
    sticker.state = Sticker.State.MODERATED
    sticker.moderation_reason = reason
    sticker.closed_at = sticker.closed_at or timezone.now()
    sticker.save(update_fields=["state", "moderation_reason", "closed_at", "updated_at"])
    transaction.on_commit(lambda: sticker_cache_forget(sticker_id))
    return sticker
