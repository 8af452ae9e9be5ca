"""What the binding hands the facade: result objects built directly by the C++ binding (exact
datetimes, frozen dataclasses like any other), workspace snapshots, and the facade's identity
map (one object per workspace, weak, swept)."""

from __future__ import annotations

import dataclasses
import gc
import pickle
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

import recyclebin as rb
from recyclebin import _core

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
    assert record.workspace_id == ws.id and record.principal_id == ""


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


def test_register_types_checks_the_fields(engine: rb.Engine) -> None:
    @dataclasses.dataclass(frozen=True)
    class Wrong:
        id: int

    with pytest.raises(TypeError, match="differ"):
        _core._register_types(
            cleanup_task=Wrong,  # type: ignore[arg-type]
            delete_result=rb.DeleteResult,
            deleted_workspace=rb.DeletedWorkspace, purge_report=rb.PurgeReport,
            deletable_workspace=rb.DeletableWorkspace, audit_record=rb.AuditRecord)
    # A refused registration changes nothing.
    rb.Workspace.create(SUB, RG, "ws", components=[rb.Component("run_history", "r-1")],
                        engine=engine).delete()
    result = rb.Workspace.purge(SUB, RG, "ws", engine=engine)
    assert type(result) is rb.DeleteResult and type(result.cleanup[0]) is rb.CleanupTask


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
