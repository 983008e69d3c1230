"""The trending detector, measured (issue 9 §3): interaction streams with planted truths.

`world_generate` makes a deterministic stream over two windows of `hours` ending at `end`:
- background: `background_tags` tags with stable Poisson activity (rates spread log-uniformly
  from a handful to hundreds a window) and a daily rhythm; no trend, only noise;
- planted positives (must be in the top 20): real trends of several sizes, e.g. 1,000 -> 1,500,
  200 -> 400, 0 -> 60, from many distinct users;
- planted negatives (must not be): a tag going 1 -> 5; one creator spamming a tag from many
  videos with two accounts (fails the 3-distinct-users rule); a bot burst of uncounted likes;
  a falling tag.
`world_load` writes it with a few set-based statements; `detector_measure` runs the consumer and
the trending read and returns precision and recall of the top `top` against the positives.
"""

import math
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import connection

from engagement.models import Comment, Hashtag, Like, Share, User, Video, VideoHashtag

HOUR = timedelta(hours=1)


@dataclass
class World:
    end: datetime
    hours: int
    users: int
    # (tag name, creator index) per video
    videos: list[tuple[str, int]] = field(default_factory=list)
    # (kind, user index, video index, at, counted)
    events: list[tuple[str, int, int, datetime, bool]] = field(default_factory=list)
    positives: set[str] = field(default_factory=set)
    negatives: dict[str, str] = field(default_factory=dict)  # name -> why it must not trend


def _poisson(rng: random.Random, mean: float) -> int:
    if mean > 50:
        return max(0, round(rng.gauss(mean, math.sqrt(mean))))
    limit, k, p = math.exp(-mean), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


# Planted real trends: (previous window, this window). Scores 9 to 19.
POSITIVE_SIZES = [
    (1000, 1500),
    (2000, 2600),
    (200, 400),
    (100, 250),
    (50, 150),
    (0, 60),
    (0, 40),
    (400, 700),
    (20, 80),
    (300, 550),
]


def world_generate(
    *,
    end: datetime,
    hours: int = 24,
    background_tags: int = 200,
    positives: int = 20,
    users: int = 30_000,
    seed: int = 9,
) -> World:
    rng = random.Random(seed)
    world = World(end=end, hours=hours, users=users)
    start = end - 2 * hours * HOUR
    span = 2 * hours * 3600

    def rhythm(at: datetime) -> float:
        return 1 + 0.6 * math.sin(2 * math.pi * (at.hour - 9) / 24)

    def spread(
        tag: str,
        count: int,
        first: datetime,
        seconds: float,
        *,
        counted: bool = True,
        from_users: list[int] | None = None,
        kinds: tuple[str, ...] = ("like", "comment", "share"),
        videos: int = 3,
    ) -> None:
        made = []
        for _ in range(videos):
            world.videos.append((tag, rng.randrange(users)))
            made.append(len(world.videos) - 1)
        for _ in range(count):
            while True:  # thin by the daily rhythm
                at = first + timedelta(seconds=rng.random() * seconds)
                if rng.random() * 1.6 < rhythm(at):
                    break
            user = rng.choice(from_users) if from_users else rng.randrange(users)
            world.events.append((rng.choice(kinds), user, rng.choice(made), at, counted))

    for index in range(background_tags):
        rate = math.exp(rng.uniform(math.log(3), math.log(600)))  # per window
        spread(f"bg{index}", _poisson(rng, 2 * rate), start, span)
    previous_start, window_start = start, end - hours * HOUR
    for index in range(positives):
        before, after = POSITIVE_SIZES[index % len(POSITIVE_SIZES)]
        name = f"trend{index}"
        world.positives.add(name)
        spread(name, before, previous_start, hours * 3600)
        spread(name, after, window_start, hours * 3600)
    world.negatives["small-riser"] = "1 -> 5: damped"
    spread("small-riser", 1, previous_start, hours * 3600)
    spread("small-riser", 5, window_start, hours * 3600)
    world.negatives["creator-spam"] = "one creator and an alt account, 40 videos: < 3 users"
    spammers = [0, 1]
    spread(
        "creator-spam",
        600,
        window_start,
        hours * 3600,
        from_users=spammers,
        kinds=("comment", "share"),
        videos=40,
    )
    world.negatives["bot-burst"] = "2,000 uncounted likes"
    spread("bot-burst", 2000, end - 2 * HOUR, 2 * 3600, counted=False, kinds=("like",), videos=1)
    world.negatives["falling"] = "800 -> 400"
    spread("falling", 800, previous_start, hours * 3600)
    spread("falling", 400, window_start, hours * 3600)
    # a like is unique per (user, video): later duplicates become shares
    seen: set[tuple[int, int]] = set()
    for position, (kind, user, video, at, counted) in enumerate(world.events):
        if kind == "like":
            if (user, video) in seen:
                world.events[position] = ("share", user, video, at, counted)
            seen.add((user, video))
    return world


def world_load(world: World, *, prefix: str = "tw") -> None:
    """Users, videos, tags and interaction rows, in a few set-based statements."""
    first_user = User.objects.bulk_create(
        [User(username=f"{prefix}-u{n}") for n in range(world.users)], batch_size=5000
    )
    user_ids = [u.pk for u in first_user]
    tags = {name for name, _ in world.videos}
    hashtags = {
        h.name: h.pk
        for h in Hashtag.objects.bulk_create(
            [Hashtag(name=f"{prefix}-{name}") for name in sorted(tags)]
        )
    }
    videos = Video.objects.bulk_create(
        [
            Video(creator_id=user_ids[creator], title=f"{tag} video", duration_ms=30_000)
            for tag, creator in world.videos
        ],
        batch_size=5000,
    )
    Video.objects.filter(pk__in=[v.pk for v in videos]).update(
        created_at=world.end - 3 * world.hours * HOUR
    )
    VideoHashtag.objects.bulk_create(
        [
            VideoHashtag(video_id=v.pk, hashtag_id=hashtags[f"{prefix}-{tag}"])
            for v, (tag, _) in zip(videos, world.videos, strict=True)
        ],
        batch_size=5000,
    )
    by_kind: dict[str, list] = {"like": [], "comment": [], "share": []}
    for kind, user, video, at, counted in sorted(world.events, key=lambda e: e[3]):
        by_kind[kind].append((user_ids[user], videos[video].pk, at, counted))
    extra = {
        "like": ("", ""),
        "comment": (", text, like_count", ", 'wow', 0"),
        "share": (", channel", ", ''"),
    }
    tables = {"like": Like, "comment": Comment, "share": Share}
    with connection.cursor() as cursor:
        for kind, rows in by_kind.items():
            if not rows:
                continue
            columns, values = extra[kind]
            cursor.execute(
                f"""
                INSERT INTO {tables[kind]._meta.db_table}
                    (user_id, video_id, created_at, counted, device_id{columns})
                SELECT u, v, t, c, ''{values}
                FROM unnest(%s::bigint[], %s::bigint[], %s::timestamptz[], %s::boolean[])
                    AS r(u, v, t, c)
                """,
                [list(column) for column in zip(*rows, strict=True)],
            )


@dataclass(frozen=True)
class Measure:
    precision: float
    recall: float
    top: list[str]
    positives: int


def detector_measure(world: World, *, prefix: str = "tw", top: int = 20) -> Measure:
    from analytics.discovery import trending_document
    from analytics.services.trending import trending_events_process

    while trending_events_process().more:
        pass
    document = trending_document(hours=world.hours, limit=top, end=world.end)
    names = [row["hashtag"].removeprefix(f"{prefix}-") for row in document["results"]]
    hits = len([name for name in names if name in world.positives])
    return Measure(
        precision=hits / len(names) if names else 0.0,
        recall=hits / len(world.positives) if world.positives else 1.0,
        top=names,
        positives=len(world.positives),
    )
