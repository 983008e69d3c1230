import pytest

from engagement.models import Like, VideoCounter
from engagement.services.counters import video_counts
from engagement.tasks import recount_video_counters
from tests.conftest import wait_until
from tests.factories import UserFactory, VideoFactory


@pytest.mark.celery_worker
@pytest.mark.django_db(transaction=True)
def test_recount_task_runs_on_a_real_worker_and_repairs_counters(celery_worker: object) -> None:
    # given a video with 3 counted likes and 1 uncounted, and counters that drifted
    video = VideoFactory.create()
    likers = UserFactory.create_batch(4)
    for index, liker in enumerate(likers):
        Like.objects.create(user=liker, video=video, counted=index < 3)
    VideoCounter.objects.create(video=video, shard=5, likes=99, plays=7)

    # when the task goes through Redis to the worker process
    recount_video_counters.delay(video.pk)

    # then the worker rebuilt the counters from the counted rows
    assert wait_until(lambda: video_counts([video.pk])[video.pk]["likes"] == 3, timeout=30)
    assert video_counts([video.pk])[video.pk] == {
        "likes": 3,
        "comments": 0,
        "shares": 0,
        "plays": 0,
    }
    assert list(VideoCounter.objects.filter(video=video).values_list("shard", flat=True)) == [0]
