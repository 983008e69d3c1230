"""A viewer's *likes version*: a token in the cache that moves after every commit that made or
undid one of the viewer's video likes, so a reader may keep what it computed from the viewer's
likes (the hot list's `viewer.liked`, analytics.api.discovery) for as long as the token it read
*before* computing has not moved (docs/discovery.md, "Serving").

The token moves on the API's like and unlike (`video_like`, `video_unlike`, after their
commit, before the answer is sent: a viewer sees their own like on the next read). Likes made
or removed around the API (a cascade, the admin, a bulk load) do not move it: a reader keeps
what it computed for at most its own lifetime. A version is never absent when a reader stores
under it (`viewer_likes_version` makes one first: core.versions). The cache ignores Redis
errors: no version is read, and readers compute every time.
"""

from core.versions import version_current, versions_move

_KEY = "engagement:likes:version:{user}"
VERSION_TTL_SECONDS = 86_400


def viewer_likes_version_key(user_id: int) -> str:
    """The (unprefixed) cache key of the user's likes version, for a read sent in a throttle's
    round trip."""
    return _KEY.format(user=user_id)


def viewer_likes_changed(user_id: int) -> None:
    """Call after the commit that made or undid one of the user's likes."""
    versions_move([viewer_likes_version_key(user_id)], VERSION_TTL_SECONDS)


def viewer_likes_version(user_id: int) -> str | None:
    """The user's likes version, made now when there is none (None: Redis unreachable)."""
    return version_current(viewer_likes_version_key(user_id), VERSION_TTL_SECONDS)
