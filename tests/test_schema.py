"""The JSON Schema of the spec format, and its agreement with the loader."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from railguard.spec import LoadError, dump_data, json_schema, load, loads
from railguard.spec.loader import (
    INVARIANT_KEYS,
    STATE_KEYS,
    TOP_KEYS,
    TRANSITION_KEYS,
    TYPE_KEYS,
    _duration,
)

EXAMPLES = sorted((Path(__file__).resolve().parent.parent / "examples").glob("*.yaml"))

BASE = """
railguard: 1
name: refund
description: Refund a payment once a second person has approved it.
roles:
  support: [refund.request]
  manager: [refund.approve]
  payments: [refund.pay]
variables:
  amount: {type: int, min: 0, max: 100, initial: 0}
  level: {type: enum, values: [low, high], initial: low}
  requested_by: {type: principal}
states:
  draft: {initial: true}
  requested: {}
  paid: {terminal: success}
  failed: {terminal: failure}
on_error: failed
transitions:
  - event: request
    from: draft
    to: requested
    permission: refund.request
    params:
      amount: {type: int, min: 1, max: 100}
    guard: params.amount <= 50
    assign:
      amount: params.amount
      requested_by: actor
  - event: pay
    from: requested
    to: paid
    permission: refund.pay
    effect: payments.refund
    irreversible: true
invariants:
  - name: refund-limit
    always: amount <= 50
  - name: pay-after-request
    precedes: {first: request, then: pay}
exclusive_roles:
  - [support, manager]
waivers:
  - {check: dead-state, target: failed, reason: reached only by error exits}
"""

RICH = """
railguard: 1
name: payments.transfer
description:
roles:
  clerk: [transfer.start, transfer.send]
  auditor:
variables:
  amount: {type: decimal, min: "0.01", max: 5000, places: 2, initial: "0.01"}
  fee: {type: decimal, places: 2, initial: 1.5, description: charged per transfer}
  payees: {type: set, of: str, max_size: 10, context: true}
  flags: {type: set, of: {type: enum, values: [urgent, manual]}, initial: [urgent]}
  memo: {type: str, max_length: 140, initial: ""}
  sent: {type: bool, initial: false}
  sender: {type: principal, initial: null}
states:
  new: {initial: true, description: waiting for details}
  ready:
    timeout: {after: 1h30m, event: remind}
  sending: {timeout: {after: 900}, on_error: broken}
  done: {terminal: success}
  broken: {terminal: failure, on_error: null}
  aborted: {terminal: failure}
on_error: aborted
transitions:
  - event: start
    from: new
    to: ready
    permission: transfer.start
    params:
      amount: {type: decimal, min: "0.01", max: 5000, places: 2}
      payee: {type: str, max_length: 40, default: "", description: who is paid}
      urgent: {type: bool, default: false}
    guard: true
    assign:
      amount: params.amount
      flags: [urgent, manual]
      sender: actor
    description:
  - event: remind
    from: ready
    to: ready
    permission: public
    guard:
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
    assign:
      sent: true
    effect:
    compensate: null
invariants:
  - name: sent-means-done
    never: sent and state == "new"
    description: nothing is sent before it starts
exclusive_roles:
waivers:
  - {check: W1, target: 3, reason: the reminder loop is intended}
"""


def _validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(json_schema())


def _schema_errors(data: Any) -> list[str]:
    return [error.message for error in _validator().iter_errors(data)]


def _walk(node: Any) -> Iterator[dict[str, Any]]:
    """Every subschema, except the conditions of ``if`` (they describe no property)."""
    if isinstance(node, dict):
        yield node
        for key, value in node.items():
            if key != "if":
                yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def _kind_branches(definition: dict[str, Any]) -> dict[str, set[str]]:
    """Kind → the keys its ``then`` branch allows, for one type-declaration definition."""
    return {
        rule["if"]["properties"]["type"]["const"]: set(rule["then"]["properties"])
        for rule in definition["allOf"]
    }


# --------------------------------------------------------------------------- the schema itself


def test_the_schema_is_a_valid_draft_2020_12_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(json_schema())


def test_the_schema_names_its_draft_id_and_title() -> None:
    schema = json_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == "https://railguard.dev/schema/spec-1.json"
    assert schema["title"]
    assert schema["description"]


def test_the_schema_serialises_to_json_and_back_unchanged() -> None:
    schema = json_schema()
    assert json.loads(json.dumps(schema)) == schema


def test_each_call_returns_a_fresh_schema() -> None:
    first = json_schema()
    first["properties"].clear()
    for rule in first["$defs"]["variable"]["allOf"]:
        rule["then"]["properties"].clear()
    second = json_schema()
    assert second["properties"]
    assert all(rule["then"]["properties"] for rule in second["$defs"]["variable"]["allOf"])


def test_every_property_has_a_description() -> None:
    missing = [
        name
        for node in _walk(json_schema())
        for name, sub in node.get("properties", {}).items()
        if isinstance(sub, dict) and not sub.get("description")
    ]
    assert missing == []


def test_the_version_must_be_the_constant_one() -> None:
    assert json_schema()["properties"]["railguard"]["const"] == 1


def test_the_top_level_keys_are_the_loaders() -> None:
    schema = json_schema()
    assert set(schema["properties"]) == set(TOP_KEYS)
    assert schema["additionalProperties"] is False
    assert schema["required"] == ["railguard", "name", "states"]


def test_state_transition_and_invariant_keys_are_the_loaders() -> None:
    defs = json_schema()["$defs"]
    assert set(defs["state"]["properties"]) == set(STATE_KEYS)
    assert set(defs["transition"]["properties"]) == set(TRANSITION_KEYS)
    assert set(defs["invariant"]["properties"]) == set(INVARIANT_KEYS)
    for name in ("state", "transition", "invariant"):
        assert defs[name]["additionalProperties"] is False, name
    assert defs["transition"]["required"] == ["event", "from", "to", "permission"]


def test_each_kind_allows_exactly_the_loaders_type_keys() -> None:
    defs = json_schema()["$defs"]
    variable = _kind_branches(defs["variable"])
    param = _kind_branches(defs["param"])
    element = _kind_branches(defs["elementType"])
    assert variable == {
        kind: {"type", *keys, "initial", "context", "description"}
        for kind, keys in TYPE_KEYS.items()
    }
    assert param == {
        kind: {"type", *keys, "default", "description"}
        for kind, keys in TYPE_KEYS.items()
        if kind != "principal"
    }
    assert element == {kind: {"type", *keys} for kind, keys in TYPE_KEYS.items() if kind != "set"}


# --------------------------------------------------------------------------- valid specs


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_example_validates_as_plain_yaml(path: Path) -> None:
    assert _schema_errors(yaml.safe_load(path.read_text(encoding="utf-8"))) == []


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_the_canonical_dump_of_every_example_validates(path: Path) -> None:
    assert _schema_errors(dump_data(load(path))) == []


def test_there_are_three_examples() -> None:
    assert [p.name for p in EXAMPLES] == ["deploy.yaml", "order.yaml", "refund.yaml"]


@pytest.mark.parametrize("text", [BASE, RICH], ids=["base", "rich"])
def test_a_spec_the_loader_accepts_validates(text: str) -> None:
    loads(text)
    assert _schema_errors(yaml.safe_load(text)) == []


def test_the_canonical_dump_of_a_spec_using_every_feature_validates() -> None:
    assert _schema_errors(dump_data(loads(RICH))) == []


# --------------------------------------------------------------------------- malformed specs

_DROP = object()


@dataclass(frozen=True)
class Change:
    """One edit to a document: set the value at ``path``, or remove the key there."""

    path: tuple[str | int, ...]
    value: Any = _DROP

    def apply(self, doc: dict[str, Any]) -> dict[str, Any]:
        """Edit ``doc`` in place and return it."""
        parent: Any = doc
        for step in self.path[:-1]:
            parent = parent[step]
        last = self.path[-1]
        if self.value is _DROP:
            del parent[last]
        elif isinstance(parent, list) and last == len(parent):
            parent.append(self.value)
        else:
            parent[last] = self.value
        return doc


def _put(*path_and_value: Any) -> Change:
    """Set the value at a path (the last argument is the value)."""
    *path, value = path_and_value
    return Change(tuple(path), value)


def _drop(*path: str | int) -> Change:
    """Remove the key at a path."""
    return Change(path)


T0, T1 = ("transitions", 0), ("transitions", 1)

#: (id, change to BASE, what the loader's message says)
MALFORMED: list[tuple[str, Change, str]] = [
    ("a_misspelt_guard_key", _put(*T0, "gaurd", "true"), "unknown key `gaurd`"),
    ("a_transition_without_permission", _drop(*T0, "permission"), "needs `permission`"),
    ("a_transition_without_an_event", _drop(*T1, "event"), "needs `event`"),
    ("a_terminal_that_is_neither_success_nor_failure", _put("states", "paid", "terminal", "done"),
     "`terminal` must be `success` or `failure`"),
    ("an_enum_without_values", _drop("variables", "level", "values"),
     "needs a non-empty list of `values`"),
    ("an_enum_with_an_empty_list_of_values", _put("variables", "level", "values", []),
     "needs a non-empty list of `values`"),
    ("format_version_two", _put("railguard", 2), "unsupported format version `2`"),
    ("no_format_version", _drop("railguard"), "`railguard: 1`"),
    ("no_name", _drop("name"), "needs a `name`"),
    ("an_unknown_top_level_key", _put("invariant", []), "unknown key `invariant`"),
    ("an_invariant_with_both_always_and_never", _put("invariants", 0, "never", "amount > 60"),
     "has both `always` and `never`"),
    ("an_invariant_with_no_property", _drop("invariants", 0, "always"),
     "needs one of `always`, `never` or `precedes`"),
    ("an_invariant_without_a_name", _drop("invariants", 0, "name"), "needs a `name`"),
    ("precedes_without_then", _drop("invariants", 1, "precedes", "then"),
     "`precedes` needs `then`"),
    ("a_waiver_without_a_reason", _drop("waivers", 0, "reason"), "needs a written `reason`"),
    ("a_waiver_with_a_blank_reason", _put("waivers", 0, "reason", "   "),
     "needs a written `reason`"),
    ("a_param_of_type_principal", _put(*T0, "params", "approver", {"type": "principal"}),
     "a param cannot be a principal"),
    ("a_param_with_an_initial", _put(*T0, "params", "amount", "initial", 1),
     "unknown key `initial`"),
    ("an_int_with_enum_values", _put("variables", "amount", "values", ["a"]),
     "unknown key `values`"),
    ("an_unknown_type", _put("variables", "amount", "type", "integer"), "unknown type `integer`"),
    ("a_type_declaration_without_a_type", _drop("variables", "amount", "type"), "needs a `type`"),
    ("a_set_without_of", _put("variables", "tags", {"type": "set"}), "a set needs `of`"),
    ("a_set_of_sets",
     _put("variables", "tags", {"type": "set", "of": {"type": "set", "of": "int"}}),
     "sets of sets are not supported"),
    ("a_set_with_an_element_of_another_kind",
     _put("variables", "tags", {"type": "set", "of": "int", "initial": ["a"]}),
     "`initial` must be an integer"),
    ("a_principal_with_an_initial_id", _put("variables", "requested_by", "initial", "alice"),
     "a principal starts unset"),
    ("a_context_flag_that_is_not_a_boolean", _put("variables", "amount", "context", "sure"),
     "`context` must be true or false"),
    ("decimal_places_beyond_28", _put("variables", "fee", {"type": "decimal", "places": 29}),
     "`places` must be at most 28"),
    ("a_variable_with_a_reserved_name", _put("variables", "state", {"type": "bool"}),
     "is reserved"),
    ("a_variable_name_that_is_not_an_identifier", _put("variables", "the-amount", {"type": "bool"}),
     "is not a valid variable name"),
    ("a_state_that_is_initial_and_terminal", _put("states", "draft", "terminal", "failure"),
     "cannot be both initial and terminal"),
    ("a_terminal_state_with_a_timeout", _put("states", "failed", "timeout", {"after": "1h"}),
     "is terminal and cannot have a `timeout`"),
    ("a_terminal_state_with_its_own_on_error", _put("states", "paid", "on_error", "failed"),
     "is terminal and cannot have an `on_error`"),
    ("a_timeout_of_zero_minutes", _put("states", "requested", "timeout", {"after": "0m"}),
     "must be a positive duration"),
    ("a_timeout_in_words", _put("states", "requested", "timeout", {"after": "15 minutes"}),
     "must be a positive duration"),
    ("a_timeout_of_negative_seconds", _put("states", "requested", "timeout", {"after": -5}),
     "must be a positive duration"),
    ("a_timeout_without_after", _put("states", "requested", "timeout", {"event": "pay"}),
     "must be a positive duration"),
    ("a_misspelt_state_key", _put("states", "requested", "intial", True), "unknown key `intial`"),
    ("no_states", _drop("states"), "needs `states`"),
    ("an_empty_mapping_of_states", _put("states", {}), "declares no states"),
    ("from_an_empty_list", _put(*T0, "from", []), "`from` lists no state"),
    ("from_the_same_state_twice", _put(*T0, "from", ["draft", "draft"]),
     "lists state `draft` twice"),
    ("a_permission_with_a_space", _put(*T0, "permission", "refund request"),
     "is not a valid permission name"),
    ("compensate_without_an_effect", _put(*T0, "compensate", "payments.undo"),
     "`compensate` needs an `effect`"),
    ("an_irreversible_effect_with_a_compensation", _put(*T1, "compensate", "payments.undo"),
     "cannot have a `compensate`"),
    ("irreversible_without_an_effect", _drop(*T1, "effect"),
     "marks an `effect`, and there is none"),
    ("irreversible_as_text", _put(*T1, "irreversible", "yes"),
     "`irreversible` must be true or false"),
    ("a_guard_that_is_a_list", _put(*T0, "guard", ["amount > 1"]), "must be an expression"),
    ("a_role_granting_public", _put("roles", "support", 1, "public"),
     "`public` is granted to every caller"),
    ("a_role_listing_a_permission_twice", _put("roles", "support", 1, "refund.request"), "twice"),
    ("an_exclusive_group_of_one_role", _put("exclusive_roles", [["support"]]),
     "two or more roles"),
    ("transitions_as_a_mapping", _put("transitions", {"request": {}}),
     "`transitions` must be a list"),
]


@pytest.mark.parametrize(
    ("change", "loader_says"),
    [pytest.param(change, says, id=name) for name, change, says in MALFORMED],
)
def test_the_schema_and_the_loader_both_reject(change: Change, loader_says: str) -> None:
    doc = change.apply(yaml.safe_load(BASE))
    with pytest.raises(LoadError) as caught:
        loads(yaml.safe_dump(doc, sort_keys=False))
    assert loader_says in str(caught.value.problems)
    paths = [tuple(error.absolute_path) for error in _validator().iter_errors(doc)]
    assert paths != []
    # The schema blames the edited part: each error lies within the edited key's parent.
    parent = change.path[:-1]
    assert [path for path in paths if path[: len(parent)] != parent] == []


def test_the_malformed_cases_start_from_a_spec_both_accept() -> None:
    doc = yaml.safe_load(BASE)
    loads(yaml.safe_dump(doc, sort_keys=False))
    assert _schema_errors(doc) == []
    assert len(MALFORMED) >= 12


def test_the_schema_names_the_misspelt_key() -> None:
    doc = yaml.safe_load(BASE)
    _put(*T0, "gaurd", "true").apply(doc)
    assert any("'gaurd'" in message for message in _schema_errors(doc))


def test_the_schema_and_the_loader_agree_on_durations() -> None:
    after = json_schema()["$defs"]["timeout"]["properties"]["after"]
    check = jsonschema.Draft202012Validator(after)
    samples: list[Any] = [
        "15m", "1h30m", "1d12h", "90s", "0h5m", " 2h ", 1, 3600,
        "", "0m", "0d0h", "15", "m", "1.5h", "15 minutes", "1m1h", 0, -1, True, 1.5, None,
    ]
    for sample in samples:
        seconds = _duration(sample)
        assert check.is_valid(sample) == (seconds is not None and seconds > 0), sample
