"""Register messages validated into typed requests; errors name the field path."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapter.requests import (
    Calculate,
    Confirm,
    EnvelopeError,
    Refund,
    parse_request,
    read_envelope,
)
from tillgate.errors import ValidationError


def receipt(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": "S001-03-000123",
        "opened_at": "2026-11-23T10:15:00+03:00",
        "customer": {"card": "7700001234567"},
        "lines": [{"n": 1, "sku": "4600001", "quantity": "2", "price": 15990, "amount": 31980}],
    }
    body.update(changes)
    return body


def field_of(kind: str, message: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as caught:
        parse_request(kind, message)  # type: ignore[arg-type]  # the kinds here are literal
    return caught.value.field


def test_envelope_checks_version_type_and_id_in_order() -> None:
    with pytest.raises(ValidationError, match="v"):
        read_envelope({"type": "ping", "id": "1"})
    for wrong in (2, 1.0, True, "1"):  # an integer 1, as money is integers (1.0 is refused)
        with pytest.raises(EnvelopeError) as version:
            read_envelope({"v": wrong, "type": "ping", "id": "1"})
        assert version.value.code == "unsupported_version"
    with pytest.raises(EnvelopeError) as kind:
        read_envelope({"v": 1, "type": "teleport", "id": "1"})
    assert kind.value.code == "unknown_type"
    with pytest.raises(ValidationError) as missing_id:
        read_envelope({"v": 1, "type": "ping"})
    assert missing_id.value.field == "id"
    with pytest.raises(ValidationError):
        read_envelope({"v": 1, "type": "ping", "id": "x" * 65})


def test_same_request_digest_ignores_id_and_key_order() -> None:
    a = read_envelope({"v": 1, "type": "cancel", "id": "a", "receipt_id": "R1"})
    b = read_envelope({"receipt_id": "R1", "id": "b", "type": "cancel", "v": 1})
    c = read_envelope({"v": 1, "type": "cancel", "id": "a", "receipt_id": "R2"})
    assert a.digest == b.digest
    assert a.digest != c.digest


def test_calculate_parses_quantities_exactly() -> None:
    request = parse_request("calculate", {"receipt": receipt()})
    assert isinstance(request, Calculate)
    line = request.receipt.lines[0]
    assert line.quantity == 2000
    assert request.receipt.customer is not None
    assert request.receipt.customer.kind == "card"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"lines": []}, "receipt.lines"),
        ({"id": ""}, "receipt.id"),
        ({"opened_at": "yesterday"}, "receipt.opened_at"),
        ({"opened_at": "2026-11-23T10:15:00"}, "receipt.opened_at"),
        ({"customer": {"card": "1", "phone": "+7916"}}, "receipt.customer"),
        ({"coupons": [5]}, "receipt.coupons[0]"),
        ({"points_to_redeem": -1}, "receipt.points_to_redeem"),
    ],
)
def test_receipt_errors_name_the_field(change: dict[str, Any], field: str) -> None:
    assert field_of("calculate", {"receipt": receipt(**change)}) == field


@pytest.mark.parametrize(
    ("line_change", "field"),
    [
        ({"quantity": "0"}, "receipt.lines[1].quantity"),
        ({"quantity": "1.2345"}, "receipt.lines[1].quantity"),
        ({"quantity": 2}, "receipt.lines[1].quantity"),
        ({"price": -5}, "receipt.lines[1].price"),
        ({"amount": 10**13}, "receipt.lines[1].amount"),
        ({"amount": 99999}, "receipt.lines[1].amount"),
        ({"n": 1}, "receipt.lines[1].n"),
        ({"sku": ""}, "receipt.lines[1].sku"),
    ],
)
def test_line_errors_name_the_line(line_change: dict[str, Any], field: str) -> None:
    second = {"n": 2, "sku": "4600002", "quantity": "1", "price": 4500, "amount": 4500}
    second.update(line_change)
    body = receipt()
    body["lines"] = [*body["lines"], second]
    assert field_of("calculate", {"receipt": body}) == field


def test_confirm_and_refund() -> None:
    confirm = parse_request(
        "confirm",
        {
            "receipt_id": "R1",
            "due": 27183,
            "fiscal": {"document": 17, "at": "2026-11-23T10:20:00+03:00"},
            "payments": [{"kind": "crypto", "amount": 27183}],
        },
    )
    assert isinstance(confirm, Confirm)
    assert confirm.fiscal.document == "17"
    assert confirm.payments[0].kind == "other"
    refund = parse_request(
        "refund", {"refund_id": "F1", "receipt_id": "R1", "lines": [{"n": 1, "quantity": "0.5"}]}
    )
    assert isinstance(refund, Refund)
    assert refund.lines is not None
    assert refund.lines[0].quantity == 500
    assert field_of("confirm", {"receipt_id": "R1", "due": 1, "payments": []}) == "fiscal"
    # a register that fills unused fields with "" is not told to sell without loyalty
    blank = parse_request(
        "confirm",
        {
            "receipt_id": "R1",
            "due": 1,
            "fiscal": {"document": "1", "at": "2026-11-23T10:20:00+03:00", "fn": "", "sign": ""},
            "payments": [{"kind": "", "amount": 1}],
        },
    )
    assert isinstance(blank, Confirm)
    assert (blank.fiscal.fn, blank.fiscal.sign, blank.payments[0].kind) == ("", "", "other")
    assert field_of("confirm", {"receipt_id": "R1", "due": 1, "payments": [{"kind": 7}],
                                "fiscal": {"document": "1", "at": "2026-11-23T10:20:00Z"}}) == (
        "payments[0].kind"
    )
    assert field_of("refund", {"refund_id": "F1", "receipt_id": "R1", "lines": [{"n": 1}]}) == (
        "lines[0].quantity"
    )


@settings(max_examples=200)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=5),
        lambda children: (
            st.lists(children, max_size=3)
            | st.dictionaries(
                st.sampled_from(["id", "n", "sku", "lines", "receipt", "quantity"]),
                children,
                max_size=4,
            )
        ),
        max_leaves=12,
    )
)
def test_arbitrary_bodies_give_validation_errors_never_crashes(body: Any) -> None:
    for kind in ("calculate", "confirm", "refund", "identify", "hello"):
        message = {"receipt": body, "lines": body, "customer": body, "lane": body, "fiscal": body}
        try:
            parse_request(kind, message)  # type: ignore[arg-type]  # literal kinds
        except ValidationError as exc:
            assert exc.message


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"customer": {"phone": "+79161234567\n"}}, "receipt.customer.phone"),
        ({"lines": [{"n": 1, "sku": "1", "quantity": "1\n", "price": 1, "amount": 1}]},
         "receipt.lines[0].quantity"),
    ],
)  # fmt: skip
def test_a_trailing_newline_is_not_part_of_a_valid_value(
    change: dict[str, Any], field: str
) -> None:
    assert field_of("calculate", {"receipt": receipt(**change)}) == field


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-23T16:46:00+03:00", datetime(2026, 11, 23, 13, 46, tzinfo=UTC)),
        ("2026-11-23t16:46:00z", datetime(2026, 11, 23, 16, 46, tzinfo=UTC)),
        ("2026-11-23T16:46:00Z", datetime(2026, 11, 23, 16, 46, tzinfo=UTC)),
        ("2026-11-23T16:46:00.5-01:30", datetime(2026, 11, 23, 18, 16, 0, 500000, tzinfo=UTC)),
        ("2026-11-23T16:46:00.1234567+00:00", datetime(2026, 11, 23, 16, 46, 0, 123456, UTC)),
        ("2016-12-31T23:59:60Z", datetime(2016, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)),
    ],
)  # fmt: skip
def test_rfc3339_times_with_an_offset_are_accepted(text: str, expected: datetime) -> None:
    request = parse_request("calculate", {"receipt": receipt(opened_at=text)})
    assert isinstance(request, Calculate)
    assert request.receipt.opened_at == expected


@pytest.mark.parametrize(
    "text",
    [
        "20261123T164600+0000",  # ISO 8601 basic format
        "2026-11-23T16:46+00:00",  # no seconds
        "2026-11-23T16:46:00",  # no offset
        "2026-11-23 16:46:00+00:00",  # space instead of T
        "2026-11-23T16:46:00+0000",  # offset without colon
        "2026-11-23T16:46:00+03",  # offset without minutes
        "2026-11-23T16:46:00.+00:00",  # empty fraction
        "2026-02-30T16:46:00Z",  # no such day
        "2026-11-23T24:00:00Z",
        "2026-11-23T16:46:00+24:00",
        "2026-11-23T16:46:00Z\n",
        "２０２６-11-23T16:46:00Z",  # non-ASCII digits
        "2026-W48-1T16:46:00Z",
    ],
)
def test_times_that_are_not_rfc3339_are_invalid_and_name_the_field(text: str) -> None:
    assert field_of("calculate", {"receipt": receipt(opened_at=text)}) == "receipt.opened_at"
    fiscal = {"document": "1", "at": text}
    confirm = {"receipt_id": "R1", "due": 1, "fiscal": fiscal, "payments": []}
    assert field_of("confirm", confirm) == "fiscal.at"
    assert field_of("refund", {"refund_id": "F1", "receipt_id": "R1", "fiscal": fiscal}) == (
        "fiscal.at"
    )


@pytest.mark.parametrize(
    "text",
    [
        "9999-12-31T23:59:59+00:00",
        "9999-12-31T23:59:59-05:00",  # the store's zone cannot hold it
        "0001-01-01T00:00:00+03:00",
        "1899-12-31T23:59:59Z",
        "3000-01-01T00:00:00Z",
    ],
)
def test_times_no_register_can_mean_are_invalid_and_name_the_field(text: str) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_request("calculate", {"receipt": receipt(opened_at=text)})
    assert caught.value.field == "receipt.opened_at"
    assert "between 1900-01-01 and 2999-12-31" in caught.value.message
    fiscal = {"document": "1", "at": text}
    confirm = {"receipt_id": "R1", "due": 1, "fiscal": fiscal, "payments": []}
    assert field_of("confirm", confirm) == "fiscal.at"


@pytest.mark.parametrize(
    "text", ["1970-01-01T00:00:00+03:00", "2000-01-01T00:00:00Z", "2999-12-31T23:59:59+14:00"]
)
def test_a_register_clock_reset_to_1970_or_2000_is_still_priced(text: str) -> None:
    request = parse_request("calculate", {"receipt": receipt(opened_at=text)})
    assert isinstance(request, Calculate)
    assert request.receipt.opened_at is not None
    assert request.receipt.opened_at.isoformat().startswith(text[:4])


def test_a_receipt_total_over_the_money_range_is_invalid() -> None:
    line = {"n": 1, "sku": "1", "quantity": "1", "price": 10**12, "amount": 10**12}
    body = receipt(lines=[line, {**line, "n": 2}])
    with pytest.raises(ValidationError) as caught:
        parse_request("calculate", {"receipt": body})
    assert caught.value.field == "receipt.lines"
    assert "10^12" in caught.value.message
    at_the_limit = receipt(lines=[line])
    assert isinstance(parse_request("calculate", {"receipt": at_the_limit}), Calculate)
