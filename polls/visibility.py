"""Who may see a sticker at all (SPEC §2.7): a moderated sticker is a 404 to everyone but its
video's creator and staff, wherever it is asked for. The one place that rule is written: the
selectors, the results read and every service acting on a sticker apply it from here.
"""

from django.db.models import QuerySet

from core.exceptions import NotFound
from engagement.models import User, Video
from polls.models import Sticker


def is_creator_or_staff(viewer: User, *, creator_id: int) -> bool:
    """The viewer made the sticker's video, or is staff: they see it whatever its state."""
    return viewer.is_staff or viewer.pk == creator_id


def check_sticker_visible(*, viewer: User, state: str, creator_id: int) -> None:
    """Raise NotFound (as for a sticker that does not exist) when the viewer may not see it."""
    if state == Sticker.State.MODERATED and not is_creator_or_staff(viewer, creator_id=creator_id):
        raise NotFound("No sticker with this id.")


def stickers_visible(
    stickers: QuerySet[Sticker], *, viewer: User, video_id: int
) -> QuerySet[Sticker]:
    """The stickers of one video the viewer may see: the same rule, as a filter."""
    if viewer.is_staff or Video.objects.filter(pk=video_id, creator_id=viewer.pk).exists():
        return stickers
    return stickers.exclude(state=Sticker.State.MODERATED)
