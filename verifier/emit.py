"""Counterexamples and witnesses become tests: ``railguard check SPEC --emit-tests DIR``.

For every result of a report that carries a run (a counterexample of a violated property, a
witness of a reachable state or a live transition), :func:`emit_tests` writes

- ``test_<spec>_<rule>_<n>.py``: a pytest file that replays the run against the runtime — or
  against a user's implementation when ``RAILGUARD_ADAPTER=module:factory`` is set (``factory(spec,
  principals)`` returns an adapter of :mod:`railguard.verifier.conformance`) — and checks at
  each step that it is accepted and ends in the state and variables the run shows; a final
  violating step must do what the reference semantics says (fire, or be refused);
- ``<spec>_<rule>_<n>.trace.json``: the same run as a trace for ``railguard render --trace``.

The test passes while the implementation reproduces the run; it fails the day it does not
(a changed spec, a regression in the runtime, or an implementation that disagrees). A run with a
timeout step needs the system to fire it: with an adapter that has no ``timeout(event)``, its
test is skipped, with the reason.

This module does not import hypothesis or the runtime; the emitted files import the runtime.
"""

from __future__ import annotations

import json
import os
import pprint
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from railguard.spec import Spec
from railguard.spec.codec import decode_params, encode_value
from railguard.spec.semantics import Fired, fire

from .counterexample import Counterexample
from .results import Report

__all__ = ["emit_tests", "replay_run", "trace_of"]


def trace_of(spec: Spec, cex: Counterexample) -> dict[str, Any]:
    """The run as a trace (``start`` and ``steps`` with ``event``, ``from``, ``to``) that
    :func:`railguard.spec.diagram.trace_from_data` reads."""
    state = spec.initial_state.name
    steps: list[dict[str, Any]] = []
    for step in cex.steps:
        steps.append({"event": step.event, "from": state, "to": step.state})
        state = step.state
    if cex.final is not None:
        steps.append({"event": cex.final.event, "from": state, "to": cex.final.state})
    return {"start": spec.initial_state.name, "steps": steps}


def _slug(text: str) -> str:
    return re.sub(r"[^0-9a-zA-Z]+", "_", text).strip("_").lower()[:60] or "run"


def emit_tests(report: Report, directory: str | os.PathLike[str], spec_path: str | os.PathLike[str]) -> list[Path]:
    """Write a pytest file and a trace file for every run in ``report`` (see the module
    docstring) into ``directory``; return the paths written, tests first in each pair."""
    out_dir = Path(directory)
    out_dir.mkdir(parents=True, exist_ok=True)
    spec = report.spec
    written: list[Path] = []
    counts: dict[str, int] = {}
    for result in report.results:
        for kind, cex in (("counterexample", result.counterexample), ("witness", result.witness)):
            if cex is None:
                continue
            key = f"{_slug(spec.name)}_{result.rule.id.lower()}"
            counts[key] = counts.get(key, 0) + 1
            stem = f"{key}_{counts[key]}"
            trace = out_dir / f"{stem}.trace.json"
            trace.write_text(json.dumps(trace_of(spec, cex), indent=2) + "\n", encoding="utf-8")
            test = out_dir / f"test_{stem}.py"
            test.write_text(_test_source(spec_path, cex, kind, result.rule.id, result.subject, stem), encoding="utf-8")
            written += [test, trace]
    return written


def _test_source(spec_path: str | os.PathLike[str], cex: Counterexample, kind: str, rule: str, subject: str, stem: str) -> str:
    plan = cex.to_plan()
    plan["kinds"] = [s.kind for s in cex.steps] + ([cex.final.kind] if cex.final is not None else [])
    rendered = pprint.pformat(plan, indent=4, width=96, sort_dicts=False)
    what = f"the {kind} of {rule} for {subject}".replace('"', "'")
    return f'''"""Replays {what} (written by `railguard check --emit-tests`)."""

import importlib
import os

from railguard.spec import load
from railguard.verifier.emit import replay_run

SPEC = {str(Path(spec_path).resolve())!r}
RUN = {rendered}


def _factory(spec, principals):
    reference = os.environ.get("RAILGUARD_ADAPTER")
    if reference:
        module, _, name = reference.partition(":")
        return getattr(importlib.import_module(module), name)(spec, principals)
    from railguard.pytest_plugin import RuntimeAdapter

    return RuntimeAdapter(spec, principals)


def test_{_slug(stem)}_replays():
    replay_run(load(SPEC), RUN, _factory)
'''


def replay_run(spec: Spec, run: Mapping[str, Any], factory: Callable[[Spec, Mapping[str, list[str]]], Any]) -> None:
    """Replay an emitted run against ``factory(spec, principals)``'s adapter; raise
    ``AssertionError`` naming the first step where it differs from the run."""
    principals = {name: list(roles) for name, roles in run.get("principals", {}).items()}
    adapter = factory(spec, principals)
    kinds: list[str] = list(run.get("kinds", []))
    state = spec.initial_state.name
    values: dict[str, Any] = spec.initial_values()
    values.update(run.get("context", {}))
    for number, step in enumerate(run["steps"], 1):
        kind = kinds[number - 1] if number <= len(kinds) else "transition"
        event = step["event"]
        params = decode_params(spec, event, step.get("params", {}))
        if kind == "error":
            adapter.error()
            state = step["to"]
        elif kind == "timeout":
            timeout = getattr(adapter, "timeout", None)
            if timeout is None:
                import pytest

                pytest.skip(f"step {number} is a timeout (`{event}`), which this adapter cannot fire")
            timeout(event)
        else:
            roles = frozenset(principals.get(step["actor"], ()))
            expected = fire(spec, state, values, event, step["actor"], roles, params)
            accepted = adapter.fire(event, step["actor"], roles, params)
            assert accepted == isinstance(expected, Fired), f"step {number} (`{event}`): accepted={accepted}, the spec says {'fire' if isinstance(expected, Fired) else 'refuse'}"
            if isinstance(expected, Fired):
                state, values = expected.target, dict(expected.values)
        if step.get("violation"):
            continue
        seen = adapter.state()
        assert seen == step["to"], f"step {number} (`{event}`): state `{seen}`, the run shows `{step['to']}`"
        got = {k: encode_value(v) for k, v in adapter.variables().items()}
        want = {k: encode_value(v) for k, v in step["values"].items()}
        assert got == want, f"step {number} (`{event}`): variables {got}, the run shows {want}"
        values = dict(spec.initial_values())
        values.update(adapter.variables())
