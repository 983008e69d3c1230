"""core.memo: values kept by a key that names their content, bounded."""

from collections.abc import Callable

from core.memo import ContentMemo


def test_a_value_is_made_once_per_key_and_the_memo_starts_over_when_full() -> None:
    memo: ContentMemo[str, bytes] = ContentMemo(2)
    made: list[str] = []

    def make(value: bytes) -> Callable[[], bytes]:
        def now() -> bytes:
            made.append(value.decode())
            return value

        return now

    assert memo.get("a", make(b"1")) == b"1"
    assert memo.get("a", make(b"not made")) == b"1"  # once per key
    assert memo.get("b", make(b"2")) == b"2"
    assert memo.get("c", make(b"3")) == b"3"  # it was full: it started over
    assert memo.values == {"c": b"3"}
    assert made == ["1", "2", "3"]
