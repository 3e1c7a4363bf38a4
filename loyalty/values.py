"""Domain values that travel between the rooms: receipts in, calculations and effects out.

Money and points are integers of minor units (kopecks). A quantity is an integer number of
thousandths of a unit (``"1.5"`` is ``1500``), which is exact for every quantity the
register protocol allows (at most three decimals). No float ever enters a money path.

Every value is a frozen dataclass that validates on construction and raises
:class:`tillgate.errors.ValidationError` naming the offending field.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Literal

from tillgate.errors import ValidationError

#: The largest money amount the protocol carries: 10^12 kopecks.
MONEY_MAX = 10**12
#: The instants a receipt may carry, [from, to): a register whose clock battery died reads
#: 1970 or 2000 and is still priced (register spec §2.1), but years such as 0001 or 9999
#: cannot be moved into the store's time zone or have days added to them.
_TIME_RANGE = (datetime(1900, 1, 1, tzinfo=UTC), datetime(3000, 1, 1, tzinfo=UTC))
#: Thousandths in one unit of quantity.
QUANTITY_SCALE = 1000
#: The largest quantity the protocol carries ("999999.999"), in thousandths.
QUANTITY_MAX = 999_999_999
#: The largest line number (**decided**: the contract asks only that ``n`` be unique).
LINE_N_MAX = 10**6

_QUANTITY_RE = re.compile(r"(0|[1-9][0-9]{0,5})(\.[0-9]{1,3})?")

CustomerKind = Literal["card", "phone", "token"]
MessageTarget = Literal["receipt", "cashier", "display"]
BarcodeFormat = Literal["ean13", "code128", "qr"]
MESSAGE_TARGETS: frozenset[str] = frozenset({"receipt", "cashier", "display"})
BARCODE_FORMATS: frozenset[str] = frozenset({"ean13", "code128", "qr"})


def parse_quantity(text: str) -> int:
    """``"1.5"`` → ``1500`` thousandths; raises ValueError when not a protocol quantity > 0."""
    if not isinstance(text, str) or not _QUANTITY_RE.fullmatch(text):
        raise ValueError("quantity must be a decimal string > 0 with at most 3 decimals")
    whole, _, frac = text.partition(".")
    milli = int(whole) * QUANTITY_SCALE + (int(frac.ljust(3, "0")) if frac else 0)
    if milli <= 0:
        raise ValueError("quantity must be a decimal string > 0 with at most 3 decimals")
    return milli


def format_quantity(milli: int) -> str:
    """``1500`` → ``"1.5"``; ``2000`` → ``"2"``."""
    whole, frac = divmod(milli, QUANTITY_SCALE)
    if frac == 0:
        return str(whole)
    return f"{whole}.{frac:03d}".rstrip("0")


def format_money(minor: int) -> str:
    """``123456`` → ``"1 234,56"`` (the format of receipts and cashier screens)."""
    sign = "-" if minor < 0 else ""
    whole, frac = divmod(abs(minor), 100)
    grouped = f"{whole:,}".replace(",", " ")
    return f"{sign}{grouped},{frac:02d}"


def _require(condition: bool, field_name: str, message: str) -> None:
    if not condition:
        raise ValidationError(field_name, message)


def check_time_range(moment: datetime, field_name: str) -> None:
    """Refuse an aware ``moment`` outside the instants a receipt may carry, naming the field."""
    _require(_TIME_RANGE[0] <= moment < _TIME_RANGE[1], field_name,
             "must be between 1900-01-01 and 2999-12-31 (UTC)")


_RFC3339_RE = re.compile(
    r"(?P<year>[0-9]{4})-(?P<month>[0-9]{2})-(?P<day>[0-9]{2})[Tt]"
    r"(?P<hour>[0-9]{2}):(?P<minute>[0-9]{2}):(?P<second>[0-9]{2})(?:\.(?P<fraction>[0-9]+))?"
    r"(?:(?P<utc>[Zz])|(?P<sign>[+-])(?P<off_hour>[0-9]{2}):(?P<off_minute>[0-9]{2}))"
)
_TIME_FORMAT = "must be an RFC 3339 time with seconds and an offset, e.g. 2026-11-23T10:15:00+03:00"


def parse_time(value: object, path: str) -> datetime:
    """An RFC 3339 ``date-time`` (always with an offset) as an aware datetime.

    Not :meth:`datetime.fromisoformat`: it takes ISO 8601 forms RFC 3339 does not allow
    (basic format, no seconds, a space or a week date) and refuses the lower-case ``t`` and
    ``z`` RFC 3339 allows. The register protocol and the gRPC contract both read times so.
    Raises ValidationError naming ``path``; the instant must lie in 1900..2999 (UTC).
    """
    match = _RFC3339_RE.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise ValidationError(path, _TIME_FORMAT)
    fixed = ("year", "month", "day", "hour", "minute", "second", "off_hour", "off_minute")
    part = {name: int(match[name] or 0) for name in fixed}
    # datetime has no leap second: :60 becomes the last instant before the next minute, which
    # keeps the order of events (the grammar allows :60 in any minute; which minute really had
    # one is not checked). The fraction is cut to microseconds, never rounded up.
    leap = part["second"] == 60
    micro = int((match["fraction"] or "")[:6].ljust(6, "0"))
    if part["off_hour"] > 23 or part["off_minute"] > 59:
        raise ValidationError(path, _TIME_FORMAT)
    offset = timedelta(hours=part["off_hour"], minutes=part["off_minute"])
    try:
        moment = datetime(
            part["year"],
            part["month"],
            part["day"],
            part["hour"],
            part["minute"],
            59 if leap else part["second"],
            999_999 if leap else micro,
            tzinfo=timezone(-offset if match["sign"] == "-" else offset),
        )
    except ValueError as exc:  # no such date or time of day (2026-02-30, 24:00:00)
        raise ValidationError(path, f"{_TIME_FORMAT}: {exc}") from None
    check_time_range(moment, path)
    return moment


def is_id(value: object) -> bool:
    """A protocol id: 1..64 printable characters (``str.isprintable``: letters, digits,
    punctuation, space; no control characters)."""
    return isinstance(value, str) and 1 <= len(value) <= 64 and value.isprintable()


def _check_money(value: int, field_name: str) -> None:
    _require(
        isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MONEY_MAX,
        field_name,
        f"must be an integer of minor units 0..{MONEY_MAX}",
    )


@dataclass(frozen=True, slots=True)
class CustomerRef:
    """How the register named the customer: a card number, a phone or an app token."""

    kind: CustomerKind
    value: str

    def __post_init__(self) -> None:
        _require(self.kind in ("card", "phone", "token"), "kind", "must be card, phone or token")
        _require(bool(self.value), self.kind, "must not be empty")

    def masked(self) -> str:
        """The reference safe for logs: all but the last four characters hidden."""
        return f"{self.kind}:{mask(self.value)}"


def mask(value: str) -> str:
    """``7700001234567`` → ``*********4567``: the last four characters of a reference longer
    than six, none of a shorter one (one of two characters would give it away), and at most
    sixteen stars (a reference of ten thousand characters is not echoed whole)."""
    keep = 4 if len(value) > 6 else 0
    return "*" * min(len(value) - keep, 16) + value[len(value) - keep:]


@dataclass(frozen=True, slots=True)
class ReceiptLine:
    """One line of a receipt as the register sent it; ``amount`` is before loyalty discounts."""

    n: int
    sku: str
    quantity: int  #: thousandths of a unit
    price: int
    amount: int
    barcode: str = ""
    name: str = ""

    def __post_init__(self) -> None:
        _require(
            isinstance(self.n, int) and not isinstance(self.n, bool) and 1 <= self.n <= LINE_N_MAX,
            "n",
            f"must be an integer 1..{LINE_N_MAX}",
        )
        _require(isinstance(self.sku, str) and bool(self.sku), "sku", "must be a non-empty string")
        _require(
            isinstance(self.quantity, int) and 0 < self.quantity <= QUANTITY_MAX,
            "quantity",
            "quantity must be a decimal > 0",
        )
        _check_money(self.price, "price")
        _check_money(self.amount, "amount")
        ceiling = (self.price * self.quantity * 2 + QUANTITY_SCALE) // (2 * QUANTITY_SCALE)
        _require(
            self.amount <= ceiling,
            "amount",
            f"must be at most price × quantity rounded half up ({ceiling})",
        )

    @property
    def whole_units(self) -> int | None:
        """The number of whole units, or None for a fractional (weighed) quantity."""
        units, frac = divmod(self.quantity, QUANTITY_SCALE)
        return units if frac == 0 else None


@dataclass(frozen=True, slots=True)
class Receipt:
    """A receipt to price. ``opened_at`` is always set by the time it reaches the engine."""

    id: str
    lines: tuple[ReceiptLine, ...]
    opened_at: datetime | None = None
    number: int | None = None
    shift: int | None = None
    customer: CustomerRef | None = None
    coupons: tuple[str, ...] = ()
    points_to_redeem: int = 0

    def __post_init__(self) -> None:
        _require(is_id(self.id), "id", "must be a string of 1..64 printable characters")
        _require(1 <= len(self.lines) <= 500, "lines", "must hold 1..500 lines")
        seen: set[int] = set()
        for index, line in enumerate(self.lines):
            _require(line.n not in seen, f"lines[{index}].n", f"n {line.n} is not unique")
            seen.add(line.n)
        # Every amount derived from the total (discount, due) must fit the money range too,
        # or confirm could never be sent the due it has to match.
        _require(
            self.total <= MONEY_MAX,
            "lines",
            f"the receipt total {self.total} exceeds 10^12 minor units",
        )
        _check_money(self.points_to_redeem, "points_to_redeem")
        if self.opened_at is not None:
            _require(self.opened_at.tzinfo is not None, "opened_at", "must carry an offset")
            check_time_range(self.opened_at, "opened_at")

    @property
    def total(self) -> int:
        """Σ line amounts before loyalty discounts."""
        return sum(line.amount for line in self.lines)


@dataclass(frozen=True, slots=True)
class Barcode:
    format: BarcodeFormat
    data: str


@dataclass(frozen=True, slots=True)
class Message:
    """A text for the receipt tail, the cashier's screen or the customer display."""

    target: MessageTarget
    text: str
    barcode: Barcode | None = None


@dataclass(frozen=True, slots=True)
class CustomerSummary:
    """What a calculation or an identify answer says about the customer."""

    id: str
    name: str
    status: str | None = None  #: the customer's tier, when there is a ``tier`` status system
    balance: int | None = None  #: None when it cannot be known (offline)
    redeem_max: int | None = None


@dataclass(frozen=True, slots=True)
class LineResult:
    n: int
    discount: int
    amount: int  #: request line amount − discount
    redeemed: int
    points: int
    promotions: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class AppliedPromotion:
    id: str
    name: str


@dataclass(frozen=True, slots=True)
class PointsSummary:
    accrue: int
    redeem: int
    redeem_max: int
    balance: int | None  #: the balance before this receipt; None when unknown (offline)


@dataclass(frozen=True, slots=True)
class CounterDelta:
    name: str
    add: int


@dataclass(frozen=True, slots=True)
class Effects:
    """What confirming this calculation changes besides points (spec promotions §3.8)."""

    counters: tuple[CounterDelta, ...] = ()
    coupons: tuple[str, ...] = ()  #: codes spent on confirm


@dataclass(frozen=True, slots=True)
class Calculation:
    """The answer to ``calculate`` (register protocol §2.2), plus the effects of confirming it."""

    receipt_id: str
    customer: CustomerSummary | None
    lines: tuple[LineResult, ...]
    total: int
    discount: int
    due: int
    points: PointsSummary
    promotions: tuple[AppliedPromotion, ...] = ()
    control: tuple[str, ...] = ()
    messages: tuple[Message, ...] = ()
    effects: Effects = field(default_factory=Effects)
    mode: Literal["online", "offline"] = "online"

    def __post_init__(self) -> None:
        if self.discount != sum(line.discount for line in self.lines):
            raise ValueError("calculation: discount must equal the sum of line discounts")
        if self.due != self.total - self.discount:
            raise ValueError("calculation: due must equal total - discount")
        if self.points.redeem != sum(line.redeemed for line in self.lines):
            raise ValueError("calculation: points.redeem must equal the sum of line redeemed")


@dataclass(frozen=True, slots=True)
class ConfirmEffects:
    """Everything a confirm changes, for central and the edge to persist in one transaction."""

    customer_id: str | None
    accrued: int
    redeemed: int
    counters: tuple[CounterDelta, ...] = ()
    coupons: tuple[str, ...] = ()
    first_purchase: bool = False  #: this confirm is the customer's first purchase

    @property
    def balance_delta(self) -> int:
        return self.accrued - self.redeemed


@dataclass(frozen=True, slots=True)
class RefundLine:
    n: int
    quantity: int  #: thousandths


@dataclass(frozen=True, slots=True)
class RefundEffects:
    """What a refund reverses (spec promotions §3.8, §5.16)."""

    customer_id: str | None
    reversed: int  #: accrued points taken back
    restored: int  #: redeemed points given back
    lines: tuple[RefundLine, ...] = ()
    amount: int = 0  #: money refunded, line amounts after discounts

    @property
    def balance_delta(self) -> int:
        return self.restored - self.reversed
