"""The global log: RFC 6962 Merkle hashing and proofs against the published test vectors, and
every removal after a checkpoint — one instance truncated with its row rolled back, a whole
instance deleted, the newest records of the store deleted, records reordered across
instances — detected and named."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from railguard.cli import main
from railguard.runtime import Engine, ManualClock, SQLiteStore
from railguard.runtime.checkpoint import (
    Checkpoint,
    Checkpointer,
    load_checkpoint,
    make_checkpoint,
    prove,
    verify_log,
)
from railguard.runtime.integrity import verify_store
from railguard.runtime.merkle import (
    EMPTY_ROOT,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root,
    verify_consistency,
    verify_inclusion,
)
from railguard.spec import Spec, load
from railguard.verifier.keys import TrustSet, generate_key

from .conftest import EXAMPLES
from .fakes import PEOPLE, Ledger

# --------------------------------------------------------------------------- RFC 6962 vectors
# The leaves and roots of the RFC 6962 test tree used by certificate-transparency and
# transparency-dev/merkle (testonly/constants.go), and their inclusion and consistency proofs.

LEAVES = [bytes.fromhex(x) for x in ("", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f")]
ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
INCLUSION = [  # (leaf index, tree size, audit path)
    (0, 1, []),
    (0, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7", "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e", "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (5, 8, ["bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b", "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0", "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (1, 5, ["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d", "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e", "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
]
CONSISTENCY = [  # (first size, second size, proof)
    (1, 1, []),
    (1, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7", "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e", "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (6, 8, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a", "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0", "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 5, ["5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e", "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
]
HASHES = [leaf_hash(d) for d in LEAVES]


def test_the_empty_tree_and_the_prefixes_hash_to_the_published_roots() -> None:
    assert EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert root([]) == EMPTY_ROOT
    assert [root(HASHES[:n]).hex() for n in range(1, 9)] == ROOTS
    assert node_hash(HASHES[0], HASHES[1]).hex() == ROOTS[1]  # 0x01 || left || right
    assert leaf_hash(b"").hex() == ROOTS[0]  # 0x00 || data


@pytest.mark.parametrize(("index", "size", "path"), INCLUSION)
def test_inclusion_proofs_match_and_verify_against_the_vectors(index: int, size: int, path: list[str]) -> None:
    assert [p.hex() for p in inclusion_proof(index, HASHES[:size])] == path
    expected = bytes.fromhex(ROOTS[size - 1])
    proof = [bytes.fromhex(p) for p in path]
    assert verify_inclusion(index, size, HASHES[index], proof, expected)
    assert not verify_inclusion(index, size, HASHES[(index + 1) % 8], proof, expected)
    assert not verify_inclusion(index, size * 2, HASHES[index], proof, expected)  # a deeper tree needs a longer path
    if proof:
        assert not verify_inclusion(index, size, HASHES[index], proof[:-1], expected)


@pytest.mark.parametrize(("first", "second", "path"), CONSISTENCY)
def test_consistency_proofs_match_and_verify_against_the_vectors(first: int, second: int, path: list[str]) -> None:
    assert [p.hex() for p in consistency_proof(first, HASHES[:second])] == path
    proof = [bytes.fromhex(p) for p in path]
    old, new = bytes.fromhex(ROOTS[first - 1]), bytes.fromhex(ROOTS[second - 1])
    assert verify_consistency(first, second, old, new, proof)
    assert not verify_consistency(first, second, new if first != second else EMPTY_ROOT, new, proof)
    if proof:
        assert not verify_consistency(first, second, old, new, proof[1:])


def test_every_proof_of_every_small_tree_verifies_and_a_changed_leaf_breaks_it() -> None:
    for n in range(1, 33):
        hashes = [leaf_hash(bytes([i])) for i in range(n)]
        top = root(hashes)
        for i in range(n):
            assert verify_inclusion(i, n, hashes[i], inclusion_proof(i, hashes), top)
        for m in range(n + 1):
            assert verify_consistency(m, n, root(hashes[:m]), top, consistency_proof(m, hashes))
            if 0 < m < n:
                changed = [*hashes[: m - 1], leaf_hash(b"forged"), *hashes[m:]]
                assert not verify_consistency(m, n, root(hashes[:m]), root(changed), consistency_proof(m, changed))


# --------------------------------------------------------------------------- a store's log


@pytest.fixture(scope="module")
def refund() -> Spec:
    return load(EXAMPLES / "refund.yaml")


def _engine(spec: Spec, db: Path, **kw: Any) -> Engine:
    return Engine(spec, SQLiteStore(db), PEOPLE, effects=Ledger().effects(spec), clock=ManualClock(), allow_unverified="log tests", **kw)


def _three_refunds(refund: Spec, db: Path, **kw: Any) -> Engine:
    """Three refunds, their steps interleaved: r1 paid, r2 approved, r3 requested."""
    engine = _engine(refund, db, **kw)
    for name in ("r1", "r2", "r3"):
        engine.start(name, "sam")
    for name in ("r1", "r2", "r3"):
        engine.fire(name, "request", "sam", {"amount": 10})
    for name in ("r1", "r2"):
        engine.fire(name, "approve", "mia")
    engine.fire("r1", "pay", "pay")
    engine.store.close()
    return engine


def _sql(db: Path, *statements: tuple[str, tuple[Any, ...]]) -> None:
    conn = sqlite3.connect(db)
    try:
        with conn:
            conn.execute("DROP TRIGGER IF EXISTS audit_append_only_delete")
            conn.execute("DROP TRIGGER IF EXISTS audit_append_only_update")
            for statement, params in statements:
                conn.execute(statement, params)
    finally:
        conn.close()


def _verify(db: Path, *heads: Checkpoint) -> tuple[Any, Any]:
    with SQLiteStore(db, readonly=True) as store:
        return verify_store(store).tamper, verify_log(store, heads).problem


def _head(db: Path) -> Checkpoint:
    with SQLiteStore(db, readonly=True) as store:
        return make_checkpoint(store)


def test_records_get_global_positions_without_gaps_and_the_log_verifies(refund: Spec, tmp_path: Path) -> None:
    db = tmp_path / "a.db"
    _three_refunds(refund, db)
    with SQLiteStore(db, readonly=True) as store:
        entries = store.log_entries()
        assert [e.gseq for e in entries] == list(range(1, len(store.audit()) + 1))
        assert [(e.instance, e.seq) for e in entries[:4]] == [("r1", 1), ("r2", 1), ("r3", 1), ("r1", 2)]
        head = make_checkpoint(store)
    assert head.size == len(entries)
    assert _verify(db, head) == (None, None)


def test_an_instance_truncated_with_its_row_rolled_back_is_named(refund: Spec, tmp_path: Path) -> None:
    db = tmp_path / "a.db"
    _three_refunds(refund, db)
    head = _head(db)
    with SQLiteStore(db) as store:
        kept = store.audit("r2")[1]  # r2 back to `requested`: the approval never happened
        (approval,) = [e.gseq for e in store.log_entries() if (e.instance, e.seq) == ("r2", 3)]
        row = store.get("r2")
    assert row is not None
    _sql(
        db,
        ("DELETE FROM audit WHERE instance = 'r2' AND seq > 2", ()),
        ("UPDATE instances SET state = 'requested', vals = ?, version = 2, audit_head = ? WHERE id = 'r2'",
         (json.dumps({**row.values, "approved_by": None}, sort_keys=True, separators=(",", ":")), kept.hash)),
    )
    tamper, problem = _verify(db, head)
    assert tamper is None  # each chain and each row still agree: only the global log tells
    assert problem is not None
    assert problem.gseq == approval
    assert "it is missing" in problem.reason


def test_a_whole_deleted_instance_is_named(refund: Spec, tmp_path: Path) -> None:
    db = tmp_path / "a.db"
    _three_refunds(refund, db)
    head = _head(db)
    _sql(db, ("DELETE FROM audit WHERE instance = 'r2'", ()), ("DELETE FROM instances WHERE id = 'r2'", ()))
    tamper, problem = _verify(db, head)
    assert tamper is None
    assert problem is not None
    assert problem.gseq == 2  # r2's start was the second record of the store
    assert problem.reason.startswith("it is missing")


def test_the_newest_records_of_the_store_deleted_are_named(refund: Spec, tmp_path: Path) -> None:
    db = tmp_path / "a.db"
    _three_refunds(refund, db)
    head = _head(db)
    with SQLiteStore(db) as store:
        last = store.log_entries()[-2:]  # r1's effect call and payment
        kept = store.audit("r1")[last[0].seq - 2]  # r1 back to `approved`, its row as then
        row = store.get("r1")
    assert row is not None
    assert {e.instance for e in last} == {"r1"}
    _sql(
        db,
        ("DELETE FROM audit WHERE gseq > ?", (head.size - 2,)),
        ("UPDATE instances SET state = 'approved', version = ?, audit_head = ?, status = 'active', pending = NULL WHERE id = 'r1'",
         (kept.seq, kept.hash)),
    )
    tamper, problem = _verify(db, head)
    assert tamper is None  # the rolled-back row is exactly what its (new) last record vouches for
    assert problem is not None
    assert problem.gseq == head.size - 1
    assert f"covered {head.size} records and the log has {head.size - 2}" in problem.reason


def test_records_reordered_across_instances_are_named(refund: Spec, tmp_path: Path) -> None:
    db = tmp_path / "a.db"
    _three_refunds(refund, db)
    head = _head(db)
    # r1's and r3's starts swap places: every chain and every instance's order still hold
    _sql(
        db,
        ("UPDATE audit SET gseq = -1 WHERE instance = 'r1' AND seq = 1", ()),
        ("UPDATE audit SET gseq = 1 WHERE instance = 'r3' AND seq = 1", ()),
        ("UPDATE audit SET gseq = 3 WHERE instance = 'r1' AND seq = 1", ()),
    )
    tamper, problem = _verify(db, head)
    assert tamper is None
    assert _verify(db) == (None, None)  # without the checkpoint nothing is amiss
    assert problem is not None
    assert (problem.gseq, problem.instance, problem.seq) == (1, "r3", 1)
    assert "altered, replaced or reordered" in problem.reason


def test_an_instance_reordered_within_the_log_is_named_without_a_checkpoint(refund: Spec, tmp_path: Path) -> None:
    db = tmp_path / "a.db"
    _three_refunds(refund, db)
    _sql(db, ("UPDATE audit SET gseq = -1 WHERE instance = 'r1' AND seq = 1", ()),
         ("UPDATE audit SET gseq = 1 WHERE instance = 'r1' AND seq = 2", ()),
         ("UPDATE audit SET gseq = 4 WHERE instance = 'r1' AND seq = 1", ()))
    _, problem = _verify(db)
    assert problem is not None
    assert (problem.gseq, problem.instance, problem.seq) == (1, "r1", 2)


def test_several_checkpoints_narrow_down_where_a_record_changed(refund: Spec, tmp_path: Path) -> None:
    db = tmp_path / "a.db"
    engine = _engine(refund, db)
    heads = []
    for n in range(4):
        engine.start(f"r{n}", "sam")
        engine.fire(f"r{n}", "request", "sam", {"amount": 10})
        with SQLiteStore(db, readonly=True) as store:
            heads.append(make_checkpoint(store))
    engine.store.close()
    # r2's request moved ahead of r1's: a same-shaped swap between the second and third checkpoints
    _sql(db, ("UPDATE audit SET gseq = -1 WHERE instance = 'r1' AND seq = 2", ()),
         ("UPDATE audit SET gseq = 4 WHERE instance = 'r2' AND seq = 1", ()),
         ("UPDATE audit SET gseq = 5 WHERE instance = 'r1' AND seq = 2", ()))
    with SQLiteStore(db, readonly=True) as store:
        report = verify_log(store, heads)
    assert report.checkpoints == 1
    assert report.problem is not None
    assert report.problem.gseq == heads[0].size + 1


def test_an_inclusion_proof_shows_one_record_in_a_signed_tree(refund: Spec, tmp_path: Path) -> None:
    db = tmp_path / "a.db"
    _three_refunds(refund, db)
    key = generate_key()
    with SQLiteStore(db, readonly=True) as store:
        head = make_checkpoint(store, key)
        proof = prove(store, "r2", 3, head.size)
    assert head.check(TrustSet.of([key])) is None
    assert head.check(TrustSet.of([generate_key()])) is not None
    assert proof.verify()
    assert (proof.size, proof.root) == (head.size, head.root)
    assert not prove_with(proof, hash="0" * 64).verify()


def prove_with(proof: Any, **changes: Any) -> Any:
    from dataclasses import replace

    return replace(proof, **changes)


def test_a_checkpoint_with_a_forged_root_or_signature_is_refused(refund: Spec, tmp_path: Path) -> None:
    db = tmp_path / "a.db"
    _three_refunds(refund, db)
    key = generate_key()
    trusted = TrustSet.of([key])
    with SQLiteStore(db, readonly=True) as store:
        head = make_checkpoint(store, key)
        assert verify_log(store, [head], trusted).ok
        forged = prove_with(head, root="0" * 64)
        problem = verify_log(store, [forged], trusted).problem
        assert problem is not None
        assert "is not vouched for" in problem.reason
        assert verify_log(store, [make_checkpoint(store)], trusted).problem is not None  # unsigned


# --------------------------------------------------------------------------- the engine and the CLI


def test_the_engine_writes_checkpoints_every_n_records_to_a_folder_or_a_callable(refund: Spec, tmp_path: Path) -> None:
    key = generate_key()
    shipped: list[Checkpoint] = []
    folder = tmp_path / "heads"
    db = tmp_path / "a.db"
    _three_refunds(refund, db, checkpoints=Checkpointer(folder, every=4, key=key))
    files = sorted(folder.glob("checkpoint-*.json"))
    assert [load_checkpoint(f).size for f in files] == [4, 8]  # of 10 records
    assert all(load_checkpoint(f).key_id == key.id for f in files)
    _three_refunds(refund, tmp_path / "b.db", checkpoints=Checkpointer(shipped.append, every=5))
    assert [h.size for h in shipped] == [5, 10]
    with SQLiteStore(db, readonly=True) as store:
        assert verify_log(store, [load_checkpoint(f) for f in files], TrustSet.of([key])).checkpoints == 2


def test_the_engine_writes_a_checkpoint_once_the_interval_has_passed(refund: Spec, tmp_path: Path) -> None:
    now = [0.0]
    shipped: list[Checkpoint] = []
    engine = _engine(refund, tmp_path / "a.db", checkpoints=Checkpointer(shipped.append, every=None, seconds=60, clock=lambda: now[0]))
    engine.start("r1", "sam")
    engine.fire("r1", "request", "sam", {"amount": 10})
    assert shipped == []
    now[0] = 61.0
    engine.fire("r1", "approve", "mia")
    assert [h.size for h in shipped] == [3]


def test_audit_checkpoint_verify_and_prove_from_the_command_line(refund: Spec, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "a.db"
    _three_refunds(refund, db)
    assert main(["keys", "generate", str(tmp_path / "log.key")]) == 0
    head = tmp_path / "head.json"
    assert main(["audit", "checkpoint", str(db), "--sign-key", str(tmp_path / "log.key"), "-o", str(head)]) == 0
    assert main(["audit", "verify", str(db), "--checkpoint", str(head), "--trust", str(tmp_path / "log.key.pub")]) == 0
    capsys.readouterr()
    assert main(["audit", "prove", str(db), "r2:3", "--checkpoint", str(head)]) == 0
    proof = json.loads(capsys.readouterr().out)
    assert (proof["instance"], proof["seq"], proof["size"]) == ("r2", 3, load_checkpoint(head).size)
    assert main(["audit", "prove", str(db), "r9:1"]) == 2
    _sql(db, ("DELETE FROM audit WHERE instance = 'r3'", ()), ("DELETE FROM instances WHERE id = 'r3'", ()))
    capsys.readouterr()
    assert main(["audit", "verify", str(db), "--checkpoint", str(head)]) == 1
    assert "TAMPERED: global record 3" in capsys.readouterr().out


def test_a_store_from_before_the_global_log_gets_the_column_and_keeps_its_records(refund: Spec, tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    conn = sqlite3.connect(db)
    conn.executescript(
        "CREATE TABLE audit (instance TEXT NOT NULL, seq INTEGER NOT NULL, payload TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL, PRIMARY KEY (instance, seq));"
    )
    conn.close()
    _engine(refund, db).start("r1", "sam")
    with SQLiteStore(db, readonly=True) as store:
        assert [e.gseq for e in store.log_entries()] == [1]
        assert store.unlogged() == 0


@pytest.mark.slow
def test_four_processes_on_postgres_leave_no_gap_and_no_duplicate(tmp_path: Path) -> None:
    from .crashkit import postgres_target

    for target in postgres_target("log"):
        program = (
            "import sys\n"
            "from railguard.runtime import Engine, ManualClock\n"
            "from railguard.runtime.postgres import PostgresStore\n"
            "from railguard.spec import load\n"
            "from tests.fakes import PEOPLE, Ledger\n"
            f"spec = load({str(EXAMPLES / 'refund.yaml')!r})\n"
            f"store = PostgresStore({target['dsn']!r}, schema={target['schema']!r})\n"
            "engine = Engine(spec, store, PEOPLE, effects=Ledger().effects(spec), allow_unverified='log race')\n"
            "me = sys.argv[1]\n"
            "for n in range(63):  # 252 steps\n"
            "    name = f'{me}-{n}'\n"
            "    engine.start(name, 'sam')\n"
            "    engine.fire(name, 'request', 'sam', {'amount': 10})\n"
            "    engine.fire(name, 'approve', 'mia')\n"
            "    engine.fire(name, 'pay', 'pay')\n"
        )
        from railguard.runtime.postgres import PostgresStore

        PostgresStore(target["dsn"], schema=target["schema"]).close()  # the schema, made once
        root_dir = EXAMPLES.parent
        procs = [subprocess.Popen([sys.executable, "-c", program, f"p{k}"], cwd=root_dir) for k in range(4)]
        assert [p.wait(timeout=600) for p in procs] == [0, 0, 0, 0]
        with PostgresStore(target["dsn"], schema=target["schema"], readonly=True) as store:
            entries = store.log_entries()
            # 4 processes x 63 instances x 5 records (start, request, approve, effect call, paid)
            assert len(entries) == 4 * 63 * 5 == len(store.audit())
            assert [e.gseq for e in entries] == list(range(1, len(entries) + 1))
            head = make_checkpoint(store)
            report = verify_log(store, [head])
            assert report.ok, report.problem
            assert verify_store(store).ok
            assert prove(store, "p3-62", 5, head.size).verify()
