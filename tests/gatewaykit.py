"""Shared pieces of the gateway's end-to-end tests: a folder with the refund spec's signed
certificate, a trusted key, a directory with token digests and an effects module; the
``railguard serve`` command line for it; and an HTTP server run in a subprocess."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from railguard.runtime.gateway import token_digest
from railguard.spec import load
from railguard.verifier.certificate import issue, sign
from railguard.verifier.checks import verify
from railguard.verifier.keys import generate_key, write_key_pair

from .conftest import EXAMPLES

REFUND = EXAMPLES / "refund.yaml"
#: principal → (roles, bearer token or None)
PEOPLE: dict[str, tuple[list[str], str | None]] = {
    "alice": (["support"], "tok-alice-7f3a"),
    "bob": (["manager"], "tok-bob-91c2"),
    "carol": (["payments"], "tok-carol-44d0"),
    "dana": (["support", "manager"], "tok-dana-0b5e"),
    "erin": (["manager", "payments"], None),
}

EFFECTS = '''
from railguard.runtime import Effects

effects = Effects()
effects.register("payments.refund", lambda call: {"refund_id": "re-" + call.instance, "amount": call.values["amount"]})
'''


def make_folder(place: Path) -> Path:
    """Write the certificate, key, directory and effects module into ``place``."""
    spec = load(REFUND)
    key = generate_key()
    write_key_pair(key, place / "ci.key")
    (place / "refund.cert.json").write_text(sign(issue(verify(spec)), key).dumps(), encoding="utf-8")
    lines = []
    for name, (roles, token) in PEOPLE.items():
        tokens = f", tokens: ['{token_digest(token)}']" if token else ""
        lines.append(f"{name}: {{roles: [{', '.join(roles)}]{tokens}}}")
    (place / "people.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (place / "gw_effects.py").write_text(EFFECTS, encoding="utf-8")
    return place


def serve_args(db: str, *extra: str) -> list[str]:
    """``python -m railguard serve`` for the refund spec on the SQLite file ``db``."""
    return [
        "-m", "railguard", "serve", str(REFUND), "--db", db, "--directory", "people.yaml",
        "--effects", "gw_effects:effects", "--certificate", "refund.cert.json", "--trust", "ci.key.pub", *extra,
    ]


def environment() -> dict[str, str]:
    """The environment a server subprocess runs in (this interpreter's, unbuffered)."""
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True)
class HttpServer:
    url: str
    db: Path
    process: Any


@contextmanager
def http_server(folder: Path, db: Path, *extra: str) -> Iterator[HttpServer]:
    """``railguard serve --transport http`` on a free port of 127.0.0.1, until the block ends."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, *serve_args(str(db), "--transport", "http", "--port", str(port), *extra)],
        cwd=folder, env=environment(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise AssertionError(f"the server exited: {process.stderr.read().decode()}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield HttpServer(f"http://127.0.0.1:{port}/mcp", db, process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stderr is not None:
            process.stderr.close()


def token(principal: str) -> str:
    found = PEOPLE[principal][1]
    assert found is not None
    return found
