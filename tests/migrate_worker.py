"""A migrating process for the crash test of ``railguard migrate run`` (a script, not collected).

It loads OLD, NEW and the migration and proves the migration once, prints ``ready``, then
forks one migrator per JSON line read from stdin (``{"store": {...}, "instances": [...]}``,
the store as ``crashkit.open_store`` takes it) and prints its pid. A migrator migrates those
instances, one transaction each, and exits; the test SIGKILLs it at a random moment. Forking from
a warm parent keeps each migrator's short life spent on migrating rather than on imports and
the proof.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import traceback
from pathlib import Path

from crashkit import open_store

from railguard.runtime.migrate import migrate_instances
from railguard.spec import load
from railguard.verifier.migration import check_migration, load_migration

EVOLUTION = Path(__file__).resolve().parent / "evolution"


def main() -> int:
    old, new = load(EVOLUTION / "refund.yaml"), load(EVOLUTION / "refund_review.yaml")
    migration = load_migration(EVOLUTION / "refund_to_review.migration.yaml", old, new)
    check = check_migration(old, new, migration)
    if not check.passed:
        print(f"not proved: {check.outcome}", flush=True)
        return 1
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    print("ready", flush=True)
    for line in sys.stdin:
        config = json.loads(line)
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                store = open_store(config["store"])
                migrate_instances(store, old, new, migration, instances=config["instances"], check=check, allow_unverified="crash test", by=f"migrator {os.getpid()}")
                store.close()
            except BaseException:
                with open(config["errors"], "a", encoding="utf-8") as out:
                    out.write(f"migrator {os.getpid()}:\n{traceback.format_exc()}\n")
                code = 1
            os._exit(code)
        print(pid, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
