"""Redeeming a perk entitlement: one unit of stock, claimed atomically, never oversold."""

import secrets
from dataclasses import dataclass

from django.db import connection, transaction
from django.utils import timezone

from core.exceptions import Conflict, NotFound
from engagement.models import User
from rewards.locks import user_perk_entitlements_for_update
from rewards.models import Entitlement, Perk

_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"


@dataclass(frozen=True)
class Redemption:
    entitlement: Entitlement
    code: str


def _code(prefix: str) -> str:
    body = "".join(secrets.choice(_ALPHABET) for _ in range(12))
    return f"{prefix}-{body[:4]}-{body[4:8]}-{body[8:]}"


@transaction.atomic
def entitlement_redeem(*, user: User, entitlement_id: int) -> Redemption:
    entitlement = (
        Entitlement.objects.select_related("perk")
        .filter(pk=entitlement_id, user=user, revoked_at__isnull=True)
        .first()
    )
    if entitlement is None:
        raise NotFound("No perk entitlement with this id.")
    # Lock all of this user's entitlements of the perk, in id order: the per-user limit is
    # checked against a count no concurrent redemption of the same user can change.
    mine = list(
        user_perk_entitlements_for_update(user=user, perk_id=entitlement.perk_id).values_list(
            "id", "redeemed_at"
        )
    )
    redeemed_by_user = sum(1 for _, redeemed_at in mine if redeemed_at is not None)
    entitlement.refresh_from_db(fields=["redeemed_at", "revoked_at"])
    if entitlement.revoked_at is not None:
        raise NotFound("No perk entitlement with this id.")
    if entitlement.redeemed_at is not None:
        raise Conflict("This perk was already redeemed.", code="already_redeemed")
    perk = entitlement.perk
    now = timezone.now()
    if perk.valid_until is not None and perk.valid_until <= now:
        raise Conflict("This perk has expired.", code="expired")
    if redeemed_by_user >= perk.per_user_limit:
        raise Conflict("You have redeemed this perk as often as allowed.", code="limit_reached")
    # The stock check and the claim are one statement: concurrent redemptions queue on the
    # perk's row and each sees the count the previous one left.
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {Perk._meta.db_table} SET redeemed_count = redeemed_count + 1 "
            f"WHERE id = %s AND (stock IS NULL OR redeemed_count < stock) RETURNING id",
            [perk.pk],
        )
        claimed = cursor.fetchone() is not None
    if not claimed:
        raise Conflict("This perk is out of stock.", code="out_of_stock")
    entitlement.redeemed_at = now
    entitlement.code = _code(perk.code_prefix)
    entitlement.save(update_fields=["redeemed_at", "code"])
    return Redemption(entitlement=entitlement, code=entitlement.code)
