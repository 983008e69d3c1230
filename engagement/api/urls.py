from django.urls import path

from engagement.api import views

urlpatterns = [
    path("auth/register", views.RegisterView.as_view(), name="auth-register"),
    path("auth/token", views.TokenView.as_view(), name="auth-token"),
    path("auth/logout", views.LogoutView.as_view(), name="auth-logout"),
    path("auth/logout-all", views.LogoutAllView.as_view(), name="auth-logout-all"),
    path("me", views.MeView.as_view(), name="me"),
    path("videos", views.VideoListCreateView.as_view(), name="videos"),
    path("videos/<id:video_id>", views.VideoDetailView.as_view(), name="video-detail"),
    path("videos/<id:video_id>/like", views.VideoLikeView.as_view(), name="video-like"),
    path(
        "videos/<id:video_id>/comments",
        views.CommentListCreateView.as_view(),
        name="video-comments",
    ),
    path("videos/<id:video_id>/shares", views.ShareCreateView.as_view(), name="video-shares"),
    path("videos/<id:video_id>/plays", views.PlayCreateView.as_view(), name="video-plays"),
    path("comments/<id:comment_id>/like", views.CommentLikeView.as_view(), name="comment-like"),
    path("creators/<id:user_id>/follow", views.FollowView.as_view(), name="creator-follow"),
    path("reports", views.ReportCreateView.as_view(), name="reports"),
    path("me/reports", views.MyReportsView.as_view(), name="my-reports"),
]
