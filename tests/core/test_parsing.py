"""core.api.parsing.request_json: the same value or the same error as DRF's `request.data`."""

from typing import Any

import pytest
from rest_framework.exceptions import APIException
from rest_framework.parsers import FormParser, JSONParser
from rest_framework.request import Empty, Request
from rest_framework.test import APIRequestFactory

from core.api.parsing import PLAIN_BODY_MAX, request_json

BIG = b'{"option_ids": [1], "pad": "' + b"x" * PLAIN_BODY_MAX + b'"}'


def _request(body: bytes, content_type: str, parsers: list | None = None) -> Request:
    django_request = APIRequestFactory().post("/x", body, content_type=content_type)
    return Request(django_request, parsers=parsers if parsers is not None else [JSONParser()])


def _drf_parsed(request: Request) -> bool:
    """Whether DRF's parsing ran on this request (it leaves its data unset until then)."""
    return vars(request)["_full_data"] is not Empty


def _outcome(read: Any) -> tuple[str, Any]:
    try:
        return "value", read()
    except APIException as error:
        return type(error).__name__, (error.status_code, str(error.detail))


CASES = [
    (b'{"option_ids": [12, 7]}', "application/json"),
    (b'{"option_ids": [12]}', "application/json; charset=utf-8"),
    (b'{"option_ids": [12]}', "application/json; charset=UTF8"),
    ('{"label": "caf\u00e9 \u2603"}'.encode(), "application/json"),
    (b'[1, 2.5, null, true, "x"]', "application/json"),
    (b"", "application/json"),
    (b"{", "application/json"),
    (b'{"a": 1} trailing', "application/json"),
    (b'{"a": NaN}', "application/json"),
    (b'{"a": -Infinity}', "application/json"),
    (b"\xef\xbb\xbf{}", "application/json"),  # a UTF-8 byte order mark
    (b"\xff\xfe{}", "application/json"),
    ('{"a": "\u00e9"}'.encode("latin-1"), "application/json; charset=latin-1"),
    ('{"a": "\u00e9"}'.encode("utf-16"), "application/json; charset=utf-16"),
    (b'{"a": 1}', "application/json; charset=bz2_codec"),
    (b'{"a": 1}', "application/json; charset=no-such-charset"),
    (b'{"a": 1}', "application/vnd.api+json"),
    (b'{"a": 1}', "text/plain"),
    (b"a=1", "application/x-www-form-urlencoded"),
    (BIG, "application/json"),
]


@pytest.mark.parametrize(("body", "content_type"), CASES)
def test_the_same_value_or_error_as_request_data(body: bytes, content_type: str) -> None:
    expected = _outcome(lambda: _request(body, content_type).data)

    assert _outcome(lambda: request_json(_request(body, content_type))) == expected


@pytest.mark.parametrize("strict", [True, False])
def test_nan_follows_the_parsers_strictness(strict: bool) -> None:
    parser = JSONParser()
    parser.strict = strict
    body = b'{"a": NaN}'
    expected = _outcome(lambda: _request(body, "application/json", [parser]).data)

    outcome = _outcome(lambda: request_json(_request(body, "application/json", [parser])))

    assert outcome[0] == expected[0] == ("ParseError" if strict else "value")
    assert str(outcome[1]) == str(expected[1])  # (NaN != NaN: compared as text)


def test_a_plain_body_is_parsed_without_drf() -> None:
    request = _request(b'{"option_ids": [3]}', "application/json")

    assert request_json(request) == {"option_ids": [3]}
    assert not _drf_parsed(request)


@pytest.mark.parametrize(
    ("body", "content_type", "parsers"),
    [
        (b'{"a": 1}', "application/json", [FormParser(), JSONParser()]),
        (b'{"a": 1}', "application/json; charset=latin-1", None),
        (BIG, "application/json", None),
        (b'{"a": NaN}', "application/json", None),
    ],
)
def test_other_bodies_go_through_drf(body: bytes, content_type: str, parsers: list | None) -> None:
    request = _request(body, content_type, parsers)

    _outcome(lambda: request_json(request))

    assert _drf_parsed(request)
