"""Cloud workstation REST API (policies/cloud-workstation.yaml), walked through the public API.

`GET /workstations/{id}/delete`. Each test quotes the behaviour of the product document it
shows.
"""

from __future__ import annotations

import pytest

import recyclebin as rb

from .support import OpenEngine, START, cleanup_refs

SUB = "acct-42"
RG = "workstations"
OWNER = rb.Principal("user-7")


def parts(name: str) -> list[rb.Component]:
    return [
        rb.Component("compute_resources", f"{name}/vm"),
        rb.Component("persistent_volumes", f"{name}/home-volume"),
        rb.Component("persistent_volumes", f"{name}/datasets-volume", standalone=True),
    ]


@pytest.fixture
def engine(open_engine: OpenEngine) -> rb.Engine:
    return open_engine("cloud-workstation")


def create(engine: rb.Engine, name: str) -> rb.Workspace:
    return rb.Workspace.create(SUB, RG, name, components=parts(name), principal=OWNER, engine=engine)


# --- "The workstation must be in a stopped state before it can be deleted." -> 400


def test_running_workstation_cannot_be_deleted(engine: rb.Engine) -> None:
    ws = create(engine, "ws-12345")
    assert ws.state == "running"
    with pytest.raises(rb.WorkspaceNotStopped) as refused:
        ws.delete(principal=OWNER)
    assert refused.value.code == "workspace_not_stopped"
    assert refused.value.http_status == 400
    assert rb.Workspace.get("ws-12345", SUB, RG, engine=engine).state == "running"
    assert engine.audit_log(SUB)[-1].outcome == "refused:workspace_not_stopped"

    ws.stop(principal=OWNER)
    ws.stop(principal=OWNER)  # idempotent
    assert rb.Workspace.get("ws-12345", SUB, RG, engine=engine).state == "stopped"
    assert ws.delete(principal=OWNER).permanent is True


def test_restarted_workstation_must_be_stopped_again(engine: rb.Engine) -> None:
    ws = create(engine, "ws-restart")
    ws.stop(principal=OWNER)
    ws.start(principal=OWNER)
    with pytest.raises(rb.WorkspaceNotStopped):
        ws.delete(principal=OWNER)


# --- "Use this endpoint to permanently remove a workstation from the system." -> 204
# {"id", "status": "deleted"}; afterwards the id is unknown -> 404.


def test_delete_is_always_permanent(engine: rb.Engine) -> None:
    ws = create(engine, "ws-perm")
    ws.stop(principal=OWNER)
    result = ws.delete(principal=OWNER)
    assert result.permanent is True
    assert result.deleted_at == START
    assert result.purge_at is None
    assert result.retained == []

    with pytest.raises(rb.WorkspaceNotFound) as unknown:
        rb.Workspace.get("ws-perm", SUB, RG, engine=engine)
    assert unknown.value.http_status == 404
    with pytest.raises(rb.WorkspaceNotFound):
        rb.Workspace.get_deleted("ws-perm", SUB, RG, engine=engine)
    with pytest.raises(rb.WorkspaceNotFound):
        rb.Workspace.recover(SUB, RG, "ws-perm", engine=engine)
    assert list(rb.Workspace.list_deleted(SUB, engine=engine)) == []
    assert create(engine, "ws-perm").id != ws.id  # nothing holds the name


# --- "Deletion detaches and removes any associated compute resources. Persistent storage
# volumes are also deleted unless they were explicitly created as standalone resources."


def test_compute_and_volumes_go_standalone_volumes_stay(engine: rb.Engine) -> None:
    ws = create(engine, "ws-vols")
    ws.stop(principal=OWNER)
    result = ws.delete(principal=OWNER)
    assert set(result.destroyed) == {"compute_resources", "persistent_volumes"}
    assert "persistent_volumes" in result.preserved  # the standalone one
    expected = {("compute_resources", "ws-vols/vm"), ("persistent_volumes", "ws-vols/home-volume")}
    assert cleanup_refs(result.cleanup) == expected
    assert cleanup_refs(engine.cleanup_tasks()) == expected


# --- 401 / 403: only the workstation's owner may delete it; the permission check comes before
# the state check.


def test_other_users_cannot_delete(engine: rb.Engine) -> None:
    ws = create(engine, "ws-guarded")
    with pytest.raises(rb.PermissionDenied) as refused:
        ws.delete(principal=rb.Principal("intruder"))  # running, but permission comes first
    assert refused.value.http_status == 403
    ws.stop(principal=OWNER)
    with pytest.raises(rb.PermissionDenied):
        ws.delete(principal=rb.Principal("intruder"))
    assert rb.Workspace.get("ws-guarded", SUB, RG, engine=engine).id == ws.id


# --- One workstation id per request.


def test_delete_is_one_workstation_at_a_time(engine: rb.Engine) -> None:
    first, second = create(engine, "ws-one"), create(engine, "ws-two")
    first.stop(principal=OWNER)
    second.stop(principal=OWNER)
    with pytest.raises(rb.OperationNotAllowed):
        rb.Workspace.delete_many([first, second], principal=OWNER, engine=engine)
    assert rb.Workspace.get("ws-one", SUB, RG, engine=engine).id == first.id
    assert rb.Workspace.get("ws-two", SUB, RG, engine=engine).id == second.id
    [only] = rb.Workspace.delete_many([first], principal=OWNER, engine=engine)
    assert only.permanent is True
