"""Demo creators, viewers, videos, comments and likes for `manage.py seed_demo`."""

import os
from collections.abc import Callable

from django.db import transaction

from core.client import ClientInfo
from engagement.models import Comment, Report, User, Video
from engagement.services import interactions, reports, videos

DEMO_PASSWORD = "demo-pass-123"
STAFF_USERNAME = "admin"

CREATORS = [
    ("alice", "Alice Cooks", [("Five-minute ramen", ["cooking", "ramen"], 45_000)]),
    ("bob", "Bob Builds", [("Spreadsheet shortcuts you need", ["excel", "productivity"], 30_000)]),
    ("carol", "Carol's Stories", [("The lighthouse, part 1", ["story", "mystery"], 60_000)]),
]
VIEWERS = ["dave", "erin", "frank", "grace"]


def _user(username: str, display_name: str) -> User:
    user, created = User.objects.get_or_create(
        username=username, defaults={"display_name": display_name}
    )
    if created:
        user.set_password(DEMO_PASSWORD)
        user.save(update_fields=["password"])
    return user


def seed(log: Callable[[str], None]) -> None:
    staff_password = os.environ.get("DEMO_ADMIN_PASSWORD", "chorus-admin-123")
    with transaction.atomic():
        staff, created = User.objects.get_or_create(
            username=STAFF_USERNAME,
            defaults={"display_name": "Platform staff", "is_staff": True, "is_superuser": True},
        )
        if created:
            staff.set_password(staff_password)
            staff.save(update_fields=["password"])
        viewers = [_user(name, name.title()) for name in VIEWERS]
    demo_client = ClientInfo(ip="127.0.0.1", device_id="demo-device")
    for username, display_name, uploads in CREATORS:
        creator = _user(username, display_name)
        for title, hashtags, duration_ms in uploads:
            video = Video.objects.filter(creator=creator, title=title).first()
            if video is None:
                video = videos.video_create(
                    creator=creator,
                    title=title,
                    caption="",
                    hashtags=hashtags,
                    duration_ms=duration_ms,
                )
            for viewer in viewers:
                interactions.video_like(user=viewer, video_id=video.pk, client=demo_client)
                interactions.creator_follow(
                    user=viewer, creator_id=creator.pk, source_video_id=video.pk, client=demo_client
                )
            if not Comment.objects.filter(video=video).exists():
                for viewer, text in zip(
                    viewers, ["Love this!", "More please", "🔥🔥"], strict=False
                ):
                    interactions.comment_create(
                        user=viewer, video_id=video.pk, text=text, client=demo_client
                    )
    _seed_reports(viewers, demo_client)
    log(f"Staff account for /admin/: username '{STAFF_USERNAME}', password '{staff_password}'")
    names = ", ".join([name for name, _, _ in CREATORS] + VIEWERS)
    log(f"Demo users (password '{DEMO_PASSWORD}'): {names}")


def _seed_reports(viewers: list[User], client: ClientInfo) -> None:
    """Two open reports for the admin's review queue; once a report exists (open or reviewed),
    seeding again leaves it, so a demo review is not undone by the next `make run`."""
    dave, erin, frank, _ = viewers
    video = Video.objects.get(creator__username="bob", title=CREATORS[1][2][0][0])
    comment = Comment.objects.filter(user=frank).order_by("id").first()
    wanted = [
        (dave, Report.TargetType.VIDEO, video.pk, "The title promises more than the video shows."),
    ]
    if comment is not None:
        wanted.append((erin, Report.TargetType.COMMENT, comment.pk, "Emoji spam."))
    for reporter, target_type, target_id, reason in wanted:
        if not Report.objects.filter(
            reporter=reporter, target_type=target_type, target_id=target_id
        ).exists():
            reports.report_file(
                reporter=reporter,
                target_type=target_type,
                target_id=target_id,
                reason=reason,
                client=client,
            )
