"""The admin's read-only creator centre and video figures (analytics/admin.py)."""

from io import StringIO

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from analytics.selectors import creator_analytics_document
from analytics.services.consumer import analytics_events_process
from engagement.models import User, Video
from tests.conftest import unknown_id
from tests.factories import StaffUserFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice() -> User:
    call_command("seed_demo", stdout=StringIO())
    # The admin reads the rollups, as the API does: one consumer pass brings them up to date.
    analytics_events_process()
    return User.objects.get(username="alice")


@pytest.fixture
def staff_client() -> Client:
    client = Client()
    client.force_login(StaffUserFactory.create())
    return client


def _url(user: User, **query: str) -> str:
    url = reverse("admin:engagement_user_analytics", args=[user.pk])
    return url + ("?" + "&".join(f"{key}={value}" for key, value in query.items()) if query else "")


def test_staff_see_a_creators_figures(staff_client: Client, alice: User) -> None:
    response = staff_client.get(_url(alice, days="28", tz="UTC"))

    assert response.status_code == 200
    # (the page shows what the API would answer: the rollup-served document)
    figures = creator_analytics_document(creator_id=alice.pk, days=28, tz="UTC")
    page = response.content.decode()
    assert f"{figures['interaction_rate']:.1%}" in page
    assert f"{figures['completion_rate']:.1%}" in page
    assert f'id="total-plays"><div class="value">{figures["totals"]["plays"]}<' in page
    assert 'id="fan-activity"' in page and 'id="tool-effect"' in page
    first_tag = figures["interest_preferences"][0]["hashtag"]
    assert f"#{first_tag}" in page
    video = Video.objects.get(title="Night market dumplings")
    assert reverse("admin:engagement_video_analytics", args=[video.pk]) + "?days=28" in page


def test_the_default_window_is_28_days_in_utc(staff_client: Client, alice: User) -> None:
    response = staff_client.get(_url(alice))

    assert response.status_code == 200
    assert response.context["form"].cleaned_data == {"days": 28, "tz": "UTC"}
    assert response.context["document"]["window"]["days"] == 28


def test_the_user_page_links_to_the_creator_centre(staff_client: Client, alice: User) -> None:
    response = staff_client.get(reverse("admin:engagement_user_change", args=[alice.pk]))

    assert response.status_code == 200
    assert _url(alice, days="7", tz="UTC").replace("&", "&amp;") in response.content.decode()


def test_staff_see_a_videos_figures(staff_client: Client, alice: User) -> None:
    video = Video.objects.get(title="Night market dumplings")

    response = staff_client.get(
        reverse("admin:engagement_video_analytics", args=[video.pk]) + "?days=7&tz=Asia/Kolkata"
    )

    assert response.status_code == 200
    document = response.context["document"]
    assert document["fan_activity"]["timezone"] == "Asia/Kolkata"
    assert {sticker["kind"] for sticker in document["stickers"]} == {"poll", "comment_pick"}
    assert 'id="first-hour"' in response.content.decode()


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"days": "28", "tz": "Mars/Olympus"}, "Unknown time zone"),
        ({"days": "28", "tz": "UTC+5"}, "Unknown time zone"),
        ({"days": "5", "tz": "UTC"}, "Select a valid choice"),
        ({"days": "abc", "tz": "UTC"}, "Select a valid choice"),
    ],
)
def test_a_bad_window_or_zone_is_a_form_error(
    staff_client: Client, query: dict[str, str], message: str
) -> None:
    creator = UserFactory.create()

    response = staff_client.get(_url(creator, **query))

    assert response.status_code == 200
    assert message in response.content.decode()
    assert response.context["document"] is None
    assert 'id="rates"' not in response.content.decode()


def test_a_non_staff_user_is_sent_to_the_login_page() -> None:
    creator, viewer = UserFactory.create(), UserFactory.create()
    client = Client()
    client.force_login(viewer)

    response = client.get(_url(creator, days="28", tz="UTC"))

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


def test_an_anonymous_visitor_is_sent_to_the_login_page() -> None:
    response = Client().get(_url(UserFactory.create()))

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


def test_an_unknown_creator_or_video_is_a_404(staff_client: Client) -> None:
    user_url = reverse("admin:engagement_user_analytics", args=[unknown_id(User)])
    video_url = reverse("admin:engagement_video_analytics", args=[unknown_id(Video)])

    assert staff_client.get(user_url).status_code == 404
    assert staff_client.get(video_url).status_code == 404
