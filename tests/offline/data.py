"""Loyalty documents for the edge's tests: small, valid per the promotions spec, seeded."""

from __future__ import annotations

import random
from typing import Any

from protos import tillgate_pb2 as pb


def catalog_item(i: int) -> dict[str, Any]:
    groups = [["oils", "grocery"], ["bread", "grocery"], ["dairy"], ["drinks"], ["tobacco"]][i % 5]
    item: dict[str, Any] = {
        "sku": f"46{i:05d}",
        "name": f"Товар {i}",
        "groups": groups,
        "brand": "AB"[i % 2],
    }
    if i % 5 == 4:
        item["flags"] = ["no_discount", "no_accrual", "no_redeem"]
    if i % 7 == 0:
        item["min_price"] = 1000
    return item


def customer(i: int, *, balance: int = 340_000) -> dict[str, Any]:
    return {
        "id": f"C{i}",
        "cards": [f"77{i:011d}"],
        "phone": f"+7916{i:07d}",
        "tokens": [f"tok-{i}"],
        "name": f"Покупатель {i}",
        "statuses": {"tier": ["silver", "gold"][i % 2]},
        "segments": ["churn-risk"] if i % 3 == 0 else [],
        "balance": balance,
        "counters": {"purchases-2026-11": i % 3},
        "purchases": i % 4,
        **(
            {
                "favorites": {"fav-nov": [f"46{(i * 7) % 50:05d}", f"46{(i * 11) % 50:05d}"]},
                "personal_offers": [
                    {
                        "id": f"po-{i}",
                        "on": {"skus": [f"46{(i * 3) % 50:05d}"]},
                        "reward": {"type": "percent_off", "percent": "20"},
                        "valid": {
                            "from": "2026-11-01T00:00:00+03:00",
                            "to": "2026-12-01T00:00:00+03:00",
                        },
                        "messages": {"receipt": "Ваше предложение до {valid_to}"},
                    }
                ],
            }
            if i % 4 == 1
            else {}
        ),
    }


def promotion(i: int) -> dict[str, Any]:
    active = {"from": "2026-01-01T00:00:00+03:00", "to": "2028-01-01T00:00:00+03:00"}
    kinds = [
        {"type": "percent_off", "percent": "15", "on": {"groups": ["oils"]}},
        {"type": "points_percent", "percent": "5"},
        {"type": "nth_percent_off", "every": 3, "percent": "50", "on": {"groups": ["dairy"]}},
        {"type": "buy_x_get_y", "buy": 2, "get": 1, "on": {"groups": ["drinks"]}},
        {"type": "amount_off", "amount": 5000, "on": {"groups": ["bread"]}},
        {"type": "fixed_price", "price": 9900, "on": {"skus": [f"46{i:05d}"]}},
        {"type": "points_fixed", "points": 20000},
    ]
    doc: dict[str, Any] = {
        "id": f"promo-{i}",
        "name": f"Акция {i}",
        "active": active,
        "priority": (i * 37) % 200,
        "reward": kinds[i % len(kinds)],
    }
    if i % len(kinds) == 6:
        doc["conditions"] = {"min_total": 500000}
    if i % 11 == 3:
        doc["audience"] = {"statuses": {"tier": ["gold"]}}
    if i % 13 == 5:
        doc["conditions"] = {"coupon": "SPRING"}
    if i % 9 == 2:
        doc["group"] = "g1"
    if i % 10 == 7:
        doc["stores"] = ["S001"] if i % 20 == 7 else ["S002"]
    if i % 15 == 4:
        doc["audience"] = {"members_only": True, "control": "25"}
    if i % 17 == 8:
        doc["active"] = {**active, "weekdays": [1, 2, 3, 4, 5], "hours": ["09:00", "18:00"]}
    if i % 19 == 6:
        doc["exclusive"] = True
    if i % 23 == 11:
        doc["reward"] = {"type": "percent_off", "percent": "30", "on": {"favorites": ["fav-nov"]}}
    if i % 8 == 5:
        doc["messages"] = {"receipt": "Скидка {discount} до {valid_to}", "display": "{name}"}
    return doc


def fill(put: Any, *, items: int, customers: int, promotions: int) -> None:
    """Call ``put(kind, body)`` for a data set of the given size."""
    for i in range(items):
        put("catalog", catalog_item(i))
    for i in range(customers):
        put("customer", customer(i))
    for i in range(promotions):
        put("promotion", promotion(i))


def random_receipt(
    rng: random.Random, receipt_id: str, *, items: int, customers: int, max_lines: int = 30
) -> pb.Receipt:
    """A random valid receipt (a few unknown skus, weighed lines, cards, coupons)."""
    lines = []
    for n in range(1, rng.randint(1, max_lines) + 1):
        sku = f"46{rng.randrange(items + 3):05d}"  # a few unknown skus too
        milli = rng.randint(1, 6) * 1000 if rng.random() < 0.85 else rng.randint(1, 2999)
        price = rng.randint(1, 200_00)
        amount = max(1, (price * milli * 2 + 1000) // 2000)
        if amount > (price * milli * 2 + 1000) // 2000:
            milli, amount = 1000, price
        lines.append(pb.ReceiptLine(n=n, sku=sku, quantity_milli=milli, price=price, amount=amount))
    day, hour, minute = rng.randint(16, 29), rng.randint(0, 23), rng.randint(0, 59)
    receipt = pb.Receipt(
        id=receipt_id, opened_at=f"2026-11-{day:02d}T{hour:02d}:{minute:02d}:00+03:00", lines=lines
    )
    if customers and rng.random() < 0.8:
        receipt.customer.card = f"77{rng.randrange(customers + 2):011d}"
    if rng.random() < 0.15:
        receipt.coupons.append(f"SPRING-{rng.randrange(10**6):06d}")
    return receipt
