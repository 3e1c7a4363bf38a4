"""Domain values: how a customer reference is masked for logs and error messages."""

from __future__ import annotations

import pytest

from loyalty.values import CustomerRef, mask


@pytest.mark.parametrize(
    ("value", "masked"),
    [
        ("7700001234567", "*********4567"),
        ("+79161234567", "********4567"),
        ("abc123", "******"),  # short: nothing of it is shown
        ("%", "*"),
        ("x" * 10_000, "*" * 16 + "xxxx"),  # long: not echoed whole
    ],
)
def test_a_reference_is_masked_without_giving_it_away(value: str, masked: str) -> None:
    assert mask(value) == masked


def test_a_customer_reference_names_its_kind() -> None:
    assert CustomerRef("card", "7700001234567").masked() == "card:*********4567"
