"""The payload of a step's record rebuilt from its template's decoded skeleton is what decoding
its text gives: the same data, key order included, in containers of its own."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from railguard.runtime import Engine, ManualClock, SQLiteStore, StaticDirectory
from railguard.spec import loads
from tests.test_hotpath import GOLDEN_SPEC


def _layout(value: Any) -> Any:
    """``value`` with every mapping as its list of (key, value) pairs, in order."""
    if isinstance(value, dict):
        return [(k, _layout(v)) for k, v in value.items()]
    if isinstance(value, list):
        return [_layout(v) for v in value]
    return (type(value).__name__, value)


def _containers(value: Any) -> list[int]:
    if isinstance(value, dict):
        return [id(value), *(i for v in value.values() for i in _containers(v))]
    if isinstance(value, list):
        return [id(value), *(i for v in value for i in _containers(v))]
    return []


def test_a_rebuilt_step_payload_is_its_decoded_text_in_the_same_key_order_and_shares_no_container(tmp_path: Path) -> None:
    engine = Engine(loads(GOLDEN_SPEC), SQLiteStore(tmp_path / "s.db"), StaticDirectory({"c": ["client"]}), clock=ManualClock(), allow_unverified="payloads")
    engine.start("p", "c", {"payees": ["alice"], "limit": "100"})
    records = []
    for _ in range(3):
        records.extend(engine.fire("p", "tick", "c").records)
        records.extend(engine.fire("p", "note", "c", {"text": "h\u00e9 \"q\""}).records)
    assert engine._skeletons
    assert all(s is not None for s in engine._skeletons.values())
    seen = {i for skeleton in engine._skeletons.values() for i in _containers(skeleton)}
    for record in records:
        decoded = json.loads(record.payload_json())
        assert _layout(record.payload) == _layout(decoded)
        mine = _containers(record.payload)
        assert not seen & set(mine)
        seen.update(mine)
    assert records[-1].payload["params"] == {"text": "h\u00e9 \"q\""}
    assert [r.payload["after"]["values"]["n"] for r in records if r.payload["event"] == "tick"] == [1, 2, 3]
