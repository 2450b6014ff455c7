"""The one value codec: values to JSON data and back; data that does not fit is not guessed at."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from railguard.spec import Type
from railguard.spec.codec import canonical_json, decode_value, encode_value

LETTERS = Type("set", of=Type("enum", values=("a", "b")))
MONEY = Type("decimal", min=Decimal(0), places=2)
ANY_DECIMAL = Type("decimal")


@pytest.mark.parametrize(
    ("declared", "value"),
    [
        (MONEY, Decimal("12.50")),
        (LETTERS, frozenset({"a", "b"})),
        (Type("set", of=Type("int")), frozenset({3, 10, -1})),
        (Type("int"), 7),
        (Type("bool"), True),
        (Type("str"), "héllo"),
    ],
)
def test_values_round_trip_through_json(declared: Type, value: Any) -> None:
    assert decode_value(declared, encode_value(value)) == value


@pytest.mark.parametrize(
    ("declared", "raw"),
    [
        (LETTERS, "ab"),
        (LETTERS, {"a": 1}),
        (MONEY, "lots"),
        (MONEY, True),
        (MONEY, "NaN"),
        (MONEY, "Infinity"),
        (MONEY, [1]),
    ],
)
def test_data_that_does_not_fit_the_type_is_handed_back_and_refused(
    declared: Type, raw: Any
) -> None:
    decoded = decode_value(declared, raw)
    assert decoded is raw
    assert not declared.contains(decoded)


@pytest.mark.parametrize("text", ["1e4000000000", "-1e200", "1e-200", "1E+100"])
def test_a_decimal_beyond_the_reach_of_a_spec_is_in_no_domain(text: str) -> None:
    value = decode_value(ANY_DECIMAL, text)
    assert isinstance(value, Decimal)
    assert not ANY_DECIMAL.contains(value)


@pytest.mark.parametrize("text", ["9" * 100, "1e-100", "0E-5000", "0.5", "-12345.678"])
def test_decimals_within_the_reach_are_in_an_unbounded_domain(text: str) -> None:
    assert ANY_DECIMAL.contains(decode_value(ANY_DECIMAL, text))


def test_canonical_json_sorts_keys_and_keeps_unicode() -> None:
    data = {"b": [Decimal("1.5")], "a": "é", "c": frozenset({2, 1})}
    assert canonical_json(data) == '{"a":"é","b":["1.5"],"c":[1,2]}'
