"""The creator-centre documents' cache (analytics.documents, docs/analytics.md "Serving"), with
the production periods: reused while fresh whatever happens, then only while the creator's
rollups are unchanged, never past the max age; ETags; another user's video stays a 404."""

from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.test import override_settings
from django.utils import timezone
from rest_framework.test import APIClient

from analytics import documents
from analytics.services.consumer import analytics_events_process
from tests.analytics import world
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

DAY = timedelta(days=1)
ClientMaker = Callable[..., APIClient]
CREATOR = "/api/v1/creators/me/analytics?days=7"


def consume() -> None:
    while analytics_events_process().more:
        pass


class Clock:
    """The cache's clock (only the document ages; the database keeps its own time)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def advance(self, seconds: float) -> None:
        self.offset += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[Clock]:
    clock = Clock()
    real = documents.time.time
    monkeypatch.setattr(documents.time, "time", lambda: real() + clock.offset)
    with override_settings(
        ANALYTICS_DOCUMENT_FRESH_SECONDS=10, ANALYTICS_DOCUMENT_MAX_AGE_SECONDS=30
    ):
        yield clock


def likes(client: APIClient, path: str = CREATOR) -> tuple[int, str, dict[str, Any]]:
    response = client.get(path)
    assert response.status_code == 200, response.content
    body = response.json()
    return body["totals"]["likes"], response["ETag"], body


def test_a_document_is_reused_while_fresh_then_only_while_the_rollups_are_unchanged(
    make_client: ClientMaker, clock: Clock
) -> None:
    creator = UserFactory.create()
    clip = world.video(creator, timezone.now() - 3 * DAY)
    world.like(UserFactory.create(), clip, timezone.now() - DAY)
    consume()
    client = make_client(creator)
    first, etag, body = likes(client)
    assert first == 1

    # A new like, consumed: within the fresh period the stored document is still served.
    world.like(UserFactory.create(), clip, timezone.now() - DAY)
    consume()
    clock.advance(5)
    again, same_etag, same_body = likes(client)
    assert (again, same_etag, same_body) == (1, etag, body)

    # Past the fresh period the creator's version has moved: computed again.
    clock.advance(6)
    fresh, new_etag, _ = likes(client)
    assert fresh == 2 and new_etag != etag

    # Nothing changes: reused (same ETag) until the max age, then computed for a new window.
    clock.advance(15)
    assert likes(client)[1] == new_etag
    clock.advance(20)
    later, later_etag, later_body = likes(client)
    assert later == 2 and later_etag != new_etag
    assert later_body["window"]["end"] > body["window"]["end"]


def test_a_followers_like_elsewhere_outdates_the_followed_creators_document(
    make_client: ClientMaker, clock: Clock
) -> None:
    """The fan grid counts the followers' activity anywhere: their likes on another creator's
    video move the followed creator's version too."""
    creator, other = UserFactory.create(), UserFactory.create()
    fan = UserFactory.create()
    world.follow(fan, creator, timezone.now() - 5 * DAY)
    elsewhere = world.video(other, timezone.now() - 4 * DAY)
    consume()
    client = make_client(creator)
    _, etag, body = likes(client)
    assert sum(map(sum, body["fan_activity"]["grid"])) == 0

    world.like(fan, elsewhere, timezone.now() - DAY)
    consume()
    clock.advance(11)
    _, new_etag, new_body = likes(client)
    assert new_etag != etag
    assert sum(map(sum, new_body["fan_activity"]["grid"])) == 1


def test_while_one_request_computes_an_outdated_document_the_others_get_the_old_one(
    make_client: ClientMaker, clock: Clock
) -> None:
    creator = UserFactory.create()
    clip = world.video(creator, timezone.now() - 3 * DAY)
    consume()
    client = make_client(creator)
    _, etag, _ = likes(client)
    world.like(UserFactory.create(), clip, timezone.now() - DAY)
    consume()
    clock.advance(11)  # out of date: the version moved
    key = documents.DocumentKey("creator", creator.pk, creator.pk, 7, "UTC")
    assert documents._refresh_claim(key)  # another request is computing it
    assert likes(client)[:2] == (0, etag)
    documents._refresh_release(key)
    assert likes(client)[0] == 1
    # ...and never past the max age plus the refresh period
    assert documents._refresh_claim(key)
    clock.advance(31 + documents.REFRESH_SECONDS)
    assert likes(client)[0] == 1 and documents._refresh_claim(key) is False


def test_with_nothing_stored_a_request_waits_for_the_one_computing(
    make_client: ClientMaker, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    creator = UserFactory.create()
    world.video(creator, timezone.now() - 3 * DAY)
    consume()
    key = documents.DocumentKey("creator", creator.pk, creator.pk, 7, "UTC")
    assert documents._refresh_claim(key)  # another request is computing it...
    monkeypatch.setattr(documents, "WAIT_SECONDS", 0.3)
    waited: list[float] = []
    real = documents._computed_elsewhere

    def watched(key: documents.DocumentKey) -> object:
        started = documents.time.monotonic()
        found = real(key)
        waited.append(documents.time.monotonic() - started)
        return found

    monkeypatch.setattr(documents, "_computed_elsewhere", watched)
    # ...and never stores it: this one waits its bound, then computes
    assert likes(make_client(creator))[0] == 0
    assert waited and waited[0] >= 0.3


def test_an_unchanged_document_answers_304_to_its_etag(
    make_client: ClientMaker, clock: Clock
) -> None:
    creator = UserFactory.create()
    clip = world.video(creator, timezone.now() - 3 * DAY)
    consume()
    client = make_client(creator)
    path = f"/api/v1/videos/{clip.pk}/analytics?days=7"
    _, etag, _ = likes(client, path)
    response = client.get(path, HTTP_IF_NONE_MATCH=etag)
    assert response.status_code == 304
    assert response["ETag"] == etag


def test_another_users_video_is_a_404_even_when_its_document_is_stored(
    make_client: ClientMaker, clock: Clock
) -> None:
    creator, stranger = UserFactory.create(), UserFactory.create()
    clip = world.video(creator, timezone.now() - 3 * DAY)
    consume()
    path = f"/api/v1/videos/{clip.pk}/analytics?days=7"
    likes(make_client(creator), path)  # stored for the creator
    response = make_client(stranger).get(path)
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_documents_all_changed_outdates_every_stored_document(
    make_client: ClientMaker, clock: Clock
) -> None:
    creator = UserFactory.create()
    world.video(creator, timezone.now() - 3 * DAY)
    consume()
    client = make_client(creator)
    _, etag, _ = likes(client)
    clock.advance(11)
    assert likes(client)[1] == etag
    documents.documents_all_changed()
    assert likes(client)[1] != etag


def test_with_the_cache_off_every_read_computes(make_client: ClientMaker) -> None:
    creator = UserFactory.create()
    clip = world.video(creator, timezone.now() - 3 * DAY)
    consume()
    client = make_client(creator)
    with override_settings(ANALYTICS_DOCUMENT_MAX_AGE_SECONDS=0):
        assert likes(client)[0] == 0
        world.like(UserFactory.create(), clip, timezone.now() - DAY)
        consume()
        assert likes(client)[0] == 1
