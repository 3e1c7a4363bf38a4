"""Small builders for engine tests: documents as the spec writes them, priced in one call."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

from loyalty import (
    Calculation,
    CatalogItem,
    Customer,
    CustomerRef,
    PromotionIndex,
    Receipt,
    ReceiptLine,
    parse_catalog_item,
    parse_customer,
    parse_promotion,
    parse_quantity,
    price_receipt,
)

MSK = timezone(timedelta(hours=3))
#: A Monday, 10:15 Moscow time, inside February 2026.
FEB_MONDAY = datetime(2026, 2, 16, 10, 15, tzinfo=MSK)
NOV_MONDAY = datetime(2026, 11, 23, 10, 15, tzinfo=MSK)


def item(sku: str, *, groups: Sequence[str] = (), brand: str = "", flags: Sequence[str] = (),
         min_price: int = 0) -> CatalogItem:
    return parse_catalog_item({"sku": sku, "name": sku, "groups": list(groups), "brand": brand,
                               "flags": list(flags), "min_price": min_price})


def catalog(*items: CatalogItem) -> dict[str, CatalogItem]:
    return {entry.sku: entry for entry in items}


def line(n: int, sku: str, quantity: str, price: int, amount: int | None = None) -> ReceiptLine:
    milli = parse_quantity(quantity)
    if amount is None:
        amount = (price * milli * 2 + 1000) // 2000
    return ReceiptLine(n=n, sku=sku, quantity=milli, price=price, amount=amount)


def receipt(*lines: ReceiptLine, at: datetime = FEB_MONDAY, card: str | None = None,
            coupons: Sequence[str] = (), redeem: int = 0, receipt_id: str = "R1") -> Receipt:
    return Receipt(id=receipt_id, lines=tuple(lines), opened_at=at,
                   customer=CustomerRef("card", card) if card else None,
                   coupons=tuple(coupons), points_to_redeem=redeem)


def promo(promotion_id: str, reward: Mapping[str, Any], **rest: Any) -> Any:
    return parse_promotion({"id": promotion_id, "name": rest.pop("name", promotion_id),
                            "reward": dict(reward), **rest})


def customer(**fields: Any) -> Customer:
    doc: dict[str, Any] = {"id": "C1", "cards": ["7700001234567"], "name": "Анна К.",
                           "balance": 0}
    doc.update(fields)
    return parse_customer(doc)


def price(
    the_receipt: Receipt,
    promotions: Iterable[Any],
    items: Mapping[str, CatalogItem],
    who: Customer | None = None,
    **options: Any,
) -> Calculation:
    return price_receipt(the_receipt, catalog=items, promotions=PromotionIndex(promotions),
                         customer=who, store=options.pop("store", "S001"),
                         tz=options.pop("tz", MSK), **options)


def by_n(calculation: Calculation) -> dict[int, Any]:
    return {result.n: result for result in calculation.lines}
