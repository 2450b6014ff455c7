"""The canonical examples load unchanged, round-trip, hash stably and pass `check`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from railguard.spec import dump_data, dumps, load, loads
from railguard.verifier import verify

from .conftest import CANONICAL, EXAMPLES, SHARED_EXAMPLES


@pytest.mark.parametrize("name", CANONICAL)
def test_project_examples_are_byte_identical_to_the_shared_ones(name: str) -> None:
    shared = SHARED_EXAMPLES / f"{name}.yaml"
    if not shared.exists():
        pytest.skip(f"no shared/ folder beside the checkout at {SHARED_EXAMPLES}")
    assert (EXAMPLES / f"{name}.yaml").read_bytes() == shared.read_bytes()


@pytest.mark.parametrize("name", CANONICAL)
def test_examples_round_trip_through_yaml_with_an_equal_model_and_hash(name: str) -> None:
    spec = load(EXAMPLES / f"{name}.yaml")
    again = loads(dumps(spec))
    assert again == spec
    assert again.content_hash == spec.content_hash
    assert dump_data(again) == dump_data(spec)


@pytest.mark.parametrize("name", CANONICAL)
def test_examples_round_trip_through_json(name: str) -> None:
    spec = load(EXAMPLES / f"{name}.yaml")
    again = loads(dumps(spec, "json"), "spec.json")
    assert again == spec
    assert again.content_hash == spec.content_hash


@pytest.mark.parametrize("name", CANONICAL)
def test_examples_have_no_findings(name: str) -> None:
    report = verify(load(EXAMPLES / f"{name}.yaml"))
    assert not report.failed
    assert [r for r in report.results if r.outcome != "proved"] == []


def test_the_hash_ignores_comments_formatting_and_key_order(tmp_path: Path) -> None:
    original = load(EXAMPLES / "refund.yaml")
    text = (EXAMPLES / "refund.yaml").read_text()
    reordered = "# a comment\n" + text.replace(
        "guard: params.amount <= 5000", "guard: 'params.amount<=5000'"
    )
    data = json.loads(dumps(original, "json"))
    shuffled = {key: data[key] for key in reversed(list(data))}
    assert loads(reordered).content_hash == original.content_hash
    assert loads(json.dumps(shuffled), "x.json").content_hash == original.content_hash


def test_the_hash_changes_when_a_guard_changes() -> None:
    text = (EXAMPLES / "refund.yaml").read_text()
    changed = loads(text.replace("params.amount <= 5000", "params.amount <= 5001"))
    assert changed.content_hash != load(EXAMPLES / "refund.yaml").content_hash


def test_the_refund_model_has_the_declared_parts() -> None:
    spec = load(EXAMPLES / "refund.yaml")
    assert spec.initial_state.name == "draft"
    assert [s.name for s in spec.terminal_states] == ["paid", "rejected", "cancelled"]
    approve = next(t for t in spec.transitions if t.event == "approve")
    assert approve.index == 2
    assert approve.guard is not None
    assert approve.guard.text == "actor != requested_by"
    assert spec.location("transitions", 1, "guard").line == 41
    assert spec.error_target("approved") == "cancelled"
