"""Demo data: a small Russian grocery chain (catalog, customers C1–C3, promotions for
2026–2027), loaded into a new central database by ``start_server(..., demo=True)``."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from central.importer import import_file
from central.storage import Repository

#: The demo files, in load order.
DEMO_FILES = tuple(
    Path(__file__).with_name(name)
    for name in ("catalog.jsonl", "customers.jsonl", "promotions.json")
)

__all__ = ["DEMO_FILES", "load_demo"]


def load_demo(repository: Repository, now: datetime) -> bool:
    """Load the demo chain when the database holds no documents yet; True if loaded."""
    with repository.read() as tx:
        if tx.head_version() != 0:
            return False
    for path in DEMO_FILES:
        import_file(repository, path, now)
    return True
