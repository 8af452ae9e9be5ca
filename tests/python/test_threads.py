"""Many Python threads on one engine: calls run in C++ with the GIL released, the facts
provider is called back from those threads, and racing writers never both win."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest

import recyclebin as rb

from conftest import MakeEngine

SUB = "sub-1"
THREADS = 8


def test_threads_work_on_their_own_workspaces(engine: rb.Engine) -> None:
    rounds = 15

    def worker(index: int) -> int:
        group = f"rg-{index}"
        done = 0
        for round_ in range(rounds):
            name = f"ws-{round_}"
            ws = rb.Workspace.create(SUB, group, name, engine=engine,
                                     components=[rb.Component("models", f"m-{index}-{round_}")])
            ws.stop()
            ws.delete()
            if round_ % 3 == 0:
                assert rb.Workspace.recover(SUB, group, name, engine=engine).workspace is ws
                ws.start()
            done += 1
        return done

    with ThreadPoolExecutor(THREADS) as pool:
        assert sum(pool.map(worker, range(THREADS))) == THREADS * rounds

    deleted = rb.Workspace.list_deleted(SUB, engine=engine)
    recovered_per_group = len([r for r in range(rounds) if r % 3 == 0])
    assert len(deleted) == THREADS * (rounds - recovered_per_group)
    actions = Counter(record.action for record in engine.audit_log())
    assert actions["create"] == THREADS * rounds
    assert actions["delete"] == THREADS * rounds
    assert actions["recover"] == THREADS * recovered_per_group
    seqs = [record.seq for record in engine.audit_log()]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)


def test_racing_creates_of_one_name_have_one_winner(engine: rb.Engine) -> None:
    barrier = threading.Barrier(THREADS)

    def attempt(_: int) -> str:
        barrier.wait()
        try:
            return rb.Workspace.create(SUB, "rg", "contested", engine=engine).id
        except rb.WorkspaceExists:
            return "lost"

    with ThreadPoolExecutor(THREADS) as pool:
        outcomes = list(pool.map(attempt, range(THREADS)))
    winners = [outcome for outcome in outcomes if outcome != "lost"]
    assert len(winners) == 1
    assert rb.Workspace.get("contested", SUB, "rg", engine=engine).id == winners[0]


def test_racing_recover_and_create_never_both_win(engine: rb.Engine) -> None:
    for round_ in range(10):
        name = f"ws-{round_}"
        rb.Workspace.create(SUB, "rg", name, engine=engine).delete()
        barrier = threading.Barrier(2)

        def recover(name: str = name) -> str:
            barrier.wait()
            try:
                rb.Workspace.recover(SUB, "rg", name, engine=engine)
                return "recovered"
            except rb.RecycleBinError as error:
                return error.code

        def purge_then_create(name: str = name) -> str:
            barrier.wait()
            try:
                rb.Workspace.purge(SUB, "rg", name, engine=engine)
                rb.Workspace.create(SUB, "rg", name, engine=engine)
                return "created"
            except rb.RecycleBinError as error:
                return error.code

        with ThreadPoolExecutor(2) as pool:
            first = pool.submit(recover)
            second = pool.submit(purge_then_create)
            outcomes = {first.result(), second.result()}
        assert outcomes in ({"recovered", "workspace_not_found"}, {"workspace_not_found", "created"},
                            {"recovered", "workspace_exists"}), outcomes
        assert rb.Workspace.get(name, SUB, "rg", engine=engine).name == name


def test_facts_provider_called_from_many_threads(make_engine: MakeEngine) -> None:
    engine = make_engine(preconditions={"blockers": ["running_jobs"]})
    callers: set[int] = set()
    lock = threading.Lock()

    def provider(workspace: rb.Workspace) -> dict[str, int]:
        with lock:
            callers.add(threading.get_ident())
        time.sleep(0.001)  # let other threads run meanwhile
        return {"running_jobs": 1 if workspace.name.endswith("busy") else 0}

    engine.set_facts_provider(provider)

    def worker(index: int) -> tuple[int, int]:
        deleted = refused = 0
        for round_ in range(5):
            suffix = "busy" if round_ % 2 else "idle"
            ws = rb.Workspace.create(SUB, f"rg-{index}", f"ws-{round_}-{suffix}", engine=engine)
            try:
                ws.delete()
                deleted += 1
            except rb.PreconditionFailed as error:
                assert "running_jobs" in str(error)
                refused += 1
        return deleted, refused

    with ThreadPoolExecutor(THREADS) as pool:
        results = list(pool.map(worker, range(THREADS)))
    assert sum(d for d, _ in results) == THREADS * 3
    assert sum(r for _, r in results) == THREADS * 2
    assert len(callers) > 1


def test_provider_replaced_while_deletes_run(make_engine: MakeEngine) -> None:
    engine = make_engine(preconditions={"warnings": ["load"]})
    stop = threading.Event()

    def swapper() -> None:
        value = 0
        while not stop.is_set():
            value += 1
            engine.set_facts_provider(lambda workspace, value=value: {"load": value % 2})
            if value % 7 == 0:
                engine.set_facts_provider(None)

    def worker(index: int) -> int:
        for round_ in range(20):
            result = rb.Workspace.create(SUB, f"rg-{index}", f"ws-{round_}", engine=engine).delete()
            assert len(result.warnings) <= 1
        return 20

    swapping = threading.Thread(target=swapper)
    swapping.start()
    try:
        with ThreadPoolExecutor(4) as pool:
            assert sum(pool.map(worker, range(4))) == 80
    finally:
        stop.set()
        swapping.join()


def test_gil_is_released_while_the_engine_waits(tmp_path: Path, clock: rb.ManualClock) -> None:
    """A write blocked on SQLite's lock (held by another connection) must not hold the GIL:
    this thread keeps running Python meanwhile."""
    path = tmp_path / "bin.db"
    with rb.Engine.open(path, clock=clock) as engine:
        rb.Workspace.create(SUB, "rg", "warm-up", engine=engine)
        blocker = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        try:
            blocker.execute("BEGIN IMMEDIATE")
            outcome: list[object] = []

            def write() -> None:
                try:
                    outcome.append(rb.Workspace.create(SUB, "rg", "blocked", engine=engine))
                except BaseException as error:  # reported below
                    outcome.append(error)

            writer = threading.Thread(target=write)
            writer.start()
            deadline = time.monotonic() + 0.5
            spins = 0
            while time.monotonic() < deadline:  # Python runs while the writer waits in C++
                spins += 1
            assert writer.is_alive() and outcome == []
            assert spins > 1000
            # Reads do not wait for the writer either.
            assert rb.Workspace.get("warm-up", SUB, "rg", engine=engine).name == "warm-up"
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        writer.join(timeout=30)
        assert not writer.is_alive()
        assert len(outcome) == 1 and isinstance(outcome[0], rb.Workspace), outcome


def test_close_while_threads_call(engine: rb.Engine) -> None:
    started = threading.Barrier(THREADS + 1)

    def worker(index: int) -> Counter[str]:
        outcomes: Counter[str] = Counter()
        started.wait()
        for round_ in range(100_000):  # bounded; ends at the first EngineClosed
            try:
                rb.Workspace.create(SUB, f"rg-{index}", f"ws-{round_}", engine=engine).delete()
                outcomes["ok"] += 1
            except rb.EngineClosed:
                outcomes["closed"] += 1
                break
        return outcomes

    with ThreadPoolExecutor(THREADS) as pool:
        futures = [pool.submit(worker, index) for index in range(THREADS)]
        started.wait()
        time.sleep(0.05)
        engine.close()
        results = [future.result(timeout=60) for future in futures]
    assert all(outcomes["closed"] == 1 for outcomes in results), results
    assert sum(outcomes["ok"] for outcomes in results) > 0
    with pytest.raises(rb.EngineClosed):
        engine.audit_log()


def test_clock_moved_while_threads_read(engine: rb.Engine, clock: rb.ManualClock) -> None:
    def worker(index: int) -> None:
        for round_ in range(20):
            result = rb.Workspace.create(SUB, f"rg-{index}", f"ws-{round_}",
                                         soft_delete_retention_days=1, engine=engine).delete()
            assert result.purge_at == result.deleted_at + timedelta(days=1)

    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(worker, index) for index in range(4)]
        for _ in range(50):
            clock.advance(timedelta(minutes=1))
        for future in futures:
            future.result()


def test_memory_engine_shared_between_threads(clock: rb.ManualClock) -> None:
    with rb.Engine.open(":memory:", clock=clock) as engine:
        rb.Workspace.create(SUB, "rg", "shared", engine=engine)

        def read(_: int) -> str:
            return rb.Workspace.get("shared", SUB, "rg", engine=engine).name

        with ThreadPoolExecutor(4) as pool:
            assert list(pool.map(read, range(8))) == ["shared"] * 8
