"""A corpus of malformed specs: each is refused with one clear sentence at the right line.

Every file in ``tests/malformed/`` is one case and has a row in :data:`EXPECTED`: the line
of its first problem and a distinctive part of that problem's message. The same folder
serves the command-line tests (each file should make ``railguard check`` exit 2).
"""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from railguard.spec import LoadError, load, loads

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
    "alias_recursive.yaml": (5, "the alias `*s` refers to a node that contains it"),
    "deep_nesting.yaml": (4, "nests deeper than 64 levels"),
    "deep_nesting.json": (1, "nests deeper than 64 levels"),
    "integer_too_long.yaml": (7, "more than 100 digits"),
    "number_infinite.yaml": (7, "`.inf` is not allowed"),
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
    "exclusive_roles_unknown_role.yaml": (22, "`exclusive_roles` names unknown role `auditor`"),
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
