"""Register messages (register protocol §2) validated into typed requests.

Input is a decoded JSON object; output is a frozen request value, or a
:class:`~tillgate.errors.ValidationError` whose ``field`` is the path the register sees in the
``invalid`` answer (``receipt.lines[2].quantity``). Envelope problems have their own errors so
the lane can answer ``unsupported_version`` / ``unknown_type`` before reading any body.
Unknown fields are ignored, as §2 requires.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from loyalty.values import (
    LINE_N_MAX,
    MONEY_MAX,
    CustomerRef,
    Receipt,
    ReceiptLine,
    RefundLine,
    is_id,
    parse_quantity,
    parse_time,
)
from tillgate.errors import TillgateError, ValidationError

PROTOCOL_VERSION = 1
REQUEST_TYPES = (
    "hello", "ping", "identify", "calculate", "confirm", "cancel", "refund", "balance",
)  # fmt: skip
PAYMENT_KINDS = frozenset({"cash", "card", "sbp", "gift_card", "other"})


_PHONE_RE = re.compile(r"\+?[0-9][0-9 ()-]{5,20}")

RequestType = Literal[
    "hello", "ping", "identify", "calculate", "confirm", "cancel", "refund", "balance"
]


class EnvelopeError(TillgateError):
    """The message cannot be read as a request at all: wrong ``v`` or an unknown ``type``."""

    def __init__(self, code: Literal["unsupported_version", "unknown_type"], message: str) -> None:
        self.code = code
        super().__init__(message)


@dataclass(frozen=True, slots=True)
class Envelope:
    """What every request carries: the protocol version, its type and the register's id."""

    type: RequestType
    id: str
    digest: str  #: sha256 of the message with ``id`` set aside: what "the same request" means


def message_id(message: dict[str, Any]) -> str | None:
    """The request's ``id`` when it is a valid one (to echo in errors), else None."""
    value = message.get("id")
    return value if isinstance(value, str) and is_id(value) else None


def read_envelope(message: dict[str, Any]) -> Envelope:
    """Check ``v``, ``type`` and ``id`` in the order a register can fix them."""
    if "v" not in message:
        raise ValidationError("v", "is required (protocol version 1)")
    version = message["v"]
    if type(version) is not int or version != PROTOCOL_VERSION:  # not True, not 1.0
        raise EnvelopeError(
            "unsupported_version", f"protocol version {version!r} is not spoken; versions: [1]"
        )
    kind = message.get("type")
    if not isinstance(kind, str):
        raise ValidationError("type", "is required and must be a string")
    if kind not in REQUEST_TYPES:
        raise EnvelopeError("unknown_type", f"unknown request type {kind!r}")
    raw_id = message.get("id")
    if raw_id is None:
        raise ValidationError("id", "is required")
    if not isinstance(raw_id, str) or not is_id(raw_id):
        raise ValidationError("id", "must be a string of 1..64 printable characters")
    digest = request_digest(message)
    return Envelope(kind, raw_id, digest)  # type: ignore[arg-type]  # checked against REQUEST_TYPES


def request_digest(message: dict[str, Any]) -> str:
    """What "the same request" means (§2.3): sha256 of the message with ``id`` set aside,
    independent of key order and white space. Any decoded message has one, valid or not."""
    rest = {k: v for k, v in message.items() if k != "id"}
    return hashlib.sha256(
        json.dumps(rest, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()
    ).hexdigest()


# --- field readers -------------------------------------------------------------------------


def _get(obj: dict[str, Any], key: str, path: str) -> Any:
    if key not in obj or obj[key] is None:
        raise ValidationError(path, "is required")
    return obj[key]


def _string(
    obj: dict[str, Any], key: str, path: str, *, required: bool = True, max_len: int = 256
) -> str:
    if not required and obj.get(key) in (None, ""):
        return ""  # a register that fills an unused optional field with "" means "none"
    value = _get(obj, key, path)
    if not isinstance(value, str) or not value:
        raise ValidationError(path, "must be a non-empty string")
    if len(value) > max_len:
        raise ValidationError(path, f"must be at most {max_len} characters")
    return value


def _id(obj: dict[str, Any], key: str, path: str) -> str:
    value = _get(obj, key, path)
    if not isinstance(value, str) or not is_id(value):
        raise ValidationError(path, "must be a string of 1..64 printable characters")
    return value


def _int(obj: dict[str, Any], key: str, path: str, *, low: int = 0, high: int = MONEY_MAX) -> int:
    value = _get(obj, key, path)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValidationError(path, f"must be an integer {low}..{high}")
    if not low <= value <= high:
        raise ValidationError(path, f"must be {low}..{high}")
    return value


def _money(obj: dict[str, Any], key: str, path: str) -> int:
    value = _get(obj, key, path)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MONEY_MAX:
        raise ValidationError(path, "must be an integer of minor units 0..10^12")
    return value


def _object(obj: dict[str, Any], key: str, path: str) -> dict[str, Any]:
    value = _get(obj, key, path)
    if not isinstance(value, dict):
        raise ValidationError(path, "must be an object")
    return value


def _list(obj: dict[str, Any], key: str, path: str) -> list[Any]:
    value = _get(obj, key, path)
    if not isinstance(value, list):
        raise ValidationError(path, "must be an array")
    return value


#: RFC 3339 ``date-time`` (section 5.6): seconds required, offset required, ``T``/``Z`` in
#: either case. ASCII digits only (``[0-9]``, not ``\d``), anchored by ``fullmatch``.
def _quantity(value: Any, path: str) -> int:
    try:
        return parse_quantity(value)
    except ValueError as exc:
        raise ValidationError(path, "quantity must be a decimal > 0") from exc


def parse_customer(
    obj: dict[str, Any], key: str = "customer", path: str = "customer"
) -> CustomerRef:
    ref = _object(obj, key, path)
    given = [k for k in ("card", "phone", "token") if ref.get(k) is not None]
    if len(given) != 1:
        raise ValidationError(path, "must hold exactly one of card, phone, token")
    kind = given[0]
    value = ref[kind]
    if not isinstance(value, str) or not value.strip() or len(value) > 128:
        raise ValidationError(f"{path}.{kind}", "must be a non-empty string")
    if kind == "phone" and not _PHONE_RE.fullmatch(value):
        raise ValidationError(f"{path}.phone", "must be a phone number such as +79161234567")
    if kind == "card":
        return CustomerRef("card", value.strip())
    if kind == "phone":
        return CustomerRef("phone", value)
    return CustomerRef("token", value)


def parse_receipt(obj: dict[str, Any], path: str = "receipt") -> Receipt:
    r = _object(obj, "receipt", path)
    receipt_id = _id(r, "id", f"{path}.id")
    lines_raw = _list(r, "lines", f"{path}.lines")
    if not 1 <= len(lines_raw) <= 500:
        raise ValidationError(f"{path}.lines", "must hold 1..500 lines")
    lines: list[ReceiptLine] = []
    seen: set[int] = set()
    for i, raw in enumerate(lines_raw):
        lp = f"{path}.lines[{i}]"
        if not isinstance(raw, dict):
            raise ValidationError(lp, "must be an object")
        n = _int(raw, "n", f"{lp}.n", low=1, high=LINE_N_MAX)
        if n in seen:
            raise ValidationError(f"{lp}.n", f"n {n} is not unique in the receipt")
        seen.add(n)
        sku = _string(raw, "sku", f"{lp}.sku", max_len=64)
        quantity = _quantity(_get(raw, "quantity", f"{lp}.quantity"), f"{lp}.quantity")
        price = _money(raw, "price", f"{lp}.price")
        amount = _money(raw, "amount", f"{lp}.amount")
        barcode = raw.get("barcode") or ""
        name = raw.get("name") or ""
        if not isinstance(barcode, str):
            raise ValidationError(f"{lp}.barcode", "must be a string")
        if not isinstance(name, str):
            raise ValidationError(f"{lp}.name", "must be a string")
        try:
            lines.append(ReceiptLine(n, sku, quantity, price, amount, barcode, name[:256]))
        except ValidationError as exc:
            raise exc.under(lp) from None
    opened_at = (
        parse_time(r["opened_at"], f"{path}.opened_at") if r.get("opened_at") is not None else None
    )
    customer = (
        parse_customer(r, "customer", f"{path}.customer") if r.get("customer") is not None else None
    )
    coupons_raw = r.get("coupons") or []
    if not isinstance(coupons_raw, list):
        raise ValidationError(f"{path}.coupons", "must be an array of strings")
    for i, code in enumerate(coupons_raw):
        if not isinstance(code, str) or not code or len(code) > 64:
            raise ValidationError(f"{path}.coupons[{i}]", "must be a coupon code string")
    number = (
        _int(r, "number", f"{path}.number", high=10**12) if r.get("number") is not None else None
    )
    shift = _int(r, "shift", f"{path}.shift", high=10**12) if r.get("shift") is not None else None
    redeem = (
        _money(r, "points_to_redeem", f"{path}.points_to_redeem")
        if r.get("points_to_redeem") is not None
        else 0
    )
    try:
        return Receipt(
            id=receipt_id,
            lines=tuple(lines),
            opened_at=opened_at,
            number=number,
            shift=shift,
            customer=customer,
            coupons=tuple(coupons_raw),
            points_to_redeem=redeem,
        )
    except ValidationError as exc:
        raise exc.under(path) from None


# --- requests ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Hello:
    lane: str
    token: str = ""
    register: str = ""  #: "vendor model software", for logs


@dataclass(frozen=True, slots=True)
class Ping:
    pass


@dataclass(frozen=True, slots=True)
class Identify:
    customer: CustomerRef
    kind: Literal["identify", "balance"] = "identify"


@dataclass(frozen=True, slots=True)
class Calculate:
    receipt: Receipt


@dataclass(frozen=True, slots=True)
class Fiscal:
    document: str
    at: datetime
    fn: str = ""
    sign: str = ""


@dataclass(frozen=True, slots=True)
class Payment:
    kind: str
    amount: int


@dataclass(frozen=True, slots=True)
class Confirm:
    receipt_id: str
    due: int
    fiscal: Fiscal
    payments: tuple[Payment, ...]


@dataclass(frozen=True, slots=True)
class Cancel:
    receipt_id: str


@dataclass(frozen=True, slots=True)
class Refund:
    refund_id: str
    receipt_id: str
    lines: tuple[RefundLine, ...] | None
    fiscal: Fiscal | None


Request = Hello | Ping | Identify | Calculate | Confirm | Cancel | Refund


def _fiscal(obj: dict[str, Any], path: str) -> Fiscal:
    f = _object(obj, "fiscal", path)
    document = _get(f, "document", f"{path}.document")
    if isinstance(document, int) and not isinstance(document, bool):
        document = str(document)
    if not isinstance(document, str) or not document:
        raise ValidationError(f"{path}.document", "must be the fiscal document number")
    return Fiscal(
        document=document,
        at=parse_time(_get(f, "at", f"{path}.at"), f"{path}.at"),
        fn=_string(f, "fn", f"{path}.fn", required=False, max_len=64),
        sign=_string(f, "sign", f"{path}.sign", required=False, max_len=64),
    )


def parse_request(kind: RequestType, message: dict[str, Any]) -> Request:
    """The typed request for an envelope already read; raises ValidationError."""
    if kind == "hello":
        lane = _string(message, "lane", "lane", max_len=64)
        token = message.get("token") or ""
        if not isinstance(token, str):
            raise ValidationError("token", "must be a string")
        register = message.get("register")
        label = ""
        if register is not None:
            if not isinstance(register, dict):
                raise ValidationError("register", "must be an object {vendor, model, software}")
            label = " ".join(
                str(register.get(k, "")) for k in ("vendor", "model", "software")
            ).strip()
        return Hello(lane, token, label[:200])
    if kind == "ping":
        return Ping()
    if kind in ("identify", "balance"):
        return Identify(parse_customer(message), kind)
    if kind == "calculate":
        return Calculate(parse_receipt(message))
    if kind == "confirm":
        payments_raw = _list(message, "payments", "payments")
        payments: list[Payment] = []
        for i, raw in enumerate(payments_raw):
            if not isinstance(raw, dict):
                raise ValidationError(f"payments[{i}]", "must be an object {kind, amount}")
            pkind = raw.get("kind")
            if not isinstance(pkind, str):  # "" is an unknown kind like any other: `other`
                raise ValidationError(f"payments[{i}].kind", "must be a string")
            payments.append(
                Payment(
                    pkind if pkind in PAYMENT_KINDS else "other",
                    _money(raw, "amount", f"payments[{i}].amount"),
                )
            )
        return Confirm(
            receipt_id=_id(message, "receipt_id", "receipt_id"),
            due=_money(message, "due", "due"),
            fiscal=_fiscal(message, "fiscal"),
            payments=tuple(payments),
        )
    if kind == "cancel":
        return Cancel(_id(message, "receipt_id", "receipt_id"))
    # refund
    lines: tuple[RefundLine, ...] | None = None
    if message.get("lines") is not None:
        raw_lines = _list(message, "lines", "lines")
        if not raw_lines:
            raise ValidationError("lines", "must name at least one line, or be left out")
        parsed: list[RefundLine] = []
        seen: set[int] = set()
        for i, raw in enumerate(raw_lines):
            if not isinstance(raw, dict):
                raise ValidationError(f"lines[{i}]", "must be an object {n, quantity}")
            n = _int(raw, "n", f"lines[{i}].n", low=1, high=LINE_N_MAX)
            if n in seen:
                raise ValidationError(f"lines[{i}].n", f"line {n} is named twice")
            seen.add(n)
            parsed.append(
                RefundLine(
                    n,
                    _quantity(
                        _get(raw, "quantity", f"lines[{i}].quantity"), f"lines[{i}].quantity"
                    ),
                )
            )
        lines = tuple(parsed)
    return Refund(
        refund_id=_id(message, "refund_id", "refund_id"),
        receipt_id=_id(message, "receipt_id", "receipt_id"),
        lines=lines,
        fiscal=_fiscal(message, "fiscal") if message.get("fiscal") is not None else None,
    )
