"""Every GET that answers a page is documented as one (SPEC §3: "complete enough to generate a
client"), and real answers validate against the documented schema."""

import json
from collections.abc import Callable
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from rest_framework.test import APIClient

from engagement.models import User, Video
from rewards.models import ActivityEvent
from rewards.services.events import reward_events_process
from tests.factories import (
    BadgeFactory,
    CommentFactory,
    LikeFactory,
    PerkFactory,
    ReportFactory,
    RewardRuleFactory,
    StickerFactory,
    UserFactory,
    VideoFactory,
)

pytestmark = pytest.mark.django_db

# path -> the component of one item of its pages
PAGINATED_GETS = {
    "/api/v1/videos": "Video",
    "/api/v1/videos/{video_id}/comments": "Comment",
    "/api/v1/videos/{video_id}/stickers": "Sticker",
    "/api/v1/badges": "Badge",
    "/api/v1/me/badges": "MyBadge",
    "/api/v1/me/perks": "Entitlement",
    "/api/v1/me/activity": "Activity",
    "/api/v1/me/reports": "Report",
}


@pytest.fixture
def schema(api_client: APIClient) -> dict[str, Any]:
    response = api_client.get("/api/schema/?format=json")
    assert response.status_code == 200
    return json.loads(response.content)


def _component(schema: dict[str, Any], reference: dict[str, Any]) -> dict[str, Any]:
    name = reference["$ref"].removeprefix("#/components/schemas/")
    return schema["components"]["schemas"][name]


def _ok_schema(schema: dict[str, Any], path: str) -> dict[str, Any]:
    return schema["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["schema"]


@pytest.mark.parametrize(("path", "item"), PAGINATED_GETS.items())
def test_each_page_is_documented_as_a_page_of_its_items(
    schema: dict[str, Any], path: str, item: str
) -> None:
    page = _component(schema, _ok_schema(schema, path))

    assert page["type"] == "object"
    assert page["required"] == ["next", "previous", "results"]
    assert {name: page["properties"][name]["type"] for name in ("next", "previous")} == {
        "next": "string",
        "previous": "string",
    }
    assert page["properties"]["next"]["nullable"] is True
    assert page["properties"]["previous"]["nullable"] is True
    assert page["properties"]["results"] == {
        "type": "array",
        "items": {"$ref": f"#/components/schemas/{item}"},
    }
    query = {
        parameter["name"]: parameter
        for parameter in schema["paths"][path]["get"]["parameters"]
        if parameter["in"] == "query"
    }
    assert query["cursor"]["schema"] == {"type": "string"}
    assert query["page_size"]["schema"] == {
        "type": "integer",
        "minimum": 1,
        "maximum": 100,
        "default": 20,
    }


def test_no_other_get_is_documented_as_a_page(schema: dict[str, Any]) -> None:
    documented_pages = {
        path
        for path, operations in schema["paths"].items()
        if "get" in operations
        and "results" in json.dumps(_component(schema, _ok_schema(schema, path)))
        and "cursor" in json.dumps(operations["get"].get("parameters", []))
    }

    assert documented_pages == set(PAGINATED_GETS)


# --- real answers against the documented schema -------------------------------------------------
def _as_json_schema(node: Any) -> Any:
    """OpenAPI 3.0 schema objects as JSON Schema: `nullable` becomes a null alternative, and an
    object lists all its properties (an undocumented field in an answer is an error too).

    `oneOf` is read as `anyOf`: a blank-able URL field is documented as "a URI or ''", and
    without a URI format checker '' satisfies both branches.
    """
    if isinstance(node, list):
        return [_as_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    converted = {
        "anyOf" if key == "oneOf" else key: _as_json_schema(value)
        for key, value in node.items()
        if key != "nullable"
    }
    if converted.get("type") == "object" and "properties" in converted:
        converted.setdefault("additionalProperties", False)
    if node.get("nullable"):
        return {"anyOf": [converted, {"type": "null"}]}
    return converted


def _validator(schema: dict[str, Any], path: str) -> Draft202012Validator:
    root = {
        **_ok_schema(schema, path),
        "components": {"schemas": _as_json_schema(schema["components"]["schemas"])},
    }
    return Draft202012Validator(root)


@pytest.fixture
def viewer_with_history(user: User) -> User:
    """A user with likes, a comment, a report, a badge, a perk and their activity feed (the real
    consumer wrote it), and a video with a sticker."""
    RewardRuleFactory.create(threshold=2)
    RewardRuleFactory.create(threshold=3, perk=PerkFactory.create())
    videos = VideoFactory.create_batch(5)
    # the sticker's video is the viewer's own, so its analytics answer too
    Video.objects.filter(pk=videos[0].pk).update(creator=user)
    for video in videos:
        LikeFactory.create(user=user, video=video)
    CommentFactory.create(user=user, video=videos[0])
    StickerFactory.create(video=videos[0], options=["A", "B"])
    ReportFactory.create(reporter=user, target_id=videos[1].pk)
    reward_events_process()
    return user


def test_every_documented_get_answers_as_documented(
    schema: dict[str, Any],
    viewer_with_history: User,
    make_client: Callable[..., APIClient],
) -> None:
    client = make_client(viewer_with_history)
    video = Video.objects.filter(stickers__isnull=False).get()
    sticker = video.stickers.get()
    values = {"{video_id}": str(video.pk), "{sticker_id}": str(sticker.pk)}
    checked = []

    for path, operations in schema["paths"].items():
        if "get" not in operations:
            continue
        url = path
        for placeholder, value in values.items():
            url = url.replace(placeholder, value)
        response = client.get(url)
        assert response.status_code == 200, (url, response.content)
        body = response.json()
        errors = [error.message for error in _validator(schema, path).iter_errors(body)]
        assert errors == [], (path, errors)
        assert ("results" in body and "next" in body) == (path in PAGINATED_GETS), path
        checked.append(path)

    assert set(PAGINATED_GETS) <= set(checked)


def test_me_activity_pages_validate_and_next_visits_every_item_once(
    schema: dict[str, Any],
    viewer_with_history: User,
    make_client: Callable[..., APIClient],
) -> None:
    client = make_client(viewer_with_history)
    validator = _validator(schema, "/api/v1/me/activity")
    expected = list(
        ActivityEvent.objects.filter(user=viewer_with_history)
        .order_by("-id")
        .values_list("id", flat=True)
    )
    assert len(expected) == 7  # 5 liked_video, 1 earned_badge, 1 earned_perk

    seen: list[int] = []
    pages = 0
    url: str | None = "/api/v1/me/activity?page_size=2"
    while url is not None:
        response = client.get(url)
        assert response.status_code == 200
        page = response.json()
        assert list(validator.iter_errors(page)) == []
        assert page["previous"] is None if pages == 0 else page["previous"] is not None
        seen.extend(item["id"] for item in page["results"])
        url = page["next"]
        pages += 1

    assert seen == expected
    assert pages == 4


def test_page_size_is_capped_at_the_documented_maximum(
    make_client: Callable[..., APIClient],
) -> None:
    # given more badges than the maximum page
    BadgeFactory.create_batch(101)
    client = make_client(UserFactory.create())

    page = client.get("/api/v1/badges?page_size=500").json()

    assert len(page["results"]) == 100
    assert page["next"] is not None
