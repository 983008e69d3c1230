"""Staff run stickers in the admin: lists, change pages and the actions of SPEC §4."""

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.messages import get_messages
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from engagement.models import User
from polls.models import Checkpoint, Sticker, StickerTally, Vote
from polls.services.finalizing import sticker_finalize
from polls.services.tallies import sticker_tally_refresh
from tests.factories import (
    StaffUserFactory,
    StickerFactory,
    UserFactory,
    VoteFactory,
)
from tests.polls import option_ids, polls_state

pytestmark = pytest.mark.django_db

# What the test clients answer (django-stubs names it privately).
ClientResponse = Any

CHANGELIST = "/admin/polls/sticker/"


@pytest.fixture
def staff() -> User:
    return StaffUserFactory.create()


@pytest.fixture
def admin_client(staff: User) -> Client:
    client = Client()
    client.force_login(staff)
    return client


def _messages(response: ClientResponse) -> list[tuple[str, str]]:
    return [(message.level_tag, str(message)) for message in get_messages(response.wsgi_request)]


def _act(client: Client, action: str, stickers: list[Sticker]) -> ClientResponse:
    return client.post(
        CHANGELIST,
        {"action": action, "_selected_action": [sticker.pk for sticker in stickers]},
    )


def _states(*stickers: Sticker) -> list[str]:
    return [Sticker.objects.get(pk=sticker.pk).state for sticker in stickers]


# --- pages ---------------------------------------------------------------------------------------
def test_staff_open_the_sticker_list_with_filters_and_search(admin_client: Client) -> None:
    poll = StickerFactory.create(prompt="Which dinner on Friday?", options=["Pho", "Tacos"])
    StickerFactory.create(kind="quiz", prompt="Shortcut quiz")

    for query in ("", "?state__exact=open", "?kind__exact=poll", "?q=dinner"):
        response = admin_client.get(CHANGELIST + query)
        assert response.status_code == 200, query
        assert "Which dinner on Friday?" in response.content.decode()
    response = admin_client.get(CHANGELIST + "?kind__exact=quiz")
    assert "Which dinner on Friday?" not in response.content.decode()
    assert f"{CHANGELIST}{poll.pk}/change/" in admin_client.get(CHANGELIST).content.decode()


def test_staff_open_the_change_page_of_every_kind_of_sticker(admin_client: Client) -> None:
    # given a final poll with results and a live tally, a quiz, an ending and a comment pick
    poll = StickerFactory.create(options=["A", "B"])
    VoteFactory.create(sticker=poll, option_ids=option_ids(poll)[:1])
    sticker_tally_refresh(sticker_id=poll.pk)
    Sticker.objects.filter(pk=poll.pk).update(state="closed", closed_at=timezone.now())
    assert sticker_finalize(sticker_id=poll.pk) is True
    quiz = StickerFactory.create(
        kind="quiz",
        checkpoints=[{"at_ms": 0, "question": "?", "options": ["a", "b"], "correct": [0]}],
    )
    ending = StickerFactory.create(
        kind="ending",
        options=[
            {"label": "A", "payload": {"text": "a"}},
            {"label": "B", "payload": {"text": "b"}},
        ],
    )
    pick = StickerFactory.create(kind="comment_pick")

    for sticker in (poll, quiz, ending, pick):
        response = admin_client.get(f"{CHANGELIST}{sticker.pk}/change/")
        assert response.status_code == 200, sticker.kind
    # and the related admin pages open too
    checkpoint = Checkpoint.objects.get(sticker=quiz)
    for path in (
        "/admin/polls/vote/",
        f"/admin/polls/vote/{Vote.objects.get().pk}/change/",
        "/admin/polls/answer/",
        "/admin/polls/checkpoint/",
        f"/admin/polls/checkpoint/{checkpoint.pk}/change/",
        "/admin/polls/stickertally/",
        f"/admin/polls/stickertally/{poll.pk}/change/",
    ):
        assert admin_client.get(path).status_code == 200, path


def test_people_who_are_not_staff_are_sent_to_the_login_page() -> None:
    sticker = StickerFactory.create(options=["A", "B"])
    client = Client()
    client.force_login(UserFactory.create())
    before = polls_state()

    for response in (
        client.get(CHANGELIST),
        client.get(f"{CHANGELIST}{sticker.pk}/change/"),
        _act(client, "close_now", [sticker]),
    ):
        assert response.status_code == 302
        assert response["Location"].startswith("/admin/login/")
    assert polls_state() == before


# --- actions -------------------------------------------------------------------------------------
def test_the_close_action_closes_open_stickers_and_reports_the_others(admin_client: Client) -> None:
    open_poll = StickerFactory.create(options=["A", "B"])
    scheduled = StickerFactory.create(
        options=["A", "B"], state="scheduled", opens_at=timezone.now() + timedelta(hours=1)
    )
    final = StickerFactory.create(options=["A", "B"], state="final")

    response = _act(admin_client, "close_now", [open_poll, scheduled, final])

    assert response.status_code == 302
    assert _states(open_poll, scheduled, final) == ["closed", "closed", "final"]
    assert Sticker.objects.get(pk=open_poll.pk).closed_at is not None
    assert _messages(response) == [
        ("warning", f"Sticker {final.pk}: The sticker is final; it cannot be closed."),
        ("success", "Closed 2 sticker(s)."),
    ]


def test_the_cancel_action_cancels_stickers_that_are_not_final(admin_client: Client) -> None:
    open_poll = StickerFactory.create(options=["A", "B"])
    closed = StickerFactory.create(options=["A", "B"], state="closed")
    final = StickerFactory.create(options=["A", "B"], state="final")

    response = _act(admin_client, "cancel", [open_poll, closed, final])

    assert response.status_code == 302
    assert _states(open_poll, closed, final) == ["canceled", "canceled", "final"]
    assert _messages(response) == [
        ("warning", f"Sticker {final.pk}: The sticker is final; it cannot be canceled."),
        ("success", "Canceled 2 sticker(s)."),
    ]


def test_the_moderate_action_hides_stickers_from_viewers(
    admin_client: Client, make_client: Callable[..., APIClient]
) -> None:
    first = StickerFactory.create(options=["A", "B"])
    second = StickerFactory.create(kind="comment_pick")
    viewer = make_client(UserFactory.create())

    response = _act(admin_client, "moderate", [first, second])

    assert response.status_code == 302
    assert _messages(response) == [("success", "Moderated 2 sticker(s).")]
    for sticker in (first, second):
        sticker.refresh_from_db()
        assert (sticker.state, sticker.moderation_reason) == (
            "moderated",
            "moderated in the admin",
        )
        assert viewer.get(f"/api/v1/stickers/{sticker.pk}").status_code == 404


def test_the_recount_action_recomputes_final_results_after_integrity_decisions(
    admin_client: Client,
) -> None:
    # given a final poll that A won 2-1
    sticker = StickerFactory.create(options=["A", "B"], state="closed")
    a, b = option_ids(sticker)
    bought = [VoteFactory.create(sticker=sticker, option_ids=[a]) for _ in range(2)]
    VoteFactory.create(sticker=sticker, option_ids=[b])
    assert sticker_finalize(sticker_id=sticker.pk) is True
    assert Sticker.objects.get(pk=sticker.pk).winner_option_id == a

    # when A's votes stop counting and staff recount it
    Vote.objects.filter(pk__in=[vote.pk for vote in bought]).update(counted=False)
    response = _act(admin_client, "recount", [sticker])

    # then B wins 1-0
    assert response.status_code == 302
    assert _messages(response) == [("success", "Recounted.")]
    sticker.refresh_from_db()
    assert (sticker.state, sticker.winner_option_id, sticker.total_votes) == ("final", b, 1)
    assert list(sticker.results.order_by("rank").values_list("option_id", "votes")) == [
        (b, 1),
        (a, 0),
    ]


def test_the_recount_action_refreshes_the_live_tally_of_an_open_sticker(
    admin_client: Client, django_capture_on_commit_callbacks: Any
) -> None:
    sticker = StickerFactory.create(options=["A", "B"])
    VoteFactory.create(sticker=sticker, option_ids=option_ids(sticker)[:1])

    with django_capture_on_commit_callbacks() as callbacks:
        response = _act(admin_client, "recount", [sticker])

    assert response.status_code == 302
    assert len(callbacks) == 1  # the refresh request, sent once the recount committed
    assert Sticker.objects.get(pk=sticker.pk).state == "open"
    assert not StickerTally.objects.filter(sticker=sticker).exists()


def test_editing_a_sticker_in_the_admin_applies_to_results_at_once(
    admin_client: Client,
    make_client: Callable[..., APIClient],
    django_capture_on_commit_callbacks: Any,
) -> None:
    # given a comment pick whose results a viewer has read (and so are cached)
    sticker = StickerFactory.create(kind="comment_pick", prompt="Top comment")
    viewer = make_client(UserFactory.create())
    assert viewer.get(f"/api/v1/stickers/{sticker.pk}/results").status_code == 200

    # when staff hide its results until close in the admin
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            f"{CHANGELIST}{sticker.pk}/change/",
            {
                "video": sticker.video_id,
                "kind": "comment_pick",
                "prompt": "Top comment",
                "max_choices": 1,
                "results_visibility": "after_close",
                "allow_vote_change": "on",
                "payload": "",
                "opens_at_0": sticker.opens_at.strftime("%Y-%m-%d"),
                "opens_at_1": sticker.opens_at.strftime("%H:%M:%S"),
                "closes_at_0": sticker.closes_at.strftime("%Y-%m-%d") if sticker.closes_at else "",
                "closes_at_1": sticker.closes_at.strftime("%H:%M:%S") if sticker.closes_at else "",
                "moderation_reason": "",
                **{
                    f"{prefix}-{name}": value
                    for prefix in ("options", "checkpoints", "results")
                    for name, value in (
                        ("TOTAL_FORMS", "0"),
                        ("INITIAL_FORMS", "0"),
                        ("MIN_NUM_FORMS", "0"),
                        ("MAX_NUM_FORMS", "1000"),
                    )
                },
            },
        )

    # then the change is saved and the viewer's next read follows it
    assert response.status_code == 302, response.content.decode()[:3000]
    assert Sticker.objects.get(pk=sticker.pk).results_visibility == "after_close"
    hidden = viewer.get(f"/api/v1/stickers/{sticker.pk}/results")
    assert (hidden.status_code, hidden.json()["code"]) == (403, "results_hidden")
