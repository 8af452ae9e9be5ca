"""Several processes on one store (a SQLite file, a PostgreSQL schema): what API.md "Stores"
promises between engines. Each process opens its own engine, waits at a barrier, races, and
reports back; every wait is bounded."""

from __future__ import annotations

import multiprocessing
import queue
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest

import recyclebin as rb
from conftest import START, StoreLocation

SUB, RG = "sub-1", "rg-1"
PROCESSES = 4
TIMEOUT = 120.0
POLICY = """
version: 1
name: races
components:
  compute_instance: {on_delete: destroy}
"""

_context = multiprocessing.get_context("spawn")  # no inherited engine threads or locks


def _worker(task: str, location: str, now: datetime, barrier: Any, results: Any,
            index: int, arg: Any) -> None:
    try:
        engine = rb.Engine.open(location, policy=rb.Policy.from_yaml(POLICY),
                                clock=rb.ManualClock(now))
        barrier.wait(timeout=TIMEOUT)
        results.put((index, "ok", _TASKS[task](engine, index, arg)))
        engine.close()
    except rb.RecycleBinError as error:
        results.put((index, "error", (error.code, str(error))))
    except BaseException as error:  # reported to the parent, which fails the test
        results.put((index, "crash", repr(error)))


def _create(engine: rb.Engine, index: int, name: str) -> str:
    return rb.Workspace.create(SUB, RG, name, engine=engine).id


def _recover_or_purge(engine: rb.Engine, index: int, name: str) -> str:
    if index % 2 == 0:
        return rb.Workspace.recover(SUB, RG, name, engine=engine).workspace.id
    rb.Workspace.purge(SUB, RG, name, engine=engine)
    return "purged"


def _purge_expired(engine: rb.Engine, index: int, _: None) -> tuple[list[Any], list[int]]:
    report = engine.purge_expired()
    return [list(p) for p in report.purged], [t.id for t in report.cleanup]


def _claim(engine: rb.Engine, index: int, _: None) -> list[int]:
    seen: list[int] = []
    for _round in range(1000):  # bounded
        tasks = engine.claim_cleanup(f"worker-{index}", limit=5, lease=timedelta(minutes=10))
        if not tasks:
            break
        seen.extend(t.id for t in tasks)
    return seen


_TASKS: dict[str, Callable[[rb.Engine, int, Any], Any]] = {
    "create": _create, "recover_or_purge": _recover_or_purge,
    "purge_expired": _purge_expired, "claim": _claim,
}


def race(task: str, location: str, now: datetime, arg: Any = None) -> list[tuple[str, Any]]:
    """Runs ``task`` in PROCESSES processes at once; their outcomes, by process index."""
    barrier = _context.Barrier(PROCESSES)
    results = _context.Queue()
    processes = [_context.Process(target=_worker, args=(task, location, now, barrier, results, i, arg))
                 for i in range(PROCESSES)]
    for process in processes:
        process.start()
    outcomes: dict[int, tuple[str, Any]] = {}
    try:
        for _ in processes:
            index, kind, value = results.get(timeout=TIMEOUT)
            outcomes[index] = (kind, value)
    except queue.Empty:
        pytest.fail(f"{task}: not every process answered within {TIMEOUT}s: {outcomes}")
    finally:
        for process in processes:
            process.join(timeout=TIMEOUT)
            if process.is_alive():
                process.kill()
                process.join()
    crashes = [value for kind, value in outcomes.values() if kind == "crash"]
    assert not crashes, crashes
    return [outcomes[i] for i in range(PROCESSES)]


@pytest.fixture
def location(store_location: StoreLocation) -> str:
    return store_location("shared")


@pytest.fixture
def engine(location: str, clock: rb.ManualClock) -> Any:
    with rb.Engine.open(location, policy=rb.Policy.from_yaml(POLICY), clock=clock) as opened:
        yield opened


def test_of_racing_creates_exactly_one_wins(engine: rb.Engine, location: str) -> None:
    for round_ in range(3):
        outcomes = race("create", location, START, f"contested-{round_}")
        winners = [value for kind, value in outcomes if kind == "ok"]
        losers = [value for kind, value in outcomes if kind == "error"]
        assert len(winners) == 1, outcomes
        assert all(code == "workspace_exists" for code, _ in losers), outcomes
        assert rb.Workspace.get(f"contested-{round_}", SUB, RG, engine=engine).id == winners[0]


def test_of_racing_recovers_and_purges_exactly_one_succeeds(engine: rb.Engine, location: str) -> None:
    for round_ in range(3):
        name = f"binned-{round_}"
        rb.Workspace.create(SUB, RG, name, engine=engine).delete()
        outcomes = race("recover_or_purge", location, START, name)
        successes = [value for kind, value in outcomes if kind == "ok"]
        assert len(successes) == 1, outcomes
        assert all(kind == "error" and value[0] == "workspace_not_found"
                   for kind, value in outcomes if kind != "ok"), outcomes
        with pytest.raises(rb.WorkspaceNotFound):
            rb.Workspace.get_deleted(name, SUB, RG, engine=engine)


def test_concurrent_purge_expired_removes_each_workspace_once(engine: rb.Engine, location: str,
                                                               clock: rb.ManualClock) -> None:
    count = 300
    for i in range(count):
        rb.Workspace.create(SUB, f"rg-{i % 5}", f"ws-{i}", soft_delete_retention_days=1, engine=engine,
                            components=[rb.Component("models", f"m-{i}"),
                                        rb.Component("data", f"d-{i}")]).delete()
    clock.advance(timedelta(days=2))
    outcomes = race("purge_expired", location, clock.now())
    assert all(kind == "ok" for kind, _ in outcomes), outcomes
    purged = [tuple(p) for _, (items, _tasks) in outcomes for p in items]
    task_ids = [t for _, (_items, tasks) in outcomes for t in tasks]
    # Each report lists only what that call removed: together, every workspace once.
    assert len(purged) == count and len(set(purged)) == count
    assert len(task_ids) == 2 * count and len(set(task_ids)) == 2 * count
    actions = Counter(record.action for record in engine.audit_log())
    assert actions["expire"] == count
    assert sorted(t.id for t in engine.cleanup_tasks()) == sorted(task_ids)
    assert engine.purge_expired().purged == []


def test_concurrent_claims_hand_each_task_to_one_worker(engine: rb.Engine, location: str) -> None:
    expected: list[int] = []
    for i in range(30):
        ws = rb.Workspace.create(SUB, RG, f"ws-{i}", engine=engine, components=[
            rb.Component("compute_instance", f"ci-{i}-{j}") for j in range(4)])
        expected.extend(t.id for t in ws.delete().cleanup)
    outcomes = race("claim", location, START)
    claimed = [task_id for kind, ids in outcomes if kind == "ok" for task_id in ids]
    assert sorted(claimed) == sorted(expected)  # every task once, none twice
    assert all(t.leased_by is not None for t in engine.cleanup_tasks())
