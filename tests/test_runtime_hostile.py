"""The runtime against hostile input and the defects a new user hits: every bad value is a
refusal that is audited (never an exception), numbers are bounded, one broken instance does
not stop the worker, the directory is read like a spec, and values come back as the spec's
types."""

from __future__ import annotations

import dataclasses
import sqlite3
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from railguard.runtime import (
    EffectCall,
    Effects,
    Engine,
    ExecutionError,
    ManualClock,
    SQLiteStore,
    StaticDirectory,
    load_directory,
    replay_instance,
    verify_chain,
)
from railguard.runtime.auth import KnownPrincipals, NotAuthenticated
from railguard.spec import Spec, Timeout, load, loads

from .conftest import EXAMPLES
from .test_runtime_cli import cli

TAGS = """
railguard: 1
name: tags
roles: {client: [t.send, t.tag], other: [t.other]}
variables:
  limit: {type: decimal, min: 0, max: 100000, places: 2, context: true}
  kinds: {type: set, of: {type: enum, values: [a, b, c]}, context: true, initial: []}
  sent: {type: decimal, min: 0, max: 100000, places: 2, initial: 0}
  note: {type: str, max_length: 20, initial: ""}
states:
  open: {initial: true}
  far: {timeout: {after: 3650d}}
  sent: {terminal: success}
  failed: {terminal: failure}
on_error: failed
transitions:
  - event: send
    from: open
    to: sent
    permission: t.send
    params: {amount: {type: decimal, min: 0, places: 2}}
    guard: params.amount <= limit
    assign: {sent: params.amount}
    effect: bank.send
  - event: send
    from: open
    to: failed
    permission: t.other
    params: {amount: {type: decimal, min: 0, places: 2}}
    guard: limit < 0
  - event: note
    from: open
    to: open
    permission: t.tag
    params: {text: {type: str, max_length: 20}}
    assign: {note: params.text}
  - {event: wait, from: open, to: far, permission: t.tag, effect: bank.hold, compensate: bank.release}
  - {event: finish, from: far, to: sent, permission: t.tag}
"""

PEOPLE = StaticDirectory({"c": ["client"], "o": ["other"], "both": ["client", "other"]})


class Bank:
    def __init__(self) -> None:
        self.calls: list[EffectCall] = []

    def __call__(self, call: EffectCall) -> dict[str, Any]:
        self.calls.append(call)
        return {"ok": True}

    def effects(self) -> Effects:
        effects = Effects()
        for name in ("bank.send", "bank.hold", "bank.release"):
            effects.register(name, self)
        return effects


@pytest.fixture
def spec() -> Spec:
    # The loader refuses timeouts beyond 3650d; a spec built from the model may still hold
    # one thousands of years away, and the runtime must not overflow on it.
    loaded = loads(TAGS)
    far = Timeout(3_000_000 * 86_400)
    states = tuple(dataclasses.replace(s, timeout=far) if s.name == "far" else s for s in loaded.states)
    return dataclasses.replace(loaded, states=states)


def make(spec: Spec, bank: Bank | None = None, **kw: Any) -> Engine:
    return Engine(spec, SQLiteStore(":memory:"), PEOPLE, effects=(bank or Bank()).effects(), clock=ManualClock(), allow_unverified="hostile tests", **kw)


def last_refusal(e: Engine, instance: str) -> dict[str, Any]:
    record = e.history(instance)[-1]
    assert record.kind == "refusal"
    return dict(record.payload)


# ---------------------------------------------------------------------- values as the spec's types


def test_decimals_reach_effect_handlers_and_step_results_as_decimals(spec: Spec) -> None:
    bank = Bank()
    e = make(spec, bank)
    e.start("i", "c", {"limit": "1500.00"})
    paid = e.fire("i", "send", "c", {"amount": "1200.00"})
    assert paid.accepted
    assert paid.values["sent"] == Decimal("1200.00")
    assert isinstance(paid.values["sent"], Decimal)
    (call,) = bank.calls
    assert isinstance(call.params["amount"], Decimal)
    assert isinstance(call.values["sent"], Decimal)
    assert call.values["limit"] == Decimal("1500.00")
    assert e.get("i").values["sent"] == paid.values["sent"]


def test_a_refusal_leaves_state_values_and_status_and_moves_the_version_to_its_record(spec: Spec) -> None:
    e = make(spec)
    e.start("i", "c", {"limit": "10"})
    before = e.get("i")
    refused = e.fire("i", "send", "c", {"amount": "20"})
    after = e.get("i")
    assert (after.state, dict(after.values), after.status) == (before.state, dict(before.values), before.status)
    # the version is the position of the instance's last audit record: the refusal is one
    assert after.version == before.version + 1 == refused.records[-1].seq == len(e.history("i"))


# ---------------------------------------------------------------------- messages


def test_too_many_decimal_places_is_said_as_such_not_out_of_range(spec: Spec) -> None:
    e = make(spec)
    e.start("i", "c", {"limit": "100"})
    refused = e.fire("i", "send", "c", {"amount": "10.005"})
    assert refused.code == "bad-params"
    assert "too many decimal places" in refused.reason
    assert "out of range" not in refused.reason
    assert "out of range" in e.fire("i", "send", "c", {"amount": "-1"}).reason


def test_a_permission_is_named_once_and_guards_are_listed_cleanly() -> None:
    order = load(EXAMPLES / "refund.yaml")
    two = loads(TAGS.replace("permission: t.other\n", "permission: t.send\n"))
    e = make(two)
    e.start("i", "c", {"limit": "10"})
    denied = e.fire("i", "send", "o", {"amount": "1"})
    assert denied.code == "permission-denied"
    assert denied.reason.count("`t.send`") == 1
    guarded = e.fire("i", "send", "c", {"amount": "20"})
    assert guarded.code == "guard-false"
    assert "(`params.amount <= limit`, `limit < 0`)" in guarded.reason
    assert "`; `" not in guarded.reason
    assert order.name == "refund"


def test_a_misspelt_event_gets_a_did_you_mean(spec: Spec) -> None:
    e = make(spec)
    e.start("i", "c", {"limit": "10"})
    refused = e.fire("i", "sned", "c", {"amount": "1"})
    assert refused.code == "unknown-event"
    assert refused.reason.endswith("did you mean `send`?")


# ---------------------------------------------------------------------- hostile values


@pytest.mark.parametrize("amount", ["1e4000000000", 10**4000, Decimal("1e-4000000"), "9" * 5000, float("nan")])
def test_an_unbounded_number_is_refused_and_audited(spec: Spec, amount: Any) -> None:
    e = make(spec)
    e.start("i", "c", {"limit": "10"})
    refused = e.fire("i", "send", "c", {"amount": amount})
    assert (refused.accepted, refused.code) == (False, "bad-params")
    assert last_refusal(e, "i")["decision"]["code"] == "bad-params"
    assert replay_instance(e, spec, "i").ok


@pytest.mark.parametrize("value", ["\ud800", object(), {"nested": object()}, [1, [2]]])
def test_a_param_that_cannot_be_encoded_is_refused_and_the_refusal_audited(spec: Spec, value: Any) -> None:
    e = make(spec)
    e.start("i", "c", {"limit": "10"})
    refused = e.fire("i", "note", "c", {"text": value})
    assert (refused.accepted, refused.code) == (False, "bad-params")
    record = last_refusal(e, "i")
    assert record["decision"]["code"] == "bad-params"
    assert verify_chain(e.store.audit()) is None
    assert replay_instance(e, spec, "i").ok


def test_an_event_or_actor_that_cannot_be_encoded_is_refused_and_audited(spec: Spec) -> None:
    e = make(spec)
    e.start("i", "c", {"limit": "10"})
    assert e.fire("i", "se\udcffnd", "c").code == "unknown-event"
    assert e.fire("i", "send", "\ud800", {"amount": "1"}).code == "permission-denied"
    assert verify_chain(e.store.audit()) is None
    assert replay_instance(e, spec, "i").ok


def test_a_set_context_variable_given_as_a_string_is_refused_not_split(spec: Spec) -> None:
    e = make(spec)
    with pytest.raises(ExecutionError, match="given as a list"):
        e.start("i", "c", {"limit": "10", "kinds": "ab"})
    assert e.store.get("i") is None
    assert e.start("j", "c", {"limit": "10", "kinds": ["a", "b"]}).values["kinds"] == frozenset({"a", "b"})


# ---------------------------------------------------------------------- time and the worker


def test_a_timeout_thousands_of_years_away_never_overflows_after_the_effect_ran(spec: Spec) -> None:
    bank = Bank()
    e = make(spec, bank)
    e.start("i", "c", {"limit": "10"})
    waited = e.fire("i", "wait", "c")
    assert (waited.accepted, waited.state, waited.status) == (True, "far", "active")
    assert [c.effect for c in bank.calls] == ["bank.hold"]
    assert e.run_due() == []
    assert e.fire("i", "finish", "c").state == "sent"


def test_one_broken_instance_is_reported_and_the_worker_does_the_others(spec: Spec, tmp_path: Path) -> None:
    clock = ManualClock()
    timed = loads(TAGS.replace("far: {timeout: {after: 3650d}}", "far: {timeout: {after: 10s}}"))
    e = Engine(timed, SQLiteStore(tmp_path / "w.db"), PEOPLE, effects=Bank().effects(), clock=clock, allow_unverified="t", lease=5)
    for name in ("bad", "good"):
        e.start(name, "c", {"limit": "10"})
        e.fire(name, "wait", "c")
    with sqlite3.connect(tmp_path / "w.db") as db:  # someone edits one row's pending work
        db.execute("UPDATE instances SET status = 'effect-pending', pending = '{\"kind\": \"effect\"}' WHERE id = 'bad'")
        db.execute("INSERT INTO timers (instance, kind, due_at, version, payload) VALUES ('bad', 'resume', 0, 1, '{}')")
    clock.advance(11)
    results = {r.instance: r for r in e.run_due(limit=10)}
    assert results["bad"].code == "worker-error"
    assert (results["good"].state, results["good"].status) == ("failed", "done")


# ---------------------------------------------------------------------- the directory and who is calling


def test_the_directory_reader_keeps_principal_ids_as_written(tmp_path: Path) -> None:
    (tmp_path / "people.yaml").write_text("no: [support]\n007: [manager]\n'on': [yes]\n", encoding="utf-8")
    members = load_directory(tmp_path / "people.yaml").members
    assert members == {"no": frozenset({"support"}), "007": frozenset({"manager"}), "on": frozenset({"yes"})}


def test_the_directory_reader_refuses_an_alias_bomb_in_one_sentence(tmp_path: Path) -> None:
    lines = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for n in range(1, 9):
        lines.append(f"{chr(97 + n)}: &{chr(97 + n)} [" + ", ".join([f"*{chr(96 + n)}"] * 10) + "]")
    (tmp_path / "bomb.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(ExecutionError, match="cannot read the directory") as caught:
        load_directory(tmp_path / "bomb.yaml")
    assert "\n" not in str(caught.value)


def test_the_directory_reader_refuses_roles_that_are_not_names(tmp_path: Path) -> None:
    (tmp_path / "people.yaml").write_text("sam: [1, 2]\n", encoding="utf-8")
    with pytest.raises(ExecutionError, match="list of role names"):
        load_directory(tmp_path / "people.yaml")


class Tokens:
    """An application's authentication: tokens to principals."""

    def __init__(self, tokens: dict[str, str]) -> None:
        self.tokens = tokens

    def authenticate(self, credential: str) -> str:
        if credential not in self.tokens:
            raise NotAuthenticated("the token is not valid")
        return self.tokens[credential]


def test_an_application_plugs_its_own_authentication_in(spec: Spec) -> None:
    e = make(spec, authenticator=Tokens({"tok-c": "c"}))
    started = e.start("i", "tok-c", {"limit": "10"})
    assert e.history("i")[0].payload["actor"] == "c"
    assert started.accepted
    with pytest.raises(NotAuthenticated):
        e.start("j", "forged", {"limit": "10"})
    refused = e.fire("i", "note", "forged", {"text": "hi"})
    assert (refused.code, refused.reason) == ("permission-denied", "the token is not valid")
    assert e.history("i")[-1].payload["actor"] == ""
    assert e.fire("i", "note", "tok-c", {"text": "hi"}).accepted
    assert e.history("i")[-1].payload["actor"] == "c"
    assert replay_instance(e, spec, "i").ok


def test_known_principals_trusts_only_the_directory_s_members() -> None:
    auth = KnownPrincipals(StaticDirectory({"c": [], "d": ["x"]}))
    assert auth.authenticate("c") == "c"
    with pytest.raises(NotAuthenticated):
        auth.authenticate("stranger")


# ---------------------------------------------------------------------- the command line


def test_run_start_refuses_an_actor_the_directory_does_not_know(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "people.yaml").write_text("sam: [support]\n", encoding="utf-8")
    refund = str(EXAMPLES / "refund.yaml")
    common = ("--db", "r.db", "--directory", "people.yaml", "--allow-unverified", "t")
    assert cli("run", "start", refund, "--instance", "r1", "--as", "mallory", *common) == 2
    assert "`mallory` is not a principal of the directory" in capsys.readouterr().err
    with SQLiteStore(tmp_path / "r.db") as store:
        assert store.instances() == []
    assert cli("run", "start", refund, "--instance", "r1", "--as", "sam", *common) == 0


def test_audit_verify_takes_the_database_as_an_argument_or_as_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "people.yaml").write_text("sam: [support]\n", encoding="utf-8")
    assert cli("run", "start", str(EXAMPLES / "refund.yaml"), "--instance", "r1", "--as", "sam", "--db", "x.db", "--directory", "people.yaml", "--allow-unverified", "t") == 0
    assert cli("audit", "verify", "x.db") == 0
    assert cli("audit", "verify", "--db", "x.db") == 0
    assert cli("audit", "show", "--db", "x.db") == 0
    assert cli("audit", "verify", "--db", "missing.db") == 2
