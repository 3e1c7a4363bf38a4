"""Texts for the cashier, the receipt and the display: templates, customer lines, offers.

Templates (promotions spec §3.7, §5.15) may use ``{name}`` (the customer's name),
``{balance}`` (points, before the receipt in a calculation, after it on confirm),
``{accrue}`` and ``{discount}`` (what this promotion gave; on confirm: the receipt's
totals) and ``{valid_to}`` (``DD.MM`` of the last valid day in the store's time zone).
Money and points print as ``1 234,56``. Any other ``{...}`` is left as written, so a
typo shows on the cashier's screen instead of failing the receipt.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, tzinfo

from loyalty.documents import Customer, PersonalOffer
from loyalty.eligibility import in_window, last_valid_day
from loyalty.values import Calculation, CustomerSummary, Message, format_money

__all__ = [
    "CUSTOMER_NOT_FOUND",
    "MAX_ADVERTISED_OFFERS",
    "OfferSummary",
    "confirm_messages",
    "customer_line",
    "customer_summary",
    "offers_of",
    "render",
    "spent_coupon_text",
]

#: Cashier message when the register named a customer that cannot be found.
CUSTOMER_NOT_FOUND = "Покупатель не найден: расчёт без карты"
#: The receipt tail advertises at most this many personal offers (§3.7).
MAX_ADVERTISED_OFFERS = 5

_PLACEHOLDER = re.compile(r"\{(name|balance|accrue|discount|valid_to)\}")


def render(template: str, values: Mapping[str, str]) -> str:
    """Fill the known placeholders of ``template``; unknown ``{...}`` stay as written."""
    return _PLACEHOLDER.sub(lambda match: values.get(match.group(1), match.group(0)), template)


def customer_line(customer: Customer, balance: int | None) -> Message:
    """The cashier line "Анна К., gold, 3 400,00 баллов" (tier and balance omitted if unknown)."""
    parts = [customer.name or customer.id]
    tier = customer.tier
    if tier:
        parts.append(tier)
    if balance is not None:
        parts.append(f"{format_money(balance)} баллов")
    return Message("cashier", ", ".join(parts))


def spent_coupon_text(code: str) -> str:
    """Cashier text for a coupon code that was already used."""
    return f"Купон {code} уже использован"


def customer_summary(customer: Customer, *, balance: int | None) -> CustomerSummary:
    """What identify/balance answers say about a customer.

    ``status`` is the ``tier`` status, else the first status value, else None;
    ``redeem_max`` is the balance as an upper bound (the receipt is not known yet), 0 for a
    negative balance, None when the balance is unknown.
    """
    return CustomerSummary(
        id=customer.id,
        name=customer.name,
        status=customer.tier,
        balance=balance,
        redeem_max=None if balance is None else max(0, balance),
    )


@dataclass(frozen=True, slots=True)
class OfferSummary:
    """A personal offer as the identify answer lists it."""

    id: str
    name: str
    valid_to: str  #: ``DD.MM`` of the last valid day, or ``""`` when open-ended
    text: str  #: the offer's receipt message (else its cashier or display message), rendered


def _offer_text(offer: PersonalOffer, values: Mapping[str, str]) -> str:
    for target in ("receipt", "cashier", "display"):
        for message in offer.messages:
            if message.target == target:
                return render(message.text, values)
    return f"Персональное предложение: {offer.name or offer.id}" + (
        f" до {values['valid_to']}" if values.get("valid_to") else "")


def offers_of(customer: Customer, now: datetime, *, tz: tzinfo | None = None,
              balance_known: bool = True) -> tuple[OfferSummary, ...]:
    """The customer's accepted personal offers valid at ``now`` (for the identify answer).

    ``tz`` is the store's time zone for weekdays/hours and ``{valid_to}``; without it the
    offset of ``now`` is used. ``balance_known`` False (offline): ``{balance}`` is empty.
    """
    zone = tz if tz is not None else now.tzinfo
    if zone is None:
        raise ValueError("now must carry a UTC offset")
    result: list[OfferSummary] = []
    for offer in customer.personal_offers:
        if offer.accepted and in_window(offer.valid, now, zone):
            valid_to = last_valid_day(offer.valid, zone)
            values = {"name": customer.name,
                      "balance": format_money(customer.balance) if balance_known else "",
                      "valid_to": valid_to}
            result.append(OfferSummary(offer.id, offer.name or offer.id, valid_to,
                                       _offer_text(offer, values)))
    return tuple(result)


def confirm_messages(
    calculation: Calculation,
    customer: Customer | None,
    *,
    now: datetime,
    tz: tzinfo,
    balance_after: int | None,
) -> tuple[Message, ...]:
    """Confirm's messages (§3.7): the customer line with the new balance, then up to five
    personal offers valid now and not used on this receipt (the points themselves travel
    in the confirm answer's ``points``).

    Offers still waiting for the customer's acceptance are advertised too: the receipt is
    where the customer learns of them.
    """
    if customer is None:
        return ()
    messages = [customer_line(customer, balance_after)]
    points = calculation.points
    used = {promotion.id for promotion in calculation.promotions}
    advertised = 0
    for offer in customer.personal_offers:
        if advertised >= MAX_ADVERTISED_OFFERS:
            break
        if offer.id in used or not in_window(offer.valid, now, tz):
            continue
        values = {
            "name": customer.name,
            "balance": "" if balance_after is None else format_money(balance_after),
            "accrue": format_money(points.accrue),
            "discount": format_money(calculation.discount),
            "valid_to": last_valid_day(offer.valid, tz),
        }
        messages.append(Message("receipt", _offer_text(offer, values)))
        advertised += 1
    return tuple(messages)
