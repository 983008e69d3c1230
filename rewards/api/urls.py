from django.urls import path

from rewards.api import views

urlpatterns = [
    path("badges", views.BadgeCatalogView.as_view(), name="badges"),
    path("me/badges", views.MyBadgesView.as_view(), name="my-badges"),
    path("me/perks", views.MyPerksView.as_view(), name="my-perks"),
    path("me/perks/<id:entitlement_id>/redeem", views.RedeemView.as_view(), name="perk-redeem"),
    path("me/activity", views.MyActivityView.as_view(), name="my-activity"),
]
