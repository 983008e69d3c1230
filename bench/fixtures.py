"""Benchmark data, written into the scratch database (import only after django.setup()).

Users and their knox device tokens are created in bulk with the ORM (the same digest scheme knox
uses, so the server authenticates them exactly like tokens issued by `auth/register`); videos and
stickers go through the app's own services. The 1,000,000-vote sticker is filled set-based in SQL.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from knox.models import get_digest_token
from knox.settings import CONSTANTS

from engagement.models import DeviceToken, User
from engagement.services.videos import video_create
from polls.models import Sticker, StickerOption, StickerResult, Vote
from polls.services.authoring import StickerSpec, sticker_create


@dataclass(frozen=True)
class BenchUser:
    id: int
    token: str


@dataclass(frozen=True)
class BenchSticker:
    id: int
    option_ids: list[int]


def users_create(prefix: str, count: int, batch: int = 2000) -> list[BenchUser]:
    """`count` active users (unusable password) with one device token each."""
    made: list[BenchUser] = []
    expiry_delta = settings.REST_KNOX["TOKEN_TTL"]
    for start in range(0, count, batch):
        size = min(batch, count - start)
        with transaction.atomic():
            users = User.objects.bulk_create(
                [
                    User(username=f"{prefix}{start + i}", password="!", display_name="bench")
                    for i in range(size)
                ]
            )
            expiry = timezone.now() + expiry_delta
            tokens: list[DeviceToken] = []
            plain: list[str] = []
            for user in users:
                digest, token = get_digest_token()
                plain.append(token)
                tokens.append(
                    DeviceToken(
                        digest=digest,
                        token_key=token[: CONSTANTS.TOKEN_KEY_LENGTH],
                        user=user,
                        expiry=expiry,
                        device_id=f"bench-device-{user.pk}",
                    )
                )
            DeviceToken.objects.bulk_create(tokens)
        made.extend(BenchUser(user.pk, token) for user, token in zip(users, plain, strict=True))
    return made


def creator_video(username: str) -> tuple[User, int]:
    creator = User.objects.create(username=username, password="!", display_name="bench creator")
    video = video_create(
        creator=creator, title="bench video", caption="", hashtags=["bench"], duration_ms=60_000
    )
    return creator, video.pk


def poll_stickers_create(
    creator: User, video_id: int, count: int, options: int = 4
) -> list[BenchSticker]:
    """Open poll stickers (results always visible, vote change allowed), closing in a day."""
    stickers: list[BenchSticker] = []
    closes_at = timezone.now() + timedelta(days=1)
    for index in range(count):
        sticker = sticker_create(
            creator=creator,
            video_id=video_id,
            spec=StickerSpec(
                kind=Sticker.Kind.POLL,
                prompt=f"bench poll {index}",
                options=[{"label": f"option {n}"} for n in range(options)],
                results_visibility=Sticker.Visibility.ALWAYS,
                allow_vote_change=True,
                closes_at=closes_at,
            ),
        )
        option_ids = list(
            StickerOption.objects.filter(sticker=sticker)
            .order_by("position")
            .values_list("id", flat=True)
        )
        stickers.append(BenchSticker(sticker.pk, option_ids))
    return stickers


def backend_pids() -> list[int]:
    """PostgreSQL backends connected to the scratch database, other than our own."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return [int(row[0]) for row in cursor.fetchall()]


# Users made set-based, with an unusable password: (prefix, count) -> prefix1 … prefix<count>.
USERS_INSERT = f"""
    INSERT INTO {User._meta.db_table}
        (password, last_login, is_superuser, username, first_name, last_name, email,
         is_staff, is_active, date_joined, display_name)
    SELECT '!', NULL, false, %s || g, '', '', '', false, true, now(), ''
    FROM generate_series(1, %s) AS g
"""


# --- the 1,000,000-vote sticker ----------------------------------------------------------------
def million_fill(sticker: BenchSticker, votes: int) -> dict[str, float]:
    """`votes` users and one vote each on the sticker, set-based; then VACUUM ANALYZE.

    Options are skewed (about 40/30/20/10 %) so there is a clear order; 1 % of the votes do not
    count (as after an integrity decision), so `counted` is really filtered. Returns timings.
    """
    user_table = User._meta.db_table
    vote_table = Vote._meta.db_table
    timings: dict[str, float] = {}
    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(USERS_INSERT, ["bench-m-", votes])
    timings["users_insert_s"] = time.perf_counter() - started
    started = time.perf_counter()
    options = sticker.option_ids
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            f"""
            INSERT INTO {vote_table}
                (sticker_id, user_id, option_ids, created_at, voted_at, ip, device_id, counted)
            SELECT %(sticker)s, u.id,
                   ARRAY[CASE WHEN r < 0.4 THEN %(o1)s::bigint WHEN r < 0.7 THEN %(o2)s::bigint
                              WHEN r < 0.9 THEN %(o3)s::bigint ELSE %(o4)s::bigint END],
                   t, t, '127.0.0.1'::inet, 'bench-device', (u.id %% 100) <> 0
            FROM (
                SELECT id, random() AS r,
                       now() - interval '1 hour' + (random() * interval '1 hour') AS t
                FROM {user_table} WHERE username LIKE 'bench-m-%%'
            ) AS u
            """,
            {
                "sticker": sticker.id,
                "o1": options[0],
                "o2": options[1],
                "o3": options[2],
                "o4": options[3],
            },
        )
    timings["votes_insert_s"] = time.perf_counter() - started
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(f"VACUUM ANALYZE {user_table}")
        cursor.execute(f"VACUUM ANALYZE {vote_table}")
        cursor.execute(f"VACUUM ANALYZE {StickerResult._meta.db_table}")
        cursor.execute(f"VACUUM ANALYZE {Sticker._meta.db_table}")
    timings["vacuum_analyze_s"] = time.perf_counter() - started
    return timings


def sticker_set_closed(sticker_id: int) -> None:
    """(Re)put the sticker in the `closed` state awaiting finalization, results removed."""
    with transaction.atomic():
        StickerResult.objects.filter(sticker_id=sticker_id).delete()
        Sticker.objects.filter(pk=sticker_id).update(
            state=Sticker.State.CLOSED,
            closed_at=timezone.now(),
            finalized_at=None,
            total_votes=None,
            winner_option=None,
        )


def sticker_state(sticker_id: int) -> str:
    return str(Sticker.objects.filter(pk=sticker_id).values_list("state", flat=True).get())


# --- the reward fan-out: an ending sticker and its voters --------------------------------------
def ending_sticker_create(creator: User, video_id: int) -> BenchSticker:
    """An open `ending` sticker with 2 endings (results always visible), closing in a day."""
    sticker = sticker_create(
        creator=creator,
        video_id=video_id,
        spec=StickerSpec(
            kind=Sticker.Kind.ENDING,
            prompt="bench ending",
            options=[
                {"label": f"ending {n}", "payload": {"text": f"bench ending {n}"}} for n in range(2)
            ],
            results_visibility=Sticker.Visibility.ALWAYS,
            allow_vote_change=True,
            closes_at=timezone.now() + timedelta(days=1),
        ),
    )
    option_ids = list(
        StickerOption.objects.filter(sticker=sticker)
        .order_by("position")
        .values_list("id", flat=True)
    )
    return BenchSticker(sticker.pk, option_ids)


def ending_fill(
    sticker: BenchSticker, winners: int, losers: int, uncounted: int, prefix: str
) -> dict[str, float]:
    """New users and one vote each on the ending sticker, set-based (as `million_fill`).

    Exactly `winners` counted votes for the first ending, `losers` counted votes for the second
    and `uncounted` votes for the first that do not count (as after an integrity decision), in
    random order of user id; then VACUUM ANALYZE. Returns timings.
    """
    user_table = User._meta.db_table
    vote_table = Vote._meta.db_table
    total = winners + losers + uncounted
    timings: dict[str, float] = {}
    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(USERS_INSERT, [prefix, total])
    timings["users_insert_s"] = time.perf_counter() - started
    started = time.perf_counter()
    win, lose = sticker.option_ids
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            f"""
            INSERT INTO {vote_table}
                (sticker_id, user_id, option_ids, created_at, voted_at, ip, device_id, counted)
            SELECT %(sticker)s, u.id,
                   ARRAY[CASE WHEN u.n <= %(winners)s + %(uncounted)s THEN %(win)s::bigint
                              ELSE %(lose)s::bigint END],
                   u.t, u.t, '127.0.0.1'::inet, 'bench-device',
                   NOT (u.n > %(winners)s AND u.n <= %(winners)s + %(uncounted)s)
            FROM (
                SELECT id, row_number() OVER (ORDER BY random()) AS n,
                       now() - interval '1 hour' + (random() * interval '1 hour') AS t
                FROM {user_table} WHERE username LIKE %(pattern)s
            ) AS u
            """,
            {
                "sticker": sticker.id,
                "winners": winners,
                "uncounted": uncounted,
                "win": win,
                "lose": lose,
                "pattern": f"{prefix}%",
            },
        )
    timings["votes_insert_s"] = time.perf_counter() - started
    started = time.perf_counter()
    with connection.cursor() as cursor:
        for table in (user_table, vote_table, Sticker._meta.db_table):
            cursor.execute(f"VACUUM ANALYZE {table}")
    timings["vacuum_analyze_s"] = time.perf_counter() - started
    return timings


def videos_create(creator: User, count: int) -> list[int]:
    return [
        video_create(
            creator=creator,
            title=f"bench video {n}",
            caption="",
            hashtags=["bench"],
            duration_ms=60_000,
        ).pk
        for n in range(count)
    ]
