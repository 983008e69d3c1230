"""The detection passes' input: like events as columns (numpy arrays), whatever they were read
from — the interaction tables by COPY in production's light and nightly passes, a CSV loaded
into a scratch database by `integrity_evaluate`. This is the seam where a bigger engine
(DuckDB/Polars on one large machine, Spark beyond) would take the candidate search over
(docs/integrity.md, "Detection")."""

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from integrity.detection.arrays import Int


@dataclass(frozen=True)
class Events:
    """Likes as columns, one row per like, sorted by `ts`.

    Accounts, videos, creators, devices and networks are dense integer codes (0..n-1; -1 for an
    unknown device or network); `ts` is microseconds since the epoch. `user_ids` maps an
    account code back to its id. `subnet` codes the network prefix of `ip` (/24 for IPv4, /48
    for IPv6) when the loader knows it, else it is the address itself."""

    user: Int
    video: Int
    creator: Int
    ts: Int
    device: Int
    ip: Int
    user_ids: Sequence[str]
    subnet: Int | None = field(default=None)

    def __post_init__(self) -> None:
        n = len(self.user)
        for name in ("video", "creator", "ts", "device", "ip"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"Events.{name} has {len(getattr(self, name))} rows, not {n}")
        if n and np.any(np.diff(self.ts) < 0):
            raise ValueError("Events must be sorted by ts")

    @property
    def users(self) -> int:
        return len(self.user_ids)

    @property
    def networks(self) -> Int:
        return self.subnet if self.subnet is not None else self.ip

    def __len__(self) -> int:
        return len(self.user)

    # The two orders the signals read the likes in, each sorted once per pass (the events are
    # in time order, so a stable sort by a key keeps time order within it): every scale's cells
    # are runs in one of them, so no signal sorts or searches the likes again.
    @cached_property
    def by_account(self) -> Int:
        """Like indexes in (account, video, time) order."""
        n = len(self)
        bits = (max(1, self.users.bit_length()), _bits(self.video), max(1, n.bit_length()))
        if sum(bits) > 63:
            return _indexes(np.lexsort((self.video, self.user)))
        key = (self.user.astype(np.int64) << (bits[1] + bits[2])) | (
            self.video.astype(np.int64) << bits[2]
        )
        key |= np.arange(n, dtype=np.int64)  # unique keys: a plain sort, no argsort
        key.sort()
        key &= (1 << bits[2]) - 1
        return _indexes(key)

    @cached_property
    def by_video(self) -> Int:
        """Like indexes in (video, time) order."""
        return _indexes(np.argsort(self.video, kind="stable"))


def _indexes(order: Int) -> Int:
    """Like indexes as int32 when they fit (half the memory of the int64 numpy returns)."""
    return order.astype(np.int32) if len(order) < 2**31 else order


def _bits(values: Int) -> int:
    return max(1, int(values.max()).bit_length()) if len(values) else 1


def events_from_columns(
    *,
    user: Sequence[str],
    video: Sequence[str],
    creator: Sequence[str],
    ts: Sequence[int],
    device: Sequence[str | None],
    ip: Sequence[str | None],
) -> Events:
    """Events from plain columns of ids (tests, small inputs): codes assigned, sorted by ts."""

    def codes(values: Sequence[str | None]) -> tuple[Int, list[str]]:
        known = sorted({v for v in values if v})
        index = {v: i for i, v in enumerate(known)}
        return np.array([index[v] if v else -1 for v in values], dtype=np.int64), known

    order = np.argsort(np.asarray(ts, dtype=np.int64), kind="stable")
    user_codes, user_ids = codes(user)
    subnets = [network_of(v) for v in ip]
    return Events(
        user=user_codes[order],
        video=codes(video)[0][order],
        creator=codes(creator)[0][order],
        ts=np.asarray(ts, dtype=np.int64)[order],
        device=codes(device)[0][order],
        ip=codes(ip)[0][order],
        user_ids=user_ids,
        subnet=codes(subnets)[0][order],
    )


def network_of(ip: str | None) -> str:
    """The network an address is judged by: its /24 (IPv4) or /48 (IPv6) prefix, as text ("" for
    none). The SQL reader computes the same prefix (integrity.detection.load)."""
    if not ip:
        return ""
    address = ipaddress.ip_address(ip)
    prefix = 24 if address.version == 4 else 48
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))
