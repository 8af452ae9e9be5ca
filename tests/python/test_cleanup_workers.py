"""Cleanup workers (API.md "Cleanup workers"), on both stores: claims with leases, failed
attempts with a retry time, completion; bad input; the REST routes (platform only)."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

import pytest

import recyclebin as rb
from conftest import MakeEngine

SUB, RG = "sub-1", "rg-1"
DESTROY = {"compute_instance": {"on_delete": "destroy"}}


def outbox(engine: rb.Engine, count: int) -> list[int]:
    """``count`` pending tasks (a soft delete destroys compute instances at once)."""
    ws = rb.Workspace.create(SUB, RG, f"ws-{count}", engine=engine, components=[
        rb.Component("compute_instance", f"ci-{i}") for i in range(count)])
    return [task.id for task in ws.delete().cleanup]


def test_claim_leases_the_oldest_tasks_to_the_worker(make_engine: MakeEngine,
                                                      clock: rb.ManualClock) -> None:
    engine = make_engine(components=DESTROY)
    ids = outbox(engine, 5)
    first = engine.claim_cleanup("worker-a", limit=2, lease=timedelta(minutes=1))
    assert [t.id for t in first] == ids[:2]
    assert all(t.leased_by == "worker-a" for t in first)
    assert all(t.leased_until == clock.now() + timedelta(minutes=1) for t in first)
    assert all(t.attempts == 0 and t.last_error is None for t in first)
    # The default limit is 100 and the default lease five minutes.
    rest = engine.claim_cleanup("worker-b")
    assert [t.id for t in rest] == ids[2:]
    assert rest[0].leased_until == clock.now() + timedelta(minutes=5)
    assert engine.claim_cleanup("worker-c") == []  # everything is leased
    # cleanup_tasks() still lists every pending task, leased ones with their lease.
    listed = engine.cleanup_tasks()
    assert [t.id for t in listed] == ids
    assert [t.leased_by for t in listed] == ["worker-a"] * 2 + ["worker-b"] * 3
    # A lease that ran out no longer holds.
    clock.advance(timedelta(minutes=1))
    assert [t.id for t in engine.claim_cleanup("worker-c")] == ids[:2]


def test_fail_counts_the_attempt_keeps_the_error_and_waits_for_the_retry_time(
        make_engine: MakeEngine, clock: rb.ManualClock) -> None:
    engine = make_engine(components=DESTROY)
    [task_id] = outbox(engine, 1)
    engine.claim_cleanup("w")
    engine.fail_cleanup(task_id, "compute API answered 503", retry_after=timedelta(seconds=30))
    [task] = engine.cleanup_tasks()
    assert (task.attempts, task.last_error, task.leased_by, task.leased_until) == (
        1, "compute API answered 503", None, None)
    assert engine.claim_cleanup("w") == []  # not before its retry time
    clock.advance(timedelta(seconds=30))
    [again] = engine.claim_cleanup("w2")
    assert (again.id, again.attempts, again.leased_by) == (task_id, 1, "w2")
    engine.fail_cleanup(task_id, "still failing")  # retry_after=0: claimable at once
    [third] = engine.claim_cleanup("w3")
    assert (third.attempts, third.last_error) == (2, "still failing")
    engine.complete_cleanup(task_id)
    assert engine.cleanup_tasks() == []
    assert engine.claim_cleanup("w4") == []
    engine.fail_cleanup(task_id, "late report")  # a completed task: no-op
    engine.complete_cleanup(task_id)             # as before
    assert engine.cleanup_tasks() == []


def test_unknown_task_ids_raise_key_error(engine: rb.Engine) -> None:
    with pytest.raises(KeyError):
        engine.fail_cleanup(424242, "x")
    with pytest.raises(rb.NotFound, match="424242"):
        engine.fail_cleanup(424242, "x")


@pytest.mark.parametrize(("call", "error", "fragment"), [
    (lambda e: e.claim_cleanup(""), ValueError, "worker"),
    (lambda e: e.claim_cleanup("w", limit=0), ValueError, "limit"),
    (lambda e: e.claim_cleanup("w", limit=True), TypeError, "limit"),
    (lambda e: e.claim_cleanup("w", lease=timedelta(0)), ValueError, "lease"),
    (lambda e: e.claim_cleanup("w", lease=timedelta(seconds=-1)), ValueError, "lease"),
    (lambda e: e.claim_cleanup("w", lease=300), TypeError, "timedelta"),
    (lambda e: e.claim_cleanup("w", lease=timedelta(days=3_000_000)), ValueError, "9999"),
    (lambda e: e.claim_cleanup("w\x00x"), ValueError, "worker"),
    (lambda e: e.fail_cleanup(1, "x", retry_after=timedelta(seconds=-1)), ValueError, "retry_after"),
    (lambda e: e.fail_cleanup(1, "a\x00b"), ValueError, "NUL"),
    (lambda e: e.fail_cleanup(1, "x" * 70_000), ValueError, "at most"),
    (lambda e: e.fail_cleanup("1", "x"), TypeError, "task_id"),
    (lambda e: e.fail_cleanup(1, None), TypeError, "error"),
])
def test_bad_input_is_refused_with_a_clear_error(engine: rb.Engine, call, error, fragment) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(error, match=fragment):
        call(engine)


def test_many_workers_in_one_process_never_share_a_task(make_engine: MakeEngine) -> None:
    engine = make_engine(components=DESTROY)
    ids = set()
    for round_ in range(6):
        ids.update(outbox(engine, 10 + round_))
    seen: list[int] = []
    lock = threading.Lock()

    def work(index: int) -> None:
        for _ in range(100):  # bounded
            tasks = engine.claim_cleanup(f"worker-{index}", limit=4)
            if not tasks:
                return
            with lock:
                seen.extend(t.id for t in tasks)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
    assert sorted(seen) == sorted(ids)


def test_a_reopened_store_keeps_leases_and_attempts(make_engine: MakeEngine, tmp_path,  # type: ignore[no-untyped-def]
                                                     clock: rb.ManualClock) -> None:
    path = tmp_path / "kept.db"
    engine = make_engine(path=path, components=DESTROY)
    [task_id] = outbox(engine, 1)
    engine.claim_cleanup("w", lease=timedelta(hours=1))
    engine.fail_cleanup(task_id, "boom", retry_after=timedelta(hours=2))
    engine.close()
    reopened = make_engine(path=path, components=DESTROY)
    [task] = reopened.cleanup_tasks()
    assert (task.attempts, task.last_error) == (1, "boom")
    assert reopened.claim_cleanup("w") == []
    clock.advance(timedelta(hours=2))
    assert [t.id for t in reopened.claim_cleanup("w")] == [task_id]
    assert isinstance(task.created_at, datetime)
