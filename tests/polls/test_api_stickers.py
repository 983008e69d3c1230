"""Stickers through the API: the rules of each kind, the lifecycle and who may do what (SPEC §3)."""

import io
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.core.management import call_command
from django.utils import timezone
from rest_framework.test import APIClient

from engagement.demo import CREATORS as DEMO_CREATORS
from engagement.models import Video
from polls.models import Checkpoint, CheckpointOption, Sticker, StickerOption, Vote
from tests.conftest import assert_problem, unknown_id
from tests.factories import (
    StaffUserFactory,
    StickerFactory,
    UserFactory,
    VideoFactory,
    VoteFactory,
)
from tests.polls import (
    iso,
    option_ids,
    polls_state,
    sticker_document,
)

pytestmark = pytest.mark.django_db

ClientMaker = Callable[..., APIClient]


def _in(**delta: float) -> timedelta:
    """A time relative to when the request is sent (bodies are built at collection time)."""
    return timedelta(**delta)


def _resolved(value: Any) -> Any:
    """The body with each relative time made absolute now."""
    if isinstance(value, timedelta):
        return (timezone.now() + value).isoformat()
    if isinstance(value, dict):
        return {key: _resolved(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_resolved(item) for item in value]
    return value


def _post_sticker(client: APIClient, video_id: int, body: dict[str, Any]) -> Any:
    return client.post(f"/api/v1/videos/{video_id}/stickers", _resolved(body), format="json")


def _poll_body(**changes: Any) -> dict[str, Any]:
    return {
        "kind": "poll",
        "prompt": "What next?",
        "options": [{"label": "Pho"}, {"label": "Tacos"}],
        "closes_at": _in(days=1),
        **changes,
    }


def _ending_body(**changes: Any) -> dict[str, Any]:
    return {
        "kind": "ending",
        "prompt": "How does it end?",
        "options": [
            {"label": "Returns", "payload": {"text": "He comes home."}},
            {"label": "Leaves", "payload": {"media_url": "https://cdn.example.com/leave.mp4"}},
        ],
        "closes_at": _in(days=1),
        **changes,
    }


def _checkpoint(**changes: Any) -> dict[str, Any]:
    return {
        "at_ms": 1_000,
        "question": "2 + 2?",
        "options": [{"label": "4"}, {"label": "5"}],
        "correct": [0],
        "explanation": "Arithmetic.",
        **changes,
    }


def _quiz_body(**changes: Any) -> dict[str, Any]:
    return {"kind": "quiz", "prompt": "Quiz", "checkpoints": [_checkpoint()], **changes}


def _unlock_body(**changes: Any) -> dict[str, Any]:
    return {"kind": "unlock", "prompt": "Like to unlock", "payload": {"text": "Tip"}, **changes}


def _comment_pick_body(**changes: Any) -> dict[str, Any]:
    return {"kind": "comment_pick", "prompt": "Top comment", "closes_at": _in(days=1), **changes}


# --- creating each kind ---------------------------------------------------------------------------
def test_creator_creates_a_poll(
    make_client: ClientMaker, django_assert_num_queries: Callable[..., Any]
) -> None:
    video = VideoFactory.create()
    closes_at = timezone.now() + timedelta(days=1)
    body = _poll_body(
        options=[{"label": "Pho"}, {"label": "Tacos"}, {"label": "Curry"}],
        max_choices=2,
        results_visibility="after_vote",
        allow_vote_change=False,
        closes_at=closes_at.isoformat(),
    )
    client = make_client(video.creator)
    before = timezone.now()

    # the device token; in one atomic block (BEGIN/COMMIT or savepoints) the video, the
    # sticker, its options (one INSERT); then the sticker as presented (the sticker, its
    # options, its checkpoints, the viewer's vote, the viewer's answers)
    with django_assert_num_queries(11):
        response = _post_sticker(client, video.pk, body)

    assert response.status_code == 201, response.content
    sticker = Sticker.objects.get(video=video)
    assert response.json() == sticker_document(sticker)
    assert (sticker.kind, sticker.prompt, sticker.state) == ("poll", "What next?", "open")
    assert (sticker.max_choices, sticker.results_visibility, sticker.allow_vote_change) == (
        2,
        "after_vote",
        False,
    )
    assert sticker.closes_at == closes_at
    assert before <= sticker.opens_at <= timezone.now()
    assert sticker.closed_at is sticker.finalized_at is sticker.winner_option_id is None
    assert list(sticker.options.values_list("position", "label", "payload")) == [
        (0, "Pho", None),
        (1, "Tacos", None),
        (2, "Curry", None),
    ]


def test_creator_creates_an_ending_and_its_payloads_are_stored_but_locked(
    make_client: ClientMaker,
) -> None:
    video = VideoFactory.create()

    response = _post_sticker(make_client(video.creator), video.pk, _ending_body())

    assert response.status_code == 201, response.content
    sticker = Sticker.objects.get(video=video)
    ids = option_ids(sticker)
    assert response.json() == sticker_document(
        sticker,
        options=[
            {"id": ids[0], "label": "Returns", "payload": None, "locked": True},
            {"id": ids[1], "label": "Leaves", "payload": None, "locked": True},
        ],
    )
    assert list(sticker.options.values_list("label", "payload")) == [
        ("Returns", {"text": "He comes home."}),
        ("Leaves", {"media_url": "https://cdn.example.com/leave.mp4"}),
    ]


def test_creator_creates_a_quiz_without_closes_at(
    make_client: ClientMaker, django_assert_num_queries: Callable[..., Any]
) -> None:
    video = VideoFactory.create(duration_ms=30_000)
    body = _quiz_body(
        checkpoints=[
            _checkpoint(at_ms=0),
            _checkpoint(
                at_ms=29_999,
                question="Primes?",
                options=[{"label": "2"}, {"label": "4"}, {"label": "5"}],
                correct=[2, 0],
                explanation="",
            ),
        ]
    )
    client = make_client(video.creator)

    # as a poll (no sticker options; the checkpoints' options presented too), and TWO
    # statements per checkpoint: each checkpoint is inserted on its own, then its options
    # (so 13 for one checkpoint, 51 for the most, 20)
    with django_assert_num_queries(15):
        response = _post_sticker(client, video.pk, body)

    assert response.status_code == 201, response.content
    sticker = Sticker.objects.get(video=video)
    checkpoints = list(sticker.checkpoints.order_by("position"))
    first = list(checkpoints[0].options.order_by("position"))
    second = list(checkpoints[1].options.order_by("position"))
    assert response.json() == sticker_document(
        sticker,
        closes_at=None,
        checkpoints=[
            {
                "id": checkpoints[0].pk,
                "at_ms": 0,
                "question": "2 + 2?",
                "options": [{"id": first[0].pk, "label": "4"}, {"id": first[1].pk, "label": "5"}],
                "answered": False,
                "correct_option_ids": None,
                "explanation": None,
            },
            {
                "id": checkpoints[1].pk,
                "at_ms": 29_999,
                "question": "Primes?",
                "options": [
                    {"id": second[0].pk, "label": "2"},
                    {"id": second[1].pk, "label": "4"},
                    {"id": second[2].pk, "label": "5"},
                ],
                "answered": False,
                "correct_option_ids": None,
                "explanation": None,
            },
        ],
        viewer={
            "vote": None,
            "answers": [],
            "progress": {"answered": 0, "total": 2, "correct": 0, "completed": False},
            "unlocked": None,
        },
    )
    assert [(c.at_ms, c.question, c.explanation) for c in checkpoints] == [
        (0, "2 + 2?", "Arithmetic."),
        (29_999, "Primes?", ""),
    ]
    assert list(
        CheckpointOption.objects.filter(checkpoint__sticker=sticker)
        .order_by("checkpoint__position", "position")
        .values_list("label", "is_correct")
    ) == [("4", True), ("5", False), ("2", True), ("4", False), ("5", True)]


def test_creator_creates_an_unlock_sticker(make_client: ClientMaker) -> None:
    video = VideoFactory.create()

    response = _post_sticker(
        make_client(video.creator),
        video.pk,
        _unlock_body(payload={"text": "Ctrl+D fills down", "media_url": "https://x.example/a"}),
    )

    assert response.status_code == 201, response.content
    sticker = Sticker.objects.get(video=video)
    assert response.json() == sticker_document(sticker, closes_at=None)
    assert response.json()["viewer"]["unlocked"] is False
    assert sticker.payload == {"text": "Ctrl+D fills down", "media_url": "https://x.example/a"}


def test_creator_creates_a_comment_pick(make_client: ClientMaker) -> None:
    video = VideoFactory.create()

    response = _post_sticker(make_client(video.creator), video.pk, _comment_pick_body())

    assert response.status_code == 201, response.content
    sticker = Sticker.objects.get(video=video)
    assert response.json() == sticker_document(sticker, options=[])
    assert (sticker.kind, sticker.options.count()) == ("comment_pick", 0)


@pytest.mark.parametrize(
    "body",
    [
        _poll_body(options=[{"label": f"option {n}"} for n in range(10)], max_choices=10),
        _ending_body(
            options=[{"label": f"end {n}", "payload": {"text": f"story {n}"}} for n in range(4)]
        ),
        _quiz_body(checkpoints=[_checkpoint(at_ms=n) for n in range(20)]),
        _quiz_body(
            checkpoints=[
                _checkpoint(options=[{"label": str(n)} for n in range(6)], correct=[0, 5])
            ],
            closes_at=_in(days=2),
        ),
        _unlock_body(payload={"media_url": "https://x.example/tip.png"}),
        _poll_body(closes_at=_in(seconds=90)),
        _poll_body(closes_at=_in(days=29, hours=23)),
        _poll_body(opens_at=_in(minutes=-2), closes_at=_in(hours=1)),
        _poll_body(opens_at="9999-12-31T23:58:00Z", closes_at="9999-12-31T23:59:30Z"),
    ],
    ids=[
        "poll-10-options",
        "ending-4-options",
        "quiz-20-checkpoints",
        "quiz-6-options-closing",
        "unlock-media",
        "closes-in-90s",
        "closes-in-29d23h",
        "opens-2-min-ago",
        "end-of-calendar",
    ],
)
def test_the_limits_of_each_rule_are_accepted(make_client: ClientMaker, body: dict) -> None:
    video = VideoFactory.create(duration_ms=30_000)

    response = _post_sticker(make_client(video.creator), video.pk, body)

    assert response.status_code == 201, response.content
    sticker = Sticker.objects.get(video=video)
    assert response.json()["id"] == sticker.pk
    assert sticker.options.count() == len(body.get("options", []))
    assert sticker.checkpoints.count() == len(body.get("checkpoints", []))


def test_opens_at_a_little_in_the_past_is_taken_as_now(make_client: ClientMaker) -> None:
    video = VideoFactory.create()
    before = timezone.now()

    response = _post_sticker(
        make_client(video.creator), video.pk, _poll_body(opens_at=_in(minutes=-4))
    )

    assert response.status_code == 201, response.content
    sticker = Sticker.objects.get(video=video)
    assert before <= sticker.opens_at <= timezone.now()
    assert sticker.state == "open"


def test_a_sticker_opening_later_is_scheduled(make_client: ClientMaker) -> None:
    video = VideoFactory.create()
    opens_at = timezone.now() + timedelta(hours=1)

    response = _post_sticker(
        make_client(video.creator),
        video.pk,
        _poll_body(
            opens_at=opens_at.isoformat(), closes_at=(opens_at + timedelta(days=30)).isoformat()
        ),
    )

    assert response.status_code == 201, response.content
    sticker = Sticker.objects.get(video=video)
    assert (sticker.state, sticker.opens_at) == ("scheduled", opens_at)
    assert response.json() == sticker_document(sticker, state="scheduled")


_CLOSES = "closes_at lies between 1 minute and 30 days after opens_at."


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        (
            _poll_body(options=[{"label": "A"}]),
            {"options": ["A sticker of kind poll has 2 to 10 options."]},
        ),
        (_poll_body(options=[]), {"options": ["A sticker of kind poll has 2 to 10 options."]}),
        ({**_poll_body(), "options": None}, {"options": ["This field may not be null."]}),
        (
            _poll_body(options=[{"label": f"o{n}"} for n in range(11)]),
            {"options": ["Ensure this field has no more than 10 elements."]},
        ),
        (
            _poll_body(options=[{"label": "Pho"}, {"label": " pho "}]),
            {"options": ["Option labels must be distinct."]},
        ),
        (
            _poll_body(options=[{"label": "A", "payload": {"text": "x"}}, {"label": "B"}]),
            {"options.0.payload": ["Only ending options carry a payload."]},
        ),
        (
            _poll_body(max_choices=3),
            {"max_choices": ["max_choices cannot exceed the number of options."]},
        ),
        (
            _poll_body(max_choices=0),
            {"max_choices": ["Ensure this value is greater than or equal to 1."]},
        ),
        (
            _ending_body(options=[{"label": "Only", "payload": {"text": "x"}}]),
            {"options": ["A sticker of kind ending has 2 to 4 options."]},
        ),
        (
            _ending_body(options=[{"label": f"e{n}", "payload": {"text": "x"}} for n in range(5)]),
            {"options": ["A sticker of kind ending has 2 to 4 options."]},
        ),
        (
            _ending_body(
                options=[
                    {"label": "A", "payload": {"text": "x"}},
                    {"label": "B"},
                    {"label": "C", "payload": {"text": ""}},
                    {"label": "D", "payload": None},
                ]
            ),
            {
                "options.1.payload": ["Each ending needs a payload (text or media)."],
                "options.2.payload": ["Each ending needs a payload (text or media)."],
                "options.3.payload": ["Each ending needs a payload (text or media)."],
            },
        ),
        (
            _ending_body(max_choices=2),
            {"max_choices": ["An ending sticker takes exactly one choice."]},
        ),
        (
            _ending_body(
                options=[
                    {"label": "A", "payload": {"text": "x", "secret": 1}},
                    {"label": "B", "payload": "text"},
                ]
            ),
            {
                "options.0.payload": ["Unknown keys: ['secret']."],
                "options.1.payload": ["Must be an object with text and/or media_url."],
            },
        ),
        (_quiz_body(checkpoints=[]), {"checkpoints": ["A quiz has 1 to 20 checkpoints."]}),
        ({"kind": "quiz", "prompt": "Quiz"}, {"checkpoints": ["A quiz has 1 to 20 checkpoints."]}),
        (
            _quiz_body(checkpoints=[_checkpoint() for _ in range(21)]),
            {"checkpoints": ["Ensure this field has no more than 20 elements."]},
        ),
        (
            _quiz_body(checkpoints=[_checkpoint(options=[{"label": "4"}])]),
            {"checkpoints.0.options": ["A checkpoint has 2 to 6 options."]},
        ),
        (
            _quiz_body(checkpoints=[_checkpoint(options=[{"label": str(n)} for n in range(7)])]),
            {"checkpoints.0.options": ["Ensure this field has no more than 6 elements."]},
        ),
        (
            _quiz_body(checkpoints=[_checkpoint(), _checkpoint(at_ms=30_000)]),
            {"checkpoints.1.at_ms": ["The checkpoint must lie within the video."]},
        ),
        (
            _quiz_body(checkpoints=[_checkpoint(correct=[2])]),
            {
                "checkpoints.0.correct": [
                    "Correct options are indexes into this checkpoint's options."
                ]
            },
        ),
        (
            _quiz_body(checkpoints=[_checkpoint(correct=[0, 0])]),
            {"checkpoints.0.correct": ["Correct options must not repeat."]},
        ),
        (
            _quiz_body(checkpoints=[_checkpoint(correct=[])]),
            {"checkpoints.0.correct": ["This list may not be empty."]},
        ),
        (
            _quiz_body(checkpoints=[_checkpoint(correct=[6])]),
            {"checkpoints.0.correct.0": ["Ensure this value is less than or equal to 5."]},
        ),
        (
            _quiz_body(checkpoints=[_checkpoint(at_ms="1000")]),
            {"checkpoints.0.at_ms": ["Must be an integer."]},
        ),
        (
            _quiz_body(options=[{"label": "A"}, {"label": "B"}]),
            {"options": ["A sticker of kind quiz has no options."]},
        ),
        (
            _poll_body(checkpoints=[_checkpoint()]),
            {"checkpoints": ["Only a quiz has checkpoints."]},
        ),
        (
            _unlock_body(payload=None),
            {"payload": ["An unlock sticker needs a payload (text or media)."]},
        ),
        (
            {"kind": "unlock", "prompt": "Like to unlock"},
            {"payload": ["An unlock sticker needs a payload (text or media)."]},
        ),
        (
            _unlock_body(payload={"text": "", "media_url": ""}),
            {"payload": ["An unlock sticker needs a payload (text or media)."]},
        ),
        (
            _unlock_body(max_choices=2),
            {"max_choices": ["A sticker of kind unlock has no choices."]},
        ),
        (
            _poll_body(payload={"text": "x"}),
            {"payload": ["Only an unlock sticker has a payload."]},
        ),
        (
            _comment_pick_body(options=[{"label": "A"}, {"label": "B"}]),
            {"options": ["A sticker of kind comment_pick has no options."]},
        ),
        (
            {**_poll_body(), "closes_at": None},
            {"closes_at": ["A sticker of kind poll needs closes_at."]},
        ),
        (
            {k: v for k, v in _ending_body().items() if k != "closes_at"},
            {"closes_at": ["A sticker of kind ending needs closes_at."]},
        ),
        (
            {k: v for k, v in _comment_pick_body().items() if k != "closes_at"},
            {"closes_at": ["A sticker of kind comment_pick needs closes_at."]},
        ),
        (_poll_body(closes_at=_in(seconds=30)), {"closes_at": [_CLOSES]}),
        (_poll_body(closes_at=_in(minutes=-1)), {"closes_at": [_CLOSES]}),
        (_poll_body(closes_at=_in(days=30, minutes=5)), {"closes_at": [_CLOSES]}),
        (_quiz_body(closes_at=_in(days=31)), {"closes_at": [_CLOSES]}),
        (_unlock_body(closes_at=_in(seconds=10)), {"closes_at": [_CLOSES]}),
        (
            _poll_body(opens_at=_in(hours=2), closes_at=_in(hours=1)),
            {"closes_at": [_CLOSES]},
        ),
        (
            _poll_body(opens_at="9999-12-31T23:59:00Z", closes_at="9999-12-31T23:59:30Z"),
            {"closes_at": [_CLOSES]},
        ),
        (
            _poll_body(opens_at=_in(hours=-1), closes_at=_in(hours=1)),
            {"opens_at": ["opens_at cannot lie in the past."]},
        ),
        (_poll_body(kind="survey"), {"kind": ['"survey" is not a valid choice.']}),
        ({**_poll_body(), "prompt": 5}, {"prompt": ["Must be a string."]}),
        (
            {k: v for k, v in _poll_body().items() if k != "prompt"},
            {"prompt": ["This field is required."]},
        ),
        (_poll_body(options="A,B"), {"options": ['Expected a list of items but got type "str".']}),
        (
            _poll_body(options=[{"label": 1}, {}]),
            {
                "options.0.label": ["Must be a string."],
                "options.1.label": ["This field is required."],
            },
        ),
        (_poll_body(allow_vote_change="yes"), {"allow_vote_change": ["Must be true or false."]}),
        (
            _poll_body(results_visibility="never"),
            {"results_visibility": ['"never" is not a valid choice.']},
        ),
        (
            _poll_body(closes_at="tomorrow"),
            {
                "closes_at": [
                    "Datetime has wrong format. Use one of these formats instead: "
                    "YYYY-MM-DDThh:mm[:ss[.uuuuuu]][+HH:MM|-HH:MM|Z]."
                ]
            },
        ),
    ],
)
def test_a_sticker_that_breaks_a_rule_is_refused_and_nothing_is_written(
    make_client: ClientMaker, body: dict, errors: dict[str, list[str]]
) -> None:
    video = VideoFactory.create(duration_ms=30_000)
    client = make_client(video.creator)
    before = polls_state()

    response = _post_sticker(client, video.pk, body)

    detail = "Invalid input: " + "; ".join(
        f"{name}: {messages[0]}" for name, messages in errors.items()
    )
    assert_problem(response, 400, "invalid", detail, errors=errors)
    assert polls_state() == before


def test_every_violation_is_reported_at_once(make_client: ClientMaker) -> None:
    video = VideoFactory.create(duration_ms=10_000)
    client = make_client(video.creator)
    before = polls_state()

    response = _post_sticker(
        client,
        video.pk,
        {
            "kind": "quiz",
            "prompt": "Quiz",
            "options": [{"label": "A"}, {"label": "B"}],
            "checkpoints": [_checkpoint(at_ms=10_000, correct=[0, 0])],
            "payload": {"text": "x"},
            "closes_at": _in(seconds=5),
        },
    )

    errors = {
        "options": ["A sticker of kind quiz has no options."],
        "checkpoints.0.at_ms": ["The checkpoint must lie within the video."],
        "checkpoints.0.correct": ["Correct options must not repeat."],
        "payload": ["Only an unlock sticker has a payload."],
        "closes_at": [_CLOSES],
    }
    assert_problem(
        response,
        400,
        "invalid",
        "Invalid input: options: A sticker of kind quiz has no options.; "
        "checkpoints.0.at_ms: The checkpoint must lie within the video.; "
        "checkpoints.0.correct: Correct options must not repeat.; "
        "payload: Only an unlock sticker has a payload.; "
        f"closes_at: {_CLOSES}",
        errors=errors,
    )
    assert polls_state() == before


def test_only_the_videos_creator_adds_stickers(make_client: ClientMaker) -> None:
    video = VideoFactory.create()
    other = make_client(UserFactory.create())
    staff = make_client(StaffUserFactory.create())
    before = polls_state()

    response = _post_sticker(other, video.pk, _poll_body())
    assert_problem(
        response, 403, "not_video_creator", "Only the video's creator adds stickers to it."
    )

    response = _post_sticker(staff, video.pk, _poll_body())
    assert_problem(
        response, 403, "not_video_creator", "Only the video's creator adds stickers to it."
    )
    assert polls_state() == before


def test_stickers_of_an_unknown_video_are_404(
    make_client: ClientMaker, django_assert_num_queries: Callable[..., Any]
) -> None:
    client = make_client(UserFactory.create())
    missing = unknown_id(Video)
    before = polls_state()

    # the device token; the video looked for in the atomic block (in a test a savepoint,
    # rolled back and released)
    with django_assert_num_queries(5):
        response = _post_sticker(client, missing, _poll_body())
    assert_problem(response, 404, "not_found", "No video with this id.")
    with django_assert_num_queries(2):  # the device token, the video exists?
        response = client.get(f"/api/v1/videos/{missing}/stickers")
    assert_problem(response, 404, "not_found", "No video with this id.")
    assert polls_state() == before


def test_anonymous_callers_get_401(
    api_client: APIClient, django_assert_num_queries: Callable[..., Any]
) -> None:
    sticker = StickerFactory.create(options=["A", "B"])
    before = polls_state()

    with django_assert_num_queries(0):  # no token: each refused before any query
        responses = (
            api_client.get(f"/api/v1/videos/{sticker.video_id}/stickers"),
            _post_sticker(api_client, sticker.video_id, _poll_body()),
            api_client.get(f"/api/v1/stickers/{sticker.pk}"),
            api_client.patch(f"/api/v1/stickers/{sticker.pk}", {"prompt": "x"}, format="json"),
            api_client.post(f"/api/v1/stickers/{sticker.pk}/close"),
            api_client.post(
                f"/api/v1/stickers/{sticker.pk}/votes", {"option_ids": [1]}, format="json"
            ),
            api_client.get(f"/api/v1/stickers/{sticker.pk}/results"),
        )
    for response in responses:
        assert response.status_code == 401, response.content
        assert response.json()["code"] == "not_authenticated"
    assert polls_state() == before


# --- reading: the list per video and the detail, with each viewer's own state ---------------------
def test_the_list_shows_every_sticker_of_the_video_with_each_viewers_own_vote(
    make_client: ClientMaker, django_assert_num_queries: Callable[..., Any]
) -> None:
    # given a video with a poll and a comment pick, and two viewers who voted differently
    video = VideoFactory.create()
    poll = StickerFactory.create(video=video, options=["A", "B"])
    pick = StickerFactory.create(video=video, kind="comment_pick")
    StickerFactory.create(options=["elsewhere", "other video"])
    first, second = UserFactory.create_batch(2)
    a, b = option_ids(poll)
    first_vote = VoteFactory.create(sticker=poll, user=first, option_ids=[a])
    second_vote = VoteFactory.create(sticker=poll, user=second, option_ids=[b])

    # when each lists the video's stickers (the device token, the video exists?, the viewer
    # its creator?, the page's stickers, their options, checkpoints, the viewer's votes and
    # answers: per page, not per sticker)
    first_client = make_client(first)
    with django_assert_num_queries(8):
        first_list = first_client.get(f"/api/v1/videos/{video.pk}/stickers")
    second_list = make_client(second).get(f"/api/v1/videos/{video.pk}/stickers")
    nobody_list = make_client(UserFactory.create()).get(f"/api/v1/videos/{video.pk}/stickers")

    # then each sees both stickers, in creation order, with only their own vote
    def vote_of(vote: Vote) -> dict[str, Any]:
        return {
            "vote": {"option_ids": vote.option_ids, "voted_at": iso(vote.voted_at)},
            "answers": [],
            "progress": None,
            "unlocked": None,
        }

    assert first_list.status_code == 200
    assert first_list.json() == {
        "next": None,
        "previous": None,
        "results": [sticker_document(poll, viewer=vote_of(first_vote)), sticker_document(pick)],
    }
    assert second_list.json()["results"] == [
        sticker_document(poll, viewer=vote_of(second_vote)),
        sticker_document(pick),
    ]
    assert nobody_list.json()["results"] == [sticker_document(poll), sticker_document(pick)]

    with django_assert_num_queries(6):  # the device token, the sticker as presented
        detail = first_client.get(f"/api/v1/stickers/{poll.pk}")
    assert detail.status_code == 200
    assert detail.json() == sticker_document(poll, viewer=vote_of(first_vote))


def test_a_video_without_stickers_lists_none(
    client_for_user: APIClient, django_assert_num_queries: Callable[..., Any]
) -> None:
    video = VideoFactory.create()

    # the device token, the video exists?, the viewer its creator?, no stickers (nothing more)
    with django_assert_num_queries(4):
        response = client_for_user.get(f"/api/v1/videos/{video.pk}/stickers")

    assert response.status_code == 200
    assert response.json() == {"next": None, "previous": None, "results": []}


def test_the_list_is_cursor_paginated_in_the_order_stickers_were_added(
    client_for_user: APIClient, django_assert_num_queries: Callable[..., Any]
) -> None:
    video = VideoFactory.create()
    stickers = [StickerFactory.create(video=video, options=["A", "B"]) for _ in range(3)]

    with django_assert_num_queries(8):  # a page of two
        first = client_for_user.get(f"/api/v1/videos/{video.pk}/stickers", {"page_size": 2})
    assert first.status_code == 200
    assert [entry["id"] for entry in first.json()["results"]] == [s.pk for s in stickers[:2]]
    assert first.json()["previous"] is None
    with django_assert_num_queries(8):  # a page of one: the same
        second = client_for_user.get(first.json()["next"])

    assert second.status_code == 200
    assert [entry["id"] for entry in second.json()["results"]] == [stickers[2].pk]
    assert second.json()["next"] is None
    assert second.json()["results"] == [sticker_document(stickers[2])]


def test_an_unknown_sticker_is_404(
    client_for_user: APIClient, django_assert_num_queries: Callable[..., Any]
) -> None:
    path = f"/api/v1/stickers/{unknown_id(Sticker)}"

    with django_assert_num_queries(2):  # the device token, no sticker
        response = client_for_user.get(path)

    assert_problem(response, 404, "not_found", "No sticker with this id.")


def test_the_state_follows_the_clock_between_sweeps(client_for_user: APIClient) -> None:
    # stored states lag behind the clock until the beat sweep; the API derives the real one
    now = timezone.now()
    due_to_open = StickerFactory.create(
        state="scheduled", opens_at=now - timedelta(seconds=1), options=["A", "B"]
    )
    not_yet = StickerFactory.create(
        state="scheduled", opens_at=now + timedelta(hours=1), options=["A", "B"]
    )
    due_to_close = StickerFactory.create(options=["A", "B"])
    Sticker.objects.filter(pk=due_to_close.pk).update(closes_at=now - timedelta(seconds=1))

    states = {
        sticker.pk: client_for_user.get(f"/api/v1/stickers/{sticker.pk}").json()["state"]
        for sticker in (due_to_open, not_yet, due_to_close)
    }

    assert states == {due_to_open.pk: "open", not_yet.pk: "scheduled", due_to_close.pk: "closed"}


# --- PATCH: creator only, only while scheduled ----------------------------------------------------
def _scheduled_poll(make_client: ClientMaker) -> tuple[Sticker, APIClient]:
    video = VideoFactory.create()
    client = make_client(video.creator)
    response = _post_sticker(
        client, video.pk, _poll_body(opens_at=_in(hours=1), closes_at=_in(hours=3))
    )
    assert response.status_code == 201, response.content
    return Sticker.objects.get(pk=response.json()["id"]), client


def test_the_creator_edits_a_scheduled_sticker(
    make_client: ClientMaker, django_assert_num_queries: Callable[..., Any]
) -> None:
    sticker, client = _scheduled_poll(make_client)
    old_options = option_ids(sticker)
    closes_at = timezone.now() + timedelta(hours=5)

    # as a patch without lists (test_a_patch_without_lists_keeps_the_options), and the options
    # replaced: the old ones read, their results deleted, the winner cleared, the options
    # deleted, the checkpoints read (again), the new options inserted
    with django_assert_num_queries(18):
        response = client.patch(
            f"/api/v1/stickers/{sticker.pk}",
            {
                "prompt": "Edited?",
                "options": [{"label": "X"}, {"label": "Y"}, {"label": "Z"}],
                "max_choices": 2,
                "closes_at": closes_at.isoformat(),
            },
            format="json",
        )

    assert response.status_code == 200, response.content
    sticker.refresh_from_db()
    assert (sticker.prompt, sticker.max_choices, sticker.closes_at, sticker.state) == (
        "Edited?",
        2,
        closes_at,
        "scheduled",
    )
    assert list(sticker.options.values_list("label", flat=True)) == ["X", "Y", "Z"]
    assert not StickerOption.objects.filter(pk__in=old_options).exists()
    assert response.json() == sticker_document(sticker)


def test_a_patch_without_lists_keeps_the_options(
    make_client: ClientMaker, django_assert_num_queries: Callable[..., Any]
) -> None:
    sticker, client = _scheduled_poll(make_client)
    old_options = option_ids(sticker)

    # the device token; in one atomic block (BEGIN/COMMIT or savepoints) the sticker, its
    # options, its checkpoints, the UPDATE; then the sticker as presented
    with django_assert_num_queries(12):
        response = client.patch(
            f"/api/v1/stickers/{sticker.pk}", {"results_visibility": "after_close"}, format="json"
        )

    assert response.status_code == 200, response.content
    assert option_ids(sticker) == old_options
    assert response.json() == sticker_document(sticker, results_visibility="after_close")


def test_a_patch_that_breaks_a_rule_changes_nothing(make_client: ClientMaker) -> None:
    sticker, client = _scheduled_poll(make_client)
    before = polls_state()

    response = client.patch(
        f"/api/v1/stickers/{sticker.pk}", {"options": [{"label": "Only"}]}, format="json"
    )
    assert_problem(
        response,
        400,
        "invalid",
        "Invalid input: options: A sticker of kind poll has 2 to 10 options.",
        errors={"options": ["A sticker of kind poll has 2 to 10 options."]},
    )
    response = client.patch(f"/api/v1/stickers/{sticker.pk}", {"closes_at": None}, format="json")
    assert_problem(
        response,
        400,
        "invalid",
        "Invalid input: closes_at: A sticker of kind poll needs closes_at.",
        errors={"closes_at": ["A sticker of kind poll needs closes_at."]},
    )
    response = client.patch(f"/api/v1/stickers/{sticker.pk}", {"prompt": 7}, format="json")
    assert_problem(
        response,
        400,
        "invalid",
        "Invalid input: prompt: Must be a string.",
        errors={"prompt": ["Must be a string."]},
    )
    assert polls_state() == before


def test_only_the_creator_edits_even_staff_may_not(make_client: ClientMaker) -> None:
    sticker, _ = _scheduled_poll(make_client)
    clients = [make_client(UserFactory.create()), make_client(StaffUserFactory.create())]
    before = polls_state()

    for client in clients:
        response = client.patch(
            f"/api/v1/stickers/{sticker.pk}", {"prompt": "Hijacked"}, format="json"
        )
        assert_problem(
            response, 403, "not_video_creator", "Only the video's creator edits its stickers."
        )
    assert polls_state() == before


@pytest.mark.parametrize("state", ["open", "closed", "final", "canceled"])
def test_a_sticker_that_is_no_longer_scheduled_cannot_be_edited(
    make_client: ClientMaker, state: str
) -> None:
    sticker = StickerFactory.create(state=state, options=["A", "B"])
    client = make_client(sticker.video.creator)
    before = polls_state()

    response = client.patch(f"/api/v1/stickers/{sticker.pk}", {"prompt": "Too late"}, format="json")

    assert_problem(
        response,
        409,
        "sticker_not_scheduled",
        "A sticker can be edited only while it is scheduled.",
    )
    assert polls_state() == before


def test_a_scheduled_sticker_whose_opening_time_passed_cannot_be_edited(
    make_client: ClientMaker,
) -> None:
    sticker = StickerFactory.create(
        state="scheduled", opens_at=timezone.now() - timedelta(seconds=1), options=["A", "B"]
    )
    client = make_client(sticker.video.creator)
    before = polls_state()

    response = client.patch(f"/api/v1/stickers/{sticker.pk}", {"prompt": "Too late"}, format="json")

    assert_problem(
        response,
        409,
        "sticker_not_scheduled",
        "A sticker can be edited only while it is scheduled.",
    )
    assert polls_state() == before


# --- close, cancel, moderate ----------------------------------------------------------------------
def test_the_creator_closes_an_open_sticker(
    make_client: ClientMaker, django_assert_num_queries: Callable[..., Any]
) -> None:
    sticker = StickerFactory.create(options=["A", "B"])
    client = make_client(sticker.video.creator)
    before = timezone.now()

    # the device token; in one atomic block (BEGIN/COMMIT or savepoints) the sticker, the
    # UPDATE; then the sticker as presented (the sticker read again, its options, checkpoints,
    # the viewer's vote and answers)
    with django_assert_num_queries(10):
        response = client.post(f"/api/v1/stickers/{sticker.pk}/close")

    assert response.status_code == 200, response.content
    sticker.refresh_from_db()
    assert sticker.state == "closed"
    assert sticker.closed_at is not None and before <= sticker.closed_at <= timezone.now()
    assert response.json() == sticker_document(sticker, state="closed")


def test_the_creator_closes_a_scheduled_sticker(make_client: ClientMaker) -> None:
    sticker, client = _scheduled_poll(make_client)

    response = client.post(f"/api/v1/stickers/{sticker.pk}/close")

    assert response.status_code == 200, response.content
    assert response.json()["state"] == "closed"
    assert Sticker.objects.get(pk=sticker.pk).state == "closed"


def test_staff_close_any_sticker(make_client: ClientMaker) -> None:
    sticker = StickerFactory.create(options=["A", "B"])

    response = make_client(StaffUserFactory.create()).post(f"/api/v1/stickers/{sticker.pk}/close")

    assert response.status_code == 200, response.content
    assert response.json()["state"] == "closed"
    assert Sticker.objects.get(pk=sticker.pk).state == "closed"


def test_other_users_may_not_close_cancel_or_moderate(
    make_client: ClientMaker, django_assert_num_queries: Callable[..., Any]
) -> None:
    sticker = StickerFactory.create(options=["A", "B"])
    client = make_client(UserFactory.create())
    before = polls_state()

    for action in ("close", "cancel"):
        # the device token; the sticker read in the atomic block (in a test a savepoint,
        # rolled back and released)
        with django_assert_num_queries(5):
            response = client.post(f"/api/v1/stickers/{sticker.pk}/{action}")
        assert_problem(
            response, 403, "not_video_creator", "Only the video's creator or staff may do this."
        )
    response = client.post(f"/api/v1/stickers/{sticker.pk}/moderate", {}, format="json")
    assert_problem(response, 403, "staff_only", "Only staff moderate stickers.")
    assert polls_state() == before


@pytest.mark.parametrize(
    ("state", "message"),
    [
        ("closed", "The sticker is closed; it cannot be closed."),
        ("final", "The sticker is final; it cannot be closed."),
        ("canceled", "The sticker is canceled; it cannot be closed."),
    ],
)
def test_a_sticker_that_is_not_open_cannot_be_closed(
    make_client: ClientMaker, state: str, message: str
) -> None:
    sticker = StickerFactory.create(state=state, options=["A", "B"])
    client = make_client(sticker.video.creator)
    before = polls_state()

    response = client.post(f"/api/v1/stickers/{sticker.pk}/close")

    assert_problem(response, 409, "sticker_not_open", message)
    assert polls_state() == before


def test_a_sticker_past_its_closing_time_cannot_be_closed_again(make_client: ClientMaker) -> None:
    sticker = StickerFactory.create(options=["A", "B"])
    Sticker.objects.filter(pk=sticker.pk).update(closes_at=timezone.now() - timedelta(seconds=1))
    client = make_client(sticker.video.creator)
    before = polls_state()

    response = client.post(f"/api/v1/stickers/{sticker.pk}/close")

    assert_problem(response, 409, "sticker_not_open", "The sticker is closed; it cannot be closed.")
    assert polls_state() == before


@pytest.mark.parametrize("state", ["scheduled", "open", "closed"])
def test_the_creator_cancels_a_sticker_that_is_not_final(
    make_client: ClientMaker, state: str, django_assert_num_queries: Callable[..., Any]
) -> None:
    sticker = StickerFactory.create(state=state, options=["A", "B"])
    client = make_client(sticker.video.creator)

    with django_assert_num_queries(10):  # as a close
        response = client.post(f"/api/v1/stickers/{sticker.pk}/cancel")

    assert response.status_code == 200, response.content
    sticker.refresh_from_db()
    assert sticker.state == "canceled"
    assert sticker.closed_at is not None
    assert response.json() == sticker_document(sticker, state="canceled")


def test_staff_cancel_any_sticker(make_client: ClientMaker) -> None:
    sticker = StickerFactory.create(options=["A", "B"])

    response = make_client(StaffUserFactory.create()).post(f"/api/v1/stickers/{sticker.pk}/cancel")

    assert response.status_code == 200, response.content
    assert Sticker.objects.get(pk=sticker.pk).state == "canceled"


@pytest.mark.parametrize("state", ["final", "canceled"])
def test_a_final_or_canceled_sticker_cannot_be_canceled(
    make_client: ClientMaker, state: str
) -> None:
    sticker = StickerFactory.create(state=state, options=["A", "B"])
    client = make_client(sticker.video.creator)
    before = polls_state()

    response = client.post(f"/api/v1/stickers/{sticker.pk}/cancel")

    assert_problem(
        response,
        409,
        "sticker_not_cancelable",
        f"The sticker is {state}; it cannot be canceled.",
    )
    assert polls_state() == before


def test_staff_moderate_a_sticker_and_it_disappears_for_everyone_else(
    make_client: ClientMaker, django_assert_num_queries: Callable[..., Any]
) -> None:
    # given an open poll on a video
    sticker = StickerFactory.create(options=["A", "B"])
    other = StickerFactory.create(video=sticker.video, options=["C", "D"])
    staff = make_client(StaffUserFactory.create())
    viewer = make_client(UserFactory.create())
    creator = make_client(sticker.video.creator)

    # when staff moderate it (queries as a close)
    with django_assert_num_queries(10):
        response = staff.post(
            f"/api/v1/stickers/{sticker.pk}/moderate", {"reason": "spam"}, format="json"
        )

    # then it is moderated, with the reason
    assert response.status_code == 200, response.content
    sticker.refresh_from_db()
    assert (sticker.state, sticker.moderation_reason) == ("moderated", "spam")
    assert response.json() == sticker_document(sticker, state="moderated")
    # and viewers no longer see it anywhere; the creator and staff still do
    assert_problem(
        viewer.get(f"/api/v1/stickers/{sticker.pk}"), 404, "not_found", "No sticker with this id."
    )
    assert_problem(
        viewer.get(f"/api/v1/stickers/{sticker.pk}/results"),
        404,
        "not_found",
        "No sticker with this id.",
    )
    assert viewer.get(f"/api/v1/videos/{sticker.video_id}/stickers").json()["results"] == [
        sticker_document(other)
    ]
    for client in (creator, staff):
        assert client.get(f"/api/v1/stickers/{sticker.pk}").json()["state"] == "moderated"
        assert [
            entry["id"]
            for entry in client.get(f"/api/v1/videos/{sticker.video_id}/stickers").json()["results"]
        ] == [sticker.pk, other.pk]
    # and nobody can vote on it
    before = polls_state()
    assert_problem(
        viewer.post(
            f"/api/v1/stickers/{sticker.pk}/votes",
            {"option_ids": option_ids(sticker)[:1]},
            format="json",
        ),
        404,
        "not_found",
        "No sticker with this id.",
    )
    # and a viewer may not act on it: it does not exist for them
    for response in (
        viewer.post(f"/api/v1/stickers/{sticker.pk}/close"),
        viewer.post(f"/api/v1/stickers/{sticker.pk}/cancel"),
        viewer.post(f"/api/v1/stickers/{sticker.pk}/moderate", {}, format="json"),
        viewer.patch(f"/api/v1/stickers/{sticker.pk}", {"prompt": "x"}, format="json"),
    ):
        assert_problem(response, 404, "not_found", "No sticker with this id.")
    # while its creator, who sees it, is told what they may not do
    assert_problem(
        creator.post(f"/api/v1/stickers/{sticker.pk}/moderate", {}, format="json"),
        403,
        "staff_only",
        "Only staff moderate stickers.",
    )
    assert polls_state() == before


def test_moderating_twice_keeps_the_first_reason(
    make_client: ClientMaker, django_assert_num_queries: Callable[..., Any]
) -> None:
    sticker = StickerFactory.create(options=["A", "B"])
    staff = make_client(StaffUserFactory.create())
    staff.post(f"/api/v1/stickers/{sticker.pk}/moderate", {"reason": "spam"}, format="json")

    with django_assert_num_queries(9):  # moderated already: no UPDATE
        response = staff.post(
            f"/api/v1/stickers/{sticker.pk}/moderate", {"reason": "again"}, format="json"
        )

    assert response.status_code == 200, response.content
    sticker.refresh_from_db()
    assert (sticker.state, sticker.moderation_reason) == ("moderated", "spam")


def test_the_creator_may_not_moderate(make_client: ClientMaker) -> None:
    sticker = StickerFactory.create(options=["A", "B"])
    client = make_client(sticker.video.creator)
    before = polls_state()

    response = client.post(
        f"/api/v1/stickers/{sticker.pk}/moderate", {"reason": "mine"}, format="json"
    )

    assert_problem(response, 403, "staff_only", "Only staff moderate stickers.")
    assert polls_state() == before


def test_a_bad_moderation_reason_is_refused(make_client: ClientMaker) -> None:
    sticker = StickerFactory.create(options=["A", "B"])
    client = make_client(StaffUserFactory.create())
    before = polls_state()

    response = client.post(
        f"/api/v1/stickers/{sticker.pk}/moderate", {"reason": ["spam"]}, format="json"
    )

    assert_problem(
        response,
        400,
        "invalid",
        "Invalid input: reason: Must be a string.",
        errors={"reason": ["Must be a string."]},
    )
    assert polls_state() == before


# --- demo data ------------------------------------------------------------------------------------
def test_seed_demo_creates_one_sticker_of_each_kind_and_is_idempotent() -> None:
    call_command("seed_demo", stdout=io.StringIO())
    first = polls_state()

    call_command("seed_demo", stdout=io.StringIO())

    # polls' own demo stickers, on engagement's demo videos (analytics' history adds more)
    titles = [title for _, _, uploads in DEMO_CREATORS for title, _, _ in uploads]
    stickers = Sticker.objects.filter(video__title__in=titles)
    assert sorted(stickers.values_list("kind", flat=True)) == [
        "comment_pick",
        "ending",
        "poll",
        "quiz",
        "unlock",
    ]
    assert stickers.filter(state="open").count() == 5
    assert Checkpoint.objects.filter(sticker__in=stickers).count() == 2
    poll = stickers.get(kind="poll")
    ending = stickers.get(kind="ending")
    assert list(poll.options.values_list("label", flat=True)) == ["Pho", "Tacos", "Curry"]
    assert Vote.objects.filter(sticker=poll).count() == 4
    assert Vote.objects.filter(sticker=ending).count() == 4
    assert polls_state() == first
