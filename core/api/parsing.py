"""A request's JSON body, read the short way when it is plain.

DRF's `request.data` negotiates a parser, builds a stream and a decoding reader around the body
and parses through them: for the hottest write (a vote's ten-byte body) that costs more than the
parsing. `request_json` parses a plain body with the standard library directly and leaves every
other body to `request.data`, so each 400 and 415 keeps DRF's words (docs/benchmarks.md).
"""

import codecs
import json
from functools import lru_cache
from typing import Any

from django.conf import settings
from rest_framework.parsers import JSONParser
from rest_framework.request import Request
from rest_framework.utils.json import strict_constant

# Larger bodies go through DRF (a vote's is a few dozen bytes).
PLAIN_BODY_MAX = 8 * 1024


def request_json(request: Request) -> Any:
    """`request.data`, for a view whose first parser is DRF's JSONParser.

    A body is plain when it is sent as `application/json`, names no charset or UTF-8, is 1 to
    PLAIN_BODY_MAX bytes, and parses as JSONParser parses it (UTF-8, and strict when the parser
    is: no NaN or Infinity); then the same value is returned without DRF's machinery. Anything
    else — another media type or charset, another first parser, an empty, large or malformed
    body — is `request.data`, which parses it or raises DRF's own error.
    """
    django_request = request._request
    parsers = request.parsers
    if (
        parsers
        and type(parsers[0]) is JSONParser
        and django_request.content_type == "application/json"
        and _is_utf8(django_request.encoding)
    ):
        length = django_request.META.get("CONTENT_LENGTH", "")
        if length.isdigit() and 0 < int(length) <= PLAIN_BODY_MAX:
            try:
                return json.loads(
                    django_request.body.decode("utf-8"),
                    parse_constant=strict_constant if parsers[0].strict else None,
                )
            except ValueError:  # (UnicodeDecodeError too) DRF words the error
                pass
    return request.data


def _is_utf8(encoding: str | None) -> bool:
    # (None: no charset named; DRF then decodes with DEFAULT_CHARSET)
    return _names_utf8(encoding or settings.DEFAULT_CHARSET)


@lru_cache(maxsize=64)  # (bounded: the charset is the client's to choose)
def _names_utf8(encoding: str) -> bool:
    try:
        return codecs.lookup(encoding).name == "utf-8"
    except LookupError:
        return False
