"""The data documents of loyalty (promotions spec §1): typed values and validating parsers.

Theory of operation
-------------------
Central imports catalog items, customers and promotions as JSON documents (and customer
attributes as CSV rows); the edge receives the same documents through the sync feed. Both
turn every document into the frozen values below with :func:`parse_catalog_item`,
:func:`parse_customer` and :func:`parse_promotion`, so the engine only ever sees values that
were checked once, at the door. A wrong document raises
:class:`tillgate.errors.DocumentError` naming its kind, its id and the key at fault::

    promotion "oil-15": reward.percent: must be 0 < p <= 100

Parsers do no I/O; callers add the file and line to the error. Unknown keys are ignored
(forward compatibility: a newer central may send fields this version does not know), but
every key this version knows is checked for type and range. Percentages and factors are
exact :class:`fractions.Fraction` values parsed from decimal strings (or integers); a JSON
float is refused, because it cannot be trusted in a money path.
"""

from __future__ import annotations

import json
import re
from collections.abc import ItemsView, Iterator, KeysView, Mapping, ValuesView
from dataclasses import dataclass, field
from datetime import datetime
from fractions import Fraction
from typing import Any, Generic, Literal, TypeVar, cast, get_args, overload

from loyalty.values import (
    BARCODE_FORMATS,
    MESSAGE_TARGETS,
    QUANTITY_SCALE,
    Barcode,
    CounterDelta,
    Message,
    MessageTarget,
    parse_time,
)
from tillgate.errors import DocumentError, ValidationError

__all__ = [
    "FLAGS",
    "MAX_INTEGER",
    "REWARD_TYPES",
    "ActiveWindow",
    "Audience",
    "CatalogItem",
    "Conditions",
    "CounterCondition",
    "Customer",
    "DocumentKind",
    "FrozenMap",
    "ItemCondition",
    "PersonalOffer",
    "Promotion",
    "Reward",
    "RewardType",
    "Selector",
    "apply_customer_attribute",
    "check_offer_keys",
    "check_promotion_keys",
    "document_id",
    "document_kind",
    "is_deleted",
    "normalize_phone",
    "parse_catalog_item",
    "parse_customer",
    "parse_personal_offer",
    "parse_promotion",
]

DocumentKind = Literal["catalog", "customer", "promotion"]
RewardType = Literal[
    "percent_off",
    "amount_off",
    "fixed_price",
    "nth_percent_off",
    "buy_x_get_y",
    "points_percent",
    "points_fixed",
    "points_multiplier",
    "none",
]
REWARD_TYPES: frozenset[str] = frozenset(get_args(RewardType))
DISCOUNT_REWARDS: frozenset[str] = frozenset(
    {"percent_off", "amount_off", "fixed_price", "nth_percent_off", "buy_x_get_y"})
POINTS_REWARDS: frozenset[str] = frozenset(
    {"points_percent", "points_fixed", "points_multiplier"})
#: The catalog flags this version knows (spec §1); any other flag is refused as a typo.
FLAGS: frozenset[str] = frozenset({"no_discount", "no_accrual", "no_redeem"})

K = TypeVar("K")
V = TypeVar("V")
T = TypeVar("T")


class FrozenMap(Mapping[K, V], Generic[K, V]):
    """An immutable, hashable mapping (values must be hashable), keeping insertion order."""

    __slots__ = ("_data", "_hash")

    def __init__(self, items: Mapping[K, V] | None = None) -> None:
        self._data: dict[K, V] = dict(items or {})
        self._hash: int | None = None

    def __getitem__(self, key: K) -> V:
        return self._data[key]

    def __iter__(self) -> Iterator[K]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    # Delegate the read-only views to the dict: the engine reads these per receipt.
    def __contains__(self, key: object) -> bool:
        return key in self._data

    @overload
    def get(self, key: K, /) -> V | None: ...

    @overload
    def get(self, key: K, /, default: V | T) -> V | T: ...

    def get(self, key: K, /, default: object = None) -> object:
        return self._data.get(key, default)

    def keys(self) -> KeysView[K]:
        return self._data.keys()

    def values(self) -> ValuesView[V]:
        return self._data.values()

    def items(self) -> ItemsView[K, V]:
        return self._data.items()

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = hash(frozenset(self._data.items()))
        return self._hash

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Mapping):
            return dict(self._data) == dict(other)
        return NotImplemented

    def __repr__(self) -> str:
        return f"FrozenMap({self._data!r})"


# --------------------------------------------------------------------------- values


@dataclass(frozen=True, slots=True)
class CatalogItem:
    """One catalog item; ``groups`` includes every ancestor group, ``min_price`` is per unit."""

    sku: str
    name: str = ""
    groups: frozenset[str] = frozenset()
    brand: str = ""
    flags: frozenset[str] = frozenset()
    min_price: int = 0


@dataclass(frozen=True, slots=True)
class Selector:
    """An ``on`` selector: every non-empty key must match (AND), any value within a key (OR).

    ``favorites`` names favorite-products sets; a line matches when its sku is among the
    customer's chosen skus of any named set. An empty selector selects every line.
    """

    skus: frozenset[str] = frozenset()
    groups: frozenset[str] = frozenset()
    brands: frozenset[str] = frozenset()
    favorites: frozenset[str] = frozenset()
    #: ("sku" | "group" | "brand", value) when that one value is all the selector names (most
    #: promotions): its selection is a receipt's lines of that key, found by one lookup
    single: tuple[str, str] | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        named = [(kind, values) for kind, values in (("sku", self.skus), ("group", self.groups),
                                                     ("brand", self.brands)) if values]
        single = None
        if len(named) == 1 and len(named[0][1]) == 1 and not self.favorites:
            kind, values = named[0]
            single = kind, next(iter(values))
        object.__setattr__(self, "single", single)

    @property
    def is_all(self) -> bool:
        return not (self.skus or self.groups or self.brands or self.favorites)


@dataclass(frozen=True, slots=True)
class ActiveWindow:
    """When a promotion (``active``) or a personal offer (``valid``) applies.

    ``start`` is included, ``end`` excluded (instants); ``weekdays`` are ISO (1 = Monday) and
    ``hours`` is ``(from, to)`` in minutes of the store-local day (``24:00`` = 1440); a
    ``from`` later than ``to`` wraps over midnight. Empty / None means no restriction.
    """

    start: datetime | None = None
    end: datetime | None = None
    weekdays: frozenset[int] = frozenset()
    hours: tuple[int, int] | None = None


@dataclass(frozen=True, slots=True)
class Audience:
    """Who a promotion is for; ``control`` is the held-out percentage (0 = none)."""

    members_only: bool = False
    statuses: FrozenMap[str, frozenset[str]] = field(default_factory=FrozenMap)
    attributes: FrozenMap[str, frozenset[str]] = field(default_factory=FrozenMap)
    segments: frozenset[str] = frozenset()
    control: Fraction = Fraction(0)

    @property
    def unrestricted(self) -> bool:
        """True when a receipt without an identified customer can match this audience."""
        # An empty list of allowed values is no restriction (spec §1), as for a customer.
        return not (self.members_only or self.segments or any(self.statuses.values())
                    or any(self.attributes.values()))


@dataclass(frozen=True, slots=True)
class ItemCondition:
    """"The receipt holds at least ``min_quantity`` (thousandths) of lines matching ``on``"."""

    on: Selector = Selector()
    min_quantity: int | None = None  #: None = any positive quantity


@dataclass(frozen=True, slots=True)
class CounterCondition:
    """The customer's counter ``name``, counting this purchase, is at least ``at_least``."""

    name: str
    at_least: int


@dataclass(frozen=True, slots=True)
class Conditions:
    """Every condition of a promotion (spec §1, §5.9–5.10); all must hold."""

    min_total: int = 0
    items: tuple[ItemCondition, ...] = ()
    coupon: str | None = None  #: a coupon series (``SPRING``), compared case-insensitively
    counter: CounterCondition | None = None
    first_purchase: bool = False


@dataclass(frozen=True, slots=True)
class Reward:
    """A reward of spec §2; only the fields of its ``type`` are meaningful."""

    type: RewardType
    on: Selector = Selector()
    percent: Fraction = Fraction(0)
    amount: int = 0
    price: int = 0
    every: int = 0
    buy: int = 0
    get: int = 0
    points: int = 0
    factor: Fraction = Fraction(1)
    #: ``percent`` as (numerator, denominator × 100): the fraction of an amount it is, in the
    #: integers the engine computes with (a Fraction's parts are read through properties)
    rate: tuple[int, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "rate", (self.percent.numerator, self.percent.denominator * 100))

    @property
    def is_discount(self) -> bool:
        """True for the rewards that discount lines."""
        return self.type in DISCOUNT_REWARDS

    @property
    def is_points(self) -> bool:
        """True for the rewards that accrue points."""
        return self.type in POINTS_REWARDS


@dataclass(frozen=True, slots=True)
class Promotion:
    """A promotion document (spec §1), checked."""

    id: str
    name: str
    reward: Reward
    active: ActiveWindow = ActiveWindow()
    stores: frozenset[str] = frozenset()
    priority: int = 0
    group: str = ""
    exclusive: bool = False
    audience: Audience = Audience()
    conditions: Conditions = Conditions()
    counters: tuple[CounterDelta, ...] = ()
    messages: tuple[Message, ...] = ()  #: templates, in document order of their targets
    personal: bool = False  #: True for a customer's personal offer joined as a promotion


@dataclass(frozen=True, slots=True)
class PersonalOffer:
    """A customer's personal offer (or favorite category): its own reward and validity."""

    id: str
    reward: Reward
    name: str = ""
    valid: ActiveWindow = ActiveWindow()
    messages: tuple[Message, ...] = ()
    accepted: bool = True

    def as_promotion(self) -> Promotion:
        """The offer as a promotion of priority 0 in group ``personal`` (spec §5.12)."""
        return Promotion(
            id=self.id,
            name=self.name or self.id,
            reward=self.reward,
            active=self.valid,
            priority=0,
            group="personal",
            messages=self.messages,
            personal=True,
        )


@dataclass(frozen=True, slots=True)
class Customer:
    """A customer document (spec §1, §5.11), checked."""

    id: str
    cards: tuple[str, ...] = ()
    phone: str = ""
    tokens: tuple[str, ...] = ()
    name: str = ""
    statuses: FrozenMap[str, str] = field(default_factory=FrozenMap)
    attributes: FrozenMap[str, str] = field(default_factory=FrozenMap)
    segments: frozenset[str] = frozenset()
    balance: int = 0
    counters: FrozenMap[str, int] = field(default_factory=FrozenMap)
    favorites: FrozenMap[str, frozenset[str]] = field(default_factory=FrozenMap)
    personal_offers: tuple[PersonalOffer, ...] = ()
    purchases: int = 0

    @property
    def tier(self) -> str | None:
        """The ``tier`` status if present, else the first status value, else None."""
        if "tier" in self.statuses:
            return self.statuses["tier"]
        for value in self.statuses.values():
            return value
        return None


# --------------------------------------------------------------------------- helpers


class _Doc:
    """Error context while parsing one document: its kind and id."""

    def __init__(self, kind: str, doc_id: str) -> None:
        self.kind = kind
        self.doc_id = doc_id

    def error(self, key: str, message: str) -> DocumentError:
        return DocumentError(message, kind=self.kind, doc_id=self.doc_id, key=key)

    def obj(self, value: object, key: str) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            raise self.error(key, "must be a JSON object")
        return cast("Mapping[str, Any]", value)

    def opt_obj(self, parent: Mapping[str, Any], name: str, key: str) -> Mapping[str, Any]:
        value = parent.get(name)
        if value is None:
            return {}
        return self.obj(value, key)

    def string(self, parent: Mapping[str, Any], name: str, key: str, *,
               required: bool = False, default: str = "", printed: bool = False) -> str:
        """``printed``: the text reaches receipts and screens, so no control characters."""
        value = parent.get(name)
        if value is None:
            if required:
                raise self.error(key, "is required")
            return default
        if not isinstance(value, str):
            raise self.error(key, "must be a string")
        if required and not value:
            raise self.error(key, "must not be empty")
        if printed and not value.isprintable():
            raise self.error(key, "must not contain control characters")
        return value

    def boolean(self, parent: Mapping[str, Any], name: str, key: str,
                default: bool = False) -> bool:
        value = parent.get(name)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise self.error(key, "must be true or false")
        return value

    def integer(self, parent: Mapping[str, Any], name: str, key: str, *, default: int = 0,
                minimum: int | None = None, required: bool = False) -> int:
        value = parent.get(name)
        if value is None:
            if required:
                raise self.error(key, "is required")
            return default
        if isinstance(value, str) and _INTEGER_RE.fullmatch(value.strip()):
            digits = value.strip()
            # Over 20 characters it is out of range whatever it says: not worth parsing whole.
            value = int(digits) if len(digits) <= 20 else MAX_INTEGER + 1
        if not isinstance(value, int) or isinstance(value, bool):
            raise self.error(key, "must be an integer")
        if minimum is not None and value < minimum:
            raise self.error(key, f"must be >= {minimum}")
        if not -MAX_INTEGER <= value <= MAX_INTEGER:
            raise self.error(key, f"must be between {-MAX_INTEGER} and {MAX_INTEGER}")
        return value

    def decimal(self, value: object, key: str) -> Fraction:
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        # Plain digits only: an exponent ("1e100000000") would make Decimal → Fraction build
        # a number of a hundred million digits before any range check.
        if not isinstance(value, str) or not _DECIMAL_RE.fullmatch(value.strip()):
            raise self.error(key, 'must be a decimal string such as "15" or "2.5"')
        return Fraction(value.strip())

    def strings(self, parent: Mapping[str, Any], name: str, key: str) -> tuple[str, ...]:
        value = parent.get(name)
        if value is None:
            return ()
        if isinstance(value, str) or not isinstance(value, list | tuple):
            raise self.error(key, "must be a list of strings")
        for index, item in enumerate(value):
            if not isinstance(item, str):
                raise self.error(f"{key}[{index}]", "must be a string")
        return tuple(value)

    def string_sets(self, parent: Mapping[str, Any], name: str,
                    key: str) -> FrozenMap[str, frozenset[str]]:
        mapping = self.opt_obj(parent, name, key)
        result: dict[str, frozenset[str]] = {}
        for sub, _ in mapping.items():
            if not isinstance(sub, str):
                raise self.error(key, "keys must be strings")
            result[sub] = frozenset(self.strings(mapping, sub, f"{key}.{sub}"))
        return FrozenMap(result)

    def time(self, value: object, key: str) -> datetime:
        if not isinstance(value, str):
            raise self.error(key, "must be an RFC 3339 time string")
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            # datetime has no leap second, RFC 3339 has (…T23:59:60Z): read as the protocol
            # reads it, the last instant before the next minute.
            try:
                moment = parse_time(value, key)
            except ValidationError:
                raise self.error(key, f"must be an RFC 3339 time, got {value!r}") from None
        if moment.tzinfo is None or moment.utcoffset() is None:
            raise self.error(key, "must carry a UTC offset")
        return moment


_HOUR_RE = re.compile(r"^([0-9]{2}):([0-9]{2})$")
_INTEGER_RE = re.compile(r"-?[0-9]+")
_DECIMAL_RE = re.compile(r"-?[0-9]{1,15}(\.[0-9]{1,15})?")
#: The largest money, points or count a document may hold: the register protocol's money
#: range, so that every sum the engine makes of them stays far inside the int64 of the gRPC
#: contract and of SQLite.
MAX_INTEGER = 10**12
#: The largest ``points_multiplier`` factor (a percent accrual times it stays in range).
MAX_FACTOR = 1000
#: The longest message text: a receipt tail, not a leaflet (and encoded for the printer whole)
MAX_MESSAGE_TEXT = 1000


def _clock_minutes(doc: _Doc, value: object, key: str) -> int:
    match = _HOUR_RE.match(value) if isinstance(value, str) else None
    if match is None:
        raise doc.error(key, 'must be a time of day "HH:MM"')
    hours, minutes = int(match.group(1)), int(match.group(2))
    total = hours * 60 + minutes
    if minutes > 59 or total > 24 * 60:
        raise doc.error(key, 'must be between "00:00" and "24:00"')
    return total


def _window(doc: _Doc, parent: Mapping[str, Any], name: str, key: str) -> ActiveWindow:
    obj = doc.opt_obj(parent, name, key)
    start = doc.time(obj["from"], f"{key}.from") if obj.get("from") is not None else None
    end = doc.time(obj["to"], f"{key}.to") if obj.get("to") is not None else None
    if start is not None and end is not None and not start < end:
        raise doc.error(f"{key}.to", "must be later than from")
    weekdays_raw = obj.get("weekdays")
    weekdays: set[int] = set()
    if weekdays_raw is not None:
        if not isinstance(weekdays_raw, list):
            raise doc.error(f"{key}.weekdays", "must be a list of ISO weekdays 1..7")
        for index, day in enumerate(weekdays_raw):
            if isinstance(day, bool) or not isinstance(day, int) or not 1 <= day <= 7:
                raise doc.error(f"{key}.weekdays[{index}]", "must be an ISO weekday 1..7")
            weekdays.add(day)
    hours_raw = obj.get("hours")
    hours: tuple[int, int] | None = None
    if hours_raw is not None and hours_raw != []:  # an empty list: no restriction (§1)
        if not isinstance(hours_raw, list) or len(hours_raw) != 2:
            raise doc.error(f"{key}.hours", 'must be ["HH:MM", "HH:MM"]')
        hours = (
            _clock_minutes(doc, hours_raw[0], f"{key}.hours[0]"),
            _clock_minutes(doc, hours_raw[1], f"{key}.hours[1]"),
        )
        if hours == (0, 24 * 60):
            hours = None  # the whole day: no restriction
    return ActiveWindow(start, end, frozenset(weekdays), hours)


def _selector(doc: _Doc, value: object, key: str) -> Selector:
    if value is None:
        return Selector()
    obj = doc.obj(value, key)
    return Selector(
        skus=frozenset(doc.strings(obj, "skus", f"{key}.skus")),
        groups=frozenset(doc.strings(obj, "groups", f"{key}.groups")),
        brands=frozenset(doc.strings(obj, "brands", f"{key}.brands")),
        favorites=_favorite_sets(doc, obj, f"{key}.favorites"),
    )


def _favorite_sets(doc: _Doc, selector: Mapping[str, Any], key: str) -> frozenset[str]:
    # The spec writes `favorites` as "a set name"; a list of names is taken too (any of them).
    value = selector.get("favorites")
    if isinstance(value, str):
        if not value:
            raise doc.error(key, "must be a favorite-products set name or a list of them")
        return frozenset({value})
    return frozenset(doc.strings(selector, "favorites", key))


def _percent(doc: _Doc, obj: Mapping[str, Any], key: str) -> Fraction:
    if obj.get("percent") is None:
        raise doc.error(key, "is required")
    percent = doc.decimal(obj["percent"], key)
    if not 0 < percent <= 100:
        raise doc.error(key, "must be 0 < p <= 100")
    return percent


def _reward(doc: _Doc, value: object, key: str, *,
            on_override: tuple[object, str] | None = None) -> Reward:
    """The reward at ``key``; ``on_override`` is ``(on, its key)`` when ``on`` lives elsewhere
    (a personal offer's top level)."""
    if value is None:
        raise doc.error(key, "is required")
    obj = doc.obj(value, key)
    kind = obj.get("type")
    if not isinstance(kind, str) or kind not in REWARD_TYPES:
        raise doc.error(f"{key}.type", f"must be one of {', '.join(sorted(REWARD_TYPES))}")
    reward_type = cast("RewardType", kind)
    on_value, on_key = on_override if on_override is not None else (obj.get("on"), f"{key}.on")
    on = _selector(doc, on_value, on_key)
    if reward_type in ("percent_off", "points_percent"):
        return Reward(reward_type, on, percent=_percent(doc, obj, f"{key}.percent"))
    if reward_type == "amount_off":
        amount = doc.integer(obj, "amount", f"{key}.amount", required=True, minimum=1)
        return Reward(reward_type, on, amount=amount)
    if reward_type == "fixed_price":
        price = doc.integer(obj, "price", f"{key}.price", required=True, minimum=0)
        return Reward(reward_type, on, price=price)
    if reward_type == "nth_percent_off":
        every = doc.integer(obj, "every", f"{key}.every", required=True, minimum=1)
        return Reward(reward_type, on, every=every, percent=_percent(doc, obj, f"{key}.percent"))
    if reward_type == "buy_x_get_y":
        buy = doc.integer(obj, "buy", f"{key}.buy", required=True, minimum=1)
        get = doc.integer(obj, "get", f"{key}.get", required=True, minimum=1)
        return Reward(reward_type, on, buy=buy, get=get)
    if reward_type == "points_fixed":
        points = doc.integer(obj, "points", f"{key}.points", required=True, minimum=1)
        return Reward(reward_type, on, points=points)
    if reward_type == "points_multiplier":
        if obj.get("factor") is None:
            raise doc.error(f"{key}.factor", "is required")
        factor = doc.decimal(obj["factor"], f"{key}.factor")
        if not 0 < factor <= MAX_FACTOR:
            raise doc.error(f"{key}.factor", f"must be 0 < f <= {MAX_FACTOR}")
        return Reward(reward_type, on, factor=factor)
    return Reward("none", on)


def _messages(doc: _Doc, parent: Mapping[str, Any], key: str) -> tuple[Message, ...]:
    obj = doc.opt_obj(parent, "messages", key)
    result: list[Message] = []
    for target, value in obj.items():
        where = f"{key}.{target}"
        if target not in MESSAGE_TARGETS:
            raise doc.error(where, "target must be receipt, cashier or display")
        barcode: Barcode | None = None
        if isinstance(value, Mapping):
            text = doc.string(value, "text", f"{where}.text", required=True)
            text_key = f"{where}.text"
            if value.get("barcode") is not None:
                code = doc.obj(value["barcode"], f"{where}.barcode")
                fmt = doc.string(code, "format", f"{where}.barcode.format", required=True)
                if fmt not in BARCODE_FORMATS:
                    raise doc.error(f"{where}.barcode.format", "must be ean13, code128 or qr")
                data = doc.string(code, "data", f"{where}.barcode.data", required=True)
                problem = _barcode_problem(fmt, data)
                if problem:
                    raise doc.error(f"{where}.barcode.data", problem)
                barcode = Barcode(cast("Any", fmt), data)
        elif isinstance(value, str):
            text, text_key = value, where
        else:
            raise doc.error(where, "must be a string or {text, barcode}")
        if len(text) > MAX_MESSAGE_TEXT:
            raise doc.error(text_key, f"must be at most {MAX_MESSAGE_TEXT} characters")
        if not all(char.isprintable() or char == "\n" for char in text):
            # it would be printed: ESC, GS or DLE are printer commands (a cut, a drawer kick)
            raise doc.error(text_key, "must not contain control characters")
        if text:
            result.append(Message(cast("MessageTarget", target), text, barcode))
    return tuple(result)


def _barcode_problem(fmt: str, data: str) -> str:
    """Why ``data`` cannot be a barcode of ``fmt`` (empty when it can)."""
    if fmt == "ean13":
        if not (data.isascii() and data.isdigit() and len(data) in (12, 13)):
            return "EAN-13 needs 12 or 13 digits"
        weighted = sum(int(digit) * (3 if i % 2 else 1) for i, digit in enumerate(data[:12]))
        if len(data) == 13 and int(data[12]) != (10 - weighted % 10) % 10:
            return "EAN-13 check digit is wrong"
    elif fmt == "code128":
        if not (1 <= len(data) <= 80 and all(" " <= char <= "~" for char in data)):
            return "Code128 needs 1..80 printable ASCII characters"
    elif len(data.encode()) > 2953:
        return "a QR code holds at most 2953 bytes"
    return ""


def _root(kind: str, obj: object, id_key: str) -> tuple[_Doc, Mapping[str, Any]]:
    if not isinstance(obj, Mapping):
        raise DocumentError("must be a JSON object", kind=kind)
    raw_id = obj.get(id_key)
    if not isinstance(raw_id, str) or not raw_id:
        shown = "" if raw_id is None else str(raw_id)
        raise DocumentError("is required as a non-empty string", kind=kind, doc_id=shown,
                            key=id_key)
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in raw_id):
        raise DocumentError("must not contain control characters", kind=kind,
                            doc_id=repr(raw_id)[1:-1], key=id_key)
    return _Doc(kind, raw_id), cast("Mapping[str, Any]", obj)


# --------------------------------------------------------------------------- parsers


def parse_catalog_item(obj: object) -> CatalogItem:
    """A catalog item document → :class:`CatalogItem`; raises DocumentError."""
    doc, data = _root("catalog item", obj, "sku")
    flags = doc.strings(data, "flags", "flags")
    for index, flag in enumerate(flags):
        if flag not in FLAGS:
            raise doc.error(f"flags[{index}]", f"unknown flag {flag!r}: must be one of "
                            f"{', '.join(sorted(FLAGS))}")
    return CatalogItem(
        sku=doc.doc_id,
        name=doc.string(data, "name", "name"),
        groups=frozenset(doc.strings(data, "groups", "groups")),
        brand=doc.string(data, "brand", "brand"),
        flags=frozenset(flags),
        min_price=doc.integer(data, "min_price", "min_price", minimum=0),
    )


def _offer(doc: _Doc, value: object, key: str) -> PersonalOffer:
    obj = doc.obj(value, key)
    offer_id = doc.string(obj, "id", f"{key}.id", required=True)
    if obj.get("reward") is None:
        raise doc.error(f"{key}.reward", "is required")
    reward_obj = doc.obj(obj["reward"], f"{key}.reward")
    # Spec §5.12: an offer's `on` is at its top level; a reward-level `on` is accepted too.
    on: tuple[object, str] = (obj.get("on"), f"{key}.on")
    if on[0] is None:
        on = (reward_obj.get("on"), f"{key}.reward.on")
    return PersonalOffer(
        id=offer_id,
        name=doc.string(obj, "name", f"{key}.name", printed=True),
        reward=_reward(doc, reward_obj, f"{key}.reward", on_override=on),
        valid=_window(doc, obj, "valid", f"{key}.valid"),
        messages=_messages(doc, obj, f"{key}.messages"),
        accepted=doc.boolean(obj, "accepted", f"{key}.accepted", default=True),
    )


def parse_personal_offer(obj: object, *, customer_id: str = "") -> PersonalOffer:
    """One personal offer (as in ``personal_offers`` or a CSV ``offer`` row)."""
    return _offer(_Doc("customer", customer_id), obj, "offer")


def parse_customer(obj: object) -> Customer:
    """A customer document → :class:`Customer`; raises DocumentError."""
    doc, data = _root("customer", obj, "id")
    statuses = doc.opt_obj(data, "statuses", "statuses")
    attributes = doc.opt_obj(data, "attributes", "attributes")
    counters = doc.opt_obj(data, "counters", "counters")
    favorites = doc.opt_obj(data, "favorites", "favorites")
    offers_raw = data.get("personal_offers")
    if offers_raw is not None and not isinstance(offers_raw, list):
        raise doc.error("personal_offers", "must be a list")
    offers = tuple(_offer(doc, item, f"personal_offers[{index}]")
                   for index, item in enumerate(offers_raw or ()))
    seen: set[str] = set()
    for index, offer in enumerate(offers):
        if offer.id in seen:
            raise doc.error(f"personal_offers[{index}].id", f"duplicate offer id {offer.id!r}")
        seen.add(offer.id)
    return Customer(
        id=doc.doc_id,
        cards=doc.strings(data, "cards", "cards"),
        phone=doc.string(data, "phone", "phone"),
        tokens=doc.strings(data, "tokens", "tokens"),
        name=doc.string(data, "name", "name", printed=True),
        statuses=FrozenMap({name: doc.string(statuses, name, f"statuses.{name}")
                            for name in statuses}),
        attributes=FrozenMap({name: _attribute_text(doc, attributes, name)
                              for name in attributes}),
        segments=frozenset(doc.strings(data, "segments", "segments")),
        balance=doc.integer(data, "balance", "balance"),
        counters=FrozenMap({name: doc.integer(counters, name, f"counters.{name}")
                            for name in counters}),
        favorites=FrozenMap({name: frozenset(doc.strings(favorites, name, f"favorites.{name}"))
                             for name in favorites}),
        personal_offers=offers,
        purchases=doc.integer(data, "purchases", "purchases", minimum=0),
    )


def _attribute_text(doc: _Doc, attributes: Mapping[str, Any], name: str) -> str:
    value = attributes[name]
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | str):
        return str(value)
    raise doc.error(f"attributes.{name}", "must be a string")


def parse_promotion(obj: object) -> Promotion:
    """A promotion document → :class:`Promotion`; raises DocumentError."""
    doc, data = _root("promotion", obj, "id")
    name = doc.string(data, "name", "name", required=True, printed=True)
    reward = _reward(doc, data.get("reward"), "reward")

    audience_obj = doc.opt_obj(data, "audience", "audience")
    control = Fraction(0)
    if audience_obj.get("control") is not None:
        control = doc.decimal(audience_obj["control"], "audience.control")
        if not 0 <= control <= 100:
            raise doc.error("audience.control", "must be 0 <= c <= 100")
    audience = Audience(
        members_only=doc.boolean(audience_obj, "members_only", "audience.members_only"),
        statuses=doc.string_sets(audience_obj, "statuses", "audience.statuses"),
        attributes=doc.string_sets(audience_obj, "attributes", "audience.attributes"),
        segments=frozenset(doc.strings(audience_obj, "segments", "audience.segments")),
        control=control,
    )

    cond_obj = doc.opt_obj(data, "conditions", "conditions")
    items_raw = cond_obj.get("items")
    if items_raw is not None and not isinstance(items_raw, list):
        raise doc.error("conditions.items", "must be a list")
    items: list[ItemCondition] = []
    for index, raw in enumerate(items_raw or ()):
        where = f"conditions.items[{index}]"
        item = doc.obj(raw, where)
        min_quantity: int | None = None
        if item.get("min_quantity") is not None:
            quantity = doc.decimal(item["min_quantity"], f"{where}.min_quantity")
            milli = quantity * QUANTITY_SCALE
            if milli <= 0 or milli.denominator != 1:
                raise doc.error(f"{where}.min_quantity",
                                "must be a quantity > 0 with at most 3 decimals")
            min_quantity = int(milli)
        items.append(ItemCondition(_selector(doc, item.get("on"), f"{where}.on"), min_quantity))
    coupon = doc.string(cond_obj, "coupon", "conditions.coupon") or None
    counter: CounterCondition | None = None
    if cond_obj.get("counter") is not None:
        counter_obj = doc.obj(cond_obj["counter"], "conditions.counter")
        counter = CounterCondition(
            doc.string(counter_obj, "name", "conditions.counter.name", required=True),
            doc.integer(counter_obj, "at_least", "conditions.counter.at_least", required=True),
        )
    conditions = Conditions(
        min_total=doc.integer(cond_obj, "min_total", "conditions.min_total", minimum=0),
        items=tuple(items),
        coupon=coupon,
        counter=counter,
        first_purchase=doc.boolean(cond_obj, "first_purchase", "conditions.first_purchase"),
    )

    counters_raw = data.get("counters")
    if counters_raw is not None and not isinstance(counters_raw, list):
        raise doc.error("counters", "must be a list of {name, add}")
    counters: list[CounterDelta] = []
    for index, raw in enumerate(counters_raw or ()):
        entry = doc.obj(raw, f"counters[{index}]")
        counters.append(CounterDelta(
            doc.string(entry, "name", f"counters[{index}].name", required=True),
            doc.integer(entry, "add", f"counters[{index}].add", default=1),
        ))

    return Promotion(
        id=doc.doc_id,
        name=name,
        reward=reward,
        active=_window(doc, data, "active", "active"),
        stores=frozenset(doc.strings(data, "stores", "stores")),
        priority=doc.integer(data, "priority", "priority"),
        group=doc.string(data, "group", "group"),
        exclusive=doc.boolean(data, "exclusive", "exclusive"),
        audience=audience,
        conditions=conditions,
        counters=tuple(counters),
        messages=_messages(doc, data, "messages"),
    )


# --------------------------------------------------------------------------- key names

_SELECTOR_KEYS = ("skus", "groups", "brands", "favorites")
_WINDOW_KEYS = ("from", "to", "weekdays", "hours")
_REWARD_KEYS = ("type", "on", "percent", "amount", "price", "every", "buy", "get", "points",
                "factor")
_AUDIENCE_KEYS = ("members_only", "statuses", "attributes", "segments", "control")
_CONDITION_KEYS = ("min_total", "items", "coupon", "counter", "first_purchase")
_PROMOTION_FIELDS = ("id", "name", "active", "stores", "priority", "group", "exclusive",
                     "audience", "conditions", "reward", "counters", "messages",
                     "points_lifetime", "deleted", "kind")
_OFFER_FIELDS = ("id", "name", "on", "reward", "valid", "messages", "accepted")


def _known(doc: _Doc, value: object, key: str, allowed: tuple[str, ...]) -> Mapping[str, Any]:
    """``value`` (an object, or absent) with only ``allowed`` keys; raises at the first other."""
    if not isinstance(value, Mapping):
        return {}
    for name in value:
        if name not in allowed:
            where = f"{key}.{name}" if key else str(name)
            raise doc.error(where, f"unknown key: must be one of {', '.join(allowed)}")
    return cast("Mapping[str, Any]", value)


def _reward_keys(doc: _Doc, value: object, key: str) -> None:
    reward = _known(doc, value, key, _REWARD_KEYS)
    _known(doc, reward.get("on"), f"{key}.on", _SELECTOR_KEYS)


def check_promotion_keys(obj: Mapping[str, Any]) -> None:
    """Refuse a key the promotion format does not have, at any level; raises DocumentError.

    A misspelt key reads as a missing one, and a missing restriction means none: ``"on":
    {"grups": ["oils"]}`` would discount every line, ``"audiance"`` reach every customer.
    Central checks this when it imports; the edge parses what central accepted without it,
    so that a store running an older tillgate still prices a newer central's documents.
    """
    doc = _Doc("promotion", str(obj.get("id", "")))
    _known(doc, obj, "", _PROMOTION_FIELDS)
    _known(doc, obj.get("active"), "active", _WINDOW_KEYS)
    _known(doc, obj.get("audience"), "audience", _AUDIENCE_KEYS)
    conditions = _known(doc, obj.get("conditions"), "conditions", _CONDITION_KEYS)
    items = conditions.get("items")
    for index, item in enumerate(items if isinstance(items, list) else ()):
        where = f"conditions.items[{index}]"
        found = _known(doc, item, where, ("on", "min_quantity"))
        _known(doc, found.get("on"), f"{where}.on", _SELECTOR_KEYS)
    _known(doc, conditions.get("counter"), "conditions.counter", ("name", "at_least"))
    _reward_keys(doc, obj.get("reward"), "reward")
    counters = obj.get("counters")
    for index, counter in enumerate(counters if isinstance(counters, list) else ()):
        _known(doc, counter, f"counters[{index}]", ("name", "add"))


def check_offer_keys(obj: object, key: str, *, customer_id: str = "") -> None:
    """:func:`check_promotion_keys` for one personal offer at ``key`` of a customer."""
    doc = _Doc("customer", customer_id)
    offer = _known(doc, obj, key, _OFFER_FIELDS)
    _known(doc, offer.get("on"), f"{key}.on", _SELECTOR_KEYS)
    _known(doc, offer.get("valid"), f"{key}.valid", _WINDOW_KEYS)
    _reward_keys(doc, offer.get("reward"), f"{key}.reward")


# --------------------------------------------------------------------------- documents

_CUSTOMER_KEYS = frozenset({"cards", "phone", "tokens", "statuses", "attributes", "segments",
                            "balance", "counters", "favorites", "personal_offers", "purchases"})
_PROMOTION_KEYS = frozenset({"reward", "active", "audience", "conditions", "priority",
                             "exclusive", "stores"})


def document_kind(obj: Mapping[str, Any]) -> DocumentKind:
    """Tell a document's kind from its content: ``sku`` → catalog, ``reward`` → promotion,
    customer keys (``cards``, ``phone``, ``statuses``, …) → customer.

    Raises DocumentError when the content does not say (e.g. ``{"id": "x", "deleted": true}``).
    """
    if not isinstance(obj, Mapping):
        raise DocumentError("must be a JSON object")
    if "sku" in obj:
        return "catalog"
    if "reward" in obj or obj.keys() & _PROMOTION_KEYS:
        return "promotion"
    if obj.keys() & _CUSTOMER_KEYS:
        return "customer"
    raw_id = obj.get("id")
    raise DocumentError("cannot tell whether this is a catalog item, customer or promotion",
                        doc_id=raw_id if isinstance(raw_id, str) else "")


def is_deleted(obj: Mapping[str, Any]) -> bool:
    """True when the document carries ``"deleted": true`` (remove the document with its id)."""
    return isinstance(obj, Mapping) and obj.get("deleted") is True


def document_id(obj: Mapping[str, Any]) -> str:
    """The id of a document: ``sku`` for catalog items, ``id`` otherwise."""
    key = "sku" if "sku" in obj else "id"
    value = obj.get(key)
    if not isinstance(value, str) or not value:
        raise DocumentError("is required as a non-empty string", key=key)
    return value


def normalize_phone(text: str) -> str:
    """Digits only (spec §5.11): ``"+7 (916) 123-45-67"`` → ``"79161234567"``."""
    return "".join(ch for ch in text if "0" <= ch <= "9")


#: Customer fields a CSV row must not try to set: they are keys of the document itself.
_NOT_BY_CSV = frozenset({"id", "cards", "tokens", "purchases", "counters", "statuses",
                         "segments", "favorites", "personal_offers", "attributes", "deleted",
                         "kind"})


def apply_customer_attribute(doc: Mapping[str, Any], attribute: str, value: str) -> dict[str, Any]:
    """Apply one CSV attribute row (spec §1) to a customer JSON document; return a new one.

    ``status.<system>`` sets a status, ``segment`` adds a segment, ``favorite.<set>`` adds a
    chosen sku, ``offer`` adds (or replaces, by id) a personal offer given as JSON,
    ``balance``/``phone``/``name`` set those fields, any other name sets a plain attribute.
    Raises DocumentError (key = the attribute) on a bad value. The input is not modified.
    """
    customer_id = doc.get("id") if isinstance(doc.get("id"), str) else ""
    err = _Doc("customer", cast("str", customer_id))
    result: dict[str, Any] = json.loads(json.dumps(dict(doc)))  # a deep, JSON-only copy
    if not attribute:
        raise err.error("attribute", "must not be empty")
    if attribute in _NOT_BY_CSV:
        # The row means to set that field; as a plain attribute it would be kept, silently,
        # where only an audience.attributes rule reads it (docs/promotions.md §2).
        raise err.error(attribute, "cannot be set by CSV (load the customer document instead)")
    if attribute.startswith("status."):
        system = attribute[len("status."):]
        if not system:
            raise err.error(attribute, "names no status system")
        statuses = dict(result.get("statuses") or {})
        statuses[system] = value
        result["statuses"] = statuses
    elif attribute == "segment":
        if not value:
            raise err.error(attribute, "must not be empty")
        segments = list(result.get("segments") or [])
        if value not in segments:
            segments.append(value)
        result["segments"] = segments
    elif attribute.startswith("favorite."):
        name = attribute[len("favorite."):]
        if not name or not value:
            raise err.error(attribute, "needs a set name and a sku")
        favorites = dict(result.get("favorites") or {})
        skus = list(favorites.get(name) or [])
        if value not in skus:
            skus.append(value)
        favorites[name] = skus
        result["favorites"] = favorites
    elif attribute == "offer":
        try:
            offer_json = json.loads(value)
        except (ValueError, RecursionError) as exc:
            raise err.error(attribute, f"must be a JSON object: {exc}") from None
        try:
            _offer(err, offer_json, attribute)
            check_offer_keys(offer_json, attribute, customer_id=err.doc_id)
        except DocumentError as exc:
            inner = exc.key.removeprefix("offer").lstrip(".")
            raise err.error(attribute, f"{inner}: {exc.message}" if inner else exc.message
                            ) from None
        offers = [o for o in (result.get("personal_offers") or [])
                  if not (isinstance(o, Mapping) and o.get("id") == offer_json["id"])]
        offers.append(offer_json)
        result["personal_offers"] = offers
    elif attribute == "balance":
        if not _INTEGER_RE.fullmatch(value.strip()):
            raise err.error(attribute, f"must be an integer of minor units, got {value!r}")
        result["balance"] = value.strip()  # parse_customer reads it, range included
    elif attribute in ("phone", "name"):
        result[attribute] = value
    else:
        attributes = dict(result.get("attributes") or {})
        attributes[attribute] = value
        result["attributes"] = attributes
    return result
