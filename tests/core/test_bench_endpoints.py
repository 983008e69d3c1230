"""The benchmark's baselines (BENCH_ENDPOINTS): the bare GET with and without authentication,
and the Django tutorial's vote."""

from collections.abc import Callable

import pytest
from rest_framework.test import APIClient

from polls.models import Sticker, StickerTally
from polls.services.tallies import sticker_tally_refresh
from tests.conftest import unknown_id
from tests.factories import StickerFactory

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.core.bench_urls")]


def test_the_open_get_answers_without_a_token(
    api_client: APIClient, django_assert_num_queries: Callable
) -> None:
    with django_assert_num_queries(0):
        response = api_client.get("/api/v1/_bench/open")
    assert response.status_code == 200
    assert response.json() == {"ok": True, "user": None}


def test_the_bare_get_wants_a_token(
    api_client: APIClient, client_for_user: APIClient, django_assert_num_queries: Callable
) -> None:
    with django_assert_num_queries(0):
        assert api_client.get("/api/v1/_bench/bare").status_code == 401
    with django_assert_num_queries(1):  # the device token with its user, nothing else
        response = client_for_user.get("/api/v1/_bench/bare")
    assert response.status_code == 200
    assert response.json()["ok"] is True


def test_the_tutorial_vote_adds_one_to_one_row(
    api_client: APIClient, django_assert_num_queries: Callable
) -> None:
    sticker = StickerFactory.create(options=["A", "B"])
    sticker_tally_refresh(sticker_id=sticker.pk)
    option = sticker.options.get(label="A")
    path = f"/api/v1/_bench/tutorial/{sticker.pk}/vote"
    with django_assert_num_queries(3):  # the question, the choice, F("votes") + 1
        response = api_client.post(path, {"choice": option.pk}, format="multipart")
    assert response.status_code == 302
    assert response["Location"] == f"/api/v1/stickers/{sticker.pk}/results"
    api_client.post(path, {"choice": option.pk}, format="multipart")
    assert StickerTally.objects.get(sticker=sticker).total_votes == 2


def test_the_tutorial_vote_refuses_what_the_tutorial_refuses(api_client: APIClient) -> None:
    sticker = StickerFactory.create(options=["A", "B"])
    sticker_tally_refresh(sticker_id=sticker.pk)
    path = f"/api/v1/_bench/tutorial/{sticker.pk}/vote"
    assert api_client.post(path, {}, format="multipart").status_code == 400
    assert api_client.post(path, {"choice": "x"}, format="multipart").status_code == 400
    other = StickerFactory.create(options=["C"]).options.get()
    assert api_client.post(path, {"choice": other.pk}, format="multipart").status_code == 400
    assert api_client.get(path).status_code == 405
    missing = f"/api/v1/_bench/tutorial/{unknown_id(Sticker)}/vote"
    response = api_client.post(missing, {"choice": 1}, format="multipart")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/problem+json"
    assert StickerTally.objects.get(sticker=sticker).total_votes == 0
