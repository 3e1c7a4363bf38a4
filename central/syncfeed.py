"""The sync feed: central's documents as versioned changes for the edge caches.

Theory of operation: every stored change (catalog item, promotion, customer — including a
confirm, refund or adjustment that moves a customer's balance, counters or purchases —,
spent coupon, favorites set, status rule, and each deletion as a tombstone) takes the next
value of one monotonic version counter. ``Pull(since)`` streams the documents changed after
``since`` in version order, in pages; each page carries the checkpoint to resume from.
Tombstones older than the horizon (setting ``sync.horizon_days``, default 30) are compacted
away and the history floor rises to the highest compacted version: a checkpoint below the
floor, or 0, or one ahead of central, gets a full snapshot of live documents instead
(``snapshot`` on every page, ``last`` on the final one). Every page names the database
(``central``, setting ``central.id``) its versions count in.

Customer filter: ``all_customers``, or the listed ``customer_ids`` plus the customers seen
in the store (calculate, identify, confirm) within ``seen_days``. Tombstones always pass.
A delta also carries, on its last page, the customers the store saw after the checkpoint
whose documents did not change since (they just came into the store's scope), and a tombstone
for each customer the store saw who dropped out of the ``seen_days`` window within the last
:data:`DEPARTED_WINDOW` and is not listed in ``customer_ids``: the edge deletes its copy, or it
would price them offline with a balance and offers it no longer hears about. An edge whose last
sync is older than that window asks for a snapshot instead.
"""

from __future__ import annotations

from collections.abc import Generator
from datetime import datetime, timedelta

from central import clock
from central.accounts import MAX_DAYS, settle
from central.schema import CENTRAL_ID
from central.storage import Repository, StoredDocument, Transaction
from protos import tillgate_pb2 as pb
from protos.sync import content_hash as hash_documents

#: Documents per page when the request says 0.
DEFAULT_PAGE_SIZE = 500
#: Largest page served, whatever the request asks.
MAX_PAGE_SIZE = 5000
#: A page stays under this many bytes of documents (gRPC's default message limit is 4 MiB).
MAX_PAGE_BYTES = 2 * 1024 * 1024
#: How far back a delta names the customers who left a ``seen_days`` selection (offline.sync
#: takes a snapshot when its last sync is more than a day older, well within this).
DEPARTED_WINDOW = timedelta(days=2)
HORIZON_SETTING = "sync.horizon_days"
DEFAULT_HORIZON = timedelta(days=30)


def horizon(tx: Transaction) -> timedelta:
    """How long tombstones (and so incremental history) are kept."""
    value = tx.setting(HORIZON_SETTING)
    return timedelta(days=float(value)) if value else DEFAULT_HORIZON


#: Kept answers to requests live this long (register protocol §2.3: 48 hours).
KEPT_ANSWERS = timedelta(hours=48)


def maintain(repository: Repository, now: datetime) -> int:
    """Settle bonus lifetimes, forget kept answers past their 48 hours and compact old
    tombstones; returns the history floor."""
    with repository.transaction() as tx:
        settle(tx, now)
        tx.prune_requests(clock.to_text(now - KEPT_ANSWERS))
        floor = int(tx.setting("sync.floor") or 0)
        compacted = tx.compact_tombstones(clock.to_text(now - horizon(tx)))
        if compacted > floor:
            floor = compacted
            tx.set_setting("sync.floor", str(floor))
        return floor


def _document(stored: StoredDocument) -> pb.Document:
    return pb.Document(
        kind=stored.kind,
        id=stored.id,
        deleted=stored.deleted,
        json=stored.body or b"",
        version=stored.version,
    )


def pull(
    repository: Repository, request: pb.PullRequest
) -> Generator[pb.SyncPage, None, None]:
    """The pages answering ``request`` (see module docstring)."""
    now = clock.now()
    floor = maintain(repository, now)
    size = min(request.page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
    with repository.read() as tx:
        head = tx.head_version()
        central_id = tx.setting(CENTRAL_ID) or ""
        snapshot = request.since == 0 or request.since < floor or request.since > head
        allowed: set[str] | None = None
        entered: set[str] = set()
        departed: set[str] = set()
        if not request.all_customers:
            allowed = set(request.customer_ids)
            if request.seen_days:
                # beyond a century it means "ever" (and a date that far back overflows)
                days = min(request.seen_days, MAX_DAYS)
                since = clock.to_text(now - timedelta(days=days))
                allowed |= tx.seen_since(request.store, since)
                if not snapshot:
                    entered = tx.seen_after_version(request.store, request.since, since)
                    reach = clock.to_text(now - timedelta(days=days) - DEPARTED_WINDOW)
                    departed = tx.seen_since(request.store, reach) - allowed
        cursor = 0 if snapshot else request.since
        while True:
            batch = (tx.live_after if snapshot else tx.changes_after)(cursor, size)
            last = len(batch) < size or (bool(batch) and batch[-1].version >= head)
            documents = [
                _document(doc)
                for doc in batch
                if doc.deleted or doc.kind != "customer" or allowed is None or doc.id in allowed
            ]
            entered -= {doc.id for doc in batch if doc.kind == "customer"}
            cursor = batch[-1].version if batch else cursor
            if last:
                # Customers that came into scope after the checkpoint but whose documents
                # did not change: the edge has not had them yet.
                for customer_id in sorted(entered):
                    stored = tx.document("customer", customer_id)
                    if stored is not None and not stored.deleted:
                        documents.append(_document(stored))
                # Left the selection: a tombstone to this edge (the customer lives on).
                documents.extend(
                    pb.Document(kind="customer", id=customer_id, deleted=True, version=head)
                    for customer_id in sorted(departed)
                )
            chunks = _by_size(documents)
            for index, chunk in enumerate(chunks):
                final = index == len(chunks) - 1
                if not final:
                    yield pb.SyncPage(version=chunk[-1].version, snapshot=snapshot,
                                      documents=chunk, central=central_id)
                elif chunk or last:
                    # the checkpoint after a filtered batch is the batch's end, not its last
                    # sent document: the filtered-out rest needs no second look
                    yield pb.SyncPage(version=head if last else cursor, snapshot=snapshot,
                                      last=last, documents=chunk, central=central_id)
            if last:
                return


def _by_size(documents: list[pb.Document]) -> list[list[pb.Document]]:
    """Split a page's documents so that no page exceeds :data:`MAX_PAGE_BYTES` (a single
    larger document travels alone). Always at least one (maybe empty) chunk."""
    chunks: list[list[pb.Document]] = [[]]
    size = 0
    for document in documents:
        length = document.ByteSize()
        if chunks[-1] and size + length > MAX_PAGE_BYTES:
            chunks.append([])
            size = 0
        chunks[-1].append(document)
        size += length
    return chunks


def live_documents(repository: Repository) -> list[tuple[str, str, bytes]]:
    """Every live document as synced: (kind, id, canonical JSON)."""
    result: list[tuple[str, str, bytes]] = []
    with repository.read() as tx:
        cursor = 0
        while True:
            batch = tx.live_after(cursor, 1000)
            if not batch:
                return result
            result.extend((doc.kind, doc.id, doc.body or b"") for doc in batch)
            cursor = batch[-1].version


def content_hash(repository: Repository) -> str:
    """protos.sync.content_hash over every live document as synced (compare with the edge)."""
    return hash_documents(live_documents(repository))
