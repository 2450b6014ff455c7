"""Hostile specs too large for the corpus files: each is refused in one located sentence.

The corpus in ``tests/malformed/`` holds one small file per family of hostile input; the
cases here are generated at test time (a 50 MB file, lists of 10,001 entries, a thousand
misspelt names). Every size bound comes from :mod:`railguard.spec.limits`.
"""

from __future__ import annotations

import copy
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from railguard.spec import ExpressionError, LoadError, load, load_data, loads, parse_expression
from railguard.spec.limits import (
    MAX_BYTES,
    MAX_DIGITS,
    MAX_DURATION_SECONDS,
    MAX_ENTRIES,
    MAX_NAME_LENGTH,
    MAX_PROBLEMS,
    MAX_TEXT_LENGTH,
)

BASE: dict[str, Any] = {
    "railguard": 1,
    "name": "hostile",
    "roles": {"clerk": ["flow.go"]},
    "variables": {"count": {"type": "int", "min": 0, "max": 10, "initial": 0}},
    "states": {"a": {"initial": True}, "done": {"terminal": "success"}},
    "transitions": [{"event": "go", "from": "a", "to": "done", "permission": "flow.go"}],
}


def _doc(**changes: Any) -> dict[str, Any]:
    doc = copy.deepcopy(BASE)
    doc.update(changes)
    return doc


def _problems(data: dict[str, Any]) -> list[str]:
    with pytest.raises(LoadError) as info:
        load_data(data)
    for problem in info.value.problems:
        assert "\n" not in problem.message
    return [problem.message for problem in info.value.problems]


def test_the_base_spec_loads() -> None:
    assert load_data(BASE).name == "hostile"


def test_a_file_larger_than_the_bound_is_refused_before_it_is_read(tmp_path: Path) -> None:
    # A sparse 50 MB file: a 50 MB description would be refused the same way.
    path = tmp_path / "huge.yaml"
    with path.open("wb") as stream:
        stream.write(b"railguard: 1\ndescription: '")
        stream.truncate(50_000_000)
    with pytest.raises(LoadError) as info:
        load(path)
    assert info.value.problems[0].message.startswith(f"the file is larger than {MAX_BYTES:,} bytes")
    assert info.value.location.line == 1


def test_text_longer_than_the_bound_is_refused() -> None:
    text = "railguard: 1\ndescription: " + "x" * MAX_BYTES
    with pytest.raises(LoadError) as info:
        loads(text)
    assert f"longer than {MAX_BYTES:,} characters" in info.value.problems[0].message


@pytest.mark.parametrize(
    ("change", "says"),
    [
        (
            {"roles": {"clerk": ["flow.go", *(f"p{i}" for i in range(MAX_ENTRIES))]}},
            f"role `clerk` lists {MAX_ENTRIES + 1:,} permissions, more than the {MAX_ENTRIES:,}",
        ),
        (
            {
                "variables": {
                    "tier": {"type": "enum", "values": [f"v{i}" for i in range(MAX_ENTRIES + 1)]}
                }
            },
            f"variable `tier`: an enum lists {MAX_ENTRIES + 1:,} values",
        ),
        (
            {
                "variables": {
                    "seen": {
                        "type": "set",
                        "of": "int",
                        "initial": list(range(MAX_ENTRIES + 1)),
                    }
                }
            },
            f"`initial` lists {MAX_ENTRIES + 1:,} elements, more than the {MAX_ENTRIES:,}",
        ),
    ],
    ids=["permissions", "enum", "set"],
)
def test_lists_longer_than_the_bound_are_refused(change: dict[str, Any], says: str) -> None:
    assert any(says in message for message in _problems(_doc(**change))), says


def test_a_from_list_longer_than_the_bound_is_refused() -> None:
    states: dict[str, Any] = {f"s{i}": {} for i in range(MAX_ENTRIES + 1)}
    states.update(BASE["states"])
    go = {"event": "go", "from": list(states)[: MAX_ENTRIES + 1], "to": "done", "permission": "flow.go"}
    messages = _problems(_doc(states=states, transitions=[go]))
    assert messages == [
        f"transition 1 (`go`): `from` lists {MAX_ENTRIES + 1:,} states, "
        f"more than the {MAX_ENTRIES:,} a transition may start from"
    ]


def test_lists_at_the_bound_load() -> None:
    values = [f"v{i}" for i in range(MAX_ENTRIES)]
    spec = load_data(_doc(variables={"tier": {"type": "enum", "values": values}}))
    assert len(spec.variables[0].type.values) == MAX_ENTRIES


def test_duplicates_in_long_lists_are_still_found() -> None:
    values = [f"v{i}" for i in range(MAX_ENTRIES - 1)] + ["v7"]
    messages = _problems(_doc(variables={"tier": {"type": "enum", "values": values}}))
    assert messages == ["variable `tier`: enum value `v7` is listed twice"]


def test_hints_for_many_misspelt_states_stop_at_the_budget_and_problems_at_the_cap() -> None:
    states: dict[str, Any] = {f"state{i}": {} for i in range(2_000)}
    states.update(BASE["states"])
    transitions = [
        {"event": f"e{i}", "from": f"stat{i}", "to": "done", "permission": "flow.go"}
        for i in range(MAX_PROBLEMS + 500)
    ]
    with pytest.raises(LoadError) as info:
        load_data(_doc(states=states, transitions=transitions))
    messages = [problem.message for problem in info.value.problems]
    assert len(messages) == MAX_PROBLEMS
    assert "(did you mean `state0`?)" in messages[0]
    assert "did you mean" not in messages[-1]
    assert all("names unknown state" in message for message in messages)


@pytest.mark.parametrize(
    ("after", "says"),
    [
        ("3000000d", "timeout `after` `3000000d` is longer than the longest timeout"),
        (MAX_DURATION_SECONDS + 1, "is longer than the longest timeout, `3650d`"),
        ("9" * 5_000 + "s", "is longer than the longest timeout"),
        ("1" * 5_000 + "d" + "1" * 5_000 + "h", "is longer than the longest timeout"),
    ],
)
def test_timeouts_longer_than_the_bound_are_refused(after: Any, says: str) -> None:
    states = {"a": {"initial": True, "timeout": {"after": after}}, "done": {"terminal": "success"}}
    states["failed"] = {"terminal": "failure"}
    messages = _problems(_doc(states=states, on_error="failed"))
    assert any(says in message for message in messages), messages


def test_the_longest_timeout_loads() -> None:
    states = {"a": {"initial": True, "timeout": {"after": "3650d"}}, "done": {"terminal": "success"}}
    states["failed"] = {"terminal": "failure"}
    spec = load_data(_doc(states=states, on_error="failed"))
    timeout = spec.states[0].timeout
    assert timeout is not None
    assert timeout.seconds == MAX_DURATION_SECONDS


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("x" * (MAX_TEXT_LENGTH + 1), f"`description` is longer than {MAX_TEXT_LENGTH:,}"),
        ("caf\udce9", "`description` holds a lone surrogate `\\udce9`"),
        (Decimal("1e999999999"), "is too large or too precise"),
        (1e300, "is too large or too precise"),
    ],
    ids=["long", "surrogate", "decimal", "float"],
)
def test_plain_data_is_held_to_the_same_bounds(value: Any, says: str) -> None:
    assert any(says in message for message in _problems(_doc(description=value)))


def test_plain_data_keys_are_held_to_the_text_bounds() -> None:
    doc = _doc()
    doc["states"]["\ud800"] = {}
    assert _problems(doc) == [
        "a key in `states` holds a lone surrogate `\\ud800`, which is not a character: "
        "a spec must be valid Unicode text"
    ]


@pytest.mark.parametrize("text", ["railguard: 1\nname: '\ud800'\n", '{"railguard": 1, "name": "\ud800"}'])
def test_a_raw_surrogate_in_spec_text_is_refused(text: str) -> None:
    name = "raw.json" if text.startswith("{") else "raw.yaml"
    with pytest.raises(LoadError) as info:
        loads(text, name)
    assert "surrogate" in info.value.problems[0].message
    assert info.value.location.line >= 1


@pytest.mark.parametrize(
    ("bound", "value", "says"),
    [
        ("max", "1e999999999", "`max`: the number `1e999999999` is too large or too precise"),
        ("min", "-1e-999999999", "`min`: the number `-1e-999999999` is too large"),
        ("max", Decimal("1e100"), "is too large or too precise"),
        ("max", "1e" + "9" * 50, "is too large or too precise"),
    ],
)
def test_decimal_bounds_beyond_reach_are_refused(bound: str, value: Any, says: str) -> None:
    variables = {"price": {"type": "decimal", bound: value}}
    messages = _problems(_doc(variables=variables))
    assert any(says in message for message in messages), messages


def test_decimal_bounds_at_the_reach_load() -> None:
    top = Decimal("9" * MAX_DIGITS)
    tiny = Decimal(1).scaleb(-MAX_DIGITS)
    price = {"type": "decimal", "min": tiny, "max": top, "initial": tiny}
    spec = load_data(_doc(variables={"price": price}))
    assert (spec.variables[0].type.min, spec.variables[0].type.max) == (tiny, top)


def test_names_longer_than_the_bound_are_refused_and_shown_short() -> None:
    long_name = "s" * (MAX_NAME_LENGTH + 1)
    doc = _doc()
    doc["states"][long_name] = {}
    messages = _problems(doc)
    assert len(messages) == 1
    assert f"is longer than {MAX_NAME_LENGTH} characters" in messages[0]
    assert len(messages[0]) < 200


def test_a_long_unknown_key_is_shown_short() -> None:
    doc = _doc()
    doc["x" * 50_000] = 1
    (message,) = _problems(doc)
    assert message.startswith("the spec: unknown key `xxx")
    assert len(message) < 400


@pytest.mark.parametrize(
    "text",
    [
        f"count < {10**MAX_DIGITS}",
        "count < 0x" + "f" * 9_000,
        f"count < -{10**MAX_DIGITS}",
        "count < 1e100",
        "count < 1e-101",
        "count < 0e-5000",
    ],
    ids=["int", "hex", "negative", "decimal", "tiny", "zero"],
)
def test_expression_literals_beyond_reach_are_refused(text: str) -> None:
    with pytest.raises(ExpressionError) as info:
        parse_expression(text)
    assert "digits" in info.value.message or "too large or too precise" in info.value.message


def test_expression_literals_at_the_reach_parse() -> None:
    assert parse_expression(f"count < {10**MAX_DIGITS - 1}") is not None
    assert parse_expression("count < 0." + "0" * (MAX_DIGITS - 1) + "1") is not None


def test_a_text_literal_with_a_lone_surrogate_is_refused_at_load() -> None:
    go = {**BASE["transitions"][0], "guard": "state != '\\udfff'"}
    assert _problems(_doc(transitions=[go])) == [
        "transition 1 (`go`), guard: the text literal holds a lone surrogate `\\udfff`, "
        "which is not a character"
    ]


def test_a_long_enum_is_listed_short_in_messages() -> None:
    values = [f"v{i}" for i in range(500)]
    variables = {"tier": {"type": "enum", "values": values, "initial": "w1"}}
    (message,) = _problems(_doc(variables=variables))
    assert message.startswith("variable `tier`: `initial` `w1` is not one of v0, v1, v2")
    assert message.endswith("v10, v11 and 488 more")


def test_guards_naming_unknown_variables_among_thousands_get_no_hints() -> None:
    variables = {f"count{i}": {"type": "int", "min": 0, "max": 9} for i in range(2_000)}
    transitions = [
        {"event": f"e{i}", "from": "a", "to": "done", "permission": "flow.go", "guard": f"cnt{i} > 1"}
        for i in range(50)
    ]
    messages = _problems(_doc(variables=variables, transitions=transitions))
    assert len(messages) == 50
    assert all("unknown variable `cnt" in m and "did you mean" not in m for m in messages)
