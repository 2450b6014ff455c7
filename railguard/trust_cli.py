"""``railguard keys generate``: the Ed25519 key pair that signs certificates and checkpoints.

- ``railguard keys generate KEY`` writes the private key to ``KEY`` (mode 0600; never
  overwrites a file) and the public key to ``KEY.pub``, and prints the key id. CI holds
  ``KEY`` (``railguard check --certificate FILE --sign-key KEY``); the runtime holds
  ``KEY.pub`` (``--trust KEY.pub``, or ``Engine(..., trusted_keys=...)``).

Exit codes: 0 done, 2 unusable input (a file exists already, an unwritable folder).
"""

from __future__ import annotations

import argparse
from typing import Any

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
