from django.urls import path, register_converter

from analytics.api import views
from core.urls import IdConverter

register_converter(IdConverter, "id")

urlpatterns = [
    path("creators/me/analytics", views.CreatorAnalyticsView.as_view(), name="creator-analytics"),
    path(
        "videos/<id:video_id>/analytics", views.VideoAnalyticsView.as_view(), name="video-analytics"
    ),
]
