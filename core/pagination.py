from rest_framework.pagination import CursorPagination


class IdCursorPagination(CursorPagination):
    """Newest first, by the monotonic primary key: stable under inserts, no OFFSET scans."""

    ordering = "-id"
    page_size = 20
    page_size_query_param = "page_size"
    max_page_size = 100
