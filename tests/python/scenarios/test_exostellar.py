"""Workspace service with a CLI (policies/exostellar.yaml), walked through the public API.

`exostellar workspace delete workspace-name --confirm`. Each test quotes the behaviour of the
product document it shows.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

import recyclebin as rb

from .support import OpenEngine, ONE_MICROSECOND, START, cleanup_refs, facts, failing_provider, kinds

SUB = "team-ml"
RG = "default"

# "What Gets Deleted - Workspace Components"
DELETED = {"container", "temporary_files", "cache", "settings", "session_data"}
# "Preserved Data"
PRESERVED = {"persistent_volumes", "shared_project_data", "backup_snapshots", "audit_logs"}

OWNER = rb.Principal("dana")


def workspace_parts(name: str) -> list[rb.Component]:
    return [rb.Component(kind, f"{name}:{kind}") for kind in sorted(DELETED | PRESERVED)]


@pytest.fixture
def engine(open_engine: OpenEngine) -> rb.Engine:
    engine = open_engine("exostellar")
    engine.set_facts_provider(facts(running_jobs=0, active_sessions=0))
    return engine


def create(engine: rb.Engine, name: str, **options: object) -> rb.Workspace:
    options.setdefault("principal", OWNER)
    return rb.Workspace.create(SUB, RG, name, components=workspace_parts(name), engine=engine, **options)


# --- "Confirm deletion by typing workspace name" / `--confirm`


def test_delete_needs_the_typed_name(engine: rb.Engine) -> None:
    ws = create(engine, "dev-box")
    for typed in (None, "", "dev-bo", "prod-box"):
        with pytest.raises(rb.PreconditionFailed) as refused:
            ws.delete(confirm_name=typed, principal=OWNER)
        assert refused.value.http_status == 412
    assert rb.Workspace.get("dev-box", SUB, RG, engine=engine).id == ws.id
    assert ws.delete(confirm_name="dev-box", principal=OWNER).permanent is False


# --- "Verify no other users are actively using the workspace. Confirm no running jobs or
# processes depend on the workspace."


@pytest.mark.parametrize(("numbers", "named"), [
    ({"running_jobs": 1, "active_sessions": 0}, "running_jobs"),
    ({"running_jobs": 0, "active_sessions": 2}, "active_sessions"),
])
def test_running_jobs_or_other_active_users_block_the_delete(
        engine: rb.Engine, numbers: dict[str, int], named: str) -> None:
    ws = create(engine, "busy")
    engine.set_facts_provider(facts(**numbers))
    with pytest.raises(rb.PreconditionFailed) as refused:
        ws.delete(confirm_name="busy", principal=OWNER)
    assert named in str(refused.value)
    assert rb.Workspace.get("busy", SUB, RG, engine=engine).id == ws.id
    assert engine.audit_log(SUB)[-1].outcome == "refused:precondition_failed"

    engine.set_facts_provider(facts(running_jobs=0, active_sessions=0))
    assert ws.delete(confirm_name="busy", principal=OWNER).warnings == []


def test_unverifiable_dependencies_block_the_delete(open_engine: OpenEngine) -> None:
    engine = open_engine("exostellar")  # no facts provider yet
    ws = create(engine, "unknown")
    with pytest.raises(rb.PreconditionFailed):
        ws.delete(confirm_name="unknown", principal=OWNER)
    engine.set_facts_provider(failing_provider)
    with pytest.raises(rb.PreconditionFailed):
        ws.delete(confirm_name="unknown", principal=OWNER)
    assert rb.Workspace.get("unknown", SUB, RG, engine=engine).id == ws.id


def test_typed_name_is_checked_before_dependencies(engine: rb.Engine) -> None:
    ws = create(engine, "both")
    engine.set_facts_provider(facts(running_jobs=4, active_sessions=0))
    with pytest.raises(rb.PreconditionFailed) as refused:
        ws.delete(principal=OWNER)
    assert "running_jobs" not in str(refused.value)


# --- "What Gets Deleted": container, temporary files and cache, personal configurations and
# settings, session data and history. "Preserved Data": persistent storage volumes, project
# data and shared resources, backup snapshots, audit logs and usage history.


def test_delete_removes_the_workspace_parts_and_preserves_the_data(engine: rb.Engine) -> None:
    ws = create(engine, "analysis")
    result = ws.delete(confirm_name="analysis", principal=OWNER)
    assert result.permanent is False
    assert set(result.destroyed) == DELETED
    assert set(result.preserved) == PRESERVED
    assert result.retained == []
    assert cleanup_refs(result.cleanup) == {(kind, f"analysis:{kind}") for kind in DELETED}
    assert cleanup_refs(engine.cleanup_tasks()) == {(kind, f"analysis:{kind}") for kind in DELETED}


# --- "Deleted workspaces may be recoverable for 24-48 hours"


def test_recoverable_for_one_or_two_days(engine: rb.Engine) -> None:
    assert create(engine, "two-days").soft_delete_retention_days == 2
    assert create(engine, "one-day", soft_delete_retention_days=1).soft_delete_retention_days == 1
    for days in (0, 3, 14):
        with pytest.raises(rb.InvalidRetention):
            create(engine, f"bad-{days}", soft_delete_retention_days=days)


@pytest.mark.parametrize("days", [1, 2])
def test_recovery_window_ends_to_the_microsecond(engine: rb.Engine, clock: rb.ManualClock, days: int) -> None:
    ws = create(engine, "window", soft_delete_retention_days=days)
    purge_at = ws.delete(confirm_name="window", principal=OWNER).purge_at
    assert purge_at == START + timedelta(hours=24 * days)

    clock.set(purge_at - ONE_MICROSECOND)
    assert rb.Workspace.get_deleted("window", SUB, RG, engine=engine).id == ws.id
    with pytest.raises(rb.NameReserved):
        create(engine, "window")

    clock.set(purge_at)
    with pytest.raises(rb.WorkspaceNotFound):
        rb.Workspace.recover(SUB, RG, "window", principal=OWNER, engine=engine)
    report = engine.purge_expired()
    assert report.purged == [(SUB, RG, "window")]
    assert report.cleanup == []  # nothing was kept in the bin: parts gone, data preserved
    assert create(engine, "window").id != ws.id


def test_recovery_brings_back_the_workspace_to_rebuild_from_templates(
        engine: rb.Engine, clock: rb.ManualClock) -> None:
    # "Recreate workspace from templates", "Import data from storage volumes".
    ws = create(engine, "restored")
    ws.delete(confirm_name="restored", principal=OWNER)
    clock.advance(timedelta(hours=30))
    with pytest.raises(rb.PermissionDenied):
        rb.Workspace.recover(SUB, RG, "restored", principal=rb.Principal("eve"), engine=engine)

    result = rb.Workspace.recover(SUB, RG, "restored", principal=OWNER, engine=engine)
    assert set(result.must_recreate) == DELETED
    assert result.reattached == []
    assert kinds(result.workspace.components) == PRESERVED
    assert rb.Workspace.get("restored", SUB, RG, engine=engine).id == ws.id


def test_no_way_around_the_recovery_window(engine: rb.Engine) -> None:
    ws = create(engine, "kept")
    with pytest.raises(rb.OperationNotAllowed):
        ws.delete(permanently_delete=True, confirm_name="kept", principal=OWNER)
    ws.delete(confirm_name="kept", principal=OWNER)
    with pytest.raises(rb.OperationNotAllowed):
        rb.Workspace.purge(SUB, RG, "kept", principal=OWNER, engine=engine)
    with pytest.raises(rb.OperationNotAllowed):
        ws.start(principal=OWNER)
    assert rb.Workspace.get_deleted("kept", SUB, RG, engine=engine).id == ws.id
