"""The log filter: card numbers and phones masked, the ids an engineer searches for kept."""

from __future__ import annotations

from typing import Any

from adapter.logs import mask_processor


def masked(**event: Any) -> dict[str, Any]:
    return dict(mask_processor(None, "info", dict(event)))


def test_cards_and_phones_keep_only_their_last_four_digits_wherever_they_are() -> None:
    event = masked(
        event="identify_failed",
        card="7700001234567",
        error="no customer with phone +7 (916) 123-45-67",
        details={"lines": ["card 7700001234567"]},
    )
    assert event["card"] == "*********4567"
    assert event["error"] == "no customer with phone +* (***) ***-45-67"
    assert event["details"] == {"lines": ["card *********4567"]}


def test_receipt_refund_and_request_ids_are_logged_as_they_are() -> None:
    event = masked(
        event="confirmed",
        receipt_id="0001234567890",
        refund_id="RF-2026112300017",
        request_id="c-1234567890",
        customer="7700001234567",
    )
    assert event["receipt_id"] == "0001234567890"
    assert event["refund_id"] == "RF-2026112300017"
    assert event["request_id"] == "c-1234567890"
    assert event["customer"] == "*********4567"


def test_short_numbers_are_not_touched() -> None:
    assert masked(due=31683, text="receipt 123456789")["text"] == "receipt 123456789"


def test_digits_inside_a_hexadecimal_id_are_not_a_card() -> None:
    central = "5c7749da763344c459d1234569837e5f"
    event = masked(event="sync_failed", error=f"central {central} is not central 0a1b")
    assert event["error"] == f"central {central} is not central 0a1b"
    assert masked(text="card:7700001234567,")["text"] == "card:*********4567,"
