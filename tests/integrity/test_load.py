"""Like events read from PostgreSQL into columns (integrity.detection.load): every like of the
window, in time order, with its account, video, creator, device and network coded."""

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from engagement.models import Like
from integrity.detection import load
from integrity.detection.load import events_from_likes
from tests.factories import LikeFactory, UserFactory, VideoFactory

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 11, 1, 12, tzinfo=UTC)


def _like(user, video, at: datetime, device: str, ip: str | None, counted: bool = True) -> Like:
    like = LikeFactory.create(user=user, video=video, device_id=device, ip=ip, counted=counted)
    Like.objects.filter(pk=like.pk).update(created_at=at)
    return like


def test_the_window_s_likes_come_back_as_columns_in_time_order(monkeypatch) -> None:
    monkeypatch.setattr(load, "CHUNK_ROWS", 2)  # several chunks and a partial one
    creator = UserFactory.create()
    videos = [VideoFactory.create(creator=creator) for _ in range(3)]
    users = [UserFactory.create() for _ in range(4)]
    rows = [
        (users[0], videos[0], T0 + timedelta(seconds=5), "dev-a", "10.1.2.3", True),
        (users[1], videos[0], T0 + timedelta(seconds=1), "dev-a", "10.1.2.99", False),
        (users[2], videos[1], T0 + timedelta(seconds=3), "", None, True),
        (users[3], videos[2], T0 + timedelta(seconds=2), "dev-b", "2001:db8:1:2::7", True),
        (users[0], videos[2], T0 + timedelta(seconds=4), "dev-c", "10.1.3.3", True),
        (users[1], videos[1], T0 - timedelta(seconds=1), "dev-a", "10.1.2.3", True),  # before
    ]
    for user, video, at, device, ip, counted in rows:
        _like(user, video, at, device, ip, counted)

    events = events_from_likes(since=T0, until=T0 + timedelta(minutes=1))

    assert len(events) == 5
    assert np.all(np.diff(events.ts) >= 0)
    ids = [events.user_ids[code] for code in events.user.tolist()]
    assert ids == [str(u.pk) for u in (users[1], users[3], users[2], users[0], users[0])]
    assert events.video.tolist() == [
        v.pk for v in (videos[0], videos[2], videos[1], videos[2], videos[0])
    ]
    assert set(events.creator.tolist()) == {creator.pk}
    assert events.ts[0] == int((T0 + timedelta(seconds=1)).timestamp() * 1_000_000)
    device = events.device.tolist()
    assert device[2] == -1  # no device
    assert device[0] == device[4] != device[1]  # dev-a twice, dev-b
    assert len({device[0], device[1], device[3]}) == 3
    ip, subnet = events.ip.tolist(), events.networks.tolist()
    assert ip[2] == -1 and subnet[2] == -1
    # 10.1.2.99 and 10.1.2.3 share a /24 but not an address; 10.1.3.3 is another /24
    assert ip[0] != ip[4] and subnet[0] == subnet[4]
    assert subnet[3] != subnet[0]
