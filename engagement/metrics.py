"""Likes committed, for the operator's "likes per second" (rate() of the counter)."""

from prometheus_client import Counter

LIKES = Counter(
    "chorus_likes",
    "New likes, counted once committed (not repeats of an existing like), by target.",
    ["target"],
)
VIDEO_LIKES = LIKES.labels(target="video")
COMMENT_LIKES = LIKES.labels(target="comment")
