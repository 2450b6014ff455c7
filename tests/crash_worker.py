"""A worker process for the crash and concurrency tests (run as a script, not collected).

``--mode zygote``: import and load everything once, print ``ready``, then fork one crash
worker per JSON line read from stdin and print its pid. A crash worker drives the instances
of batches ``0..upto`` along their plans (see ``crashkit.plan_for``) and resumes due work,
forever — the test kills it with SIGKILL at a random moment. Forking from a warm parent
keeps each worker's life spent on work rather than on imports.

``--mode race``: open the store, print ``ready``, wait for a line on stdin (the starting gun),
then fire this racer's script (``crashkit.race_script``) at every shared instance, in the same
order as every other racer, and append each result to ``--results``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import sys
import time
import traceback

from crashkit import (
    Driver,
    ExternalSystem,
    instance_ids,
    load_specs,
    make_engines,
    open_store,
    race_script,
)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=("zygote", "race"), required=True)
    parser.add_argument("--store", default="")
    parser.add_argument("--log", default="")
    parser.add_argument("--racer", type=int, default=0)
    parser.add_argument("--instances", default="")
    parser.add_argument("--results", default="")
    args = parser.parse_args()
    if args.mode == "zygote":
        return zygote()
    store = open_store(json.loads(args.store))
    system = ExternalSystem(args.log, latency=0.02, seed=args.racer)
    engines = make_engines(store, system, lease=30.0, worker=f"racer{args.racer}", scripted=False)
    print("ready", flush=True)
    sys.stdin.readline()  # the starting gun: every racer gets it at the same moment
    race(engines, json.loads(args.instances), args.racer, args.results)
    store.close()
    return 0


def zygote() -> int:
    """Import and load everything once, then fork one crash worker per line of stdin (a JSON
    config) and answer with its pid. Children are reaped automatically; a child that fails
    appends its traceback to ``errors`` from its config."""
    load_specs()  # warm the caches the children inherit
    with contextlib.suppress(ImportError):
        import railguard.runtime.postgres  # noqa: F401  (psycopg takes long to import)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    print("ready", flush=True)
    for line in sys.stdin:
        config = json.loads(line)
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                crash_worker(config)
            except BaseException:
                with open(config["errors"], "a", encoding="utf-8") as out:
                    out.write(f"worker {os.getpid()}:\n{traceback.format_exc()}\n")
                code = 1
            os._exit(code)
        print(pid, flush=True)
    return 0


def crash_worker(config: dict) -> None:
    """Drive the instances of batches ``0..upto`` along their plans and resume due work,
    until killed."""
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    store = open_store(config["store"])
    system = ExternalSystem(config["log"], latency=config["latency"], seed=config["seed"])
    checkpoints = None
    if config.get("checkpoints"):
        from railguard.runtime.checkpoint import Checkpointer

        checkpoints = Checkpointer(config["checkpoints"], every=5)
    engines = make_engines(store, system, lease=config["lease"], worker=f"w{os.getpid()}", checkpoints=checkpoints)
    rng = random.Random(config["seed"])
    driver = Driver(engines, store, instance_ids(config["upto"] + 1, config["per_batch"]), rng=rng, redeliver=config["redeliver"])
    while True:
        if driver.tick() == 0:
            time.sleep(0.01)


def race(engines: dict, instances: list[str], racer: int, results: str) -> None:
    """Fire this racer's script at every shared instance and record what came back."""
    lines = []
    for instance in instances:
        engine = engines[instance.split("-")[0]]
        for attempt in race_script(instance, racer):
            result = engine.fire(instance, attempt.event, attempt.actor, dict(attempt.params))
            lines.append({
                "instance": instance, "event": attempt.event, "actor": attempt.actor, "racer": racer,
                "accepted": result.accepted, "code": result.code, "state": result.state, "status": result.status,
            })
    with open(results, "a", encoding="utf-8") as out:
        out.write("".join(json.dumps(line, sort_keys=True) + "\n" for line in lines))
        out.flush()
        os.fsync(out.fileno())


if __name__ == "__main__":
    sys.exit(main())
