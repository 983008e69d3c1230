"""One sticker of each kind on the demo videos, with a few votes and answers."""

from collections.abc import Callable
from datetime import timedelta

from django.utils import timezone

from core.client import ClientInfo
from engagement.demo import CREATORS
from engagement.models import User, Video
from polls.models import Sticker
from polls.services.authoring import CheckpointSpec, StickerSpec, sticker_create
from polls.services.voting import vote_cast

DEMO_CLIENT = ClientInfo(ip="127.0.0.1", device_id="demo-device")


def _ensure(video: Video, spec: StickerSpec) -> Sticker:
    existing = Sticker.objects.filter(video=video, kind=spec.kind, prompt=spec.prompt).first()
    if existing is not None:
        return existing
    return sticker_create(creator=video.creator, video_id=video.pk, spec=spec)


def seed(log: Callable[[str], None]) -> None:
    # The creators' first demo videos, by title: the history that analytics seeds gives the same
    # creators more videos, and the stickers stay on these.
    videos = {
        video.creator.username: video
        for video in Video.objects.select_related("creator").filter(
            creator__username__in=[username for username, _, _ in CREATORS],
            title__in=[title for _, _, uploads in CREATORS for title, _, _ in uploads],
        )
    }
    if not {"alice", "bob", "carol"} <= set(videos):
        return
    week = timezone.now() + timedelta(days=7)
    poll = _ensure(
        videos["alice"],
        StickerSpec(
            kind="poll",
            prompt="What should I cook next?",
            options=[{"label": "Pho"}, {"label": "Tacos"}, {"label": "Curry"}],
            closes_at=week,
        ),
    )
    ending = _ensure(
        videos["carol"],
        StickerSpec(
            kind="ending",
            prompt="How should the lighthouse story end?",
            options=[
                {"label": "The keeper returns", "payload": {"text": "The light comes back on..."}},
                {
                    "label": "The ship finds the shore",
                    "payload": {"text": "Dawn breaks over the rocks..."},
                },
            ],
            closes_at=week,
            results_visibility="after_vote",
        ),
    )
    _ensure(
        videos["bob"],
        StickerSpec(
            kind="quiz",
            prompt="Spreadsheet shortcuts quiz",
            checkpoints=[
                CheckpointSpec(
                    at_ms=5_000,
                    question="Which shortcut fills down?",
                    options=["Ctrl+D", "Ctrl+R", "Ctrl+F"],
                    correct=[0],
                    explanation="Ctrl+D copies the cell above into the selection.",
                ),
                CheckpointSpec(
                    at_ms=20_000,
                    question="Which inserts today's date?",
                    options=["Ctrl+;", "Ctrl+:", "Ctrl+T"],
                    correct=[0],
                    explanation="Ctrl+; enters the current date.",
                ),
            ],
        ),
    )
    _ensure(
        videos["bob"],
        StickerSpec(
            kind="unlock",
            prompt="Like to unlock 3 more shortcuts",
            payload={"text": "Ctrl+Shift+L filters, Alt+= sums, F4 repeats the last action."},
        ),
    )
    _ensure(
        videos["alice"],
        StickerSpec(
            kind="comment_pick",
            prompt="The most-liked comment picks Friday's dinner",
            closes_at=week,
        ),
    )
    options = list(poll.options.values_list("id", flat=True))
    ending_options = list(ending.options.values_list("id", flat=True))
    for index, viewer in enumerate(
        User.objects.filter(username__in=["dave", "erin", "frank", "grace"])
    ):
        vote_cast(
            user=viewer, sticker_id=poll.pk, option_ids=[options[index % 3]], client=DEMO_CLIENT
        )
        vote_cast(
            user=viewer,
            sticker_id=ending.pk,
            option_ids=[ending_options[index % 2]],
            client=DEMO_CLIENT,
        )
    log("Demo stickers: a poll, an ending vote, a quiz, a like-to-unlock and a comment pick.")
