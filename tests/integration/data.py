"""A small chain's data in the promotions spec's formats, for ``tillgate central import``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

CATALOG = [
    {
        "sku": "4600001",
        "name": "Масло подсолнечное 1 л",
        "groups": ["oils", "grocery"],
        "brand": "A",
    },
    {"sku": "4600002", "name": "Хлеб бородинский", "groups": ["bread", "grocery"], "brand": "B"},
    {
        "sku": "4600003",
        "name": "Сигареты",
        "groups": ["tobacco"],
        "flags": ["no_discount", "no_accrual", "no_redeem"],
    },
]
CUSTOMERS = [
    {
        "id": "C1",
        "cards": ["7700001234567"],
        "phone": "+79161234567",
        "name": "Анна К.",
        "statuses": {"tier": "gold"},
        "balance": 340000,
        "personal_offers": [
            {
                "id": "po-coffee",
                "on": {"skus": ["4600099"]},
                "reward": {"type": "percent_off", "percent": "20"},
                "valid": {"from": "2026-01-01T00:00:00+03:00", "to": "2028-01-01T00:00:00+03:00"},
                "messages": {"receipt": "Ваш кофе со скидкой 20%"},
            }
        ],
    },
    {
        "id": "C2",
        "cards": ["7700009999999"],
        "name": "Борис",
        "statuses": {"tier": "silver"},
        "balance": 0,
    },
]
PROMOTIONS = [
    {
        "id": "oil-15",
        "name": "-15% на все масла",
        "active": {"from": "2026-01-01T00:00:00+03:00", "to": "2028-01-01T00:00:00+03:00"},
        "priority": 100,
        "reward": {"type": "percent_off", "percent": "15", "on": {"groups": ["oils"]}},
        "messages": {"receipt": "Масло -15%"},
    },
    {
        "id": "base-points",
        "name": "5% баллами",
        "priority": 10,
        "reward": {"type": "points_percent", "percent": "5"},
    },
]

CARD = "7700001234567"


def write_chain(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    catalog = folder / "catalog.jsonl"
    catalog.write_text(
        "\n".join(json.dumps(i, ensure_ascii=False) for i in CATALOG) + "\n", encoding="utf-8"
    )
    customers = folder / "customers.jsonl"
    customers.write_text(
        "\n".join(json.dumps(c, ensure_ascii=False) for c in CUSTOMERS) + "\n", encoding="utf-8"
    )
    promotions = folder / "promotions.json"
    promotions.write_text(json.dumps(PROMOTIONS, ensure_ascii=False), encoding="utf-8")
    return [catalog, customers, promotions]


def import_chain(db: Path, folder: Path) -> None:
    files = write_chain(folder)
    result = subprocess.run(
        [sys.executable, "-m", "tillgate", "central", "import", "--db", str(db), *map(str, files)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def oil_receipt(
    receipt_id: str, *, card: str | None = CARD, opened_at: str = "2026-11-23T10:15:00+03:00"
) -> dict[str, object]:
    receipt: dict[str, object] = {
        "id": receipt_id,
        "opened_at": opened_at,
        "lines": [
            {
                "n": 1,
                "sku": "4600001",
                "name": "Масло",
                "quantity": "2",
                "price": 15990,
                "amount": 31980,
            },
            {
                "n": 2,
                "sku": "4600002",
                "name": "Хлеб",
                "quantity": "1",
                "price": 4500,
                "amount": 4500,
            },
        ],
    }
    if card:
        receipt["customer"] = {"card": card}
    return receipt
