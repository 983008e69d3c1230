"""Row locks on rewards' tables, each named for what it locks (after Saleor's `lock_objects.py`).

Grants are locked in id order, then their entitlements (a reassessment, as a revocation does);
a redemption locks the user's entitlements of the perk in id order before it counts them.
"""

from django.db.models import QuerySet

from engagement.models import User
from rewards.models import Entitlement, Grant

_GRANT = Grant._meta.db_table


def grants_for_update_sql(*, columns: str, where: str) -> str:
    """A SELECT of `columns` of the grants `g` where `where` holds, locked FOR UPDATE in id
    order: the body of a CTE whose rows a statement then changes (with their entitlements)."""
    return f"""
        SELECT {columns} FROM {_GRANT} g
        WHERE {where}
        ORDER BY g.id FOR UPDATE
    """


def user_perk_entitlements_for_update(*, user: User, perk_id: int) -> QuerySet[Entitlement]:
    """All of the user's entitlements of the perk, FOR UPDATE in id order: the per-user limit
    is checked against a count no concurrent redemption of the same user can change."""
    return Entitlement.objects.select_for_update().filter(user=user, perk_id=perk_id).order_by("id")
