"""The child of the kill -9 harness (test_crash.py): runs random operations on one SQLite
file until it is killed, and logs each one twice: an intent line before the call, and an
acknowledgement line (with what the call answered) only after it returned.

    python crash_child.py DB POLICY START_ISO SEED LOG

Lines are JSON, each written with one os.write() on an O_APPEND file: a line is in the file
as soon as the write returns, whatever happens to this process afterwards (SIGKILL keeps
the page cache). The clock is a ManualClock starting at START_ISO; each move is logged
before it is made, so the parent knows every instant an operation may have used.
"""

from __future__ import annotations

import json
import os
import random
import sys
from datetime import datetime, timedelta
from typing import Any

import recyclebin as rb

SUB = "sub-1"
GROUPS = ("rg-a", "rg-b")
NAMES = ("n0", "n1", "n2", "n3")
KINDS = ("compute_instance", "role_assignments", "volume", "models")
MEMBERS = ("alice", "bob", "carol")
MAX_OPERATIONS = 200_000  # bounded; the parent kills the child long before


def main(db: str, policy: str, start: str, seed: int, log_path: str) -> None:
    log = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def say(**line: Any) -> None:
        os.write(log, (json.dumps(line, separators=(",", ":")) + "\n").encode())

    clock = rb.ManualClock(datetime.fromisoformat(start))
    rng = random.Random(seed)
    engine = rb.Engine.open(db, policy=policy, clock=clock)
    say(t="ready")
    refs = 0

    def slot() -> tuple[str, str]:
        return rng.choice(GROUPS), rng.choice(NAMES)

    def live() -> rb.Workspace | None:
        rg, name = slot()
        try:
            return rb.Workspace.get(name, SUB, rg, engine=engine)
        except rb.WorkspaceNotFound:
            return None

    def run(intent: dict[str, Any], call: Any, answer: Any = None) -> None:
        say(t="intent", **intent)
        try:
            result = call()
        except rb.RecycleBinError as error:
            say(t="ack", ok=False, code=error.code)
            return
        say(t="ack", ok=True, **(answer(result) if answer else {}))

    def deleted(results: list[rb.DeleteResult]) -> dict[str, Any]:
        return {"cleanup": [[[t.id, t.workspace_id, t.kind, t.ref] for t in r.cleanup] for r in results],
                "permanent": [r.permanent for r in results]}

    for _ in range(MAX_OPERATIONS):
        roll = rng.random()
        if roll < 0.25:
            rg, name = slot()
            components: list[tuple[str, str, bool]] = []
            for _ in range(rng.randint(0, 3)):
                refs += 1
                components.append((rng.choice(KINDS), f"ref-{seed}-{refs}", rng.random() < 0.2))
            retention = rng.choice([None, 1, 2, 3])
            cmk = rng.random() < 0.1
            owner = "alice" if rng.random() < 0.5 else None
            run({"op": "create", "rg": rg, "name": name, "retention": retention, "cmk": cmk,
                 "components": components, "owner": owner},
                lambda: rb.Workspace.create(
                    SUB, rg, name, soft_delete_retention_days=retention, cmk_encrypted=cmk,
                    components=[rb.Component(kind, ref, alone) for kind, ref, alone in components],
                    principal=None if owner is None else rb.Principal(owner), engine=engine),
                lambda ws: {"id": ws.id})
        elif roll < 0.40:
            ws = live()
            if ws is None:
                continue
            permanently = rng.random() < 0.3
            dependent = permanently and rng.random() < 0.5
            run({"op": "delete", "ids": [ws.id], "permanently": permanently, "dependent": dependent},
                lambda: [ws.delete(permanently_delete=permanently, delete_dependent_resources=dependent)],
                deleted)
        elif roll < 0.45:
            members = [w for w in (live(), live()) if w is not None]
            if not members:
                continue
            permanently = len(members) == 1 and rng.random() < 0.3
            run({"op": "delete", "ids": [w.id for w in members], "permanently": permanently,
                 "dependent": False},
                lambda: rb.Workspace.delete_many(members, permanently_delete=permanently, engine=engine),
                deleted)
        elif roll < 0.55:
            rg, name = slot()
            run({"op": "recover", "rg": rg, "name": name},
                lambda: rb.Workspace.recover(SUB, rg, name, engine=engine))
        elif roll < 0.62:
            rg, name = slot()
            run({"op": "purge", "rg": rg, "name": name},
                lambda: [rb.Workspace.purge(SUB, rg, name, engine=engine)], deleted)
        elif roll < 0.70:
            ws = live()
            if ws is None:
                continue
            stop = rng.random() < 0.5
            run({"op": "stop" if stop else "start", "id": ws.id}, ws.stop if stop else ws.start)
        elif roll < 0.78:
            ws = live()
            if ws is None:
                continue
            member = rng.choice(MEMBERS)
            if rng.random() < 0.5:
                role = rng.choice(["reader", "contributor"])
                run({"op": "grant", "id": ws.id, "member": member, "role": role},
                    lambda: ws.grant(member, role))
            else:
                run({"op": "revoke", "id": ws.id, "member": member}, lambda: ws.revoke(member))
        elif roll < 0.84:
            run({"op": "purge_expired"}, engine.purge_expired,
                lambda report: {"purged": [list(p) for p in report.purged],
                                "cleanup": [[t.id, t.workspace_id, t.kind, t.ref] for t in report.cleanup]})
        elif roll < 0.92:
            pending = engine.cleanup_tasks()
            task_id = rng.choice(pending).id if pending and rng.random() < 0.9 else 10**9
            say(t="intent", op="complete_cleanup", task=task_id)
            try:
                engine.complete_cleanup(task_id)
                say(t="ack", ok=True)
            except KeyError:
                say(t="ack", ok=False, code="not_found")
        else:
            step = timedelta(minutes=rng.choice([1, 30, 6 * 60, 20 * 60, 26 * 60]))
            to = clock.now() + step
            say(t="clock", to=to.isoformat())  # before the move: the parent's clock is never behind
            clock.set(to)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5])
