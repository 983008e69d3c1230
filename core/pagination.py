import re

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
