"""Live tallies, the results endpoint (ETag, visibility) and the tally sweep (SPEC §2.3, §3)."""

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.core.cache import cache
from django.utils import timezone
from django_redis import get_redis_connection
from rest_framework.test import APIClient

from polls.models import Sticker, StickerTally
from polls.services.finalizing import sticker_finalize
from polls.services.results import sticker_meta_load
from polls.services.results_cache import (
    meta_store,
    results_cache_decode,
    results_stamp,
    sticker_cache_forget,
    sticker_cache_version,
)
from polls.services.tallies import (
    DIRTY_SET,
    sticker_tally_refresh,
    tallies_refresh_dirty,
    tallies_sweep,
    tally_mark_stage,
)
from tests.conftest import assert_problem, unknown_id
from tests.factories import (
    CommentFactory,
    StaffUserFactory,
    StickerFactory,
    UserFactory,
    VoteFactory,
)
from tests.polls import iso, option_ids, polls_state

pytestmark = pytest.mark.django_db

ClientMaker = Callable[..., APIClient]


def _at(minutes_ago: float) -> datetime:
    return timezone.now() - timedelta(minutes=minutes_ago)


def _voted_poll() -> tuple[Sticker, list[int], dict[str, datetime]]:
    """A 2-choice poll: A 3 votes, B 2, C none counted; 4 counted voters, 1 uncounted."""
    sticker = StickerFactory.create(options=["A", "B", "C"], max_choices=2)
    a, b, c = option_ids(sticker)
    times = {"a_last": _at(1), "b_last": _at(2)}
    VoteFactory.create(sticker=sticker, option_ids=[a], voted_at=_at(5))
    VoteFactory.create(sticker=sticker, option_ids=[a, b], voted_at=times["b_last"])
    VoteFactory.create(sticker=sticker, option_ids=[b], voted_at=_at(3))
    VoteFactory.create(sticker=sticker, option_ids=[a], voted_at=times["a_last"])
    # an integrity decision made this one stop counting: it counts nowhere
    VoteFactory.create(sticker=sticker, option_ids=[c], voted_at=_at(0.5), counted=False)
    return sticker, [a, b, c], times


def _results(client: APIClient, sticker: Sticker, **headers: Any) -> Any:
    return client.get(f"/api/v1/stickers/{sticker.pk}/results", **headers)


# --- the live tally -------------------------------------------------------------------------------
def test_a_refresh_counts_exactly_the_counted_votes() -> None:
    sticker, (a, b, c), times = _voted_poll()
    before = timezone.now()

    tally = sticker_tally_refresh(sticker_id=sticker.pk)

    stored = StickerTally.objects.get(sticker=sticker)
    assert before <= stored.as_of <= timezone.now()
    expected_entries = [
        {"id": a, "votes": 3, "reached_at": iso(times["a_last"])},
        {"id": b, "votes": 2, "reached_at": iso(times["b_last"])},
        {"id": c, "votes": 0, "reached_at": None},
    ]
    assert tally == {
        "as_of": iso(stored.as_of),
        "total_votes": 4,
        "entries": expected_entries,
        "final": False,
    }
    assert (stored.total_votes, stored.entries) == (4, expected_entries)


def test_results_show_the_live_tally_with_votes_and_percents(client_for_user: APIClient) -> None:
    sticker, (a, b, c), _ = _voted_poll()
    sticker_tally_refresh(sticker_id=sticker.pk)
    as_of = StickerTally.objects.get(sticker=sticker).as_of

    response = _results(client_for_user, sticker)

    assert response.status_code == 200, response.content
    assert response.json() == {
        "sticker_id": sticker.pk,
        "state": "open",
        "final": False,
        "as_of": iso(as_of),
        "total_votes": 4,
        "options": [
            {"id": a, "label": "A", "votes": 3, "percent": 75.0},
            {"id": b, "label": "B", "votes": 2, "percent": 50.0},
            {"id": c, "label": "C", "votes": 0, "percent": 0.0},
        ],
        "winner_option_id": None,
    }
    assert response["Cache-Control"] == "private, no-cache"
    assert response["ETag"].startswith('"') and response["ETag"].endswith('"')


def test_results_make_one_query_once_the_sticker_is_known(
    client_for_user: APIClient, django_assert_num_queries: Callable[..., Any]
) -> None:
    sticker, _, _ = _voted_poll()
    sticker_tally_refresh(sticker_id=sticker.pk)
    # the device token, then the sticker and its option labels (kept in the cache after)
    with django_assert_num_queries(3):
        assert _results(client_for_user, sticker).status_code == 200
    # the token only: the sticker's meta and the live tally come from the cache, on the
    # throttle's round trip
    with django_assert_num_queries(1):
        assert _results(client_for_user, sticker).status_code == 200


def test_percent_is_rounded_to_one_decimal(client_for_user: APIClient) -> None:
    sticker = StickerFactory.create(options=["A", "B"])
    a, b = option_ids(sticker)
    VoteFactory.create(sticker=sticker, option_ids=[a])
    VoteFactory.create(sticker=sticker, option_ids=[b])
    VoteFactory.create(sticker=sticker, option_ids=[b])
    sticker_tally_refresh(sticker_id=sticker.pk)

    options = _results(client_for_user, sticker).json()["options"]

    assert [(option["votes"], option["percent"]) for option in options] == [(1, 33.3), (2, 66.7)]


def test_results_before_any_refresh_are_empty_and_ask_for_one(client_for_user: APIClient) -> None:
    sticker = StickerFactory.create(options=["A", "B"])
    a, b = option_ids(sticker)
    VoteFactory.create(sticker=sticker, option_ids=[a])

    response = _results(client_for_user, sticker)

    assert response.status_code == 200, response.content
    assert response.json() == {
        "sticker_id": sticker.pk,
        "state": "open",
        "final": False,
        "as_of": None,
        "total_votes": 0,
        "options": [
            {"id": a, "label": "A", "votes": 0, "percent": 0.0},
            {"id": b, "label": "B", "votes": 0, "percent": 0.0},
        ],
        "winner_option_id": None,
    }
    # the sweep finds it stale, so it is refreshed even if the requested refresh is lost
    assert tallies_sweep() == [sticker.pk]


def test_results_answer_304_while_nothing_changed_and_200_after(
    client_for_user: APIClient,
) -> None:
    # given a tally and a client that has the results
    sticker, (a, _b, _c), _ = _voted_poll()
    sticker_tally_refresh(sticker_id=sticker.pk)
    first = _results(client_for_user, sticker)
    etag = first["ETag"]

    # when it asks again with the ETag
    again = _results(client_for_user, sticker, HTTP_IF_NONE_MATCH=etag)
    in_list = _results(client_for_user, sticker, HTTP_IF_NONE_MATCH=f'"stale", {etag}')
    other = _results(client_for_user, sticker, HTTP_IF_NONE_MATCH='"stale"')

    # then it is not modified (also when the tag is one of several), and another tag gets 200
    assert (again.status_code, again.content, again["ETag"]) == (304, b"", etag)
    assert (in_list.status_code, in_list["ETag"]) == (304, etag)
    assert (other.status_code, other.json()) == (200, first.json())

    # when a vote is counted in a new tally
    VoteFactory.create(sticker=sticker, option_ids=[a])
    sticker_tally_refresh(sticker_id=sticker.pk)
    changed = _results(client_for_user, sticker, HTTP_IF_NONE_MATCH=etag)

    # then the old ETag no longer matches
    assert changed.status_code == 200
    assert changed["ETag"] != etag
    assert changed.json()["total_votes"] == 5
    assert changed.json()["options"][0]["votes"] == 4


def test_final_results_come_from_the_exact_result_rows(
    make_client: ClientMaker, django_capture_on_commit_callbacks: Any
) -> None:
    sticker, (a, b, c), _ = _voted_poll()
    client_for_user = make_client(UserFactory.create())
    sticker_tally_refresh(sticker_id=sticker.pk)
    live_etag = _results(client_for_user, sticker)["ETag"]
    with django_capture_on_commit_callbacks(execute=True):
        closed = make_client(sticker.video.creator).post(f"/api/v1/stickers/{sticker.pk}/close")
        assert closed.status_code == 200
        assert sticker_finalize(sticker_id=sticker.pk) is True
    sticker.refresh_from_db()

    response = _results(client_for_user, sticker, HTTP_IF_NONE_MATCH=live_etag)

    assert response.status_code == 200, response.content
    assert response.json() == {
        "sticker_id": sticker.pk,
        "state": "final",
        "final": True,
        "as_of": iso(sticker.finalized_at),
        "total_votes": 4,
        "options": [
            {"id": a, "label": "A", "votes": 3, "percent": 75.0},
            {"id": b, "label": "B", "votes": 2, "percent": 50.0},
            {"id": c, "label": "C", "votes": 0, "percent": 0.0},
        ],
        "winner_option_id": a,
    }
    assert (
        _results(client_for_user, sticker, HTTP_IF_NONE_MATCH=response["ETag"]).status_code == 304
    )


def test_comment_pick_live_results_are_a_leaderboard_of_comment_likes(
    client_for_user: APIClient,
) -> None:
    sticker = StickerFactory.create(kind="comment_pick")
    liked = CommentFactory.create(video=sticker.video, like_count=5)
    tied = CommentFactory.create(video=sticker.video, like_count=2)
    less = CommentFactory.create(video=sticker.video, like_count=2)
    CommentFactory.create(video=sticker.video, like_count=0)
    CommentFactory.create(video=sticker.video, like_count=9, counted=False)
    tally = sticker_tally_refresh(sticker_id=sticker.pk)
    assert tally is not None

    response = _results(client_for_user, sticker)

    assert response.json() == {
        "sticker_id": sticker.pk,
        "state": "open",
        "final": False,
        "as_of": tally["as_of"],
        "total_votes": 9,
        "leaderboard": [
            {"comment_id": liked.pk, "likes": 5},
            {"comment_id": tied.pk, "likes": 2},
            {"comment_id": less.pk, "likes": 2},
        ],
        "winner_comment_id": None,
    }


@pytest.mark.parametrize("kind", ["quiz", "unlock"])
def test_kinds_without_results_are_404(client_for_user: APIClient, kind: str) -> None:
    sticker = StickerFactory.create(kind=kind)

    response = _results(client_for_user, sticker)

    assert_problem(response, 404, "no_results", f"A sticker of kind {kind} has no results.")


def test_results_of_an_unknown_sticker_are_404(client_for_user: APIClient) -> None:
    response = client_for_user.get(f"/api/v1/stickers/{unknown_id(Sticker)}/results")

    assert_problem(response, 404, "not_found", "No sticker with this id.")


# --- visibility -----------------------------------------------------------------------------------
class Audience:
    def __init__(self, make_client: ClientMaker, sticker: Sticker) -> None:
        voter = UserFactory.create()
        VoteFactory.create(sticker=sticker, user=voter, option_ids=option_ids(sticker)[:1])
        self.voter = make_client(voter)
        self.stranger = make_client(UserFactory.create())
        self.creator = make_client(sticker.video.creator)
        self.staff = make_client(StaffUserFactory.create())


def test_results_always_visible(make_client: ClientMaker) -> None:
    sticker = StickerFactory.create(options=["A", "B"], results_visibility="always")
    audience = Audience(make_client, sticker)

    for client in (audience.voter, audience.stranger, audience.creator, audience.staff):
        assert _results(client, sticker).status_code == 200


def test_results_after_vote_are_hidden_from_who_did_not_vote_until_close(
    make_client: ClientMaker, django_capture_on_commit_callbacks: Any
) -> None:
    sticker = StickerFactory.create(options=["A", "B"], results_visibility="after_vote")
    audience = Audience(make_client, sticker)
    before = polls_state()

    for headers in ({}, {"HTTP_IF_NONE_MATCH": "*"}):
        assert_problem(
            _results(audience.stranger, sticker, **headers),
            403,
            "results_hidden",
            "Results are shown after you vote.",
        )
    for client in (audience.voter, audience.creator, audience.staff):
        assert _results(client, sticker).status_code == 200
    assert polls_state() == before

    with django_capture_on_commit_callbacks(execute=True):
        assert audience.creator.post(f"/api/v1/stickers/{sticker.pk}/close").status_code == 200

    assert _results(audience.stranger, sticker).status_code == 200
    assert _results(audience.stranger, sticker).json()["state"] == "closed"


def test_results_after_close_are_hidden_from_viewers_until_close(
    make_client: ClientMaker, django_capture_on_commit_callbacks: Any
) -> None:
    sticker = StickerFactory.create(options=["A", "B"], results_visibility="after_close")
    audience = Audience(make_client, sticker)
    before = polls_state()

    for client in (audience.voter, audience.stranger):
        assert_problem(
            _results(client, sticker),
            403,
            "results_hidden",
            "Results are shown when the sticker closes.",
        )
    for client in (audience.creator, audience.staff):
        assert _results(client, sticker).status_code == 200
    assert polls_state() == before

    with django_capture_on_commit_callbacks(execute=True):
        assert audience.staff.post(f"/api/v1/stickers/{sticker.pk}/close").status_code == 200

    for client in (audience.voter, audience.stranger):
        assert _results(client, sticker).status_code == 200
    assert sticker_finalize(sticker_id=sticker.pk) is True
    for client in (audience.voter, audience.stranger):
        response = _results(client, sticker)
        assert (response.status_code, response.json()["final"]) == (200, True)


def test_results_after_close_are_visible_once_closes_at_passed(make_client: ClientMaker) -> None:
    # before the sweep stores the state, the clock already decides
    sticker = StickerFactory.create(
        options=["A", "B"],
        results_visibility="after_close",
        opens_at=_at(10),
        closes_at=timezone.now() + timedelta(seconds=60),
    )
    stranger = make_client(UserFactory.create())
    assert _results(stranger, sticker).status_code == 403
    Sticker.objects.filter(pk=sticker.pk).update(closes_at=_at(0.01))
    # a write in the database alone leaves the cached metadata; forget it as services do
    sticker_cache_forget(sticker.pk)

    response = _results(stranger, sticker)

    assert (response.status_code, response.json()["state"]) == (200, "closed")


def test_changing_the_visibility_of_a_scheduled_sticker_applies_at_once(
    make_client: ClientMaker, django_capture_on_commit_callbacks: Any
) -> None:
    # given a scheduled poll whose results a stranger has read (and so are cached)
    sticker = StickerFactory.create(
        options=["A", "B"],
        state="scheduled",
        opens_at=timezone.now() + timedelta(hours=1),
        closes_at=timezone.now() + timedelta(hours=2),
    )
    stranger = make_client(UserFactory.create())
    creator = make_client(sticker.video.creator)
    assert _results(stranger, sticker).status_code == 200

    # when the creator hides the results until close
    with django_capture_on_commit_callbacks(execute=True):
        response = creator.patch(
            f"/api/v1/stickers/{sticker.pk}",
            {"results_visibility": "after_close", "options": [{"label": "X"}, {"label": "Y"}]},
            format="json",
        )
    assert response.status_code == 200, response.content

    # then the stranger no longer sees them, and the creator sees the new options
    assert_problem(
        _results(stranger, sticker),
        403,
        "results_hidden",
        "Results are shown when the sticker closes.",
    )
    assert [option["label"] for option in _results(creator, sticker).json()["options"]] == [
        "X",
        "Y",
    ]


def test_a_read_that_loaded_the_sticker_before_a_change_cannot_cache_it_after(
    make_client: ClientMaker,
) -> None:
    # given a reader that captured the cache version and loaded the sticker (visible always)
    sticker = StickerFactory.create(options=["A", "B"])
    stranger = make_client(UserFactory.create())
    version = sticker_cache_version(sticker.pk)
    stale_meta = sticker_meta_load(sticker.pk, version)
    assert stale_meta is not None and stale_meta["visibility"] == "always"

    # when the creator hides the results (commit, then the version is bumped) and only then
    # the slow reader stores what it loaded
    Sticker.objects.filter(pk=sticker.pk).update(results_visibility="after_close")
    sticker_cache_forget(sticker.pk)
    meta_store(sticker.pk, version, stale_meta)

    # then nobody is served the stale copy
    assert_problem(
        _results(stranger, sticker),
        403,
        "results_hidden",
        "Results are shown when the sticker closes.",
    )


# --- the sweep ------------------------------------------------------------------------------------
def test_the_sweep_refreshes_exactly_the_stickers_whose_tally_is_stale() -> None:
    # given stickers in every situation
    def poll(**fields: Any) -> Sticker:
        return StickerFactory.create(options=["A", "B"], **fields)

    def vote(sticker: Sticker, minutes_ago: float) -> None:
        VoteFactory.create(
            sticker=sticker, option_ids=option_ids(sticker)[:1], voted_at=_at(minutes_ago)
        )

    never_counted = poll()
    vote(never_counted, 5)
    up_to_date = poll()
    vote(up_to_date, 5)
    sticker_tally_refresh(sticker_id=up_to_date.pk)
    behind = poll()
    vote(behind, 5)
    sticker_tally_refresh(sticker_id=behind.pk)
    StickerTally.objects.filter(sticker=behind).update(as_of=_at(3))
    vote(behind, 1)
    closed_not_final = poll(state="closed")
    vote(closed_not_final, 5)
    final = poll(state="final")
    vote(final, 5)
    without_votes = poll()
    StickerFactory.create(kind="comment_pick")
    StickerFactory.create(kind="quiz")

    # when the sweep runs
    stale = tallies_sweep()

    # then it picked exactly the stale ones
    assert sorted(stale) == sorted([never_counted.pk, behind.pk, closed_not_final.pk])
    assert without_votes.pk not in stale

    # and once they are refreshed nothing is stale
    for sticker_id in stale:
        sticker_tally_refresh(sticker_id=sticker_id)
    assert tallies_sweep() == []
    assert StickerTally.objects.get(sticker=behind).total_votes == 2


# --- dirty marks made before the vote commits ---------------------------------------------------
def _mark(sticker: Sticker) -> None:
    # as the vote API does, on the throttle's round trip, before its statement runs
    pipe = get_redis_connection("default").pipeline(transaction=False)
    tally_mark_stage(pipe, sticker.pk)
    pipe.execute()


def _marked(sticker: Sticker) -> bool:
    score = get_redis_connection("default").zscore(cache.make_key(DIRTY_SET), str(sticker.pk))
    return score is not None


def test_a_vote_committed_after_a_refresh_is_counted_by_the_next_one(settings: Any) -> None:
    # given a sticker marked dirty by a vote that has not committed yet
    settings.TALLY_MARK_GRACE_SECONDS = 60
    sticker = StickerFactory.create(options=["A", "B"])
    a, _b = option_ids(sticker)
    _mark(sticker)

    # when a refresh runs before the vote commits, and the next one after
    assert sticker.pk in tallies_refresh_dirty()
    assert StickerTally.objects.get(sticker=sticker).total_votes == 0
    VoteFactory.create(sticker=sticker, option_ids=[a])
    assert sticker.pk in tallies_refresh_dirty()

    # then the sticker stayed marked within its grace, and the vote is counted
    assert StickerTally.objects.get(sticker=sticker).total_votes == 1
    assert _marked(sticker)


def test_a_mark_is_dropped_by_the_first_refresh_started_a_grace_after_it(settings: Any) -> None:
    sticker = StickerFactory.create(options=["A", "B"])
    settings.TALLY_MARK_GRACE_SECONDS = 60
    _mark(sticker)
    tallies_refresh_dirty()
    assert _marked(sticker)

    settings.TALLY_MARK_GRACE_SECONDS = 0
    tallies_refresh_dirty()

    assert not _marked(sticker)


def test_a_results_etag_changes_when_the_options_are_edited(
    make_client: ClientMaker, django_capture_on_commit_callbacks: Any
) -> None:
    # given the creator's results of a scheduled poll (no tally yet: state and tally stay as
    # they were through the edit)
    sticker = StickerFactory.create(
        options=["A", "B"],
        opens_at=timezone.now() + timedelta(hours=1),
        state=Sticker.State.SCHEDULED,
    )
    client = make_client(sticker.video.creator)
    first = _results(client, sticker)
    assert first.status_code == 200, first.content
    assert [option["label"] for option in first.json()["options"]] == ["A", "B"]

    # when the options are edited
    with django_capture_on_commit_callbacks(execute=True):
        edited = client.patch(
            f"/api/v1/stickers/{sticker.pk}",
            {"options": [{"label": "X"}, {"label": "Y"}]},
            format="json",
        )
    assert edited.status_code == 200, edited.content
    again = _results(client, sticker, HTTP_IF_NONE_MATCH=first["ETag"])

    # then the old ETag no longer matches and the new labels are sent
    assert again.status_code == 200
    assert again["ETag"] != first["ETag"]
    assert [option["label"] for option in again.json()["options"]] == ["X", "Y"]


def test_the_results_etag_is_the_same_whether_the_read_came_from_the_cache_or_the_database(
    client_for_user: APIClient,
) -> None:
    sticker, _, _ = _voted_poll()
    sticker_tally_refresh(sticker_id=sticker.pk)
    cache.delete_many([f"polls:meta:{sticker.pk}", f"polls:tally:{sticker.pk}"])
    loaded = _results(client_for_user, sticker)  # both loaded from PostgreSQL (and stored)
    cached = _results(client_for_user, sticker)  # both from the cache
    assert (loaded.status_code, cached.status_code) == (200, 200)
    assert loaded["ETag"] == cached["ETag"]
    assert loaded.content == cached.content


def test_decoded_results_are_kept_by_their_bytes() -> None:
    client = cache.client  # type: ignore[attr-defined]
    meta: dict[str, Any] = {"id": 1, "options": [{"id": 2, "label": "A"}]}
    tally: dict[str, Any] = {"as_of": None, "total_votes": 0, "entries": [], "final": False}
    raw = [
        b"3",
        client.encode({"version": 3, "value": meta}),
        client.encode({"version": 3, "value": tally}),
    ]
    decoded = results_cache_decode(raw)
    assert decoded == (3, meta, tally, results_stamp(meta, tally))
    assert results_cache_decode(list(raw)) is decoded  # the same bytes: the same objects
    # another version's copies are not current: no meta, no tally, no stamp
    assert results_cache_decode([b"4", raw[1], raw[2]]) == (4, None, None, None)
    assert results_stamp(meta, {**tally, "total_votes": 1}) != decoded.stamp
