from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from core.api.base import BaseAPIView, BaseListAPIView
from engagement.models import User
from rewards import selectors
from rewards.api import serializers as s
from rewards.models import ActivityEvent, Badge, Entitlement, Grant
from rewards.services.redemption import entitlement_redeem


def _user(request: Request) -> User:
    assert isinstance(request.user, User)
    return request.user


@extend_schema(tags=["rewards"])
class BadgeCatalogView(BaseListAPIView):
    serializer_class = s.BadgeSerializer

    def get_queryset(self) -> QuerySet[Badge]:
        return selectors.badges_catalog()


@extend_schema(tags=["rewards"])
class MyBadgesView(BaseListAPIView):
    serializer_class = s.MyBadgeSerializer

    def get_queryset(self) -> QuerySet[Grant]:
        return selectors.user_badges(user=_user(self.request))


@extend_schema(tags=["rewards"])
class MyPerksView(BaseListAPIView):
    serializer_class = s.EntitlementSerializer

    def get_queryset(self) -> QuerySet[Entitlement]:
        return selectors.user_entitlements(user=_user(self.request))


class RedeemView(BaseAPIView):
    @extend_schema(
        request=None,
        responses={200: s.RedeemOutputSerializer},
        tags=["rewards"],
        description="Redeem a perk: claims one unit of stock and returns a code. "
        "409 out_of_stock / already_redeemed / expired / limit_reached.",
    )
    def post(self, request: Request, entitlement_id: int) -> Response:
        redemption = entitlement_redeem(user=_user(request), entitlement_id=entitlement_id)
        body = {
            "entitlement_id": redemption.entitlement.pk,
            "code": redemption.code,
            "redeemed_at": redemption.entitlement.redeemed_at,
        }
        return Response(s.RedeemOutputSerializer(body).data)


@extend_schema(tags=["rewards"])
class MyActivityView(BaseListAPIView):
    serializer_class = s.ActivitySerializer

    def get_queryset(self) -> QuerySet[ActivityEvent]:
        return selectors.user_activity(user=_user(self.request))
