"""Data loading from files: catalog / customers / promotions (.json, .jsonl) and the CSV
customer-attribute upload (.csv).

Theory of operation: a file is read and validated whole before anything is written; a file
with any bad document or row is rejected whole and every problem is reported as
``file:line: kind "id": key: message``. A good file is then written in one transaction, so
an import is all-or-nothing per file. Files are processed in the order given (a CSV may
name customers loaded by an earlier file of the same command).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from central.documents import (
    Kind,
    check_document,
    customer_keys,
    id_of,
    kind_of,
    store_document,
)
from central.storage import Repository, Transaction
from loyalty import apply_customer_attribute, parse_customer
from tillgate.errors import DocumentError

CSV_HEADER = ("customer_id", "attribute", "value")


class ImportRejectedError(DocumentError):
    """A file was rejected whole; ``errors`` holds every problem found in it."""

    def __init__(self, file: str, errors: Sequence[DocumentError]) -> None:
        self.errors = tuple(errors)
        super().__init__(
            f"rejected, {len(self.errors)} error(s); nothing written", file=file
        )

    def report(self) -> str:
        """Every problem, one per line."""
        return "\n".join(str(error) for error in self.errors)


@dataclass(slots=True)
class ImportResult:
    """What one file brought in."""

    file: str
    counts: dict[str, int] = field(default_factory=dict)
    deleted: int = 0


@dataclass(frozen=True, slots=True)
class Located:
    """A JSON value and the line it starts on."""

    line: int
    obj: Any


def json_array_items(text: str, file: str) -> list[Located]:
    """The elements of a JSON array with the line each starts on (for errors that cite
    ``file:line``); raises DocumentError naming the line of a syntax error."""
    decoder = json.JSONDecoder()
    pos = _skip_ws(text, 0)
    if pos >= len(text) or text[pos] != "[":
        raise DocumentError("a .json file must hold one JSON array of documents", file=file,
                            line=_line(text, pos))
    pos = _skip_ws(text, pos + 1)
    items: list[Located] = []
    if pos < len(text) and text[pos] == "]":
        return items
    while True:
        try:
            value, end = decoder.raw_decode(text, pos)
        except (ValueError, RecursionError) as exc:
            raise _not_json(exc, file, _line(text, pos), text_starts_at=1) from None
        items.append(Located(_line(text, pos), value))
        pos = _skip_ws(text, end)
        if pos < len(text) and text[pos] == ",":
            pos = _skip_ws(text, pos + 1)
            continue
        if pos < len(text) and text[pos] == "]":
            if _skip_ws(text, pos + 1) != len(text):
                raise DocumentError("text after the closing ]", file=file, line=_line(text, pos))
            return items
        raise DocumentError("expected , or ] between documents", file=file, line=_line(text, pos))


def _skip_ws(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\r\n":
        pos += 1
    return pos


def _line(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


def _jsonl_items(text: str, file: str, errors: list[DocumentError]) -> list[Located]:
    items: list[Located] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            items.append(Located(number, json.loads(line)))
        except (ValueError, RecursionError) as exc:
            errors.append(_not_json(exc, file, number, text_starts_at=number))
    return items


def _not_json(exc: ValueError | RecursionError, file: str, line: int, *,
              text_starts_at: int) -> DocumentError:
    """A failure to parse the document starting at ``line`` as a DocumentError; the text
    parsed began at line ``text_starts_at`` of the file."""
    if isinstance(exc, json.JSONDecodeError):
        return DocumentError(f"not valid JSON: {exc.msg}", file=file,
                             line=text_starts_at + exc.lineno - 1)
    if isinstance(exc, RecursionError):
        return DocumentError("not valid here: JSON nested too deeply", file=file, line=line)
    # Python refuses to read integers of more than 4 300 digits.
    return DocumentError(f"not valid here: {exc}", file=file, line=line)


def _unicode_problem(obj: object) -> str | None:
    """Why ``obj`` cannot be stored as UTF-8 (a lone surrogate such as "\\ud800"), or None."""
    try:
        json.dumps(obj, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"holds {exc.object[exc.start:exc.end]!r}, a lone surrogate: not valid Unicode"
    return None


def _read_text(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8-sig")
    except OSError as exc:
        raise DocumentError(f"cannot read: {exc.strerror}", file=str(path)) from exc
    except UnicodeDecodeError as exc:
        raise DocumentError("is not UTF-8", file=str(path)) from exc


def _locate(error: DocumentError, file: str, line: int) -> DocumentError:
    return DocumentError(
        error.message, kind=error.kind, doc_id=error.doc_id, key=error.key, file=file, line=line
    )


def _plan_documents(
    tx: Transaction, path: Path
) -> list[tuple[Kind, dict[str, Any]]]:
    file = str(path)
    text = _read_text(path)
    errors: list[DocumentError] = []
    if path.suffix.lower() == ".json":
        items = json_array_items(text, file)
    else:
        items = _jsonl_items(text, file, errors)
    kinds = {kind for item in items if isinstance(item.obj, Mapping)
             if (kind := kind_of(item.obj)) is not None}
    file_kind = next(iter(kinds)) if len(kinds) == 1 else None
    planned: list[tuple[Kind, dict[str, Any]]] = []
    customers: list[tuple[int, str, Mapping[str, Any]]] = []
    first_line: dict[tuple[Kind, str], int] = {}
    for item in items:
        if not isinstance(item.obj, Mapping):
            errors.append(DocumentError("must be a JSON object", file=file, line=item.line))
            continue
        problem = _unicode_problem(item.obj)
        if problem is not None:
            errors.append(DocumentError(problem, file=file, line=item.line))
            continue
        obj = dict(item.obj)
        kind = kind_of(obj) or file_kind
        if kind is None and obj.get("deleted") is True:
            live = _live_kinds(tx, obj)
            if not live:
                continue  # nothing of that id is stored (any more): a deletion again is a no-op
            kind = live[0] if len(live) == 1 else None
        if kind is None:
            errors.append(DocumentError(
                "cannot tell the document kind (catalog item, customer, promotion, favorites "
                'set, status rule); add "kind"', file=file, line=item.line,
                doc_id=str(obj.get("id") or obj.get("sku") or "")))
            continue
        try:
            doc_id = id_of(kind, obj)
            if obj.get("deleted") is not True:
                check_document(kind, obj)
        except DocumentError as exc:
            errors.append(_locate(exc, file, item.line))
            continue
        # Which copy should win is the file's to say, not the order of its lines.
        seen = first_line.setdefault((kind, doc_id), item.line)
        if seen != item.line:
            errors.append(DocumentError(
                f"{kind} {doc_id!r} again (first on line {seen}): a file may hold each "
                "document once", file=file, line=item.line))
            continue
        planned.append((kind, obj))
        if kind == "customer":
            customers.append((item.line, doc_id, obj))
    errors.extend(_shared_keys(tx, customers, file))
    if errors:
        raise ImportRejectedError(file, errors)
    return planned


def _shared_keys(
    tx: Transaction, customers: Sequence[tuple[int, str, Mapping[str, Any]]], file: str
) -> list[DocumentError]:
    """A card, phone or token must find one customer: errors for each key that would belong
    to two once the file is loaded (``customers``: line, id and document, in file order)."""
    in_file = {doc_id for _, doc_id, _ in customers}
    owners: dict[tuple[str, str], str] = {}
    errors: list[DocumentError] = []
    for line, doc_id, obj in customers:
        if obj.get("deleted") is True:
            continue
        for key in customer_keys(obj):
            owner = owners.get(key)
            if owner is None:
                stored = tx.find_customer(*key)
                # a customer this file loads again gives up the keys its new document drops
                owner = stored if stored not in in_file else None
            if owner is not None and owner != doc_id:
                field_name = {"card": "cards", "phone": "phone", "token": "tokens"}[key[0]]
                errors.append(DocumentError(
                    f"{key[0]} {key[1]} already belongs to customer {owner!r}", kind="customer",
                    doc_id=doc_id, key=field_name, file=file, line=line))
                continue
            owners[key] = doc_id
    return errors


def _live_kinds(tx: Transaction, obj: Mapping[str, Any]) -> list[Kind]:
    """The kinds of the stored, not deleted documents with a bare deletion's ``id``."""
    doc_id = obj.get("id")
    if not isinstance(doc_id, str):
        return []
    candidates: tuple[Kind, ...] = ("customer", "promotion", "favorites_set", "status_rule")
    return [kind for kind in candidates
            if (stored := tx.document(kind, doc_id)) is not None and not stored.deleted]


def _plan_csv(tx: Transaction, path: Path) -> list[tuple[Kind, dict[str, Any]]]:
    file = str(path)
    text = _read_text(path)
    # (the line a record starts on, the record): a quoted value may span lines
    rows: list[tuple[int, list[str]]] = []
    # strict: an unterminated quote is an error, not a value running to the end of the file
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    ended = 0
    try:
        for record in reader:
            rows.append((ended + 1, record))
            ended = reader.line_num
    except csv.Error as exc:
        raise ImportRejectedError(file, [DocumentError(
            f"not valid CSV: {exc}", file=file, line=ended + 1)]) from None
    if not rows or tuple(cell.strip() for cell in rows[0][1]) != CSV_HEADER:
        raise ImportRejectedError(file, [DocumentError(
            f"header must be {','.join(CSV_HEADER)}", file=file, line=1)])
    errors: list[DocumentError] = []
    docs: dict[str, dict[str, Any]] = {}
    # customer -> lookup key -> the line of the row that gave it (a ``phone`` row)
    given_on: dict[str, dict[tuple[str, str], int]] = {}
    for number, row in rows[1:]:
        if not row or all(not cell.strip() for cell in row):
            continue
        if len(row) != 3:
            errors.append(DocumentError(
                f"must have 3 columns (customer_id,attribute,value), has {len(row)}",
                file=file, line=number))
            continue
        customer_id, attribute, value = (row[0].strip(), row[1].strip(), row[2])
        if customer_id not in docs:
            stored = tx.document("customer", customer_id) if customer_id else None
            if stored is None or stored.raw is None:
                errors.append(DocumentError(
                    "unknown customer", kind="customer", doc_id=customer_id, key="customer_id",
                    file=file, line=number))
                continue
            docs[customer_id] = dict(stored.raw)
        try:
            updated = apply_customer_attribute(docs[customer_id], attribute, value)
            parse_customer(updated)
        except DocumentError as exc:
            errors.append(_locate(exc, file, number))
            continue
        problem = _unicode_problem(updated)
        if problem is not None:
            errors.append(DocumentError(problem, file=file, line=number))
            continue
        before = set(customer_keys(docs[customer_id]))
        for key in customer_keys(updated):
            if key not in before:
                given_on.setdefault(customer_id, {})[key] = number
        docs[customer_id] = updated
    errors.extend(_csv_shared_keys(tx, docs, given_on, file))
    if errors:
        raise ImportRejectedError(file, sorted(errors, key=lambda error: error.line or 0))
    return [("customer", doc) for doc in docs.values()]


def _csv_shared_keys(
    tx: Transaction, docs: Mapping[str, Mapping[str, Any]],
    given_on: Mapping[str, Mapping[tuple[str, str], int]], file: str,
) -> list[DocumentError]:
    """A card, phone or token must find one customer once the CSV is applied: an error on
    each row that gives a key another customer holds, naming that customer and the row that
    gave it to them (or saying they hold it already)."""
    holders: dict[tuple[str, str], list[tuple[int, str]]] = {}
    for doc_id, doc in docs.items():
        for key in customer_keys(doc):
            holders.setdefault(key, []).append((given_on.get(doc_id, {}).get(key, 0), doc_id))
    errors: list[DocumentError] = []
    for key, held in holders.items():
        stored = tx.find_customer(*key)
        if stored is not None and stored not in docs:
            held.append((0, stored))
        if len(held) < 2:
            continue
        held.sort()
        first_line, first = held[0]
        where = f" (given on line {first_line})" if first_line else ""
        for line, doc_id in held[1:]:
            errors.append(DocumentError(
                f"{key[0]} {key[1]} already belongs to customer {first!r}{where}",
                kind="customer", doc_id=doc_id,
                key={"card": "cards", "phone": "phone", "token": "tokens"}[key[0]],
                file=file, line=line))
    return errors


def import_file(repository: Repository, path: Path, now: datetime) -> ImportResult:
    """Validate ``path`` whole, then write it in one transaction; raises ImportRejectedError."""
    result = ImportResult(str(path))
    with repository.transaction() as tx:
        if path.suffix.lower() == ".csv":
            planned = _plan_csv(tx, path)
            source = "csv"
        elif path.suffix.lower() in (".json", ".jsonl"):
            planned = _plan_documents(tx, path)
            source = "import"
        else:
            raise DocumentError("unknown file type: use .json, .jsonl or .csv", file=str(path))
        for kind, obj in planned:
            if obj.get("deleted") is True:
                stored = tx.document(kind, id_of(kind, obj))
                if stored is not None and not stored.deleted:  # else: nothing to delete
                    result.deleted += 1
            else:
                result.counts[kind] = result.counts.get(kind, 0) + 1
            # a CSV row sets a known customer's balance on purpose; a whole document
            # loaded again brings only its profile (see store_document)
            store_document(tx, kind, obj, now, source=source, set_balance=source == "csv")
    return result
