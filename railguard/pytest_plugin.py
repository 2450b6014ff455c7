"""The railguard pytest plugin (entry point ``pytest11``): fixtures that load specs, build
engines and run conformance tests, and a coverage report of what the tests exercised.

Fixtures:

- ``railguard_spec(path)`` loads a spec (``railguard.spec.load``).
- ``railguard_engine(spec, principals=None)`` builds an :class:`~railguard.runtime.Engine` on an
  in-memory SQLite store with recording effect handlers (unverified, with a written reason).
- ``railguard_conformance(spec, factory=None, **options)`` runs
  :func:`railguard.verifier.conformance.check_conformance` against ``factory``'s adapters (the
  runtime itself by default, :class:`RuntimeAdapter`) and records coverage.
- ``railguard_coverage`` is the session's :class:`Coverage`.

Options: ``--railguard-coverage`` prints, per spec, the share of states, transitions and guard
outcomes (true and false) that the tests exercised and names each one missed;
``--railguard-coverage-fail-under=PCT`` fails the session below that total;
``--railguard-coverage-json=FILE`` writes the report as data. A missed item that the verifier
proves cannot happen (a state or transition no reachable configuration allows, or a guard that
is never false where its transition could be taken) is listed as infeasible and leaves the
denominator; one it cannot decide stays missed.

hypothesis is imported only when a conformance test runs (install ``railguard[testing]``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from railguard.spec import Spec, load
from railguard.spec.types import Value

if TYPE_CHECKING:
    from railguard.runtime import Engine
    from railguard.verifier.conformance import Adapter, Outcome
    from railguard.verifier.strategies import Action

__all__ = ["Coverage", "CoverageReport", "MemoryAdapter", "RuntimeAdapter", "SpecCoverage"]

_COVERAGE = pytest.StashKey["Coverage"]()


# --------------------------------------------------------------------------- coverage


@dataclass
class SpecCoverage:
    """What the tests exercised of one spec."""

    spec: Spec
    states: set[str] = field(default_factory=set)
    transitions: set[int] = field(default_factory=set)
    guards: set[tuple[int, bool]] = field(default_factory=set)

    def record(self, action: Action, outcome: Outcome, before: str) -> None:
        """Record one step (the ``on_step`` callback of a conformance machine)."""
        self.states.add(before)
        if outcome.transition is not None:
            self.transitions.add(outcome.transition)
            self.states.add(self.spec.transitions[outcome.transition - 1].target)
        elif outcome.accepted and action.kind == "error":
            target = self.spec.error_target(before)
            if target is not None:
                self.states.add(target)
        for guard in outcome.guards:
            self.guards.add((guard.transition, guard.value))

    def items(self) -> list[tuple[str, str, bool]]:
        """Every item as ``(kind, name, exercised)``."""
        spec = self.spec
        out = [("state", s.name, s.name in self.states or s.initial) for s in spec.states]
        out += [("transition", t.label, t.index in self.transitions) for t in spec.transitions]
        for t in spec.transitions:
            if t.guard is not None:
                for value in (True, False):
                    out.append(("guard", f"{t.label} guard `{t.guard.text}` {str(value).lower()}", (t.index, value) in self.guards))
        return out


@dataclass(frozen=True, slots=True)
class CoverageReport:
    """One spec's coverage: the items exercised, the ones missed, and the ones the verifier
    proved infeasible (left out of ``percent``)."""

    spec: str
    exercised: tuple[str, ...]
    missed: tuple[str, ...]
    infeasible: tuple[str, ...]

    @property
    def percent(self) -> float:
        total = len(self.exercised) + len(self.missed)
        return 100.0 if total == 0 else 100.0 * len(self.exercised) / total

    def to_data(self) -> dict[str, Any]:
        return {"spec": self.spec, "percent": round(self.percent, 2), "exercised": list(self.exercised), "missed": list(self.missed), "infeasible": list(self.infeasible)}


class Coverage:
    """The session's coverage, by spec content hash."""

    def __init__(self) -> None:
        self.by_spec: dict[str, SpecCoverage] = {}

    def of(self, spec: Spec) -> SpecCoverage:
        found = self.by_spec.get(spec.content_hash)
        if found is None:
            found = self.by_spec[spec.content_hash] = SpecCoverage(spec)
        return found

    def reports(self, *, prove: bool = True) -> list[CoverageReport]:
        """A report per spec; with ``prove``, missed items are checked for feasibility (Z3)."""
        out = []
        for covered in self.by_spec.values():
            items = covered.items()
            missed = [(kind, name) for kind, name, done in items if not done]
            infeasible = _infeasible(covered, missed) if prove and missed else set()
            out.append(CoverageReport(
                covered.spec.name,
                tuple(name for _, name, done in items if done),
                tuple(name for kind, name in missed if name not in infeasible),
                tuple(name for _, name in missed if name in infeasible),
            ))
        return sorted(out, key=lambda r: r.spec)

    def total(self, reports: list[CoverageReport]) -> float:
        done = sum(len(r.exercised) for r in reports)
        total = done + sum(len(r.missed) for r in reports)
        return 100.0 if total == 0 else 100.0 * done / total


def _infeasible(covered: SpecCoverage, missed: list[tuple[str, str]]) -> set[str]:
    """The missed items the verifier proves can never be exercised: unreachable states (RG401),
    dead transitions (RG402), and guards never false where their transition's source is
    reachable (a probe transition guarded by the negation is dead)."""
    from railguard.spec import load_data
    from railguard.verifier import verify

    spec = covered.spec
    document = spec.to_dict()
    probes: dict[str, str] = {}
    by_label = {t.label: t for t in spec.transitions}
    for kind, name in missed:
        if kind != "guard" or not name.endswith(" false"):
            continue
        transition = by_label[name.split(" guard ")[0]]
        assert transition.guard is not None
        event = f"probe_{transition.index}"
        body: dict[str, Any] = {"event": event, "from": list(transition.sources), "to": "probe_sink", "permission": transition.permission, "guard": f"not ({transition.guard.text})"}
        if transition.params:
            body["params"] = document["transitions"][transition.index - 1].get("params", {})
        document["transitions"].append(body)
        probes[f"transition {len(document['transitions'])} (`{event}`)"] = name
    if probes:
        document["states"]["probe_sink"] = {"terminal": "success"}
    report = verify(load_data(document))
    out: set[str] = set()
    for result in report.results:
        if result.outcome != "violated":
            continue
        if result.rule.id == "RG401" and ("state", result.subject) in missed:
            out.add(result.subject)
        elif result.rule.id == "RG402":
            if result.subject in probes:
                out.add(probes[result.subject])
            elif ("transition", result.subject) in missed:
                out.add(result.subject)
    return out


# --------------------------------------------------------------------------- the runtime as an implementation


class RuntimeAdapter:
    """railguard's own engine as an implementation under test: an in-memory SQLite store,
    ``principals`` as the directory, effect handlers that succeed and record compensations."""

    def __init__(self, spec: Spec, principals: Mapping[str, Any] | None = None, *, context: Mapping[str, Value] | None = None) -> None:
        from railguard.runtime import Effects, Engine, SQLiteStore, StaticDirectory

        self.spec = spec
        directory = {name: list(roles) for name, roles in (principals or {}).items()}
        directory.setdefault("operator", ["operator"])
        self.ran: list[str] = []
        effects = Effects()
        for t in spec.transitions:
            if t.effect is not None:
                effects.register(t.effect, lambda call: {"ok": True})
            if t.compensate is not None:
                effects.register(t.compensate, self._compensate)
        self.engine: Engine = Engine(spec, SQLiteStore(":memory:"), StaticDirectory(directory), effects=effects, allow_unverified="conformance test")
        self.engine.start("conformance", "operator", context)

    def _compensate(self, call: Any) -> dict[str, bool]:
        self.ran.append(call.effect)
        return {"ok": True}

    def fire(self, event: str, actor: str, roles: frozenset[str], params: Mapping[str, Value]) -> bool:
        return self.engine.fire("conformance", event, actor, params).accepted

    def state(self) -> str:
        return self.engine.get("conformance").state

    def variables(self) -> Mapping[str, Any]:
        return self.engine.get("conformance").values

    def error(self) -> None:
        self.engine.abort("conformance", "operator", "conformance test: error exit")

    def compensations(self) -> list[str]:
        return list(self.ran)


class MemoryAdapter:
    """The runtime's step semantics without storage (:class:`~railguard.runtime.MemoryMachine`):
    fast, for long runs; it has no effects, so no error exit and no compensations."""

    def __init__(self, spec: Spec, principals: Mapping[str, Any] | None = None, *, context: Mapping[str, Value] | None = None) -> None:
        from railguard.runtime import MemoryMachine, StaticDirectory

        self.machine = MemoryMachine(spec, StaticDirectory({n: list(r) for n, r in (principals or {}).items()}), context)

    def fire(self, event: str, actor: str, roles: frozenset[str], params: Mapping[str, Value]) -> bool:
        from railguard.spec.semantics import Fired

        return isinstance(self.machine.fire(event, actor, params), Fired)

    def state(self) -> str:
        return self.machine.state

    def variables(self) -> Mapping[str, Any]:
        return self.machine.values


# --------------------------------------------------------------------------- pytest hooks


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("railguard", "railguard specs")
    group.addoption("--railguard-coverage", action="store_true", default=False,
                    help="report which states, transitions and guard outcomes of each spec the tests exercised")
    group.addoption("--railguard-coverage-fail-under", type=float, default=None, metavar="PCT",
                    help="fail if the total railguard coverage is below PCT")
    group.addoption("--railguard-coverage-json", default=None, metavar="FILE",
                    help="write the railguard coverage report to FILE as JSON")


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_COVERAGE] = Coverage()


def _wanted(config: pytest.Config) -> bool:
    return bool(config.getoption("--railguard-coverage") or config.getoption("--railguard-coverage-fail-under") is not None
                or config.getoption("--railguard-coverage-json"))


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    if not _wanted(config):
        return
    coverage = config.stash[_COVERAGE]
    reports = coverage.reports()
    total = coverage.total(reports)
    write = terminalreporter.write_line
    terminalreporter.section("railguard coverage")
    for report in reports:
        write(f"{report.spec}: {report.percent:.1f}% ({len(report.exercised)} of {len(report.exercised) + len(report.missed)} items)")
        for name in report.missed:
            write(f"  missed: {name}")
        for name in report.infeasible:
            write(f"  infeasible (proved): {name}")
    write(f"total: {total:.1f}%")
    path = config.getoption("--railguard-coverage-json")
    if path:
        Path(path).write_text(json.dumps({"total": round(total, 2), "specs": [r.to_data() for r in reports]}, indent=2), encoding="utf-8")
    config.stash[_TOTAL] = total


_TOTAL = pytest.StashKey[float]()


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    limit = config.getoption("--railguard-coverage-fail-under")
    if limit is None:
        return
    coverage = config.stash[_COVERAGE]
    total = config.stash.get(_TOTAL, None)
    if total is None:
        total = coverage.total(coverage.reports())
    if total < limit and session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def railguard_coverage(request: pytest.FixtureRequest) -> Coverage:
    """The session's coverage record."""
    return request.config.stash[_COVERAGE]


@pytest.fixture
def railguard_spec() -> Callable[[str | Path], Spec]:
    """``railguard_spec(path)`` loads a spec."""
    return load


@pytest.fixture
def railguard_engine() -> Iterator[Callable[..., Engine]]:
    """``railguard_engine(spec, principals=None)``: an engine on an in-memory store."""

    def build(spec: Spec, principals: Mapping[str, Any] | None = None) -> Engine:
        return RuntimeAdapter(spec, principals).engine

    yield build


@pytest.fixture
def railguard_conformance(railguard_coverage: Coverage) -> Callable[..., None]:
    """``railguard_conformance(spec, factory=None, **options)``: the conformance test of
    ``factory``'s adapters (``None`` or ``"runtime"``: the engine; ``"memory"``: the in-memory
    machine), recording coverage; ``options`` go to ``check_conformance``."""

    def run(spec: Spec, factory: Callable[[], Adapter] | str | None = None, **options: Any) -> None:
        from railguard.verifier.conformance import check_conformance
        from railguard.verifier.strategies import default_principals

        principals = options.get("principals") or default_principals(spec)
        options["principals"] = principals
        make: Callable[[], Adapter]
        if factory == "memory":
            make = lambda: MemoryAdapter(spec, principals)  # noqa: E731
        elif factory is None or factory == "runtime":
            make = lambda: RuntimeAdapter(spec, principals)  # noqa: E731
        elif isinstance(factory, str):
            raise ValueError(f"unknown implementation `{factory}`: give an adapter factory, `runtime` or `memory`")
        else:
            make = factory
        covered = railguard_coverage.of(spec)
        check_conformance(spec, make, on_step=covered.record, **options)

    return run
