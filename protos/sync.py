"""Canonical document bytes and the content hash that central and the edge both compute.

Two copies of the loyalty data are equal when their hashes are: the hash runs over every live
document, as (kind, id, canonical JSON), in sorted order.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Any


def canonical_json(document: Any) -> bytes:
    """The one byte form of a document: sorted keys, no spaces, UTF-8."""
    return json.dumps(document, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()


def content_hash(documents: Iterable[tuple[str, str, bytes]]) -> str:
    """sha256 hex over ``(kind, id, canonical JSON)`` triples, taken in sorted order."""
    digest = hashlib.sha256()
    for kind, doc_id, body in sorted(documents):
        digest.update(kind.encode() + b"\t" + doc_id.encode() + b"\t" + body + b"\n")
    return digest.hexdigest()
