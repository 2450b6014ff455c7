"""The README's Quick start, followed in order in a fresh clone: the demo, then the test
suite — which must not depend on what the demo (or a user) left in the checkout — and the
demo from any folder once railguard is installed."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from .conftest import ROOT

#: Set in the inner run, so the Quick start test never runs itself again.
INNER = "RAILGUARD_QUICKSTART_INNER"
#: Tests the inner ``pytest`` runs by default: those that look at the checkout, the examples
#: and the demo. ``RAILGUARD_QUICKSTART_FULL=1`` runs every test that is not slow instead.
CHECKOUT_TESTS = ("tests/test_runtime_cli.py", "tests/test_quality.py", "tests/test_examples.py")


def quick_start_commands() -> list[str]:
    """The two commands of the README's Quick start, as written."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    block = section.split("```bash", 1)[1].split("```", 1)[0]
    commands = [line.strip() for line in block.strip().splitlines() if line.strip()]
    assert len(commands) == 2, commands
    return commands


def fresh_environment(tmp_path: Path) -> dict[str, str]:
    """A new virtual environment whose dependencies come from this one (a ``.pth`` line), so
    nothing is downloaded; railguard itself is not visible in it until a command installs it."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", "--system-site-packages", str(venv)], check=True)
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    site = venv / "lib" / version / "site-packages"
    (site / "outer-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n", encoding="utf-8")
    # RAILGUARD_CI makes a run that deselects tests fail; the inner run selects a few on purpose.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "VIRTUAL_ENV", "PYTHON", "RAILGUARD_CI"))}
    env.update({
        "PATH": f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}",
        "VIRTUAL_ENV": str(venv),
        "PIP_NO_BUILD_ISOLATION": "0",  # build with this environment's setuptools, offline
        "PIP_NO_INDEX": "1",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        INNER: "1",
    })
    # `pip` in the new environment is the outer one's, run by the new interpreter
    (venv / "bin" / "pip").write_text(f"#!/bin/sh\nexec {venv / 'bin' / 'python'} -m pip \"$@\"\n", encoding="utf-8")
    (venv / "bin" / "pip").chmod(0o755)
    return env


def run(command: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(["bash", "-c", command], check=False, cwd=cwd, env=env, capture_output=True, text=True, timeout=3000)
    assert done.returncode == 0, f"`{command}` exited {done.returncode}\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    return done


@pytest.mark.slow
@pytest.mark.skipif(bool(os.environ.get(INNER)), reason="the Quick start test does not run inside itself")
@pytest.mark.skipif(shutil.which("git") is None, reason="git is needed to clone the checkout")
def test_the_quick_start_commands_in_order_in_a_fresh_clone(tmp_path: Path) -> None:
    clone = tmp_path / "railguard"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True, timeout=300)
    env = fresh_environment(tmp_path)
    first, second = quick_start_commands()

    demo = run(first, clone, env)
    assert (clone / "railguard-demo.db").is_file()  # the demo ran where the user stood
    assert "OK:" in demo.stdout

    # the packaged demo works from any folder once railguard is installed
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    run("railguard demo", elsewhere, env)
    assert (elsewhere / "railguard-demo.db").is_file()

    selected = "" if os.environ.get("RAILGUARD_QUICKSTART_FULL") else " ".join(CHECKOUT_TESTS)
    env["PYTEST_ADDOPTS"] = f"-q -x -m 'not slow' -p no:cacheprovider {selected}".strip()
    run(second, clone, env)
