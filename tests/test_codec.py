"""The one value codec: values to JSON data and back; data that does not fit is not guessed at."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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


def _dumps(data: Any) -> str:
    """The definition canonical_json must keep: what it was before its C-encoder fast path."""
    from railguard.spec.codec import _default

    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_default)


JSON_DATA = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text() | st.decimals(allow_nan=False),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4) | st.frozensets(st.integers() | st.text(max_size=3), max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(JSON_DATA)
def test_canonical_json_is_byte_for_byte_what_json_dumps_makes(data: Any) -> None:
    assert canonical_json(data) == _dumps(data)


@pytest.mark.parametrize("data", ["é\u2028\"\n\\", "\ud800", 10**30, -0.0, float("inf"), None, True, [], {}])
def test_canonical_json_of_a_lone_value_is_what_json_dumps_makes(data: Any) -> None:
    assert canonical_json(data) == _dumps(data)


def test_canonical_json_refuses_a_cycle_and_an_object_as_json_dumps_does() -> None:
    cycle: list[Any] = []
    cycle.append(cycle)
    with pytest.raises(ValueError, match="Circular reference detected"):
        canonical_json(cycle)
    with pytest.raises(TypeError, match="cannot encode object in an audit record"):
        canonical_json({"x": object()})
    # a failed call leaves nothing behind: the same list encodes once the cycle is gone
    cycle.clear()
    assert canonical_json([cycle, cycle]) == "[[],[]]"
