import re
from typing import Any

from rest_framework.exceptions import NotFound
from rest_framework.pagination import Cursor, CursorPagination
from rest_framework.request import Request

# The cursor's position is the id it continues from; anything else is a forged cursor.
_POSITION_RE = re.compile(r"^[0-9]{1,18}$")


class IdCursorPagination(CursorPagination):
    """Newest first, by the monotonic primary key: stable under inserts, no OFFSET scans."""

    ordering = "-id"
    page_size = 20
    page_size_query_param = "page_size"
    max_page_size = 100

    def decode_cursor(self, request: Request) -> Cursor | None:
        cursor = super().decode_cursor(request)
        if (
            cursor is not None
            and cursor.position is not None
            and not _POSITION_RE.match(str(cursor.position))
        ):
            raise NotFound(self.invalid_cursor_message)
        return cursor

    # What the OpenAPI schema says of every page, for generated clients: `next` and `previous`
    # are always present (null at either end), and the page size's bounds.
    def get_paginated_response_schema(self, schema: dict[str, Any]) -> dict[str, Any]:
        page = super().get_paginated_response_schema(schema)
        page["required"] = ["next", "previous", "results"]
        page["properties"]["next"]["description"] = "The next page; null on the last one."
        page["properties"]["previous"]["description"] = "The previous page; null on the first one."
        return page

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["description"] = (
                    f"Items per page: {self.page_size} unless given, at most {self.max_page_size} "
                    "(a larger value gives the maximum)."
                )
                parameter["schema"] = {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": self.max_page_size,
                    "default": self.page_size,
                }
        return parameters
