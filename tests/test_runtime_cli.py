"""The runtime's command line: run start/fire/show, worker, audit verify/show/export, replay
and the demo — asserting on the database, not on printed text — and tamper evidence for every
field of every record of the demo's audit log."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from railguard._cliutil import run_command
from railguard.runtime import AuditRecord, Engine, SQLiteStore, StaticDirectory, verify_chain
from railguard.runtime_cli import DEMO_DB, add_commands, certificate_gate
from railguard.spec import load
from railguard.verifier import verify

from .conftest import EXAMPLES, ROOT

REFUND = str(EXAMPLES / "refund.yaml")
ORDER = str(EXAMPLES / "order.yaml")


def cli(*argv: str) -> int:
    """Run a runtime command inside the error boundary of ``railguard.cli.main``."""
    parser = argparse.ArgumentParser(prog="railguard")
    add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return run_command(args.func, args)


@pytest.fixture
def place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working folder with a directory of principals and effect handlers to import."""
    (tmp_path / "people.yaml").write_text(
        "sam: [support]\nmia: [manager]\nmax: [support, manager]\npay: [payments]\ncus: [customer]\nbot: [system]\n",
        encoding="utf-8",
    )
    (tmp_path / "cli_effects_fixture.py").write_text(
        "from railguard.runtime import Effects\n"
        "CALLS = []\n"
        "def _handler(call):\n"
        "    CALLS.append(call.key)\n"
        "    return {'ok': call.effect}\n"
        "def effects():\n"
        "    registry = Effects()\n"
        "    for name in ['payments.refund', 'payments.charge', 'inventory.reserve', 'inventory.release', 'shipping.dispatch']:\n"
        "        registry.register(name, _handler)\n"
        "    return registry\n",
        encoding="utf-8",
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.delitem(sys.modules, "cli_effects_fixture", raising=False)
    return tmp_path


def run(*argv: str, db: str = "r.db") -> int:
    verb = argv[1] if argv[0] == "run" else ""
    extra = ["--db", db, "--allow-unverified", "cli tests"]
    if verb in ("start", "fire"):
        extra += ["--directory", "people.yaml"]
    if verb == "fire":
        extra += ["--effects", "cli_effects_fixture:effects"]
    return cli(*argv, *extra)


def show(instance: str, db: str = "r.db", capsys: pytest.CaptureFixture[str] | None = None) -> dict[str, Any]:
    assert capsys is not None
    capsys.readouterr()
    assert cli("run", "show", "--instance", instance, "--db", db, "--format", "json") == 0
    shown: dict[str, Any] = json.loads(capsys.readouterr().out)
    return shown


# ---------------------------------------------------------------------- run


def test_start_fire_show_round_trip(place: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run("run", "start", REFUND, "--instance", "r1", "--as", "sam") == 0
    assert run("run", "fire", REFUND, "--instance", "r1", "request", "--as", "sam", "--params", '{"amount": 120}') == 0
    assert run("run", "fire", REFUND, "--instance", "r1", "approve", "--as", "sam") == 1  # refused
    assert run("run", "fire", REFUND, "--instance", "r1", "approve", "--as", "mia") == 0
    assert show("r1", capsys=capsys)["state"] == "approved"
    assert run("run", "fire", REFUND, "--instance", "r1", "pay", "--as", "pay", "--format", "json") == 0
    fired = json.loads(capsys.readouterr().out)
    assert (fired["accepted"], fired["state"], fired["records"]) == (True, "paid", [5, 6])
    shown = show("r1", capsys=capsys)
    assert {k: shown[k] for k in ("workflow", "state", "status", "version", "owed")} == {
        "workflow": "refund", "state": "paid", "status": "done", "version": 6, "owed": [],
    }
    assert shown["values"] == {"amount": 120, "requested_by": "sam", "approved_by": "mia"}
    with SQLiteStore(place / "r.db") as store:
        kinds = [(r.kind, r.payload.get("actor")) for r in store.audit("r1")]
        start = store.audit("r1")[0].payload
    assert kinds == [("start", "sam"), ("step", "sam"), ("refusal", "sam"), ("step", "mia"), ("effect-call", "pay"), ("step", "pay")]
    assert start["certificate"] == {"verified": False, "opt_out": "cli tests"}
    assert cli("run", "show", "--instance", "r1", "--db", "r.db") == 0
    assert "paid (done)" in capsys.readouterr().out


def test_run_start_with_a_certificate_and_context(place: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from railguard.verifier.certificate import issue, sign
    from railguard.verifier.keys import generate_key, write_key_pair

    spec = load(ORDER)
    key = generate_key()
    write_key_pair(key, place / "ci.key")
    (place / "order.cert.json").write_text(sign(issue(verify(spec)), key).dumps(), encoding="utf-8")
    # deny by default: a signed certificate without a trusted key admits nothing
    assert cli("run", "start", ORDER, "--instance", "o0", "--as", "cus", "--db", "o.db", "--certificate", "order.cert.json", "--directory", "people.yaml") == 2
    assert "no trusted keys are configured" in capsys.readouterr().err
    assert cli("run", "start", ORDER, "--instance", "o1", "--as", "cus", "--db", "o.db", "--certificate", "order.cert.json", "--trust", "ci.key.pub", "--directory", "people.yaml") == 0
    with SQLiteStore(place / "o.db") as store:
        start = store.audit("o1")[0].payload
    assert start["certificate"]["verified"] is True
    assert start["certificate"]["key_id"] == key.id
    assert start["roles"] == ["customer"]
    capsys.readouterr()
    # a certificate of another spec does not admit this one
    assert cli("run", "start", REFUND, "--instance", "r1", "--as", "sam", "--db", "o.db", "--certificate", "order.cert.json", "--directory", "people.yaml") == 2
    assert "does not admit spec `refund`" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["run", "start", "missing.yaml", "--instance", "x", "--as", "sam", "--allow-unverified", "t", "--directory", "people.yaml"], "no spec file `missing.yaml`"),
        (["run", "start", REFUND, "--instance", "x", "--as", "sam", "--directory", "people.yaml"], "has no certificate"),
        (["run", "start", REFUND, "--instance", "x", "--as", "sam", "--allow-unverified", "t", "--context", "[1]", "--directory", "people.yaml"], "--context must be a JSON object"),
        (["run", "start", REFUND, "--instance", "x", "--as", "system", "--allow-unverified", "t", "--directory", "people.yaml"], "authenticated principal"),
        (["run", "start", REFUND, "--instance", "x", "--as", "sam", "--allow-unverified", "t", "--context", '{"a": 1, "a": 2}', "--directory", "people.yaml"], "--context repeats the key `a`"),
        (["run", "start", REFUND, "--instance", "x", "--as", "sam", "--allow-unverified", "t", "--context", '{"a": "\\ud800"}', "--directory", "people.yaml"], "--context has text that is not valid Unicode"),
        (["run", "fire", REFUND, "request", "--instance", "x", "--as", "sam", "--directory", "people.yaml", "--allow-unverified", "t"], "no database `railguard.db`"),
        (["run", "start", REFUND, "--instance", "x", "--as", "sam", "--certificate", "nope.json", "--directory", "people.yaml"], "cannot read the certificate"),
        (["run", "show", "--instance", "x", "--db", "people.yaml"], "cannot open the SQLite store"),
        (["audit", "verify", "nowhere.db"], "no database `nowhere.db`"),
        (["replay", REFUND, "--db", "nowhere.db"], "no database `nowhere.db`"),
        (["worker", REFUND, "--allow-unverified", "t", "--once", "--db", "w.db"], "payments.refund"),
    ],
)
def test_errors_are_one_sentence_and_exit_two(place: Path, capsys: pytest.CaptureFixture[str], argv: list[str], words: str) -> None:
    assert cli(*argv) == 2
    err = capsys.readouterr().err
    assert words in err
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in err


def test_fire_errors_exit_two(place: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run("run", "start", REFUND, "--instance", "r1", "--as", "sam") == 0
    capsys.readouterr()
    assert run("run", "fire", REFUND, "--instance", "r1", "request", "--as", "sam", "--params", "{amount: 1}") == 2
    assert "--params is not valid JSON" in capsys.readouterr().err
    assert run("run", "fire", REFUND, "--instance", "nope", "request", "--as", "sam") == 2
    assert "no instance `nope`" in capsys.readouterr().err
    # an event that calls no effect needs no handlers; one that does, needs its own
    assert cli("run", "fire", REFUND, "pay", "--instance", "r1", "--as", "pay", "--db", "r.db", "--directory", "people.yaml", "--allow-unverified", "t") == 2
    assert "uses effect `payments.refund`, which has no handler: give --effects MODULE:NAME" in capsys.readouterr().err
    assert cli("run", "fire", REFUND, "request", "--instance", "r1", "--as", "sam", "--db", "r.db", "--directory", "people.yaml", "--allow-unverified", "t", "--params", '{"amount": 12}') == 0
    assert cli("run", "fire", ORDER, "place", "--instance", "r1", "--as", "sam", "--db", "r.db", "--directory", "people.yaml", "--allow-unverified", "t", "--effects", "cli_effects_fixture:effects") == 2
    assert "runs workflow `refund`, not `order`" in capsys.readouterr().err


# ---------------------------------------------------------------------- audit


def _refund_db(place: Path) -> Path:
    assert run("run", "start", REFUND, "--instance", "r1", "--as", "sam") == 0
    assert run("run", "fire", REFUND, "--instance", "r1", "request", "--as", "sam", "--params", '{"amount": 120}') == 0
    assert run("run", "fire", REFUND, "--instance", "r1", "approve", "--as", "mia") == 0
    assert run("run", "start", REFUND, "--instance", "r2", "--as", "max") == 0
    return place / "r.db"


def _tamper(db: Path, instance: str, seq: int, change: Any) -> None:
    """What an attacker with the file can do: drop the append-only trigger, edit a record."""
    with sqlite3.connect(db) as conn:
        conn.execute("DROP TRIGGER audit_append_only_update")
        (payload,) = conn.execute("SELECT payload FROM audit WHERE instance = ? AND seq = ?", (instance, seq)).fetchone()
        data = json.loads(payload)
        change(data)
        conn.execute("UPDATE audit SET payload = ? WHERE instance = ? AND seq = ?", (json.dumps(data), instance, seq))


def test_audit_verify_is_ok_then_names_the_tampered_record(place: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = _refund_db(place)
    capsys.readouterr()
    assert cli("audit", "verify", str(db)) == 0
    assert "OK: 4 records of 2 instances" in capsys.readouterr().out
    _tamper(db, "r1", 2, lambda p: p["after"]["values"].update(amount=5000))
    assert cli("audit", "verify", str(db)) == 1
    out = capsys.readouterr().out.strip()
    assert out == "audit: TAMPERED: instance `r1`, record 2: its contents do not match its hash"
    # replay finds the same record, by the meaning of what changed
    assert cli("replay", REFUND, "--db", str(db), "--instance", "r1") == 1
    assert "record 2 (step)" in capsys.readouterr().out


def test_audit_verify_finds_removed_records_and_unreadable_payloads(place: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = _refund_db(place)
    with sqlite3.connect(db) as conn:
        conn.execute("DROP TRIGGER audit_append_only_delete")
        conn.execute("DELETE FROM audit WHERE instance = 'r1' AND seq = 3")
    assert cli("audit", "verify", str(db)) == 1
    assert "instance `r1`, record 3: it is missing" in capsys.readouterr().out
    with sqlite3.connect(db) as conn:
        conn.execute("DROP TRIGGER audit_append_only_update")
        conn.execute("UPDATE audit SET payload = '{not json' WHERE instance = 'r2' AND seq = 1")
    assert cli("audit", "verify", str(db)) == 1
    assert "instance `r2`, record 1: its payload is not valid JSON" in capsys.readouterr().out


def test_audit_export_is_json_lines_that_verify_offline(place: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = _refund_db(place)
    assert cli("audit", "export", str(db), "-o", "log.jsonl") == 0
    lines = (place / "log.jsonl").read_text(encoding="utf-8").splitlines()
    objects = [json.loads(line) for line in lines]
    assert len(objects) == 4
    assert all(set(o) == {"instance", "seq", "payload", "prev_hash", "hash"} for o in objects)
    records = [AuditRecord(o["instance"], o["seq"], o["payload"], o["prev_hash"], o["hash"]) for o in objects]
    assert verify_chain(records) is None
    capsys.readouterr()
    assert cli("audit", "export", str(db), "--instance", "r2") == 0
    assert [json.loads(line)["instance"] for line in capsys.readouterr().out.splitlines()] == ["r2"]


def test_audit_show_prints_one_row_per_record(place: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = _refund_db(place)
    capsys.readouterr()
    assert cli("audit", "show", str(db), "--instance", "r1") == 0
    header, *rows = capsys.readouterr().out.splitlines()
    assert header.split()[:4] == ["INSTANCE", "SEQ", "AT", "(UTC)"]
    assert [row.split()[:2] for row in rows] == [["r1", "1"], ["r1", "2"], ["r1", "3"]]
    assert cli("audit", "show", str(db), "--instance", "zz") == 2


# ---------------------------------------------------------------------- worker

TIMED = """
railguard: 1
name: approval
roles: {clerk: [a.submit, a.approve]}
states:
  open: {initial: true, timeout: {after: 1s}}
  done: {terminal: success}
  expired: {terminal: failure}
on_error: expired
transitions:
  - {event: approve, from: open, to: done, permission: a.approve}
"""


def test_worker_once_runs_due_timeouts(place: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (place / "timed.yaml").write_text(TIMED, encoding="utf-8")
    (place / "timed-people.yaml").write_text("c: [clerk]\n", encoding="utf-8")
    assert cli("run", "start", "timed.yaml", "--instance", "a1", "--as", "c", "--db", "w.db", "--allow-unverified", "t", "--directory", "timed-people.yaml") == 0
    assert cli("worker", "timed.yaml", "--db", "w.db", "--allow-unverified", "t", "--once") == 0
    assert show("a1", "w.db", capsys)["state"] == "open"
    time.sleep(1.2)
    assert cli("worker", "timed.yaml", "--db", "w.db", "--allow-unverified", "t", "--once") == 0
    shown = show("a1", "w.db", capsys)
    assert (shown["state"], shown["status"]) == ("expired", "done")


def test_worker_stops_gracefully_on_sigterm(place: Path) -> None:
    (place / "timed.yaml").write_text(TIMED, encoding="utf-8")
    code = "import sys; from railguard.cli import main; sys.exit(main(sys.argv[1:]))"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with subprocess.Popen(
        [sys.executable, "-c", code, "worker", "timed.yaml", "--db", "w.db", "--allow-unverified", "t", "--interval", "0.1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    ) as worker:
        assert worker.stdout is not None
        assert worker.stderr is not None
        first = worker.stdout.readline()
        assert first.startswith("worker: running"), worker.stderr.read()
        worker.send_signal(signal.SIGTERM)
        try:
            out, err = worker.communicate(timeout=60)
        except subprocess.TimeoutExpired:  # fail, do not hang the suite in Popen's exit
            worker.kill()
            worker.communicate()
            pytest.fail("the worker did not stop within 60 s of SIGTERM")
    assert worker.returncode == 0, err
    assert "worker: stopped" in out
    assert "Traceback" not in err


# ---------------------------------------------------------------------- demo


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, Path]:
    folder = tmp_path_factory.mktemp("demo")
    here = Path.cwd()
    os.chdir(folder)  # the demo works in the current folder; the examples come with the package
    try:
        code = cli("demo")
    finally:
        os.chdir(here)
    return code, folder / DEMO_DB


def test_the_demo_exits_zero_with_the_expected_final_states(demo: tuple[int, Path]) -> None:
    code, db = demo
    assert code == 0
    with SQLiteStore(db) as store:
        rows = {i: store.get(i) for i in store.instances()}
        logs = {i: store.audit(i) for i in rows}
        everything = store.audit()
    states = {i: (r.state, r.status) for i, r in rows.items() if r is not None}
    assert states == {
        "refund-1": ("paid", "done"),
        "order-1": ("shipped", "done"),
        "order-2": ("failed", "done"),
        "refund-2": ("requested", "active"),
        "payout-1": ("paid", "done"),  # the plan gate's scenes: proposed, approved, repaired, paid
    }
    assert [r.kind for r in logs["payout-1"]].count("note") == 4  # two plans, each admitted and done
    assert [r.kind for r in logs["order-2"]][-4:] == ["effect-call", "effect-failed", "compensation", "error-exit"]
    assert logs["order-2"][-2].payload["compensation"]["name"] == "inventory.release"
    assert logs["order-2"][-3].payload["effect"]["attempts"] == 2
    refusal = logs["refund-2"][-1].payload
    assert (refusal["kind"], refusal["actor"], refusal["decision"]["code"]) == ("refusal", "erin", "guard-false")
    assert all(log[0].payload["certificate"]["verified"] is True for log in logs.values())
    assert verify_chain(everything) is None


def test_the_demo_starts_fresh_each_run_and_works_from_the_repo_root(demo: tuple[int, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _, db = demo
    monkeypatch.chdir(ROOT)
    # what a user did in the checkout before (a demo run there, say) is left as it was
    left = ROOT / DEMO_DB
    before = (sorted(p.name for p in ROOT.iterdir()), left.stat().st_mtime_ns if left.exists() else None)
    (tmp_path / DEMO_DB).write_text("not a database", encoding="utf-8")
    assert cli("demo", "--dir", str(tmp_path)) == 0
    with SQLiteStore(tmp_path / DEMO_DB) as fresh, SQLiteStore(db) as first:
        assert [r.payload_json() for r in fresh.audit()] != []
        assert len(fresh.audit()) == len(first.audit())
    assert (sorted(p.name for p in ROOT.iterdir()), left.stat().st_mtime_ns if left.exists() else None) == before


def test_the_demo_falls_back_to_an_audited_opt_out_without_certificates(monkeypatch: pytest.MonkeyPatch) -> None:
    import railguard.verifier.certificate as certificates

    spec = load(REFUND)
    report = verify(spec)
    certificate, opt_out = certificate_gate(report)
    assert opt_out is None
    assert certificate is not None
    monkeypatch.delattr(certificates, "issue")
    certificate, opt_out = certificate_gate(report)
    assert (certificate, opt_out) == (None, "demo")
    from railguard.runtime import Effects

    engine = Engine(spec, SQLiteStore(":memory:"), StaticDirectory({"a": ["support"]}), effects=Effects().register("payments.refund", lambda call: None), certificate=certificate, allow_unverified=opt_out)
    assert engine.start("r", "a").records[0].payload["certificate"] == {"verified": False, "opt_out": "demo"}


def test_replay_of_the_demo_database_matches(demo: tuple[int, Path], capsys: pytest.CaptureFixture[str]) -> None:
    _, db = demo
    capsys.readouterr()
    assert cli("replay", ORDER, "--db", str(db)) == 0
    assert [line[:1] for line in capsys.readouterr().out.splitlines()] == ["✔", "✔"]


def _changed(value: Any) -> Any:
    """A different value of the same JSON shape (or any different value)."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, str):
        return value + "x" if value else "x"
    if isinstance(value, list):
        return [*value, "x"]
    if isinstance(value, dict):
        return {**value, "x": 1}
    return "x"


def test_every_field_of_every_demo_record_is_tamper_evident(demo: tuple[int, Path]) -> None:
    _, db = demo
    with SQLiteStore(db) as store:
        records = store.audit()
    assert verify_chain(records) is None
    checked = 0
    for index, record in enumerate(records):
        variants = [replace(record, payload={**record.payload, key: _changed(value)}) for key, value in record.payload.items()]
        variants += [replace(record, prev_hash=_changed(record.prev_hash)), replace(record, hash=_changed(record.hash))]
        for variant in variants:
            tampered = [*records[:index], variant, *records[index + 1 :]]
            found = verify_chain(tampered)
            assert found is not None, (record.seq, variant)
            assert (found.instance, found.seq) == (record.instance, record.seq), (record.seq, variant)
            checked += 1
    assert checked > 10 * len(records)


def test_the_readme_running_workflows_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Running workflows", 1)[1]
    code = section.split("```python", 1)[1].split("```", 1)[0]
    (tmp_path / "examples").symlink_to(EXAMPLES)
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md", "exec"), {})
    with SQLiteStore(tmp_path / "refunds.db") as store:
        assert verify_chain(store.audit()) is None
