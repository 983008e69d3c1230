from django.urls import path

from polls.api import views

# The two hottest paths first (config/urls.py: patterns are tried in order).
urlpatterns = [
    path("stickers/<id:sticker_id>/votes", views.VoteView.as_view(), name="sticker-votes"),
    path("stickers/<id:sticker_id>/results", views.ResultsView.as_view(), name="sticker-results"),
    path("videos/<id:video_id>/stickers", views.VideoStickersView.as_view(), name="video-stickers"),
    path("stickers/<id:sticker_id>", views.StickerDetailView.as_view(), name="sticker-detail"),
    path("stickers/<id:sticker_id>/close", views.StickerCloseView.as_view(), name="sticker-close"),
    path(
        "stickers/<id:sticker_id>/cancel", views.StickerCancelView.as_view(), name="sticker-cancel"
    ),
    path(
        "stickers/<id:sticker_id>/moderate",
        views.StickerModerateView.as_view(),
        name="sticker-moderate",
    ),
    path(
        "stickers/<id:sticker_id>/progress", views.ProgressView.as_view(), name="sticker-progress"
    ),
    path(
        "stickers/<id:sticker_id>/checkpoints/<id:checkpoint_id>/answer",
        views.AnswerView.as_view(),
        name="checkpoint-answer",
    ),
]
