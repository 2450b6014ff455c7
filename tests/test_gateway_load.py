"""Load on the gateway (``benchmarks/bench_gateway.py``): eight concurrent MCP client
sessions making 200 calls each, through two server processes on one SQLite store and on one
PostgreSQL store. No step is lost or duplicated, each shared instance is approved exactly
once, every refusal is answered with a code and a sentence, and every audit chain verifies."""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType

import pytest

from .conftest import ROOT


def _bench() -> ModuleType:
    found = importlib.util.spec_from_file_location("bench_gateway", ROOT / "benchmarks" / "bench_gateway.py")
    assert found is not None
    assert found.loader is not None
    if "bench_gateway" in sys.modules:
        return sys.modules["bench_gateway"]
    module = importlib.util.module_from_spec(found)
    sys.modules["bench_gateway"] = module  # dataclasses look their module up by name
    found.loader.exec_module(module)
    return module


def _postgres_missing() -> str | None:
    import psycopg

    try:
        with psycopg.connect(_bench().PG_DSN, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        return f"no PostgreSQL server: {str(exc).strip().splitlines()[0]}"
    return None


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_eight_sessions_of_two_hundred_calls_lose_and_duplicate_no_step_and_every_chain_verifies(kind: str) -> None:
    if kind == "postgres" and (reason := _postgres_missing()) is not None:
        pytest.skip(reason)
    report = _bench().run(kind, sessions=8, calls=200)
    assert report.problems == []
    assert report.calls == 1600
    assert report.codes() == {"guard-false": 320, "not-enabled": 280}
    assert sum(1 for call in report.answers if not call.is_error) == 1600 - 600
