"""The results read (GET …/results): what a viewer may see of a sticker's tally.

It reads the sticker's metadata and tally from the results cache (polls.services.results_cache)
and, on a miss, from PostgreSQL, storing what it loaded back in the cache; a live tally never
computed yet schedules a refresh. That is why it is a service and not a selector: a read that
writes the cache and may enqueue. The API renders what it returns (polls.api.documents).
"""

from dataclasses import dataclass
from typing import Any

from django.utils import timezone

from core.exceptions import Forbidden, NotFound
from engagement.models import User
from polls.models import VOTABLE_KINDS, Sticker, StickerOption, StickerResult, StickerTally, Vote
from polls.services.results_cache import (
    CachedResults,
    meta_store,
    results_cache_read,
    results_stamp,
    tally_store,
)
from polls.services.tallies import iso_time, tally_refresh_schedule
from polls.state import effective_state
from polls.visibility import check_sticker_visible, is_creator_or_staff


@dataclass(frozen=True)
class ResultsRead:
    # The sticker as results show it (its kind, options, visibility, creator), its state now,
    # and the tally: {"as_of", "total_votes", "entries": [{"id", "votes", "reached_at"}], "final"};
    # `stamp`: a digest of meta and tally (equal stamps, equal content;
    # polls.services.results_cache.results_stamp). meta and tally may be shared with other
    # requests (they are when read from the results cache): read-only.
    meta: dict[str, Any]
    state: str
    tally: dict[str, Any]
    stamp: str


def sticker_results_read(
    *, sticker_id: int, viewer: User, cached: CachedResults | None = None
) -> ResultsRead:
    """The sticker's results as this viewer may see them, or NotFound / Forbidden(results_hidden).

    `cached`: what the caller already read from the results cache (the API reads it in its
    throttle's round trip), or None to read it here.
    """
    version, meta, tally, stamp = cached if cached is not None else results_cache_read(sticker_id)
    if meta is None:
        meta, stamp = sticker_meta_load(sticker_id, version), None
    if meta is None:
        raise NotFound("No sticker with this id.")
    check_sticker_visible(viewer=viewer, state=meta["state"], creator_id=meta["creator_id"])
    if meta["kind"] not in (*VOTABLE_KINDS, Sticker.Kind.COMMENT_PICK):
        raise NotFound(f"A sticker of kind {meta['kind']} has no results.", code="no_results")
    state = effective_state(
        state=meta["state"],
        opens_at=meta["opens_at"],
        closes_at=meta["closes_at"],
        now=timezone.now(),
    )
    closed = state in (Sticker.State.CLOSED, Sticker.State.FINAL)
    # The creator and staff always see the results; others as the sticker's visibility says.
    if not is_creator_or_staff(viewer, creator_id=meta["creator_id"]):
        visibility = meta["visibility"]
        if visibility == Sticker.Visibility.AFTER_CLOSE and not closed:
            raise Forbidden("Results are shown when the sticker closes.", code="results_hidden")
        if (
            visibility == Sticker.Visibility.AFTER_VOTE
            and not closed
            and not Vote.objects.filter(sticker_id=sticker_id, user=viewer).exists()
        ):
            raise Forbidden("Results are shown after you vote.", code="results_hidden")
    if tally is None or (state == Sticker.State.FINAL and not tally.get("final")):
        sticker = Sticker.objects.get(pk=sticker_id)
        tally, stamp = tally_load(sticker=sticker, version=version), None
    if stamp is None:
        stamp = results_stamp(meta, tally)
    return ResultsRead(meta=meta, state=state, tally=tally, stamp=stamp)


def sticker_meta_load(sticker_id: int, version: int) -> dict[str, Any] | None:
    """The sticker's metadata for results, from PostgreSQL, stored in the results cache under
    `version`; None when there is no such sticker."""
    sticker = (
        Sticker.objects.select_related("video")
        .filter(pk=sticker_id)
        .only(
            "id",
            "kind",
            "state",
            "opens_at",
            "closes_at",
            "results_visibility",
            "video__creator_id",
        )
        .first()
    )
    if sticker is None:
        return None
    meta = {
        "id": sticker.pk,
        "kind": sticker.kind,
        "state": sticker.state,
        "opens_at": sticker.opens_at,
        "closes_at": sticker.closes_at,
        "visibility": sticker.results_visibility,
        "creator_id": sticker.video.creator_id,
        "options": [
            {"id": option_id, "label": label}
            for option_id, label in StickerOption.objects.filter(sticker_id=sticker_id)
            .order_by("position")
            .values_list("id", "label")
        ],
    }
    meta_store(sticker_id, version, meta)
    return meta


def tally_load(*, sticker: Sticker, version: int | None = None) -> dict[str, Any]:
    """The tally a results read shows, from PostgreSQL: the final rows when final, else the live
    tally (an empty one, with a refresh scheduled, when none was computed yet); stored in the
    results cache under `version`."""
    if sticker.state == Sticker.State.FINAL:
        results = list(StickerResult.objects.filter(sticker=sticker).order_by("rank"))
        tally = {
            "as_of": iso_time(sticker.finalized_at),
            "total_votes": sticker.total_votes or 0,
            "entries": [
                {
                    "id": result.option_id or result.comment_id,
                    "votes": result.votes,
                    "reached_at": iso_time(result.reached_at),
                }
                for result in results
            ],
            "final": True,
        }
        tally_store(sticker.pk, tally, version)
        return tally
    live = StickerTally.objects.filter(sticker=sticker).first()
    if live is None:
        tally_refresh_schedule(sticker_id=sticker.pk)
        return {"as_of": None, "total_votes": 0, "entries": [], "final": False}
    tally = {
        "as_of": iso_time(live.as_of),
        "total_votes": live.total_votes,
        "entries": live.entries,
        "final": False,
    }
    tally_store(sticker.pk, tally, version)
    return tally
