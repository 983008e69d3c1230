from rest_framework.renderers import JSONRenderer as BaseJSONRenderer


class JSONRenderer(BaseJSONRenderer):
    """Plain JSON, compact. Error responses set their own problem+json content type."""

    charset = None
    compact = True
