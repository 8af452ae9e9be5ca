"""Several processes on one store, racing (API.md, version 2, "Stores": between engines that
share a store): creates of one name, recover / purge / permanent delete of one workspace,
recover against create of a name, and purge_expired run by every process at once.

Each worker process opens its own engine on ``shared_store`` (conftest.py: a SQLite file or a
PostgreSQL schema, as --store says), then every round starts at a barrier so that the calls
really race. Rounds and waits are bounded.
"""

from __future__ import annotations

import multiprocessing
import queue
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

import recyclebin as rb

START = datetime(2026, 1, 1, tzinfo=timezone.utc)
SUB, RG = "sub-1", "rg-1"
PROCESSES = 6
ROUNDS = 8
WAIT = 60.0  # seconds: the longest any barrier or result may take

Round = tuple[str, tuple[Any, ...]]   # an operation and its arguments


def _call(engine: rb.Engine, op: str, args: tuple[Any, ...]) -> tuple[str, Any]:
    """("ok", what it answered) or ("error", the error's code)."""
    try:
        if op == "create":
            return "ok", rb.Workspace.create(*args, engine=engine).id
        if op == "recover":
            return "ok", rb.Workspace.recover(*args, engine=engine).workspace.id
        if op == "purge":
            result = rb.Workspace.purge(*args, engine=engine)
            return "ok", [(t.id, t.workspace_id, t.kind, t.ref) for t in result.cleanup]
        if op == "delete_permanently":
            (workspace_id,) = args
            ws = rb.Workspace.get_by_id(workspace_id, engine=engine)
            result = ws.delete(permanently_delete=True)
            return "ok", [(t.id, t.workspace_id, t.kind, t.ref) for t in result.cleanup]
        if op == "purge_expired":
            report = engine.purge_expired()
            return "ok", ([tuple(p) for p in report.purged],
                          [(t.id, t.workspace_id, t.kind, t.ref) for t in report.cleanup])
    except rb.RecycleBinError as error:
        return "error", error.code
    raise AssertionError(f"unknown operation {op}")


def _worker(location: str, policy: str, now: datetime, rounds: list[Round],
            barrier: Any, results: Any, index: int) -> None:
    try:
        engine = rb.Engine.open(location, policy=policy, clock=rb.ManualClock(now))
    except BaseException as error:  # reported to the parent, which fails the test
        results.put((index, -1, ("crash", repr(error))))
        barrier.abort()
        return
    try:
        for number, (op, args) in enumerate(rounds):
            barrier.wait(timeout=WAIT)
            try:
                answer = _call(engine, op, args)
            except BaseException as error:
                answer = ("crash", repr(error))
            results.put((index, number, answer))
    finally:
        engine.close()


def race(location: str, policy: str, now: datetime, plans: list[list[Round]]) -> list[list[tuple[str, Any]]]:
    """Runs ``plans[i]`` (one operation per round) in process i, each round started by all at
    once; returns answers[round][process]."""
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(len(plans))
    results = context.Queue()
    workers = [context.Process(target=_worker, args=(location, policy, now, plan, barrier, results, i),
                               daemon=True) for i, plan in enumerate(plans)]
    rounds = len(plans[0])
    answers: list[list[tuple[str, Any]]] = [[("missing", None)] * len(plans) for _ in range(rounds)]
    with _reaped(workers):
        for worker in workers:
            worker.start()
        for _ in range(rounds * len(plans)):
            try:
                index, number, answer = results.get(timeout=WAIT * 2)
            except queue.Empty:
                raise AssertionError(f"a worker gave no answer in {WAIT * 2} s") from None
            assert number >= 0, f"worker {index} could not open the store: {answer}"
            assert answer[0] != "crash", f"worker {index}, round {number}: {answer[1]}"
            answers[number][index] = answer
        for worker in workers:
            worker.join(timeout=WAIT)
            assert worker.exitcode == 0, f"a worker ended with {worker.exitcode}"
    return answers


@contextmanager
def _reaped(workers: list[Any]) -> Iterator[None]:
    try:
        yield
    finally:
        for worker in workers:
            if worker.is_alive():
                worker.kill()
                worker.join(timeout=WAIT)


def _codes(answers: list[tuple[str, Any]]) -> Counter[str]:
    return Counter("ok" if kind == "ok" else value for kind, value in answers)


# --- the races -----------------------------------------------------------------------------------


def test_creates_of_one_name_have_one_winner(shared_store: str) -> None:
    clock = rb.ManualClock(START)
    with rb.Engine.open(shared_store, clock=clock) as engine:
        # Every other round the name is held by a workspace in the bin: all must lose.
        for number in range(ROUNDS):
            if number % 2:
                rb.Workspace.create(SUB, RG, f"name-{number}", engine=engine).delete()
    plans = [[("create", (SUB, RG, f"name-{number}")) for number in range(ROUNDS)]
             for _ in range(PROCESSES)]
    answers = race(shared_store, "default", START, plans)
    with rb.Engine.open(shared_store, clock=clock) as engine:
        log = engine.audit_log()
        for number, round_answers in enumerate(answers):
            name = f"name-{number}"
            codes = _codes(round_answers)
            creates = [r for r in log if r.action == "create" and r.name == name]
            if number % 2:
                assert codes == {"name_reserved": PROCESSES}, (name, codes)
                assert [r.outcome for r in creates].count("ok") == 1   # the one made before
                continue
            assert codes["ok"] == 1 and set(codes) <= {"ok", "workspace_exists", "name_reserved"}, codes
            winner = next(value for kind, value in round_answers if kind == "ok")
            assert rb.Workspace.get(name, SUB, RG, engine=engine).id == winner
            assert Counter(r.outcome for r in creates) == {
                "ok": 1, **{f"refused:{code}": n for code, n in codes.items() if code != "ok"}}


def test_recover_purge_and_permanent_delete_of_one_workspace_have_one_winner(shared_store: str) -> None:
    """Odd rounds: the workspace is in the bin, half the processes recover it, half purge it.
    Even rounds: it is live, every process deletes it permanently."""
    with rb.Engine.open(shared_store, clock=rb.ManualClock(START)) as engine:
        ids = []
        for number in range(ROUNDS):
            ws = rb.Workspace.create(SUB, RG, f"ws-{number}", engine=engine,
                                     components=[rb.Component("models", f"m-{number}")])
            ids.append(ws.id)
            if number % 2:
                ws.delete()
    plans = []
    for index in range(PROCESSES):
        plan: list[Round] = []
        for number in range(ROUNDS):
            slot = (SUB, RG, f"ws-{number}")
            if number % 2:
                plan.append(("recover" if index % 2 else "purge", slot))
            else:
                plan.append(("delete_permanently", (ids[number],)))
        plans.append(plan)
    answers = race(shared_store, "default", START, plans)
    with rb.Engine.open(shared_store, clock=rb.ManualClock(START)) as engine:
        tasks = {t.workspace_id: t for t in engine.cleanup_tasks()}
        for number, round_answers in enumerate(answers):
            codes = _codes(round_answers)
            assert codes["ok"] == 1 and set(codes) <= {"ok", "workspace_not_found"}, (number, codes)
            winner = next(i for i, (kind, _) in enumerate(round_answers) if kind == "ok")
            name = f"ws-{number}"
            recovered = number % 2 == 1 and winner % 2 == 1
            if recovered:
                assert rb.Workspace.get(name, SUB, RG, engine=engine).id == ids[number]
                assert ids[number] not in tasks
            else:   # purged, or deleted permanently: gone, with one cleanup task for its model
                with pytest.raises(rb.WorkspaceNotFound):
                    rb.Workspace.get(name, SUB, RG, engine=engine)
                with pytest.raises(rb.WorkspaceNotFound):
                    rb.Workspace.get_deleted(name, SUB, RG, engine=engine)
                written = round_answers[winner][1]
                assert [(wid, kind, ref) for _, wid, kind, ref in written] == [
                    (ids[number], "models", f"m-{number}")]
                assert tasks[ids[number]].id == written[0][0]
        outcomes = Counter((r.name, r.action, r.outcome) for r in engine.audit_log()
                           if r.action in ("recover", "purge", "delete") and r.outcome == "ok")
        for number in range(ROUNDS):
            wins = sum(n for (name, action, _), n in outcomes.items()
                       if name == f"ws-{number}" and not (number % 2 and action == "delete"))
            assert wins == 1, (number, outcomes)


def test_recover_against_create_of_its_name_has_one_winner(shared_store: str) -> None:
    """parsec keeps no name reserved (scope: none): a create may take the name of a workspace
    in the bin, and a recover that loses it raises WorkspaceExists."""
    with rb.Engine.open(shared_store, policy="parsec", clock=rb.ManualClock(START)) as engine:
        ids = []
        for number in range(ROUNDS):
            ws = rb.Workspace.create(SUB, RG, f"ws-{number}", engine=engine)
            ws.delete()
            ids.append(ws.id)
    plans = [[("recover" if index % 2 else "create", (SUB, RG, f"ws-{number}")) for number in range(ROUNDS)]
             for index in range(PROCESSES)]
    answers = race(shared_store, "parsec", START, plans)
    with rb.Engine.open(shared_store, policy="parsec", clock=rb.ManualClock(START)) as engine:
        for number, round_answers in enumerate(answers):
            codes = _codes(round_answers)
            assert codes["ok"] == 1, (number, codes)
            creates = _codes(round_answers[0::2])    # even processes create, odd ones recover
            recovers = _codes(round_answers[1::2])
            assert set(creates) <= {"ok", "workspace_exists"}, (number, creates)
            # A recover loses to a create (WorkspaceExists) or to another recover (not found).
            assert set(recovers) <= {"ok", "workspace_exists", "workspace_not_found"}, (number, recovers)
            winner = next(i for i, (kind, _) in enumerate(round_answers) if kind == "ok")
            live = rb.Workspace.get(f"ws-{number}", SUB, RG, engine=engine)
            if winner % 2:   # the recover won: the old workspace is back
                assert live.id == ids[number]
            else:            # a create won: a new workspace, the old one still in the bin
                assert live.id == round_answers[winner][1] != ids[number]
                assert rb.Workspace.get_deleted(f"ws-{number}", SUB, RG, engine=engine).id == ids[number]


@pytest.mark.parametrize("count", [60, 4200])  # 4200: more than one sweep chunk (2,000 rows)
def test_purge_expired_everywhere_at_once_removes_each_workspace_once(shared_store: str, count: int) -> None:
    clock = rb.ManualClock(START)
    expired: dict[str, tuple[str, str, str]] = {}
    kept = set()

    def binned(number: int) -> tuple[int, rb.Workspace]:
        ws = rb.Workspace.create(SUB, f"rg-{number % 3}", f"ws-{number}", engine=engine,
                                 soft_delete_retention_days=1 if number % 4 else 3,
                                 components=[rb.Component("models", f"m-{number}"),
                                             rb.Component("data", f"d-{number}")])
        ws.delete()
        return number, ws

    with rb.Engine.open(shared_store, clock=clock) as engine:
        with ThreadPoolExecutor(4) as pool:   # threads share commits: a quick setup
            for number, ws in pool.map(binned, range(count)):
                if number % 4:
                    expired[ws.id] = (SUB, ws.resource_group, ws.name)
                else:
                    kept.add(ws.id)
        before = len(engine.audit_log())
    # Every process sweeps twice at the same instant (the second sweep finds nothing).
    plans = [[("purge_expired", ()), ("purge_expired", ())] for _ in range(PROCESSES)]
    answers = race(shared_store, "default", START + timedelta(days=2), plans)

    purged: list[tuple[str, str, str]] = []
    written: list[tuple[int, str, str, str]] = []
    for round_answers in answers:
        for kind, (report_purged, report_cleanup) in round_answers:
            assert kind == "ok"
            purged.extend(report_purged)
            written.extend(report_cleanup)
            # Each report lists only what its call removed: its tasks are its workspaces'.
            names = {tuple(p) for p in report_purged}
            assert {expired[wid] for _, wid, _, _ in report_cleanup} <= names
    assert all(answer[1] == ([], []) for answer in answers[1]), "a second sweep found work"
    assert Counter(purged) == Counter(expired.values()), "each expired workspace exactly once"
    sweepers = sum(1 for kind, (report_purged, _) in answers[0] if report_purged)
    print(f"\npurge_expired of {len(expired)} workspaces by {PROCESSES} processes: {sweepers} removed some")
    assert sorted(t[1:] for t in written) == sorted(
        (wid, kind, f"{kind[0]}-{name.split('-')[1]}") for wid, (_, _, name) in expired.items()
        for kind in ("models", "data"))
    with rb.Engine.open(shared_store, clock=rb.ManualClock(START + timedelta(days=2))) as engine:
        pending = engine.cleanup_tasks()
        assert sorted((t.id, t.workspace_id, t.kind, t.ref) for t in pending) == sorted(written)
        records = engine.audit_log()[before:]
        assert Counter(r.workspace_id for r in records) == Counter(list(expired)), "one expire record each"
        assert {r.action for r in records} == {"expire"}
        still = {d.id for d in rb.Workspace.list_deleted(SUB, engine=engine)}
        assert still == kept
