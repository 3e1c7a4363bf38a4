"""Loyalty documents for the edge's tests: small, valid per the promotions spec, seeded."""

from __future__ import annotations

import random
from typing import Any


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
    return doc


def fill(put: Any, *, items: int, customers: int, promotions: int) -> None:
    """Call ``put(kind, body)`` for a data set of the given size."""
    for i in range(items):
        put("catalog", catalog_item(i))
    for i in range(customers):
        put("customer", customer(i))
    for i in range(promotions):
        put("promotion", promotion(i))


def receipt_json(rng: random.Random, *, items: int, customers: int, lines: int) -> dict[str, Any]:
    """A random receipt in register-protocol shape (without ``id``)."""
    body_lines = []
    for n in range(1, lines + 1):
        sku = f"46{rng.randrange(items + 3):05d}"  # a few unknown skus too
        whole = rng.random() < 0.85
        quantity = (
            str(rng.randint(1, 6)) if whole else f"{rng.randint(0, 2)}.{rng.randint(1, 999):03d}"
        )
        milli = int(float(quantity) * 1000 + 0.5)
        price = rng.randint(1, 200_00)
        amount = (price * milli * 2 + 1000) // 2000
        if amount == 0:
            quantity, milli, amount = "1", 1000, price
        body_lines.append(
            {"n": n, "sku": sku, "quantity": quantity, "price": price, "amount": amount}
        )
    receipt: dict[str, Any] = {"opened_at": "2026-11-23T10:15:00+03:00", "lines": body_lines}
    if customers and rng.random() < 0.8:
        receipt["customer"] = {"card": f"77{rng.randrange(customers + 2):011d}"}
    if rng.random() < 0.1:
        receipt["coupons"] = [f"SPRING-{rng.randrange(10**6):06d}"]
    return receipt
