"""Discovery routes. `videos/hot` never meets engagement's `videos/<id:video_id>`: the id
converter matches digits only (core.urls.IdConverter)."""

from django.urls import path

from analytics.api import discovery

urlpatterns = [
    path("videos/hot", discovery.HotVideosView.as_view(), name="videos-hot"),
    path("hashtags/trending", discovery.TrendingHashtagsView.as_view(), name="hashtags-trending"),
]
