"""What the edge may do while central is unreachable: the ``[offline]`` policy.

Fields and defaults (the daemon's configuration parses ``[offline]`` into this value):

- ``redeem``: ``"deny"`` (default) — no points are redeemed offline (``redeem_max`` is 0);
  ``"limited"`` — a customer may redeem up to the balance at the last sync minus every point
  redeemed offline at this store since (confirmed here, not yet in a synced balance), and at
  most ``redeem_cap`` points per receipt.
- ``redeem_cap``: the per-receipt cap for ``limited``, in points; 0 (default) means no cap
  beyond the balance rule.
- ``max_queued``: journal entries waiting for central (default 100 000). At 90 % the cashier
  sees a warning with every offline calculation; at the cap new offline calculations are
  refused ``unavailable`` / ``outbox_full`` (the register sells without loyalty) while
  confirms, cancels and refunds are still journaled, so that no receipt already priced is
  left in limbo.
- ``max_age_hours``: when the oldest waiting entry is older than this (default 72 h), every
  offline answer carries a cashier message asking to restore the connection; nothing is
  refused for age.

Accrual is always allowed offline: points are journaled and credited when central applies
the journal.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from tillgate.errors import ConfigError

__all__ = ["OfflinePolicy", "RedeemPolicy"]

RedeemPolicy = Literal["deny", "limited"]

#: share of ``max_queued`` from which the cashier is warned
QUEUE_WARNING_RATIO = 0.9


@dataclass(frozen=True, slots=True)
class OfflinePolicy:
    """The offline rules of one store (see the module docstring for meaning and defaults)."""

    redeem: RedeemPolicy = "deny"
    redeem_cap: int = 0
    max_queued: int = 100_000
    max_age_hours: int = 72

    def __post_init__(self) -> None:
        if self.redeem not in ("deny", "limited"):
            raise ConfigError(
                f"must be 'deny' or 'limited', not {self.redeem!r}", key="offline.redeem"
            )
        if self.redeem_cap < 0:
            raise ConfigError("must not be negative", key="offline.redeem_cap")
        if self.max_queued < 1:
            raise ConfigError("must be at least 1", key="offline.max_queued")
        if self.max_age_hours < 1:
            raise ConfigError("must be at least 1", key="offline.max_age_hours")

    def redeem_limit(self, balance_at_sync: int, redeemed_offline: int) -> int:
        """Points a customer may redeem on one offline receipt."""
        if self.redeem == "deny":
            return 0
        available = max(0, balance_at_sync - redeemed_offline)
        return min(available, self.redeem_cap) if self.redeem_cap else available

    def queue_full(self, depth: int) -> bool:
        return depth >= self.max_queued

    def queue_warning(self, depth: int) -> bool:
        return depth >= self.max_queued * QUEUE_WARNING_RATIO

    def too_old(self, oldest_age_s: float | None) -> bool:
        return oldest_age_s is not None and oldest_age_s > self.max_age_hours * 3600
