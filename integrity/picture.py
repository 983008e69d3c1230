"""The case page's evidence picture (SPEC §4): the case's accounts (rows) by time (x) of their
likes in the case's span, coloured by device or by network, the case's target videos drawn full
and the accounts' other likes hollow. A farm shows as columns of dots in a few colours; a crowd
of real people as scattered dots in as many colours as accounts. Plain SVG, drawn on the server
from one query; nothing is loaded from elsewhere."""

from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from html import escape

from django.db.models import Q

from engagement.models import Like
from integrity.detection.events import network_of
from integrity.models import Case

MAX_ACCOUNTS = 150
MAX_LIKES = 20_000
ROW = 12
LEFT = 150
WIDTH = 900
TOP = 24
# Distinct colours for the values that more than one account shares; a value of a single
# account is grey (it says nothing about a cluster).
PALETTE = (
    "#d62728",
    "#1f77b4",
    "#2ca02c",
    "#9467bd",
    "#ff7f0e",
    "#8c564b",
    "#e377c2",
    "#17becf",
    "#bcbd22",
    "#393b79",
)
LONE = "#b0b0b0"


@dataclass(frozen=True)
class Dot:
    account: int
    at: datetime
    device: str
    network: str
    target: bool


def case_dots(case: Case) -> tuple[list[int], list[Dot], int]:
    """(accounts shown, their likes in their spans, accounts left out)."""
    accounts = list(case.accounts.order_by("span_start", "user_id")[: MAX_ACCOUNTS + 1])
    left_out = max(0, case.account_count - MAX_ACCOUNTS)
    accounts = accounts[:MAX_ACCOUNTS]
    videos: set[int] = set()
    for signal in case.signals.all():
        videos.update(int(v) for v in (signal.evidence or {}).get("videos", []))
    spans = Q()
    for account in accounts:
        spans |= Q(
            user_id=account.user_id,
            created_at__gte=account.span_start,
            created_at__lt=account.span_end,
        )
    if not accounts:
        return [], [], left_out
    rows = (
        Like.objects.filter(spans)
        .order_by("created_at")
        .values_list("user_id", "video_id", "created_at", "device_id", "ip")[:MAX_LIKES]
    )
    dots = [
        Dot(user, at, device or "", network_of(ip), video in videos)
        for user, video, at, device, ip in rows
    ]
    return [account.user_id for account in accounts], dots, left_out


def _colours(dots: list[Dot], key: str) -> dict[str, str]:
    """A colour per value that several accounts share (the most shared first), grey for the
    rest."""
    accounts_per_value: dict[str, set[int]] = {}
    for dot in dots:
        value = getattr(dot, key)
        if value:
            accounts_per_value.setdefault(value, set()).add(dot.account)
    shared = Counter(
        {value: len(users) for value, users in accounts_per_value.items() if len(users) > 1}
    )
    return {
        value: PALETTE[rank % len(PALETTE)] for rank, (value, _) in enumerate(shared.most_common())
    }


def evidence_svg(
    accounts: list[int], dots: list[Dot], *, key: str, start: datetime, end: datetime
) -> str:
    """One picture: accounts x time, coloured by `key` ("device" or "network")."""
    colours = _colours(dots, key)
    row_of = {account: index for index, account in enumerate(accounts)}
    span = max((end - start).total_seconds(), 1.0)
    height = TOP + ROW * len(accounts) + 40
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'role="img" aria-label="likes of the case\'s accounts over time, by {key}" '
        'style="background:#fff;font:11px sans-serif">',
        f'<text x="{LEFT}" y="14">{escape(start.isoformat(timespec="minutes"))}</text>',
        f'<text x="{WIDTH - 4}" y="14" text-anchor="end">'
        f"{escape(end.isoformat(timespec='minutes'))}</text>",
    ]
    for account, index in row_of.items():
        y = TOP + ROW * index
        parts.append(f'<text x="4" y="{y + 9}">account {account}</text>')
        parts.append(f'<line x1="{LEFT}" y1="{y + 6}" x2="{WIDTH}" y2="{y + 6}" stroke="#eee"/>')
    for dot in dots:
        row = row_of.get(dot.account)
        if row is None:
            continue
        x = LEFT + (WIDTH - LEFT - 6) * (dot.at - start).total_seconds() / span
        y = TOP + ROW * row + 6
        colour = colours.get(getattr(dot, key), LONE)
        fill = colour if dot.target else "none"
        parts.append(
            f'<circle class="like" cx="{x:.1f}" cy="{y}" r="3" fill="{fill}" stroke="{colour}"/>'
        )
    legend_y = TOP + ROW * len(accounts) + 20
    legend = ", ".join(f"{escape(value or '?')}" for value in list(colours)[: len(PALETTE)])
    parts.append(
        f'<text x="4" y="{legend_y}">colour: {key}s shared by several accounts '
        f"({escape(legend) if legend else 'none'}); grey: one account's own; "
        "full: the case's videos, hollow: other likes</text>"
    )
    parts.append("</svg>")
    return "".join(parts)
