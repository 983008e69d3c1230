"""Path converters shared by the apps' URL confs (registered in CoreConfig.ready)."""


class IdConverter:
    """A positive id that fits a bigint; anything else does not match (404)."""

    regex = "[1-9][0-9]{0,17}"

    def to_python(self, value: str) -> int:
        return int(value)

    def to_url(self, value: int) -> str:
        return str(value)
