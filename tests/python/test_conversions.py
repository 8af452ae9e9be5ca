"""What the binding hands the facade and what the facade makes of it: plain tuples in the order
of _core.FIELDS (exact UTC datetimes), the result objects built from them (frozen dataclasses
like any other), workspace snapshots, and the facade's identity map (one object per
workspace, weak, swept)."""

from __future__ import annotations

import copy
import dataclasses
import gc
import pickle
import threading
import weakref
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

import recyclebin as rb
from recyclebin import _core

from conftest import MakeEngine

SUB, RG = "sub-1", "rg-1"

MOMENTS = (
    datetime(1, 1, 1, 0, 0, 0, 1, tzinfo=timezone.utc),
    datetime(1899, 12, 31, 23, 59, 59, 999999, tzinfo=timezone.utc),
    datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=timezone.utc),
    datetime(1970, 1, 1, tzinfo=timezone.utc),
    datetime(2000, 2, 29, 12, 34, 56, 789012, tzinfo=timezone.utc),
    datetime(2400, 2, 29, 23, 0, 0, 500000, tzinfo=timezone.utc),
    datetime(9999, 12, 1, 23, 59, 59, 999999, tzinfo=timezone.utc),
)


@pytest.mark.parametrize("moment", MOMENTS, ids=lambda m: m.isoformat())
def test_every_answer_carries_exact_utc_datetimes(tmp_path: Path, moment: datetime) -> None:
    clock = rb.ManualClock(moment)
    with rb.Engine.open(tmp_path / "bin.db", clock=clock) as engine:
        ws = rb.Workspace.create(SUB, RG, "ws", components=[rb.Component("run_history", "r-1")],
                                 engine=engine)
        assert ws.created_at == moment and ws.created_at.tzinfo is timezone.utc
        result = ws.delete()
        purge_at = moment + timedelta(days=14)
        assert (result.deleted_at, result.purge_at) == (moment, purge_at)
        (item,) = rb.Workspace.list_deleted(SUB, engine=engine)
        assert (item.deleted_at, item.purge_at, item.as_of) == (moment, purge_at, moment)
        got = rb.Workspace.get_deleted("ws", SUB, RG, engine=engine)
        assert (got.deleted_at, got.purge_at, got.as_of) == (moment, purge_at, moment)
        assert [record.at for record in engine.audit_log()] == [moment, moment]
        purged = rb.Workspace.purge(SUB, RG, "ws", engine=engine)
        assert purged.deleted_at == moment and purged.purge_at is None
        assert [task.created_at for task in engine.cleanup_tasks()] == [moment]
        for value in (ws.created_at, result.deleted_at, item.deleted_at, got.purge_at,
                      engine.cleanup_tasks()[0].created_at):
            assert value.tzinfo is timezone.utc and value.utcoffset() == timedelta(0)


def test_results_are_the_package_classes_and_behave_as_dataclasses(engine: rb.Engine) -> None:
    ws = rb.Workspace.create(SUB, RG, "ws", components=[rb.Component("run_history", "r-1"),
                                                        rb.Component("compute_instance", "ci-1")],
                             engine=engine)
    result = ws.delete()
    assert type(result) is rb.DeleteResult
    assert (result.retained, result.destroyed, result.preserved, result.cleanup) == (
        ["run_history", "compute_instance"], [], [], [])
    assert result == dataclasses.replace(result)
    assert pickle.loads(pickle.dumps(result)) == result
    gone = rb.Workspace.create(SUB, RG, "gone", components=[rb.Component("run_history", "r-2")],
                               engine=engine).delete(permanently_delete=True)
    (task,) = gone.cleanup
    assert type(task) is rb.CleanupTask and (task.id, task.kind, task.ref) == (1, "run_history", "r-2")
    assert hash(task) == hash(dataclasses.replace(task)) and engine.cleanup_tasks() == [task]
    assert pickle.loads(pickle.dumps(gone)) == gone
    assert repr(result).startswith("DeleteResult(permanent=False, deleted_at=2026-01-01T00:00:00Z")
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.permanent = True  # type: ignore[misc]

    page = rb.Workspace.list_deleted(SUB, engine=engine)
    got = rb.Workspace.get_deleted("ws", SUB, RG, engine=engine)
    assert type(page) is rb.DeletedPage and type(page[0]) is rb.DeletedWorkspace
    assert page[0] == got  # as_of does not take part in ==
    assert dataclasses.asdict(got)["retained"] == ["run_history", "compute_instance"]
    assert page[0].retained is not got.retained  # each answer has its own lists
    with pytest.raises(dataclasses.FrozenInstanceError):
        got.name = "other"  # type: ignore[misc]

    recovered = rb.Workspace.recover(SUB, RG, "ws", engine=engine)
    assert type(recovered) is rb.RecoverResult and recovered.workspace is ws
    with pytest.raises(dataclasses.FrozenInstanceError):
        recovered.restored = []  # type: ignore[misc]
    record = engine.audit_log()[-1]
    assert type(record) is rb.AuditRecord and (record.action, record.outcome) == ("recover", "ok")
    assert record.workspace_id == ws.id and record.principal_id is None  # version 2: None


def test_a_page_repeats_values_correctly(engine: rb.Engine, clock: rb.ManualClock) -> None:
    kinds = ["run_history", "datasets", "compute_instance"]
    for i in range(30):
        rb.Workspace.create(SUB, f"rg-{i % 3}", f"ws-{i}", engine=engine,
                            components=[rb.Component(kinds[i % 3], f"r-{i}"),
                                        rb.Component("run_history", f"h-{i}")]).delete()
        clock.advance(timedelta(seconds=1))
    page = rb.Workspace.list_deleted(SUB, engine=engine)
    assert [item.name for item in page] == [f"ws-{i}" for i in reversed(range(30))]
    for item in page:
        i = int(item.name[3:])
        assert (item.subscription_id, item.resource_group) == (SUB, f"rg-{i % 3}")
        expected = sorted({kinds[i % 3], "run_history"})  # each kind once
        assert sorted(item.retained) == expected
    page[0].retained.append("mine")  # a list of the caller's: others are not affected
    assert "mine" not in page[1].retained


ANSWERS: dict[str, Any] = {
    "cleanup_task": rb.CleanupTask, "delete_result": rb.DeleteResult,
    "deleted_workspace": rb.DeletedWorkspace, "recover_result": rb.RecoverResult,
    "purge_report": rb.PurgeReport, "deletable_workspace": rb.DeletableWorkspace,
    "audit_record": rb.AuditRecord, "hold": rb.Hold, "lien": rb.Lien,
}


def test_the_core_answers_plain_data_named_by_its_fields(engine: rb.Engine) -> None:
    # The core publishes each answer's field names; each result class has exactly those, in
    # that order (the facade checks this at import). A live workspace is a tuple in the
    # order of FIELDS["workspace"]; every other answer a record, a tuple in the order of its
    # FIELDS.
    assert set(_core.FIELDS) == set(ANSWERS) | {"workspace"}
    for key, cls in ANSWERS.items():
        assert tuple(f.name for f in dataclasses.fields(cls)) == _core.FIELDS[key], key
    snapshot = engine._core.create(SUB, RG, "ws", None, False, [("run_history", "r-1", False)])
    assert type(snapshot) is tuple and len(snapshot) == len(_core.FIELDS["workspace"])
    fields = dict(zip(_core.FIELDS["workspace"], snapshot))
    assert (fields["name"], fields["state"], fields["components"]) == (
        "ws", "running", (("run_history", "r-1", False),))
    record = engine._core.remove(fields["id"])
    assert type(record) is tuple and len(record) == len(_core.FIELDS["delete_result"])
    answer = dict(zip(_core.FIELDS["delete_result"], record))
    assert answer["retained"] == ["run_history"] and answer["permanent"] is False
    (item,) = rb.Workspace.list_deleted(SUB, engine=engine)
    assert (item.id, item.name, item.retained) == (fields["id"], "ws", ["run_history"])


def test_the_core_refuses_components_that_are_not_kind_ref_standalone_tuples(engine: rb.Engine) -> None:
    for bad in ([("run_history", "r-1")], [("run_history", "r-1", 1)], [["run_history", "r-1", False]],
                [rb.Component("run_history", "r-1")]):
        with pytest.raises(TypeError, match=r"\(kind: str, ref: str, standalone: bool\) tuple"):
            engine._core.create(SUB, RG, "ws", None, False, bad)
    with pytest.raises(TypeError, match="list of"):
        engine._core.create(SUB, RG, "ws", None, False, iter([]))
    with pytest.raises(rb.InvalidArgument, match="NUL"):
        engine._core.create(SUB, RG, "ws", None, False, [("run\0history", "r-1", False)])
    assert rb.Workspace.list(SUB, engine=engine) == []  # nothing was created


def test_instance_makes_objects_of_records_and_refuses_what_it_cannot_make() -> None:
    moment = datetime(2026, 1, 1, tzinfo=timezone.utc)
    made = _core.instance(rb.Hold, _core.FIELDS["hold"], ("h", "w", "r", None, moment))
    assert type(made) is rb.Hold and (made.id, made.reason, made.placed_by) == ("h", "r", None)
    assert made == rb.Hold("h", "w", "r", None, moment)  # as the class's own __init__ makes it
    (task,) = _core.instances(rb.DeletableWorkspace, _core.FIELDS["deletable_workspace"],
                              [("orphaned", "w", moment)])
    assert task == rb.DeletableWorkspace("orphaned", "w", moment)
    with pytest.raises(dataclasses.FrozenInstanceError):
        task.kind = "other"  # type: ignore[misc]  # the class's __setattr__ still guards it

    class WithSlots:
        __slots__ = ("x",)

    for cls in (int, dict, WithSlots):  # an own __new__, or no __dict__: refused, nothing made
        with pytest.raises(TypeError, match="object.__new__ makes and whose instances have a __dict__"):
            _core.instance(cls, (), ())
    names = _core.FIELDS["hold"]
    with pytest.raises(TypeError, match="a record must be a tuple of 5 values .one per name., not list"):
        _core.instances(rb.Hold, names, [[1]])
    with pytest.raises(TypeError, match="a record must be a tuple of 5 values .one per name., not tuple of another"):
        _core.instance(rb.Hold, names, ("h", "w"))
    with pytest.raises(TypeError, match="records must be a list of tuples, not tuple"):
        _core.instances(rb.Hold, names, ((),))
    with pytest.raises(TypeError, match="names must be strs, not int"):
        _core.instance(rb.Hold, (1,), (1,))
    with pytest.raises(TypeError, match=r"instance\(cls, names, record\)"):
        _core.instance("Hold", names, ())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"instance\(cls, names, record\)"):
        _core.instance(rb.Hold, list(names), ())  # type: ignore[arg-type]


def test_the_core_module_holds_no_package_state() -> None:
    # Nothing is registered from the package into the core: it exposes no registration
    # entry points, and its error classes are its own (the package re-exports them).
    assert not [name for name in dir(_core) if "register" in name]
    assert not hasattr(_core, "WorkspaceMap")
    assert _core.WorkspaceNotFound is rb.WorkspaceNotFound
    assert rb.WorkspaceNotFound.__module__ == "recyclebin.errors"


def test_results_are_plain_frozen_dataclasses_that_copy_and_pickle(
    engine: rb.Engine, clock: rb.ManualClock
) -> None:
    ws = rb.Workspace.create(SUB, RG, "ws", components=[rb.Component("run_history", "r-1")],
                             engine=engine)
    deleted = ws.delete()
    (item,) = rb.Workspace.list_deleted(SUB, engine=engine)
    recovered = rb.Workspace.recover(SUB, RG, "ws", engine=engine)
    gone = rb.Workspace.create(SUB, RG, "gone", soft_delete_retention_days=1,
                               components=[rb.Component("run_history", "r-2")],
                               engine=engine).delete()
    clock.advance(timedelta(days=2))
    report = engine.purge_expired()
    (task,) = report.cleanup
    record = engine.audit_log()[0]
    listed = rb.DeletableWorkspace("orphaned", ws.id, clock.now())
    for value in (deleted, item, recovered, gone, report, task, record, listed):
        assert weakref.ref(value)() is value
        with pytest.raises(dataclasses.FrozenInstanceError):
            value.extra = 1  # type: ignore[union-attr]
        if value is recovered:
            continue  # holds the live rb.Workspace, which does not pickle or copy
        fields = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
        assert value.__reduce_ex__(2)[2] == fields  # a dataclass's state: its fields
        assert pickle.loads(pickle.dumps(value)) == value
        assert copy.copy(value) == value and copy.deepcopy(value) == value
    assert pickle.loads(pickle.dumps(item)).as_of == item.as_of  # also the fields == leaves out


# rb.DeleteResult with one CleanupTask, pickled (protocol 4) before the result classes had slots.
PICKLED_BEFORE_SLOTS = (
    b"\x80\x04\x95V\x01\x00\x00\x00\x00\x00\x00\x8c\x12recyclebin.results\x94\x8c\x0cDeleteResult"
    b"\x93)\x81}(\x8c\tpermanent\x89\x8c\ndeleted_at\x8c\x08datetime\x94\x8c\x08datetime\x93\x94C"
    b"\n\x07\xea\x01\x01\x00\x00\x00\x00\x00\x00h\x01\x8c\x08timezone\x93h\x01\x8c\ttimedelta\x93"
    b"K\x00K\x00K\x00\x87R\x85R\x94\x86R\x8c\x08purge_ath\x02C\n\x07\xea\x01\x0f\x00\x00\x00\x00"
    b"\x00\x00h\x03\x86R\x8c\x08retained]\x8c\x0brun_history\x94a\x8c\tdestroyed]\x8c\tpreserved]"
    b"\x8c\x07cleanup]h\x00\x8c\x0bCleanupTask\x93)\x81}(\x8c\x02idK\x07\x8c\x04kindh\x04\x8c\x03ref"
    b"\x8c\x06blob/7\x8c\x0cworkspace_id\x8c\x05ws-id\x8c\ncreated_ath\x02C\n\x07\xea\x01\x02\x03"
    b"\x04\x05\x00\x00\x06h\x03\x86Ruba\x8c\x08warnings]ub."
)


def test_pickles_from_before_the_slots_still_load() -> None:
    utc = timezone.utc
    task = rb.CleanupTask(7, "run_history", "blob/7", "ws-id",
                          datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=utc))
    expected = rb.DeleteResult(False, datetime(2026, 1, 1, tzinfo=utc),
                               datetime(2026, 1, 15, tzinfo=utc), ["run_history"], [], [], [task], [])
    loaded = pickle.loads(PICKLED_BEFORE_SLOTS)
    assert type(loaded) is rb.DeleteResult and type(loaded.cleanup[0]) is rb.CleanupTask
    assert loaded == expected and loaded.cleanup[0].created_at.tzinfo is utc


def test_list_deleted_pages_carry_their_cursor(engine: rb.Engine) -> None:
    for i in range(3):
        rb.Workspace.create(SUB, RG, f"ws-{i}", engine=engine).delete()
    page = rb.Workspace.list_deleted(SUB, limit=2, engine=engine)
    assert type(page) is rb.DeletedPage and [item.name for item in page] == ["ws-2", "ws-1"]
    assert page.next_cursor is not None and page == rb.DeletedPage(list(page), page.next_cursor)
    again = pickle.loads(pickle.dumps(page))
    assert type(again) is rb.DeletedPage and again == page and again.next_cursor == page.next_cursor
    rest = rb.Workspace.list_deleted(SUB, limit=2, cursor=page.next_cursor, engine=engine)
    assert [item.name for item in rest] == ["ws-0"] and rest.next_cursor is None
    assert repr(rest).endswith("next_cursor=None)")


def test_times_of_a_page_over_many_days_are_each_exact(
    engine: rb.Engine, clock: rb.ManualClock, start: datetime
) -> None:
    # Deletion days and retentions interleave, so consecutive conversions change day.
    offsets = [timedelta(days=d, hours=i, microseconds=7 * i) for i, d in enumerate([0, 0, 3, 1, 9, 9, 30])]
    expected = {}
    for i, offset in enumerate(sorted(offsets)):
        ws = rb.Workspace.create(SUB, RG, f"ws-{i}", soft_delete_retention_days=1 + i * 2,
                                 engine=engine)
        clock.set(start + offset)
        ws.delete()
        expected[f"ws-{i}"] = (start + offset, start + offset + timedelta(days=1 + i * 2))
    page = rb.Workspace.list_deleted(SUB, engine=engine)
    assert {item.name: (item.deleted_at, item.purge_at) for item in page} == {
        name: times for name, times in expected.items() if times[1] > clock.now()}
    for name, (deleted_at, purge_at) in expected.items():
        if purge_at > clock.now():
            got = rb.Workspace.get_deleted(name, SUB, RG, engine=engine)
            assert (got.deleted_at, got.purge_at, got.as_of) == (deleted_at, purge_at, clock.now())


def test_names_beyond_ascii_round_trip(engine: rb.Engine) -> None:
    group, name = "grüppe", "wörk-ßpace-名前-🚀"
    ws = rb.Workspace.create(SUB, group, name, components=[rb.Component("run_history", "blob/ü")],
                             engine=engine)
    assert (ws.resource_group, ws.name, ws.components[0].ref) == (group, name, "blob/ü")
    ws.delete()
    (item,) = rb.Workspace.list_deleted(SUB, engine=engine)
    assert (item.resource_group, item.name) == (group, name)
    assert rb.Workspace.recover(SUB, group, name, engine=engine).workspace is ws
    assert {(record.resource_group, record.name) for record in engine.audit_log()} == {(group, name)}


def test_identity_map_keeps_live_objects_and_sweeps_dead_ones(engine: rb.Engine) -> None:
    kept = [rb.Workspace.create(SUB, RG, f"kept-{i}", engine=engine) for i in range(10)]
    for i in range(3000):
        rb.Workspace.create(SUB, RG, f"gone-{i}", engine=engine)  # dropped at once
    gc.collect()
    assert len(engine._workspaces) < 2100  # swept as it grew, not one entry per workspace
    for i, ws in enumerate(kept):
        assert rb.Workspace.get(f"kept-{i}", SUB, RG, engine=engine) is ws
    again = rb.Workspace.get("gone-5", SUB, RG, engine=engine)
    assert again.name == "gone-5" and rb.Workspace.get_by_id(again.id, engine=engine) is again
    kept[0].stop()
    assert rb.Workspace.get("kept-0", SUB, RG, engine=engine).state == "stopped"


def test_identity_map_state_follows_every_answer(engine: rb.Engine) -> None:
    ws = rb.Workspace.create(SUB, RG, "ws", engine=engine)
    other = rb.Workspace.create(SUB, RG, "other", engine=engine)
    rb.Workspace.get("ws", SUB, RG, engine=engine).stop()
    assert ws.state == "stopped"
    rb.Workspace.delete_many([ws, other], engine=engine)
    assert (ws.state, other.state) == ("deleted", "deleted")
    assert rb.Workspace.recover(SUB, RG, "ws", engine=engine).workspace is ws
    assert ws.state == "stopped"
    seen: list[rb.Workspace] = []

    def facts(workspace: rb.Workspace) -> dict[str, int]:
        seen.append(workspace)
        return {}

    engine.set_facts_provider(facts)
    ws.delete()
    assert seen in ([], [ws])  # asked only under a policy with blockers or warnings


def test_the_identity_map_is_the_engine_s_own(engine: rb.Engine) -> None:
    assert len(engine._workspaces) == 0
    ws = rb.Workspace.create(SUB, RG, "ws", engine=engine)
    assert len(engine._workspaces) == 1 and ws.engine is engine
    engine._workspaces.mark_deleted(["no-such-id", ws.id])
    assert ws.state == "deleted"
    assert rb.Workspace.get("ws", SUB, RG, engine=engine) is ws and ws.state == "running"
    with rb.Engine.open(":memory:") as other:  # another engine: other objects
        there = rb.Workspace.create(SUB, RG, "ws", engine=other)
        assert there is not ws and there.engine is other and len(other._workspaces) == 1


def test_threads_racing_for_one_workspace_get_one_object(engine: rb.Engine) -> None:
    ids = [rb.Workspace.create(SUB, RG, f"ws-{i}", engine=engine).id for i in range(50)]
    gc.collect()  # the objects are gone: every thread below races to make them anew
    barrier = threading.Barrier(4)
    seen: list[list[rb.Workspace]] = [[] for _ in range(4)]

    def look(mine: list[rb.Workspace]) -> None:
        barrier.wait(timeout=10)
        for workspace_id in ids:
            mine.append(rb.Workspace.get_by_id(workspace_id, engine=engine))

    threads = [threading.Thread(target=look, args=(mine,)) for mine in seen]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert all(len(mine) == len(ids) for mine in seen)
    for i in range(len(ids)):
        assert len({id(mine[i]) for mine in seen}) == 1  # one object per workspace


def test_the_facts_provider_is_given_the_callers_workspace_object(make_engine: MakeEngine) -> None:
    engine = make_engine(preconditions={"blockers": ["running_jobs"]})
    ws = rb.Workspace.create(SUB, RG, "ws", engine=engine)
    seen: list[rb.Workspace] = []

    def facts(workspace: rb.Workspace) -> dict[str, int]:
        seen.append(workspace)
        return {"running_jobs": 0}

    engine.set_facts_provider(facts)
    ws.stop()
    ws.delete()
    assert len(seen) == 1 and seen[0] is ws and ws.state == "deleted"


def test_an_engine_is_collected_with_its_workspaces_and_facts_provider(tmp_path: Path) -> None:
    engine = rb.Engine.open(tmp_path / "bin.db")
    engine.set_facts_provider(lambda workspace: {})
    ws = rb.Workspace.create(SUB, RG, "ws", engine=engine)
    engine.close()
    gone = weakref.ref(engine)
    del engine, ws
    gc.collect()
    assert gone() is None  # no cycle through the C++ engine, where the collector cannot look
