"""The kill -9 harness: a child process (crash_child.py) runs random operations on one SQLite
file and acknowledges each only after it returned; this test kills it with SIGKILL at random
moments (during imports and Engine.open too), reopens the file after each kill and checks:

- PRAGMA integrity_check is ok, and the file opens (migrations are atomic);
- nothing acknowledged is lost and nothing is half-applied: the tables equal the reference
  model (reference_model.py) after every acknowledged operation, plus the one operation in
  flight either wholly applied or not at all (workspaces live xor in the bin xor gone, their
  components, members and cleanup tasks, every audit record);
- every acknowledged answer was the model's (error codes, purge_at, cleanup tasks);
- the public API agrees with the tables (get, get_deleted, list_deleted order, cleanup_tasks);
- the audit log replays to the tables: its `ok` records, in seq order, over an empty set,
  give exactly the live and the soft-deleted workspaces.

A few dozen kills by default, bounded in time; RECYCLEBIN_CRASH_KILLS=500 for a long run
(RECYCLEBIN_CRASH_SECONDS raises its time budget, RECYCLEBIN_CRASH_SEED changes the moments).
"""

from __future__ import annotations

import copy
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import recyclebin as rb

from reference_model import BIN, LIVE, REMOVED, Model, Refused, Task

START = datetime(2026, 1, 1, tzinfo=timezone.utc)
SUB = "sub-1"
CHILD = Path(__file__).with_name("crash_child.py")
KILLS = int(os.environ.get("RECYCLEBIN_CRASH_KILLS", "30"))
SECONDS = float(os.environ.get("RECYCLEBIN_CRASH_SECONDS", str(max(50.0, KILLS * 1.5))))
SEED = int(os.environ.get("RECYCLEBIN_CRASH_SEED", "20260101"))
MIN_KILLS = min(KILLS, 10)  # a slow machine may do fewer kills in the budget, never fewer than this

# Short retention, so that the child's clock moves (up to 26 hours a step) expire workspaces;
# every component rule; CMK workspaces hard-deleted; names held in their group.
POLICY = """\
version: 1
name: crash
retention: {default_days: 2, min_days: 1, max_days: 3}
components:
  compute_instance: {on_delete: destroy}
  role_assignments: {on_delete: destroy, on_recover: reattach}
  volume: {on_delete: preserve}
  default: {on_delete: retain}
"""
STATES = {0: "running", 1: "stopped"}  # the store's WorkspaceState column


def micros(when: datetime | None) -> int | None:
    if when is None:
        return None
    return (when - datetime(1970, 1, 1, tzinfo=timezone.utc)) // timedelta(microseconds=1)


# --- what the file holds -----------------------------------------------------------------------


@dataclass
class Tables:
    workspaces: dict[str, tuple[Any, ...]]
    tasks: dict[int, tuple[str, str, str, bool]]     # id -> workspace_id, kind, ref, completed
    audit: list[tuple[int, str, str, str, str, str, str]]  # seq, action, outcome, id, sub, rg, name
    stray_children: list[str] = field(default_factory=list)

    def audit_rest(self) -> list[tuple[str, str, str]]:
        return [(action, outcome, wid if outcome == "ok" else "")
                for _, action, outcome, wid, *_ in self.audit if action != "expire"]

    def expire_records(self) -> list[SimpleNamespace]:
        return [SimpleNamespace(workspace_id=wid) for _, action, _, wid, *_ in self.audit
                if action == "expire"]


def read_tables(path: Path) -> Tables | None:
    """The file's rows (None while it has no schema yet). Opened read-write so that SQLite
    recovers the WAL of a killed writer; nothing is written."""
    if not path.exists():
        return None
    db = sqlite3.connect(path)
    try:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "workspaces" not in tables:
            assert not tables, f"half a schema: {tables}"
            return None
        components: dict[str, list[tuple[Any, ...]]] = {}
        for wid, kind, ref, standalone, destroyed in db.execute(
                "SELECT workspace_id, kind, ref, standalone, destroyed FROM components "
                "ORDER BY workspace_id, position"):
            components.setdefault(wid, []).append((kind, ref, bool(standalone), bool(destroyed)))
        members: dict[str, list[tuple[str, str]]] = {}
        for wid, principal, role in db.execute(
                "SELECT workspace_id, principal_id, role FROM members ORDER BY workspace_id, principal_id"):
            members.setdefault(wid, []).append((principal, role))
        workspaces: dict[str, tuple[Any, ...]] = {}
        for row in db.execute(
                "SELECT id, subscription_id, resource_group, name, state, cmk_encrypted, retention_days, "
                "deleted_at, purge_at, orphaned_at IS NOT NULL, had_members, group_key IS NOT NULL "
                "FROM workspaces"):
            wid, sub, rg, name, state, cmk, days, deleted_at, purge_at, orphaned, had, keyed = row
            assert (deleted_at is None) == (purge_at is None), f"half a delete: {row}"
            assert keyed, f"{sub}/{rg}/{name} does not hold its name (scope: group): {row}"
            status = LIVE if deleted_at is None else BIN
            workspaces[wid] = (sub, rg, name, status, STATES[state], bool(cmk), days, deleted_at,
                               purge_at, tuple(components.get(wid, ())), tuple(members.get(wid, ())),
                               bool(orphaned), bool(had))
        stray = sorted((set(components) | set(members)) - set(workspaces))
        tasks = {tid: (wid, kind, ref, done is not None) for tid, wid, kind, ref, done in db.execute(
            "SELECT id, workspace_id, kind, ref, completed_at FROM cleanup_tasks")}
        audit = list(db.execute(
            "SELECT seq, action, outcome, workspace_id, subscription_id, resource_group, name "
            "FROM audit_log ORDER BY seq"))
        return Tables(workspaces, tasks, audit, stray)
    finally:
        db.close()


def model_rows(model: Model) -> dict[str, tuple[Any, ...]]:
    rows = {}
    for ws in model.workspaces.values():
        if ws.status == REMOVED:
            continue
        rows[ws.id] = (ws.sub, ws.rg, ws.name, ws.status, ws.state, ws.cmk, ws.retention_days,
                       micros(ws.deleted_at), micros(ws.purge_at),
                       tuple((c.kind, c.ref, c.standalone, c.destroyed) for c in ws.components),
                       tuple(sorted(ws.members.items())), ws.orphaned_at is not None, ws.had_members)
    return rows


# --- the model side of one operation -------------------------------------------------------------


class Run:
    """The model, fed with the child's log; knows the clock and the operation in flight."""

    def __init__(self, policy: rb.Policy) -> None:
        self.model = Model(policy.rules)
        self.now = START
        self.in_flight: dict[str, Any] | None = None
        self.counts: Counter[str] = Counter()

    def feed(self, line: dict[str, Any]) -> None:
        kind = line["t"]
        if kind == "ready":
            self.counts["opened"] += 1
        elif kind == "clock":
            self.now = max(self.now, datetime.fromisoformat(line["to"]))
        elif kind == "intent":
            assert self.in_flight is None, f"two intents without an ack: {self.in_flight}, {line}"
            self.in_flight = line
        elif kind == "ack":
            assert self.in_flight is not None, f"an ack without an intent: {line}"
            apply(self, self.model, self.in_flight, line)
            self.counts[f"{self.in_flight['op']}:{'ok' if line['ok'] else line['code']}"] += 1
            self.in_flight = None
        else:
            raise AssertionError(f"unknown log line {line}")


def _tasks(rows: list[list[Any]]) -> list[SimpleNamespace]:
    return [SimpleNamespace(id=tid, workspace_id=wid, kind=kind, ref=ref) for tid, wid, kind, ref in rows]


def apply(run: Run, model: Model, intent: dict[str, Any], ack: dict[str, Any] | None,
          tables: Tables | None = None) -> None:
    """Applies one operation to ``model``: acknowledged (``ack``: what the child was answered;
    the model must agree), or in flight (``ack`` None: as if it ran to the end; ``tables``
    supply what the engine chose, e.g. a new workspace's id). Raises Refused where the model
    refuses an operation in flight."""
    now = run.now
    op = intent["op"]

    def check(refusal: Refused | None) -> None:
        if ack is None:
            if refusal is not None:
                raise refusal
            return
        want = None if refusal is None else refusal.code
        got = None if ack["ok"] else ack["code"]
        assert got == want, f"{intent}: the engine answered {got or 'ok'}, the model {want or 'ok'}"

    def attempt(call: Any) -> Any:
        try:
            result = call()
        except Refused as refusal:
            check(refusal)
            return None
        check(None)
        return result

    if op == "create":
        rg, name = intent["rg"], intent["name"]
        new_id = None
        if ack is not None:
            new_id = ack.get("id")
        else:
            assert tables is not None
            fresh = [wid for wid, row in tables.workspaces.items()
                     if wid not in model.workspaces and row[:3] == (SUB, rg, name)]
            new_id = fresh[0] if fresh else "(not created)"
        holders = [ws for ws in model.workspaces.values()
                   if ws.status == BIN and (ws.sub, ws.rg, ws.name) == (SUB, rg, name) and model.gone(ws, now)]
        created = attempt(lambda: model.create(
            SUB, rg, name, retention=intent["retention"], cmk=intent["cmk"],
            components=[tuple(c) for c in intent["components"]], owner=intent["owner"], now=now,
            new_id=new_id))
        if created is not None:
            # The name's expired holder (scope: group, one at most) is removed by the create.
            for holder in holders:
                model.expire(holder, now)
    elif op == "delete":
        outcomes = attempt(lambda: model.delete_many(
            intent["ids"], permanently=intent["permanently"], dependent=intent["dependent"], now=now))
        if outcomes is not None and ack is not None:
            assert ack["permanent"] == [o.permanent for o in outcomes], intent
            for outcome, rows in zip(outcomes, ack["cleanup"]):
                model.learn_task_ids(outcome.cleanup, _tasks(rows))
    elif op == "recover":
        attempt(lambda: model.recover(SUB, intent["rg"], intent["name"], now))
    elif op == "purge":
        outcome = attempt(lambda: model.purge(SUB, intent["rg"], intent["name"], now))
        if outcome is not None and ack is not None:
            model.learn_task_ids(outcome.cleanup, _tasks(ack["cleanup"][0]))
    elif op in ("stop", "start"):
        attempt(lambda: model.set_state(intent["id"], "stopped" if op == "stop" else "running", now))
    elif op == "grant":
        attempt(lambda: model.grant(intent["id"], intent["member"], intent["role"], now))
    elif op == "revoke":
        attempt(lambda: model.revoke(intent["id"], intent["member"], now))
    elif op == "purge_expired":
        due = {(ws.sub, ws.rg, ws.name): ws for ws in model.expire_due(now)}
        if ack is None:
            for ws in due.values():
                model.expire(ws, now)
            return
        new: list[Task] = []
        for triple in ack["purged"]:
            assert tuple(triple) in due, f"purge_expired removed {triple}, which is not due"
            new.extend(model.expire(due.pop(tuple(triple)), now).cleanup)
        # What is due and was not reported was removed earlier by a create over its name; the
        # audit log tells (resolve_expiry), and the check after the kill asserts it.
        real = _tasks(ack["cleanup"])
        assert sorted(t.key for t in new) == sorted((t.workspace_id, t.kind, t.ref) for t in real)
        for task in new:
            match = next(r for r in real if (r.workspace_id, r.kind, r.ref) == task.key)
            real.remove(match)
            task.id = match.id
    elif op == "complete_cleanup":
        task_id = intent["task"]
        known = any(t.id == task_id for t in model.tasks)
        if not known and (ack is None or ack["ok"]):
            model.completed_unknown.add(task_id)   # written by a create over an expired name
            return
        attempt(lambda: model.complete_cleanup(task_id))
    else:
        raise AssertionError(f"unknown operation {intent}")


# --- after each kill ---------------------------------------------------------------------------


def settle(run: Run, model: Model, tables: Tables) -> None:
    """What the model learns from the file: expiries (from the audit log), and the ids of the
    cleanup tasks it expects but was not told (matched by workspace, kind and ref)."""
    model.resolve_expiry(tables.expire_records(), run.now)
    known = {t.id for t in model.tasks if t.id is not None}
    for tid in sorted(tables.tasks):
        if tid in known:
            continue
        wid, kind, ref, _ = tables.tasks[tid]
        task = next((t for t in model.tasks if t.id is None and t.key == (wid, kind, ref)), None)
        if task is not None:
            task.id = tid
    for task in model.tasks:
        if task.id in model.completed_unknown:
            task.completed = True


def differences(model: Model, tables: Tables) -> list[str]:
    problems = []
    want, got = model_rows(model), tables.workspaces
    for wid in sorted(set(want) | set(got)):
        if want.get(wid) != got.get(wid):
            problems.append(f"workspace {wid}: model {want.get(wid)}, file {got.get(wid)}")
    want_tasks = {t.id: (*t.key, t.completed) for t in model.tasks}
    if want_tasks != tables.tasks:
        problems.append(f"cleanup tasks: model {sorted(want_tasks.items(), key=str)}, "
                        f"file {sorted(tables.tasks.items(), key=str)}")
    want_audit = [(e.action, e.outcome, e.workspace_id) for e in model.audit]
    if want_audit != tables.audit_rest():
        problems.append(f"audit: model ...{want_audit[-4:]}, file ...{tables.audit_rest()[-4:]} "
                        f"({len(want_audit)} vs {len(tables.audit_rest())} records)")
    if tables.stray_children:
        problems.append(f"components or members of no workspace: {tables.stray_children}")
    return problems


def candidates(run: Run, tables: Tables) -> list[tuple[str, Model]]:
    """The model as it may be now: without the operation in flight, and with it."""
    out = [("not applied", copy.deepcopy(run.model))]
    if run.in_flight is not None:
        applied = copy.deepcopy(run.model)
        try:
            apply(run, applied, run.in_flight, None, tables)
            out.append(("applied", applied))
        except Refused:
            out.append(("refused, refusal audited", applied))  # the refusal has its own commit
    return out


def replay_audit(tables: Tables, model: Model) -> tuple[set[str], set[str]]:
    """Live and soft-deleted workspace ids, from the `ok` audit records alone (in seq order).
    A delete record leaves the workspace in the bin unless it was permanent, which the audit
    record does not say: the model knows which deletes were (removed_by == "delete")."""
    live: set[str] = set()
    binned: set[str] = set()
    last_delete = {wid: seq for seq, action, outcome, wid, *_ in tables.audit
                   if action == "delete" and outcome == "ok"}
    seqs = [record[0] for record in tables.audit]
    assert seqs == sorted(set(seqs)), "audit seq must increase strictly"
    for seq, action, outcome, wid, sub, rg, name in tables.audit:
        if outcome != "ok":
            assert outcome.startswith("refused:"), outcome
            continue
        if action == "create":
            assert wid not in live | binned, f"created twice: {wid}"
            live.add(wid)
        elif action in ("stop", "start", "grant", "revoke"):
            assert wid in live, f"{action} of {wid}, which is not live"
        elif action == "delete":
            assert wid in live, f"delete of {wid}, which is not live"
            live.remove(wid)
            ws = model.workspaces[wid]
            if not (ws.removed_by == "delete" and last_delete[wid] == seq):
                binned.add(wid)
        elif action == "recover":
            assert wid in binned, f"recover of {wid}, which is not in the bin"
            binned.remove(wid)
            live.add(wid)
        elif action in ("purge", "expire"):
            assert wid in binned, f"{action} of {wid}, which is not in the bin"
            binned.remove(wid)
        else:
            raise AssertionError(f"unknown audit action {action}")
    return live, binned


def check_public_api(path: Path, policy: rb.Policy, model: Model, now: datetime) -> None:
    with rb.Engine.open(path, policy=policy, clock=rb.ManualClock(now)) as engine:
        for ws in model.workspaces.values():
            if ws.status == LIVE:
                real = rb.Workspace.get_by_id(ws.id, engine=engine)
                assert (real.name, real.state) == (ws.name, ws.state)
                assert [(c.kind, c.ref, c.standalone) for c in real.components] == [
                    (c.kind, c.ref, c.standalone) for c in ws.components if not c.destroyed]
        slots = {(ws.rg, ws.name) for ws in model.workspaces.values()}
        for rg, name in slots:
            binned = model.in_bin(SUB, rg, name, now)
            try:
                found: str | None = rb.Workspace.get_deleted(name, SUB, rg, engine=engine).id
            except rb.WorkspaceNotFound:
                found = None
            assert found == (binned.id if binned else None), f"get_deleted {rg}/{name}"
        listed = [d.id for d in rb.Workspace.list_deleted(SUB, engine=engine)]
        assert listed == [ws.id for ws in model.list_deleted(SUB, None, now)]
        pending = [t.id for t in engine.cleanup_tasks()]
        assert pending == sorted(t.id for t in model.pending_tasks() if t.id is not None)
        assert len(pending) == len(model.pending_tasks())


def log_tail(log: Path, offset: int) -> bytes:
    if not log.exists():
        return b""
    with open(log, "rb") as handle:
        handle.seek(offset)
        return handle.read()


def read_log(log: Path, offset: int) -> tuple[list[dict[str, Any]], int]:
    """The complete lines after ``offset``, and the offset after them; a torn last line
    (killed mid-write) is cut off the file."""
    data = log_tail(log, offset)
    end = data.rfind(b"\n") + 1
    if end < len(data):
        with open(log, "r+b") as handle:
            handle.truncate(offset + end)
    return [json.loads(line) for line in data[:end].splitlines()], offset + end


def test_kill_9_loses_nothing_and_half_applies_nothing(tmp_path: Path) -> None:
    db, log, errors = tmp_path / "bin.db", tmp_path / "child.log", tmp_path / "child.err"
    (tmp_path / "crash.yaml").write_text(POLICY)
    policy = rb.Policy.load(tmp_path / "crash.yaml")
    run = Run(policy)
    rng = random.Random(SEED)
    seen = 0
    kills = 0
    in_flight_outcomes: Counter[str] = Counter()
    deadline = time.monotonic() + SECONDS
    while kills < KILLS and time.monotonic() < deadline:
        with open(errors, "wb") as err:
            child = subprocess.Popen(
                [sys.executable, str(CHILD), str(db), str(tmp_path / "crash.yaml"),
                 run.now.isoformat(), str(rng.randrange(2**31)), str(log)],
                stdout=subprocess.DEVNULL, stderr=err)
            try:
                if rng.random() < 0.15:   # during start-up: imports, Engine.open, migrations
                    time.sleep(rng.uniform(0.0, 0.4))
                else:
                    ready_by = time.monotonic() + 30
                    while b'"t":"ready"' not in log_tail(log, seen):
                        assert child.poll() is None, f"the child died: {errors.read_text()}"
                        assert time.monotonic() < ready_by, "the child did not open the engine in 30 s"
                        time.sleep(0.005)
                    time.sleep(rng.uniform(0.0, 0.25))
                assert child.poll() is None, f"the child ended by itself: {errors.read_text()}"
                child.send_signal(signal.SIGKILL)
            finally:
                child.kill()
                child.wait(timeout=30)
        assert child.returncode == -signal.SIGKILL, errors.read_text()
        kills += 1

        lines, seen = read_log(log, seen)
        for line in lines:
            run.feed(line)
        tables = read_tables(db)
        if tables is None:   # killed before the first Engine.open had made the schema
            assert run.counts["opened"] == 0 and run.in_flight is None
            continue
        tried = []
        for label, model in candidates(run, tables):
            settle(run, model, tables)
            problems = differences(model, tables)
            if not problems:
                break
            tried.append(f"{label}:\n  " + "\n  ".join(problems[:5]))
        else:
            raise AssertionError(f"after kill {kills}, in flight {run.in_flight}, the file matches "
                                 "no state the model allows:\n" + "\n".join(tried))
        in_flight_outcomes["(between operations)" if run.in_flight is None
                           else f"{run.in_flight['op']}: {label}"] += 1
        run.model, run.in_flight = model, None

        live, binned = replay_audit(tables, model)
        assert live == {w for w, row in tables.workspaces.items() if row[3] == LIVE}
        assert binned == {w for w, row in tables.workspaces.items() if row[3] == BIN}
        names = Counter((row[0], row[1], row[2]) for row in tables.workspaces.values())
        assert all(n == 1 for n in names.values()), f"a name held twice in its group: {names}"
        check_public_api(db, policy, model, run.now)

    operations = sum(n for key, n in run.counts.items() if key != "opened")
    print(f"\nkill -9 harness: {kills} kills, {operations} acknowledged operations, "
          f"{run.counts['opened']} opens, in flight at the kill: {dict(in_flight_outcomes)}")
    assert kills >= MIN_KILLS, f"only {kills} kills in {SECONDS} s"
    assert operations > kills, "the child barely ran between kills"
    assert set(in_flight_outcomes) - {"(between operations)"}, "no kill landed mid-operation"
