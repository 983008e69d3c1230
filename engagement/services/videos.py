"""Publishing videos."""

from django.db import transaction

from engagement.models import Hashtag, User, Video, VideoHashtag


def hashtags_normalize(raw: list[str]) -> list[str]:
    """'#Cooking', 'cooking' -> 'cooking'; order kept, duplicates dropped."""
    seen: dict[str, None] = {}
    for tag in raw:
        name = tag.strip().lstrip("#").lower()
        if name:
            seen.setdefault(name, None)
    return list(seen)


@transaction.atomic
def video_create(
    *, creator: User, title: str, caption: str, hashtags: list[str], duration_ms: int
) -> Video:
    video = Video.objects.create(
        creator=creator, title=title, caption=caption, duration_ms=duration_ms
    )
    names = hashtags_normalize(hashtags)
    if names:
        Hashtag.objects.bulk_create([Hashtag(name=name) for name in names], ignore_conflicts=True)
        ids = dict(Hashtag.objects.filter(name__in=names).values_list("name", "id"))
        VideoHashtag.objects.bulk_create(
            [
                VideoHashtag(video=video, hashtag_id=ids[name], position=position)
                for position, name in enumerate(names)
            ]
        )
    return video
