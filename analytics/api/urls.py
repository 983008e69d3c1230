from django.urls import path

from analytics.api import views

urlpatterns = [
    path("creators/me/analytics", views.CreatorAnalyticsView.as_view(), name="creator-analytics"),
    path(
        "videos/<id:video_id>/analytics", views.VideoAnalyticsView.as_view(), name="video-analytics"
    ),
]
