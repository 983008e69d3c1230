"""Which comments are *effective* (SPEC §3, `effective_comment_share`).

A comment is not effective when

- once whitespace and punctuation are removed nothing is left, or only emoji are left
  (`comment_is_hollow`), or
- it repeats a comment the same user made earlier on any video: the same text after case
  folding and collapsing whitespace (`comment_repeat_key`).

Both rules are Unicode rules PostgreSQL 15 cannot state exactly (it has no full case folding —
`lower('STRASSE')` is not `lower('Straße')`, `casefold` makes both `strasse` — and no emoji
data), so they are Python functions over the comment text; the SQL picks the rows.
"""

import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import emoji

# Characters that show nothing on their own and are removed with the whitespace: format
# characters (category Cf: zero-width space and joiner, BOM, bidi marks) and variation
# selectors left over outside an emoji sequence.
_VARIATION_SELECTORS = frozenset(chr(code) for code in range(0xFE00, 0xFE10))


def _is_blank_character(character: str) -> bool:
    if character.isspace() or character in _VARIATION_SELECTORS:
        return True
    category = unicodedata.category(character)
    return category.startswith("P") or category == "Cf"


def comment_is_hollow(text: str) -> bool:
    """True when the text is only whitespace, punctuation and emoji (or empty).

    Emoji are whole sequences as the `emoji` package's data knows them (ZWJ families, skin
    tones, flags, keycaps such as #️⃣), recognised before punctuation is removed so that a
    keycap's `#` is part of its emoji, not punctuation.
    """
    for token in emoji.analyze(text, non_emoji=True, join_emoji=True):
        if isinstance(token.value, emoji.EmojiMatch):
            continue
        if not _is_blank_character(token.chars):
            return False
    return True


def comment_repeat_key(text: str) -> str:
    """The text as compared for repeats: case folded, whitespace runs collapsed to one space,
    leading and trailing whitespace removed ("Hello   World" repeats "hello world")."""
    return " ".join(text.casefold().split())


@dataclass(frozen=True)
class CommentRow:
    id: int
    user_id: int
    created_at: datetime
    text: str


def effective_comment_ids(
    *, comments: Iterable[CommentRow], history: Iterable[CommentRow]
) -> set[int]:
    """The ids of the effective ones among `comments`.

    `history` holds every counted comment of the same users made before the window's end
    (`comments` among them). A comment repeats when the same user's first comment with the same
    repeat key, in (created_at, id) order, is another one.
    """
    first_with_key: dict[tuple[int, str], tuple[datetime, int]] = {}
    for row in history:
        key = (row.user_id, comment_repeat_key(row.text))
        order = (row.created_at, row.id)
        if key not in first_with_key or order < first_with_key[key]:
            first_with_key[key] = order

    def is_first_with_its_key(row: CommentRow) -> bool:
        order = (row.created_at, row.id)
        return first_with_key.get((row.user_id, comment_repeat_key(row.text)), order) == order

    return {
        row.id for row in comments if not comment_is_hollow(row.text) and is_first_with_its_key(row)
    }
