"""The edge: a SQLite cache of central's loyalty data, a delta sync client, an offline
processor answering central's requests from that cache, and the outbox that journals offline
operations for exactly-once upload."""

from offline.breaker import BreakerState, CircuitBreaker
from offline.cache import EdgeCache
from offline.db import EdgeDatabase
from offline.lifecycle import ReceiptState
from offline.outbox import Outbox
from offline.policy import OfflinePolicy
from offline.processor import OfflineProcessor
from offline.status import read_status, write_runtime_state
from offline.sync import CustomerSelection, SyncClient, SyncResult, run_sync_loop, sync_once
from offline.uploader import Uploader

__all__ = [
    "BreakerState",
    "CircuitBreaker",
    "CustomerSelection",
    "EdgeCache",
    "EdgeDatabase",
    "OfflinePolicy",
    "OfflineProcessor",
    "Outbox",
    "ReceiptState",
    "SyncClient",
    "SyncResult",
    "Uploader",
    "read_status",
    "run_sync_loop",
    "sync_once",
    "write_runtime_state",
]
