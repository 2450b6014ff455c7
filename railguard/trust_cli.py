"""``railguard keys generate`` and the global log's ``audit checkpoint`` and ``audit prove``.

- ``railguard keys generate KEY`` writes the private key to ``KEY`` (mode 0600; never
  overwrites a file) and the public key to ``KEY.pub``, and prints the key id. CI holds
  ``KEY`` (``railguard check --certificate FILE --sign-key KEY``); the runtime holds
  ``KEY.pub`` (``--trust KEY.pub``, or ``Engine(..., trusted_keys=...)``).

- ``railguard audit checkpoint DB [--sign-key KEY] -o FILE`` writes a (signed) tree head of
  the store's global log: size, Merkle root, time (:mod:`railguard.runtime.checkpoint`).
- ``railguard audit verify DB --checkpoint FILE... [--trust KEY.pub]`` (in
  :mod:`railguard.runtime_cli`) also proves the log consistent with each checkpoint.
- ``railguard audit prove DB INSTANCE:SEQ [--checkpoint FILE]`` prints one record's
  inclusion proof as JSON.

Exit codes: 0 done, 1 a proof that does not verify, 2 unusable input (a file exists
already, an unreadable key or checkpoint, no such record).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from railguard._cliutil import write

__all__ = ["add_commands"]


def cmd_keys_generate(args: argparse.Namespace) -> int:
    from railguard.verifier.keys import generate_key, write_key_pair

    key = generate_key()
    private, public = write_key_pair(key, args.key)
    print(f"{key.id}: private key `{private}` (keep it secret, e.g. a CI secret), public key `{public}` (give it to the runtime)")
    return 0


def add_commands(subparsers: Any) -> None:
    keys = subparsers.add_parser("keys", help="make signing keys for certificates and checkpoints")
    keys_sub = keys.add_subparsers(dest="action", required=True, metavar="ACTION")
    generate = keys_sub.add_parser("generate", help="write a new Ed25519 key pair: KEY (private) and KEY.pub")
    generate.add_argument("key", metavar="KEY", help="where to write the private key; the public key goes to KEY.pub")
    generate.set_defaults(func=cmd_keys_generate)


# ---------------------------------------------------------------------- the global log


def verify_global_log(args: argparse.Namespace, store: Any) -> str | None:
    """What ``audit verify`` adds: the global log checked on its own and against each
    ``--checkpoint`` (signed by a ``--trust`` key, when any is given). Prints the problem and
    returns ``None``, or returns one clause saying what was proved."""
    from railguard.runtime.checkpoint import load_checkpoint, verify_log

    heads = [load_checkpoint(path) for path in args.checkpoint]
    trusted = None
    if args.trust:
        from railguard.verifier.keys import TrustSet

        trusted = TrustSet.load(args.trust)
    report = verify_log(store, heads, trusted)
    if report.problem is not None:
        print(f"audit: TAMPERED: {report.problem}")
        return None
    proved = f", consistent with {report.checkpoints} checkpoint{'s' if report.checkpoints != 1 else ''}" if heads else " (give --checkpoint FILE to prove that nothing was removed)"
    return f"the global log of {report.size} records has no gap{proved}"


def cmd_audit_checkpoint(args: argparse.Namespace) -> int:
    from railguard.runtime.checkpoint import make_checkpoint
    from railguard.runtime_cli import _store

    key = None
    if args.sign_key:
        from railguard.verifier.keys import load_signing_key

        key = load_signing_key(args.sign_key)
    with _store(args, must_exist=True, readonly=True) as store:
        head = make_checkpoint(store, key)
    Path(args.output).write_text(head.dumps(), encoding="utf-8")
    signed = f", signed by `{head.key_id}`" if head.key_id else ", unsigned"
    print(f"audit: checkpoint of {head.size} records, root {head.root}{signed}: wrote `{args.output}`")
    return 0


def _record(text: str) -> tuple[str, int]:
    instance, _, seq = text.rpartition(":")
    if not instance or not seq.isdigit():
        raise argparse.ArgumentTypeError(f"`{text}` is not INSTANCE:SEQ (e.g. `order-1:3`)")
    return instance, int(seq)


def cmd_audit_prove(args: argparse.Namespace) -> int:
    from railguard.runtime.checkpoint import load_checkpoint, prove
    from railguard.runtime_cli import _store

    instance, seq = args.record
    head = load_checkpoint(args.checkpoint) if args.checkpoint else None
    with _store(args, must_exist=True, readonly=True) as store:
        proof = prove(store, instance, seq, None if head is None else head.size)
    write(args.output, json.dumps(proof.to_json(), indent=2) + "\n")
    if not proof.verify() or (head is not None and head.root != proof.root):
        print(f"audit: record {seq} of `{instance}` is not in the tree the checkpoint signed (the log changed)", file=sys.stderr)
        return 1
    print(f"audit: record {seq} of `{instance}` is global record {proof.gseq} of {proof.size}; the proof verifies", file=sys.stderr)
    return 0


def add_audit_commands(audit_sub: Any, verify: argparse.ArgumentParser, add_store: Any) -> None:
    """Add ``audit checkpoint`` and ``audit prove``, and ``audit verify``'s options for the
    global log (called by :mod:`railguard.runtime_cli`, which owns the ``audit`` group)."""
    verify.add_argument("--checkpoint", metavar="FILE", action="append", default=[], help="a checkpoint whose records must all still be there, unchanged (repeat for several)")
    verify.add_argument("--trust", metavar="KEY.pub", action="append", default=[], help="require each checkpoint to be signed by this key (repeat for several)")
    checkpoint = audit_sub.add_parser("checkpoint", help="write a signed tree head of the global log (size, root, time)")
    add_store(checkpoint, positional=True)
    checkpoint.add_argument("--sign-key", metavar="KEY", help="sign it with this private key (from `railguard keys generate`)")
    checkpoint.add_argument("-o", "--output", metavar="FILE", required=True, help="where to write the checkpoint")
    checkpoint.set_defaults(func=cmd_audit_checkpoint)
    prove = audit_sub.add_parser("prove", help="the inclusion proof of one record (INSTANCE:SEQ)")
    add_store(prove, positional=True)
    prove.add_argument("record", metavar="RECORD", type=_record, help="the record, as INSTANCE:SEQ")
    prove.add_argument("--checkpoint", metavar="FILE", help="prove it in the tree this checkpoint signed (default: the whole log)")
    prove.add_argument("-o", "--output", metavar="FILE", help="write the proof here (default: stdout)")
    prove.set_defaults(func=cmd_audit_prove)
