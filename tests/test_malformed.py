"""A corpus of malformed specs: each is refused with one clear sentence at the right line.

Every file in ``tests/malformed/`` is one case and has a row in :data:`EXPECTED`: the line
of its first problem and a distinctive part of that problem's message. The same folder
serves the command-line tests (each file should make ``railguard check`` exit 2).
"""

from __future__ import annotations

import copy
import json
import os
import random
import re
import subprocess
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from railguard.spec import LoadError, json_schema, load, load_data, loads
from railguard.spec.loader import INVARIANT_KEYS, STATE_KEYS, TOP_KEYS, TRANSITION_KEYS, TYPE_KEYS

HERE = Path(__file__).parent
CORPUS = HERE / "malformed"
EXAMPLES = HERE.parent / "examples"

#: file name -> (line of the first problem, a distinctive part of its message)
EXPECTED: dict[str, tuple[int, str]] = {
    # --- reading the file
    "empty_file.yaml": (1, "the file is empty"),
    "empty_file_zero_bytes.yaml": (1, "the file is empty"),
    "not_utf8.yaml": (3, "not UTF-8 text: byte 0xe9"),
    "yaml_syntax_error.yaml": (6, "flow mapping that starts on line 5"),
    "yaml_bad_indentation.yaml": (6, "expected the end of an indented block"),
    "yaml_tab_indentation.yaml": (5, "a tab character cannot indent YAML"),
    "yaml_missing_colon.yaml": (4, "this key is not followed by `:`"),
    "yaml_unquoted_colon.yaml": (4, "quote a value that contains `: `"),
    "json_syntax_error.json": (11, "invalid JSON: expecting property name"),
    "json_trailing_comma.json": (13, "invalid JSON"),
    "json_nan.json": (5, "`NaN` is not allowed"),
    "json_duplicate_key.json": (9, "duplicate key `draft` in `states` (first on line 7)"),
    "two_documents.yaml": (21, "more than one YAML document"),
    "yaml_python_tag.yaml": (3, "unsupported YAML tag `!!python/object/apply:os.system`"),
    "yaml_merge_key.yaml": (14, "merge keys (`<<`) are not supported"),
    "alias_bomb.yaml": (9, "alias bomb"),
    "alias_bomb_text.yaml": (102, "more than 8,000,000 characters of text, so it is refused as an alias bomb"),
    "alias_recursive.yaml": (5, "the alias `*s` refers to a node that contains it"),
    "deep_nesting.yaml": (4, "nests deeper than 64 levels"),
    "deep_nesting.json": (1, "nests deeper than 64 levels"),
    "integer_too_long.yaml": (7, "more than 100 digits"),
    "number_infinite.yaml": (7, "`.inf` is not allowed"),
    "yaml_explicit_tag_bad_value.yaml": (5, "`ten` is not a valid `!!int` value"),
    # --- sizes beyond the bounds of `railguard.spec.limits` (hostile specs)
    "surrogate_description.yaml": (4, "`description` holds a lone surrogate `\\ud800`"),
    "surrogate_enum_value.yaml": (8, "`variables.tier.values.1` holds a lone surrogate `\\udc80`"),
    "surrogate_string_initial.yaml": (8, "`variables.note.initial` holds a lone surrogate"),
    "json_key_surrogate.json": (7, "a key in `states` holds a lone surrogate `\\ud83d`"),
    "guard_surrogate_literal.yaml": (19, "guard: the text literal holds a lone surrogate `\\ud800`"),
    "guard_hex_literal_too_long.yaml": (19, "the integer literal `0xfffffffff"),
    "guard_decimal_literal_too_large.yaml": (19, "`1e101` is too large or too precise"),
    "integer_hex_too_large.yaml": (8, "a number in `variables.count.max` has more than 100 digits"),
    "decimal_max_huge_exponent.yaml": (
        8,
        "the number `1e999999999` in `variables.price.max` is too large or too precise",
    ),
    "decimal_min_tiny.yaml": (8, "the number `1e-999999999` in `variables.price.min` is too"),
    "decimal_bound_exponent_text.yaml": (8, "variable `price`: `max`: the number `1e999"),
    "json_number_huge_exponent.json": (5, "the number `1e999999999` in `variables.price.max`"),
    "timeout_digits_too_long.yaml": (10, "is longer than the longest timeout, `3650d`"),
    "timeout_too_long.yaml": (10, "timeout `after` `3000000d` is longer than the longest timeout"),
    "enum_too_many_values.yaml": (8, "an enum lists 10,001 values, more than the 10,000"),
    "description_too_long.yaml": (4, "`description` is longer than 100,000 characters"),
    "state_name_too_long.yaml": (11, "is longer than 200 characters"),
    # --- the document's shape
    "top_level_list.yaml": (2, "a spec must be a mapping"),
    "top_level_scalar.yaml": (2, "not the text `refund`"),
    "json_top_level_list.json": (1, "a spec must be a mapping"),
    "missing_version.yaml": (2, "format version `railguard: 1`"),
    "unsupported_version.yaml": (2, "unsupported format version `2`"),
    "top_level_key_misspelt.yaml": (16, "unknown key `transitons` (did you mean `transitions`?)"),
    "json_top_level_key_misspelt.json": (11, "unknown key `on_eror` (did you mean `on_error`?)"),
    "states_key_misspelt.yaml": (11, "unknown key `stats` (did you mean `states`?)"),
    "unknown_key_with_newline.yaml": (16, "unknown key `trans\\nitions`"),
    "name_trailing_newline.yaml": (17, "`approve\\n` is not a valid event name"),
    "json_state_trailing_newline.json": (6, "`done\\n` is not a valid state name"),
    # --- numbers where text belongs
    "description_decimal_number.yaml": (
        21,
        "transition 1 (`approve`): `description` must be text, not a number",
    ),
    "enum_value_number.yaml": (5, "enum value `1.5` must be text, not a number"),
    "invariant_name_number.yaml": (22, "the invariant name `1.5` must be text, not a number"),
    "waiver_check_number.yaml": (22, "waiver 1: the check name `1.5` must be text, not a number"),
    # --- states
    "states_empty.yaml": (4, "declares no states"),
    "missing_initial_state.yaml": (11, "no state is marked `initial: true`"),
    "two_initial_states.yaml": (14, "more than one state is marked initial (`draft`, `review`)"),
    "duplicate_state_key.yaml": (14, "duplicate key `draft` in `states` (first on line 12)"),
    "state_name_invalid.yaml": (13, "`paid-out` is not a valid state name"),
    "on_error_success_terminal.yaml": (15, "`on_error` names `paid`, which is a success terminal"),
    "on_error_unknown_state.yaml": (15, "unknown state `canceled` (did you mean `cancelled`?)"),
    "state_on_error_not_terminal.yaml": (12, "state `draft`: `on_error` names `draft`"),
    "timeout_bad_duration.yaml": (12, "positive duration such as `15m`"),
    "timeout_unknown_event.yaml": (12, "timeout event `remind` has no transition from `draft`"),
    # --- roles and variables
    "role_lists_public.yaml": (5, "`public` is granted to every caller"),
    "permission_name_invalid.yaml": (5, "`refund cancel` is not a valid permission name"),
    "unknown_type.yaml": (7, "unknown type `integer` (did you mean `int`?)"),
    "empty_domain_int.yaml": (7, "`min` 10 is greater than `max` 1, so its domain is empty"),
    "empty_domain_enum.yaml": (9, "an enum needs a non-empty list of `values`"),
    "initial_outside_domain.yaml": (7, "`initial` `500` is outside its domain (int in [0, 100])"),
    "initial_decimal_for_int.yaml": (7, "`initial` must be an integer, not `1.5`"),
    "initial_too_many_places.yaml": (8, "`initial` `10.005` has more than 2 decimal places"),
    "initial_yes_not_bool.yaml": (9, "`yes` is text in YAML 1.2"),
    "enum_initial_not_value.yaml": (9, "`initial` `prod` is not one of staging, production"),
    "cascade_broken_variable.yaml": (7, "so its domain is empty"),
    # --- transitions
    "transition_not_mapping.yaml": (21, "transition 2 must be a mapping"),
    "transition_key_gaurd.yaml": (21, "unknown key `gaurd` (did you mean `guard`?)"),
    "transition_key_evnt.yaml": (17, "transition 1: unknown key `evnt` (did you mean `event`?)"),
    "duplicate_transition_key.yaml": (20, "duplicate key `to` in transition 1 (first on line 19)"),
    "from_unknown_state.yaml": (18, "`from` names unknown state `reviw`"),
    "to_unknown_state.yaml": (19, "`to` names unknown state `payed` (did you mean `paid`?)"),
    "missing_permission.yaml": (17, "needs `permission` (write `permission: public`"),
    "param_reserved_name.yaml": (22, "`actor` is reserved and cannot name a param"),
    "param_description_not_text.yaml": (
        22,
        "param `note`: `description` must be text, not a list",
    ),
    "event_params_differ.yaml": (
        39,
        "transition 5 (`approve`): params differ from transition 2 (`approve`); "
        "every transition of an event takes the same params",
    ),
    "compensate_without_effect.yaml": (21, "`compensate` needs an `effect` to undo"),
    "irreversible_with_compensate.yaml": (22, "an irreversible effect cannot have a `compensate`"),
    "assign_unknown_variable.yaml": (22, "unknown variable `amont` (did you mean `amount`?)"),
    "assign_context_variable.yaml": (22, "cannot change context variable `known_payees`"),
    "assign_wrong_type.yaml": (22, "cannot assign bool to `amount`"),
    "two_bad_transitions.yaml": (23, "transition 2 (`cancel`): `to` names unknown state"),
    # --- guards: names and types
    "guard_unknown_variable.yaml": (
        21,
        "transition 1 (`approve`), guard: unknown variable `aproved_by` "
        "(did you mean `approved_by`?)",
    ),
    "guard_unknown_param.yaml": (23, "unknown param `amout` (did you mean `amount`?)"),
    "json_guard_unknown_variable.json": (14, "unknown variable `aproved`"),
    "guard_int_plus_bool.yaml": (23, "`+` needs numbers, not int and bool"),
    "guard_int_vs_enum.yaml": (23, "cannot compare int with enum (staging, production)"),
    "guard_not_bool.yaml": (23, "the guard must be bool, not int"),
    "guard_enum_literal_not_value.yaml": (21, "is not one of staging, production"),
    "guard_syntax_error.yaml": (23, "invalid expression syntax"),
    "guard_multiline_error.yaml": (24, "unknown variable `aproved_by`"),
    "invariant_actor.yaml": (23, "`actor` is only available in transitions"),
    # --- guards: forbidden syntax
    "guard_call_open.yaml": (21, "`open` cannot be called"),
    "guard_dunder_import.yaml": (21, "`__import__` cannot be called"),
    "guard_method_call.yaml": (21, "may be called"),
    "guard_attribute_real.yaml": (23, "attribute access is limited to `params.<name>`"),
    "guard_attribute_params_nested.yaml": (23, "attribute access is limited to `params.<name>`"),
    "guard_lambda.yaml": (21, "lambdas are not allowed"),
    "guard_list_comprehension.yaml": (23, "comprehensions are not allowed"),
    "guard_subscript.yaml": (21, "subscripts are not allowed"),
    "guard_division.yaml": (23, "`/` is not allowed: use `//`"),
    "guard_power.yaml": (23, "`**` is not allowed"),
    "guard_walrus.yaml": (23, "assignment expressions (`:=`) are not allowed"),
    "guard_fstring.yaml": (21, "f-strings are not allowed"),
    "guard_is_none.yaml": (21, "`is` and `is not` are not allowed"),
    # --- invariants and permissions
    "duplicate_invariant_name.yaml": (24, "invariant `limit` is declared twice (first on line 22)"),
    "invariant_always_and_never.yaml": (24, "invariant `limit` has both `always` and `never`"),
    "precedes_unknown_event.yaml": (23, "unknown event `aprove` (did you mean `approve`?)"),
    "precedes_event_not_text.yaml": (23, "`first` must be text naming an event, not a list"),
    "exclusive_roles_unknown_role.yaml": (22, "`exclusive_roles` names unknown role `auditor`"),
    "exclusive_roles_entry_not_text.yaml": (
        22,
        "`exclusive_roles`: the role must be text, not a mapping",
    ),
}

#: Columns pinned where the position inside a line matters (expressions, bytes, aliases).
COLUMNS: dict[str, int] = {
    "guard_unknown_variable.yaml": 12,
    "guard_lambda.yaml": 27,  # inside a quoted scalar: the quote is counted
    "guard_walrus.yaml": 13,
    "guard_multiline_error.yaml": 11,  # third line of a `|` block
    "json_guard_unknown_variable.json": 31,
    "json_nan.json": 76,
    "json_syntax_error.json": 27,
    "not_utf8.yaml": 10,
    "alias_recursive.yaml": 10,
    "yaml_tab_indentation.yaml": 1,
    "yaml_missing_colon.yaml": 1,
    "yaml_unquoted_colon.yaml": 21,
    "guard_hex_literal_too_long.yaml": 21,
    "json_key_surrogate.json": 5,
    "initial_too_many_places.yaml": 64,
}

#: Cases whose one mistake must not cascade into follow-on problems.
SINGLE_PROBLEM = (
    "states_key_misspelt.yaml",
    "transition_key_evnt.yaml",
    "timeout_bad_duration.yaml",
    "cascade_broken_variable.yaml",
    "missing_initial_state.yaml",
    "guard_unknown_variable.yaml",
)

#: Refused at once, however large the document would become.
BOUNDED = ("alias_bomb.yaml", "deep_nesting.yaml", "deep_nesting.json", "alias_recursive.yaml")

INTERNAL_NAMES = re.compile(
    r"Traceback|Error\(|\b(?:ScalarNode|MappingNode|SequenceNode|NoneType|dict|tuple|"
    r"Decimal|ExprType|_Number|Mark)\b|<class "
)


def _first_problem(path: Path) -> tuple[LoadError, str]:
    with pytest.raises(LoadError) as info:
        load(path)
    return info.value, info.value.problems[0].message


def _assert_one_sentence(message: str) -> None:
    assert message, "empty message"
    assert "\n" not in message, message
    assert "\r" not in message, message
    assert message[0].islower() or message[0] in "`'\"", message
    assert not message.endswith("."), message
    assert not re.search(r"[.!?]\s+[A-Z]", message), f"more than one sentence: {message}"
    assert not INTERNAL_NAMES.search(message), f"internal name in: {message}"


def test_corpus_is_large_and_fully_described() -> None:
    files = sorted(p.name for p in CORPUS.iterdir() if p.is_file())
    assert len(files) >= 40
    assert set(files) == set(EXPECTED), (
        f"without expectations: {sorted(set(files) - set(EXPECTED))}; "
        f"missing files: {sorted(set(EXPECTED) - set(files))}"
    )


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_malformed_spec_is_refused_with_one_clear_sentence(
    name: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def forbidden(*args: object, **kwargs: object) -> None:
        pytest.fail(f"loading {name} tried to run something: {args!r}")

    # Nothing in a spec is ever evaluated or executed (`__import__`, `!!python/...`).
    monkeypatch.setattr(os, "system", forbidden)
    monkeypatch.setattr(os, "popen", forbidden)
    monkeypatch.setattr(subprocess, "Popen", forbidden)

    path = CORPUS / name
    error, message = _first_problem(path)
    line, fragment = EXPECTED[name]
    location = error.problems[0].location
    assert location.file == str(path)
    assert (location.line, fragment in message) == (line, True), message
    if name in COLUMNS:
        assert location.column == COLUMNS[name], message
    for problem in error.problems:
        _assert_one_sentence(problem.message)
        assert problem.location.file == str(path)
        assert problem.location.line >= 1
    assert "\n" not in str(error)
    assert not Path("/tmp/railguard-pwned").exists()


def test_problems_are_in_source_order() -> None:
    error, _ = _first_problem(CORPUS / "two_bad_transitions.yaml")
    assert [p.location.line for p in error.problems] == [23, 29]
    assert "transition 2 (`cancel`)" in error.problems[0].message
    assert "transition 3 (`pay`), guard:" in error.problems[1].message
    assert str(error).endswith("(and 1 more problem)")


def test_problems_are_sorted_even_when_found_out_of_order() -> None:
    # Invariants are checked after transitions; written first, they are reported first.
    text = """\
railguard: 1
name: order
invariants:
  - name: bad
    always: amount + True
states:
  draft: {initial: true}
  done: {terminal: success}
variables:
  amount: {type: int, min: 0, max: 9, initial: 0}
transitions:
  - event: finish
    from: draft
    to: dnoe
    permission: public
"""
    with pytest.raises(LoadError) as info:
        loads(text, "order.yaml")
    problems = info.value.problems
    assert [p.location.line for p in problems] == [5, 14]
    assert "invariant `bad`" in problems[0].message
    assert "unknown state `dnoe` (did you mean `done`?)" in problems[1].message


@pytest.mark.parametrize("name", SINGLE_PROBLEM)
def test_one_mistake_is_one_problem(name: str) -> None:
    error, _ = _first_problem(CORPUS / name)
    assert len(error.problems) == 1, [p.message for p in error.problems]


@pytest.mark.parametrize("name", BOUNDED)
def test_bombs_and_deep_nesting_are_refused_quickly(name: str) -> None:
    start = time.perf_counter()
    with pytest.raises(LoadError):
        load(CORPUS / name)
    # A safety limit, not a benchmark: the real cost is a small fraction of this.
    assert time.perf_counter() - start < 2.0


@pytest.mark.parametrize("example", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_examples_still_load(example: Path) -> None:
    spec = load(example)
    assert spec.name == example.stem


@pytest.mark.parametrize("example", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.name)
@pytest.mark.parametrize("indent", [None, 2, "\t"], ids=["compact", "spaces", "tabs"])
def test_json_twin_of_an_example_loads_the_same_spec(example: Path, indent: int | str) -> None:
    data = yaml.safe_load(example.read_text(encoding="utf-8"))
    twin = loads(json.dumps(data, indent=indent, ensure_ascii=False), f"{example.stem}.json")
    assert twin == load(example)


def test_mangled_examples_never_crash_the_loader() -> None:
    """Cut and splice the examples at random: a spec or a clean `LoadError`, never a crash."""
    rng = random.Random(20261127)
    sources = []
    for example in sorted(EXAMPLES.glob("*.yaml")):
        text = example.read_text(encoding="utf-8")
        sources += [(text, "mangled.yaml"), (json.dumps(yaml.safe_load(text)), "mangled.json")]
    pieces = ['"', "'", ":", "- ", "[", "{", "}", "]", "\n", "\t", "&a ", "*a", "!!", "#", ","]
    for _ in range(400):
        text, name = rng.choice(sources)
        for _ in range(rng.randint(1, 3)):
            at = rng.randrange(len(text))
            if rng.random() < 0.5:
                text = text[:at] + text[at + rng.randint(1, 8) :]
            else:
                text = text[:at] + rng.choice(pieces) + text[at:]
        try:
            loads(text, name)
        except LoadError as error:
            for problem in error.problems:
                _assert_one_sentence(problem.message)
                assert problem.location.line >= 1, problem


# --------------------------------------------------------------------------- focused cases

#: A small spec that uses every part of the format: the start of the edits below.
FEATURES = """\
railguard: 1
name: payments.transfer
description: Move money once it is approved.
roles:
  clerk: [transfer.start, transfer.send]
  auditor: [transfer.audit]
variables:
  amount: {type: decimal, min: "0.01", max: 5000, places: 2, initial: "0.01"}
  level: {type: enum, values: [low, high], initial: low, description: how urgent}
  payees: {type: set, of: str, max_size: 10, context: true}
  memo: {type: str, max_length: 140, initial: ""}
  count: {type: int, min: 0, max: 5, initial: 0}
  sender: {type: principal}
states:
  new: {initial: true, description: waiting for details}
  ready:
    timeout: {after: 1h30m, event: remind}
  sending: {timeout: {after: 900}, on_error: broken}
  done: {terminal: success}
  broken: {terminal: failure}
on_error: broken
transitions:
  - event: start
    from: new
    to: ready
    permission: transfer.start
    params:
      amount: {type: decimal, min: "0.01", max: 5000, places: 2, description: to send}
      urgent: {type: bool, default: false}
    guard: params.amount <= 1000 or not params.urgent
    assign: {amount: params.amount, sender: actor, count: count + 1}
    description: fill in the details
  - event: remind
    from: ready
    to: ready
    permission: public
  - event: send
    from: [ready]
    to: sending
    permission: transfer.send
    effect: bank.send
    compensate: bank.recall
  - event: confirm
    from: sending
    to: done
    permission: transfer.send
invariants:
  - name: bounded
    always: count <= 5
    description: a transfer starts at most five times
  - name: start-before-send
    precedes: {first: start, then: send}
exclusive_roles:
  - [clerk, auditor]
waivers:
  - {check: W1, target: 2, reason: the reminder loop is intended}
"""


def _features() -> dict[str, Any]:
    data = yaml.safe_load(FEATURES)
    assert isinstance(data, dict)
    return data


def _edited(path: tuple[str | int, ...], value: Any) -> str:
    """:data:`FEATURES` as YAML with the value at ``path`` set (or appended to a list)."""
    data = _features()
    parent: Any = data
    for step in path[:-1]:
        parent = parent[step]
    if isinstance(parent, list) and path[-1] == len(parent):
        parent.append(value)
    else:
        parent[path[-1]] = value
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def _problems(text: str, name: str = "edited.yaml") -> list[str]:
    with pytest.raises(LoadError) as info:
        loads(text, name)
    for problem in info.value.problems:
        _assert_one_sentence(problem.message)
    return [problem.message for problem in info.value.problems]


def test_the_features_spec_loads() -> None:
    spec = loads(FEATURES)
    assert spec.name == "payments.transfer"


NOT_HASHABLE: list[tuple[tuple[str | int, ...], Any, str]] = [
    (
        ("invariants", 1, "precedes", "first"),
        [],
        "`first` must be text naming an event, not a list",
    ),
    (
        ("invariants", 1, "precedes", "then"),
        {},
        "`then` must be text naming an event, not a mapping",
    ),
    (("invariants", 1, "precedes", "then"), 1.5, "`then` `1.5` must be text naming an event"),
    (("exclusive_roles", 0, 1), [], "`exclusive_roles`: the role must be text, not a list"),
    (("exclusive_roles", 0, 1), {"a": 1}, "the role must be text, not a mapping"),
    (("exclusive_roles", 0, 2), 7, "the role `7` must be text, not a number"),
    (("variables", "level", "type"), ["enum"], "`type` must be text naming a type"),
    (("variables", "payees", "of"), {"type": {}}, "`type` must be text naming a type"),
]


@pytest.mark.parametrize(("path", "value", "says"), NOT_HASHABLE)
def test_lists_and_mappings_where_names_belong_are_refused(
    path: tuple[str | int, ...], value: Any, says: str
) -> None:
    assert any(says in message for message in _problems(_edited(path, value))), says


#: Every free-text field and every name, given a number (`1`, `1.5` or `1e5`).
TEXT_FIELDS: list[tuple[tuple[str | int, ...], str]] = [
    (("description",), "the spec: `description` must be text, not a number"),
    (("variables", "level", "description"), "variable `level`: `description` must be text"),
    (("states", "new", "description"), "state `new`: `description` must be text"),
    (("transitions", 0, "description"), "transition 1 (`start`): `description` must be text"),
    (
        ("transitions", 0, "params", "amount", "description"),
        "param `amount`: `description` must be text",
    ),
    (("invariants", 0, "description"), "invariant `bounded`: `description` must be text"),
    (("invariants", 0, "name"), "the invariant name `{}` must be text, not a number"),
    (("variables", "level", "values", 1), "enum value `{}` must be text, not a number"),
    (("waivers", 0, "check"), "waiver 1: the check name `{}` must be text, not a number"),
    (("waivers", 0, "reason"), "waiver 1: `reason` must be text, not a number"),
    (("name",), "the spec name `{}` must be text, not a number"),
    (("transitions", 0, "event"), "the event name `{}` must be text, not a number"),
    (("transitions", 0, "permission"), "the permission name `{}` must be text"),
    (("transitions", 2, "effect"), "the handler name `{}` must be text"),
]


@pytest.mark.parametrize("number", ["1", "1.5", "1e5", "-0.0"])
@pytest.mark.parametrize(("path", "says"), TEXT_FIELDS)
def test_text_fields_refuse_numbers_alike(
    path: tuple[str | int, ...], says: str, number: str
) -> None:
    text = _edited(path, "NUMBER").replace("NUMBER", number)
    assert any(says.format(number) in message for message in _problems(text)), says


@pytest.mark.parametrize("value", [{}, [1], True])
def test_a_param_description_must_be_text(value: Any) -> None:
    path = ("transitions", 0, "params", "urgent", "description")
    kind = {"dict": "a mapping", "list": "a list", "bool": "a boolean"}[type(value).__name__]
    assert _problems(_edited(path, value)) == [
        f"transition 1 (`start`): param `urgent`: `description` must be text, not {kind}"
    ]


def test_numbers_keep_the_text_they_were_written_as() -> None:
    text = _edited(("variables", "count", "initial"), "NUMBER").replace("NUMBER", "1e5")
    assert _problems(text) == ["variable `count`: `initial` must be an integer, not `1e5`"]
    spec = loads(_edited(("variables", "amount", "initial"), "NUMBER").replace("NUMBER", "12.50"))
    amount = next(v for v in spec.variables if v.name == "amount")
    assert amount.initial == Decimal("12.5")
    assert type(amount.initial) is Decimal


#: Every kind of name, written with a line break at its end (which `$` would let through).
NAMES = [
    ("name",),
    ("roles", "clerk", 0),
    ("transitions", 0, "event"),
    ("transitions", 0, "permission"),
    ("transitions", 0, "to"),
    ("transitions", 2, "effect"),
    ("states", "ready", "timeout", "event"),
    ("invariants", 0, "name"),
    ("invariants", 1, "precedes", "first"),
    ("waivers", 0, "check"),
]


@pytest.mark.parametrize("path", NAMES, ids=lambda path: ".".join(map(str, path)))
@pytest.mark.parametrize("fmt", ["yaml", "json"])
def test_names_with_a_trailing_line_break_are_refused(
    path: tuple[str | int, ...], fmt: str
) -> None:
    data = yaml.safe_load(_edited(path, "NAME"))
    parent: Any = data
    for step in path[:-1]:
        parent = parent[step]
    parent[path[-1]] = parent[path[-1]].replace("NAME", "") + "x\n"
    if fmt == "json":
        text, file = json.dumps(data), "edited.json"
    else:
        text, file = yaml.safe_dump(data, sort_keys=False), "edited.yaml"
    assert any("x\\n`" in message for message in _problems(text, file))


@pytest.mark.parametrize("where", ["roles", "variables", "states", "params"])
def test_keys_with_a_trailing_line_break_are_refused(where: str) -> None:
    data = _features()
    table = data["transitions"][0]["params"] if where == "params" else data[where]
    key = next(iter(table))
    table[f"{key}\n"] = table.pop(key)
    messages = _problems(yaml.safe_dump(data, sort_keys=False))
    assert any(f"`{key}\\n` is not a valid" in message for message in messages), messages


def _patterns(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["pattern"]] if isinstance(node.get("pattern"), str) else []
        return own + [p for value in node.values() for p in _patterns(value)]
    if isinstance(node, list):
        return [p for value in node for p in _patterns(value)]
    return []


def test_the_schema_name_patterns_are_ecma_262() -> None:
    """ECMA-262 has no `\\A`/`\\Z` (`\\Z` is a letter Z); its `$` matches only at the very end."""
    patterns = set(_patterns(json_schema()))
    names = {pattern for pattern in patterns if "A-Za-z" in pattern}
    assert len(names) == 3, patterns
    for pattern in names:
        assert pattern.startswith("^"), pattern
        assert pattern.endswith("$"), pattern
    for pattern in patterns:
        assert "\\A" not in pattern, pattern
        assert "\\Z" not in pattern, pattern


SIGNATURE_CHANGES: list[tuple[str, Any]] = [
    ("another name", {"amount2": {"type": "decimal"}}),
    ("one more", {"amount": {"type": "decimal"}, "note": {"type": "str"}}),
    ("another type", {"amount": {"type": "int"}}),
    ("another domain", {"amount": {"type": "decimal", "min": "0.01", "max": 10}}),
    ("a default", {"amount": {"type": "decimal", "default": "1"}}),
    ("none", None),
]


@pytest.mark.parametrize(
    "params", [p for _, p in SIGNATURE_CHANGES], ids=[n for n, _ in SIGNATURE_CHANGES]
)
def test_every_transition_of_an_event_takes_the_same_params(params: Any) -> None:
    data = _features()
    data["transitions"][0]["params"] = {"amount": {"type": "decimal"}}
    del data["transitions"][0]["guard"]
    later = {"event": "start", "from": "ready", "to": "ready", "permission": "transfer.start"}
    if params is not None:
        later["params"] = params
    data["transitions"].append(later)
    assert _problems(yaml.safe_dump(data, sort_keys=False)) == [
        "transition 5 (`start`): params differ from transition 1 (`start`); "
        "every transition of an event takes the same params"
    ]


def test_the_same_params_in_another_order_with_other_descriptions_agree() -> None:
    data = _features()
    first = data["transitions"][0]
    later = copy.deepcopy(first)
    later.update({"from": "ready", "to": "ready", "assign": None})
    params = later["params"]
    later["params"] = {"urgent": params["urgent"], "amount": {**params["amount"]}}
    later["params"]["amount"]["description"] = "said another way"
    data["transitions"].append(later)
    spec = loads(yaml.safe_dump(data, sort_keys=False))
    assert [t.event for t in spec.transitions].count("start") == 2


@pytest.mark.parametrize(
    ("data", "says"),
    [
        ({"railguard": 1, "name": "x", "states": {"a": {"initial": 10**200}}}, "100 digits"),
        ({"railguard": 1, 10**5000: 1}, "a key in the spec has more than 100 digits"),
        ({"railguard": 1, "description": [[[[[[[[[[]]]]]]]]]] * 1}, None),
    ],
)
def test_plain_data_is_held_to_the_readers_limits(data: dict[str, Any], says: str | None) -> None:
    with pytest.raises(LoadError) as info:
        load_data(data)
    if says is not None:
        assert says in info.value.problems[0].message


def test_plain_data_that_contains_itself_or_nests_too_deep_is_refused() -> None:
    loop: list[Any] = []
    loop.append(loop)
    deep: list[Any] = []
    for _ in range(200):
        deep = [deep]
    for value, says in ((loop, "contains itself"), (deep, "nests deeper than 64 levels")):
        with pytest.raises(LoadError) as info:
            load_data({"railguard": 1, "name": "x", "description": value})
        assert says in info.value.problems[0].message


# --------------------------------------------------------------------------- fuzzing

_SEEDS = [yaml.safe_load(p.read_text(encoding="utf-8")) for p in sorted(EXAMPLES.glob("*.yaml"))]
_SEEDS.append(yaml.safe_load(FEATURES))
_TYPE_KEYS = sorted({key for keys in TYPE_KEYS.values() for key in keys})
_WORDS = st.sampled_from(
    [
        *TOP_KEYS,
        *STATE_KEYS,
        *TRANSITION_KEYS,
        *INVARIANT_KEYS,
        *_TYPE_KEYS,
        *TYPE_KEYS,
        *("after", "first", "then", "check", "target", "reason", "success", "failure"),
        *("public", "actor", "state", "new", "start", "send", "amount", "x"),
        "1h30m",
        "0.01",
        "amount > 1",
        "state == 'new'",
        "draft\n",
        "ä",
        "<<",
        "x" * 2000,
    ]
)
_NUMBERS = st.one_of(
    st.integers(-3, 3),
    st.integers(),
    st.integers(min_value=10**30, max_value=10**99),
    st.floats(allow_nan=False, allow_infinity=False),
    st.decimals(allow_nan=False, allow_infinity=False),
)
_LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    _NUMBERS,
    _WORDS,
    st.text(max_size=12),
    st.text(min_size=100, max_size=500),
)
_TYPES = st.builds(
    lambda kind, extra: {"type": kind, **extra},
    st.sampled_from([*TYPE_KEYS, "x"]),
    st.dictionaries(
        st.sampled_from([*_TYPE_KEYS, "initial", "default", "context", "description"]),
        st.one_of(_LEAVES, st.lists(_WORDS, max_size=3)),
        max_size=4,
    ),
)
_VALUES = st.recursive(
    st.one_of(_LEAVES, _TYPES),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.one_of(_WORDS, st.text(max_size=6)), inner, max_size=4)
    ),
    max_leaves=12,
)


def _all_paths(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [path]
    if isinstance(node, dict):
        for key, value in node.items():
            found += _all_paths(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _all_paths(value, (*path, index))
    return found


def _plain(node: Any) -> Any:
    """``node`` with decimals as floats, so that JSON and YAML can write it."""
    if isinstance(node, Decimal):
        return float(node)
    if isinstance(node, dict):
        return {key: _plain(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_plain(value) for value in node]
    return node


@settings(
    max_examples=250,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.data())
def test_random_values_anywhere_give_a_spec_or_a_load_error(data: st.DataObject) -> None:
    """Any JSON-like value at any place of a spec: a spec or a clean `LoadError`, never a crash."""
    doc: Any = copy.deepcopy(data.draw(st.sampled_from(_SEEDS)))
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(_all_paths(doc)))
        value = data.draw(_VALUES)
        how = data.draw(st.sampled_from(["set", "drop", "add"]))
        if not path:
            doc = value
            continue
        parent = doc
        for step in path[:-1]:
            parent = parent[step]
        target = parent[path[-1]]
        if how == "drop":
            del parent[path[-1]]
        elif how == "add" and isinstance(target, dict):
            target[data.draw(_WORDS)] = value
        elif how == "add" and isinstance(target, list):
            target.insert(data.draw(st.integers(0, len(target))), value)
        else:
            parent[path[-1]] = value
    fmt = data.draw(st.sampled_from(["data", "json", "yaml"]))
    try:
        if fmt == "data":
            load_data(doc)
        elif fmt == "json":
            loads(json.dumps(_plain(doc), ensure_ascii=False), "fuzzed.json")
        else:
            loads(yaml.safe_dump(_plain(doc), allow_unicode=True, sort_keys=False), "fuzzed.yaml")
    except LoadError as error:
        for problem in error.problems:
            # The expression language's own words ("dict literals are not allowed") aside.
            _assert_one_sentence(problem.message.replace("dict literals", "mapping literals"))
            if fmt != "data":
                assert problem.location.line >= 1, problem


# --------------------------------------------------------------------------- both YAML parsers


def _read_with(loader: Any, text: str, name: str) -> Any:
    """What ``read_yaml`` makes of ``text`` with only ``loader`` (libyaml's or PyYAML's) parsing."""
    from railguard.spec import source

    saved = source._CLoader
    source._CLoader = None if loader is source._Loader else loader
    try:
        doc = source.read_yaml(text, name)
    except LoadError as error:
        return [(p.message, p.location) for p in error.problems]
    finally:
        source._CLoader = saved
    return (doc.data, doc.values, doc.keys, doc.scalar_offsets, doc.block_starts)


YAML_FILES = sorted(
    [*CORPUS.glob("*.yaml"), *EXAMPLES.glob("*.yaml")], key=lambda p: (p.parent.name, p.name)
)


@pytest.mark.skipif(not yaml.__with_libyaml__, reason="PyYAML was built without libyaml")
@pytest.mark.parametrize("path", YAML_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_libyaml_and_pyyaml_read_every_file_alike(path: Path) -> None:
    """libyaml parses (fast); the same data, positions and messages as PyYAML's own parser."""
    from railguard.spec import source

    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError:
        pytest.skip("not UTF-8: refused before parsing")
    fast = _read_with(source._CLoader, text, path.name)
    slow = _read_with(source._Loader, text, path.name)
    assert fast == slow
