"""One error boundary for every command, and one exception root for every layer.

Every exception class the layers and the facade define publicly derives from
:class:`railguard.spec.errors.RailguardError`; the runtime and plan-gate commands raise and
leave their errors to the boundary of :func:`railguard.cli.main`, so ``--debug`` shows the
traceback of an internal error there exactly as for the other commands."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from railguard.cli import main
from railguard.spec.errors import RailguardError

from .conftest import EXAMPLES, ROOT

REFUND = str(EXAMPLES / "refund.yaml")

# (folder in the checkout, the package it installs as)
PACKAGES = (
    ("railguard", "railguard"),
    ("spec", "railguard.spec"),
    ("spec/interop", "railguard.spec.interop"),
    ("verifier", "railguard.verifier"),
    ("runtime", "railguard.runtime"),
)


def _modules() -> list[ModuleType]:
    names: list[str] = []
    for folder, package in PACKAGES:
        for path in sorted((ROOT / folder).glob("*.py")):
            if path.stem != "__main__":
                names.append(package if path.stem == "__init__" else f"{package}.{path.stem}")
    return [importlib.import_module(name) for name in names]


def _exception_classes(module: ModuleType) -> dict[str, type[BaseException]]:
    """The exception classes ``module`` lists in ``__all__`` and the public ones it defines."""
    listed = {name: getattr(module, name) for name in getattr(module, "__all__", ())}  # lazy names too
    defined = {name: value for name, value in vars(module).items() if getattr(value, "__module__", None) == module.__name__ and not name.startswith("_")}
    return {
        f"{module.__name__}.{name}": value
        for name, value in {**defined, **listed}.items()
        if isinstance(value, type) and issubclass(value, BaseException)
    }


def test_every_public_exception_of_the_layers_and_the_facade_is_a_railguard_error() -> None:
    classes: dict[str, type[BaseException]] = {}
    for module in _modules():
        classes.update(_exception_classes(module))
    outside = sorted(name for name, cls in classes.items() if not issubclass(cls, RailguardError))
    assert outside == []
    # the walk reaches every layer (it is not vacuous), the classes once outside the root included
    for name in (
        "railguard.RailguardError",
        "railguard.spec.errors.LoadError",
        "railguard.verifier.counterexample.ReplayError",
        "railguard.verifier.budget.OutOfTime",
        "railguard.runtime.errors.ExecutionError",
        "railguard.runtime_cli.UsageError",
    ):
        assert name in classes


def test_a_replay_error_and_running_out_of_time_are_verifier_errors_that_say_what_happened() -> None:
    from railguard.verifier import VerifierError
    from railguard.verifier.budget import OutOfTime
    from railguard.verifier.counterexample import ReplayError

    assert issubclass(ReplayError, VerifierError)
    assert issubclass(OutOfTime, VerifierError)
    assert str(OutOfTime()) == "the wall-clock budget of the check is spent"


def _boom(*args: Any, **kwargs: Any) -> Any:
    raise ZeroDivisionError("division by zero")


# Each command and the helper it calls first that touches the outside world (the store, the
# spec file, the shipped examples): breaking that helper is an error railguard did not expect.
COMMANDS = [
    (["run", "start", REFUND, "--instance", "x", "--as", "sam", "--directory", "people.yaml", "--allow-unverified", "t"], "railguard.runtime_cli._store"),
    (["run", "fire", REFUND, "request", "--instance", "x", "--as", "sam", "--directory", "people.yaml"], "railguard.runtime_cli._store"),
    (["run", "show", "--instance", "x"], "railguard.runtime_cli._store"),
    (["worker", REFUND, "--allow-unverified", "t", "--once"], "railguard.runtime_cli._store"),
    (["audit", "verify"], "railguard.runtime_cli._store"),
    (["audit", "show"], "railguard.runtime_cli._store"),
    (["audit", "export"], "railguard.runtime_cli._store"),
    (["audit", "checkpoint", "-o", "head.json"], "railguard.runtime_cli._store"),
    (["audit", "prove", "x:1"], "railguard.runtime_cli._store"),
    (["replay", REFUND], "railguard.runtime_cli._store"),
    (["demo"], "railguard.runtime_cli._find_examples"),
    (["tools", REFUND], "railguard.gate_cli._load_spec"),
    (["admit", REFUND, "plan.json", "--actor", "alice"], "railguard.gate_cli._load_spec"),
]


@pytest.mark.parametrize(("argv", "broken"), COMMANDS, ids=[" ".join(a[:2]) for a, _ in COMMANDS])
def test_an_internal_error_in_a_runtime_or_gate_command_is_one_sentence_and_exit_two(
    argv: list[str], broken: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RAILGUARD_DEBUG", raising=False)
    module, _, name = broken.rpartition(".")
    monkeypatch.setattr(importlib.import_module(module), name, _boom)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.splitlines() == [
        "railguard: error: internal error (ZeroDivisionError: division by zero); this is a bug in "
        "railguard: please report it with the traceback that `railguard --debug` (or RAILGUARD_DEBUG=1) shows"
    ]


@pytest.mark.parametrize(("argv", "broken"), COMMANDS, ids=[" ".join(a[:2]) for a, _ in COMMANDS])
def test_debug_lets_an_internal_error_of_a_runtime_or_gate_command_through(
    argv: list[str], broken: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RAILGUARD_DEBUG", raising=False)
    module, _, name = broken.rpartition(".")
    monkeypatch.setattr(importlib.import_module(module), name, _boom)
    with pytest.raises(ZeroDivisionError, match="division by zero"):
        main(["--debug", *argv])


def _railguard(cwd: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "railguard", *argv],
        capture_output=True, text=True, cwd=cwd, check=False,
        env={"PATH": "/usr/bin:/bin", "NO_COLOR": "1"},
    )


def test_a_failing_runtime_command_shows_its_traceback_only_under_debug(tmp_path: Path) -> None:
    (tmp_path / "people.yaml").write_text("sam: [support]\n", encoding="utf-8")
    (tmp_path / "broken_effects.py").write_text(
        "def effects():\n    raise RuntimeError('the handlers could not be built')\n", encoding="utf-8"
    )
    argv = ["run", "start", REFUND, "--instance", "r1", "--as", "sam", "--directory", "people.yaml",
            "--effects", "broken_effects:effects", "--allow-unverified", "boundary test"]

    plain = _railguard(tmp_path, *argv)
    assert plain.returncode == 2
    assert plain.stderr.splitlines() == [
        "railguard: error: internal error (RuntimeError: the handlers could not be built); this is a bug in "
        "railguard: please report it with the traceback that `railguard --debug` (or RAILGUARD_DEBUG=1) shows"
    ]

    debug = _railguard(tmp_path, "--debug", *argv)
    assert debug.returncode == 1  # the exception propagated: Python printed it and exited 1
    lines = debug.stderr.splitlines()
    assert lines[0] == "Traceback (most recent call last):"
    assert lines[-1] == "RuntimeError: the handlers could not be built"
    assert any("broken_effects.py" in line for line in lines)


def test_debug_leaves_an_expected_runtime_error_one_sentence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["--debug", "replay", "missing.yaml"]) == 2
    assert capsys.readouterr().err.splitlines() == ["railguard: error: no spec file `missing.yaml`"]
