"""ML workspace soft delete (policies/azureml.yaml), walked through the public API.

Each test quotes the behaviour of the product document it shows.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

import recyclebin as rb

from .support import OpenEngine, ONE_MICROSECOND, START, cleanup_refs, iso_seconds, kinds

SUB = "sub-ml-0001"
RG = "rg-research"

# "Data / configuration | Soft-deleted"
SOFT_DELETED = {
    "run_history", "models", "data", "environments", "components", "notebooks", "pipelines",
    "designer_pipelines", "automl_jobs", "data_labeling_projects", "datastores",
}
# "Hard-deleted ✓*": reattached on recover, best effort.
REATTACHED = {"role_assignments", "linked_workspaces"}
# "Hard-deleted": "should be recreated by you".
MUST_RECREATE = {
    "queued_or_running_jobs", "internal_cache", "compute_instance", "compute_clusters",
    "inference_endpoints",
}
HARD_DELETED = REATTACHED | MUST_RECREATE


def ml_components(name: str) -> list[rb.Component]:
    components = [rb.Component(kind, f"{name}/{kind}") for kind in sorted(SOFT_DELETED | HARD_DELETED)]
    components.append(rb.Component("dependent_resources", f"{name}/storage-account"))
    components.append(rb.Component("dependent_resources", f"{name}/shared-key-vault", standalone=True))
    return components


@pytest.fixture
def engine(open_engine: OpenEngine) -> rb.Engine:
    return open_engine("azureml")


def create(engine: rb.Engine, name: str, resource_group: str = RG, **options: object) -> rb.Workspace:
    return rb.Workspace.create(SUB, resource_group, name, components=ml_components(name),
                               engine=engine, **options)


# --- "A data retention period of 14 days is the default, and can be set to a value between 1-14"


def test_retention_is_14_days_by_default_and_settable_from_1_to_14(engine: rb.Engine) -> None:
    assert create(engine, "ws-default").soft_delete_retention_days == 14
    assert create(engine, "ws-one", soft_delete_retention_days=1).soft_delete_retention_days == 1
    assert create(engine, "ws-seven", soft_delete_retention_days=7).soft_delete_retention_days == 7
    assert create(engine, "ws-max", soft_delete_retention_days=14).soft_delete_retention_days == 14


@pytest.mark.parametrize("days", [0, 15, -1, 365])
def test_retention_outside_1_to_14_fails_with_a_clear_error(engine: rb.Engine, days: int) -> None:
    # "CLI and SDK operations will fail if a value is provided outside of the 1-14 day range."
    with pytest.raises(rb.InvalidRetention) as refused:
        create(engine, "ws-bad", soft_delete_retention_days=days)
    assert refused.value.code == "invalid_retention"
    assert refused.value.http_status == 400
    assert "1" in str(refused.value) and "14" in str(refused.value)
    with pytest.raises(rb.WorkspaceNotFound):
        rb.Workspace.get("ws-bad", SUB, RG, engine=engine)
    assert engine.audit_log(SUB)[-1].outcome == "refused:invalid_retention"


def test_retention_must_be_a_whole_number_of_days(engine: rb.Engine) -> None:
    with pytest.raises(TypeError):
        create(engine, "ws-fraction", soft_delete_retention_days=2.5)


# --- "When a workspace is deleted, it's first soft deleted." The table of what is kept.


def test_delete_is_a_soft_delete_that_keeps_data_and_hard_deletes_configuration(
        engine: rb.Engine, clock: rb.ManualClock) -> None:
    ws = create(engine, "ws-soft", soft_delete_retention_days=5)
    result = ws.delete()

    assert result.permanent is False
    assert result.deleted_at == START
    assert result.purge_at == START + timedelta(days=5)
    assert set(result.retained) == SOFT_DELETED
    assert set(result.destroyed) == HARD_DELETED
    # Dependent resources are only deleted with a permanent delete.
    assert set(result.preserved) == {"dependent_resources"}
    assert result.warnings == []
    # "cost-incurring resources such as compute clusters are hard deleted": at delete time.
    expected_cleanup = {(kind, f"ws-soft/{kind}") for kind in HARD_DELETED}
    assert cleanup_refs(result.cleanup) == expected_cleanup
    assert cleanup_refs(engine.cleanup_tasks()) == expected_cleanup
    assert all(task.workspace_id == ws.id and task.created_at == START for task in result.cleanup)


def test_soft_deleted_workspace_allows_only_recover_and_permanent_delete(engine: rb.Engine) -> None:
    # "there are only two operations possible: 'permanently delete' and 'recover'. All the
    # other operations will fail." "az ml workspace show will return a 404".
    ws = create(engine, "ws-bin")
    ws.grant("bob", "contributor")
    ws.delete()

    with pytest.raises(rb.WorkspaceNotFound) as shown:
        rb.Workspace.get("ws-bin", SUB, RG, engine=engine)
    assert shown.value.http_status == 404
    for operation in (ws.stop, ws.start, lambda: ws.grant("carol", "reader"),
                      lambda: ws.revoke("bob"), ws.delete,
                      lambda: ws.delete(permanently_delete=True)):
        with pytest.raises(rb.OperationNotAllowed) as refused:
            operation()
        assert "recover" in str(refused.value) and "purge" in str(refused.value)
        assert refused.value.http_status == 409
    assert [r.outcome for r in engine.audit_log(SUB)[-6:]] == ["refused:operation_not_allowed"] * 6

    # Still in the bin: both permitted operations remain available.
    assert rb.Workspace.get_deleted("ws-bin", SUB, RG, engine=engine).id == ws.id
    recovered = rb.Workspace.recover(SUB, RG, "ws-bin", engine=engine)
    assert recovered.workspace.id == ws.id


# --- "You can't reuse the name of a workspace that has been soft-deleted until the retention
# period has passed." "After expiry of the retention period, a soft deleted workspace
# automatically gets hard deleted."


def test_name_is_reserved_until_retention_ends_to_the_microsecond(
        engine: rb.Engine, clock: rb.ManualClock) -> None:
    ws = create(engine, "ws-reserved", soft_delete_retention_days=3)
    clock.advance(timedelta(hours=1, microseconds=250))
    deleted = ws.delete()
    purge_at = deleted.purge_at
    assert purge_at == deleted.deleted_at + timedelta(days=3)

    with pytest.raises(rb.NameReserved) as reserved:
        create(engine, "ws-reserved")
    assert reserved.value.code == "name_reserved"
    assert reserved.value.http_status == 409
    assert reserved.value.reserved_until == purge_at
    assert iso_seconds(purge_at) in str(reserved.value) and "Z" in str(reserved.value)
    # The reservation is per resource group: another group may use the name.
    assert create(engine, "ws-reserved", resource_group="rg-other").resource_group == "rg-other"

    clock.set(purge_at - ONE_MICROSECOND)
    with pytest.raises(rb.NameReserved):
        create(engine, "ws-reserved")
    assert rb.Workspace.get_deleted("ws-reserved", SUB, RG, engine=engine).purge_at == purge_at
    assert [d.name for d in rb.Workspace.list_deleted(SUB, engine=engine)] == ["ws-reserved"]

    # Expired at purge_at: gone before any purge has run.
    clock.set(purge_at)
    with pytest.raises(rb.WorkspaceNotFound):
        rb.Workspace.get_deleted("ws-reserved", SUB, RG, engine=engine)
    with pytest.raises(rb.WorkspaceNotFound):
        rb.Workspace.recover(SUB, RG, "ws-reserved", engine=engine)
    with pytest.raises(rb.WorkspaceNotFound):
        rb.Workspace.purge(SUB, RG, "ws-reserved", engine=engine)
    assert list(rb.Workspace.list_deleted(SUB, engine=engine)) == []
    reused = create(engine, "ws-reserved")
    assert reused.id != ws.id

    # The hard delete hands the soft-deleted data to the cleanup outbox, whether the name's
    # reuse or purge_expired got there first.
    engine.purge_expired()
    handed_over = {(t.kind, t.ref) for t in engine.cleanup_tasks() if t.workspace_id == ws.id}
    assert handed_over == {(kind, f"ws-reserved/{kind}") for kind in SOFT_DELETED | HARD_DELETED}
    assert [r.action for r in engine.audit_log(SUB) if r.action == "expire"] == ["expire"]
    assert engine.purge_expired().purged == []
    assert rb.Workspace.get("ws-reserved", SUB, RG, engine=engine).id == reused.id


# --- "you may choose to permanently delete a non-CMK workspace without going to soft delete
# state first ... Permanently deleting a workspace allows recreation"


def test_permanent_delete_skips_the_bin_and_frees_the_name(engine: rb.Engine) -> None:
    ws = create(engine, "ws-gone")
    result = ws.delete(permanently_delete=True)

    assert result.permanent is True
    assert result.purge_at is None
    assert result.retained == []
    assert set(result.destroyed) == SOFT_DELETED | HARD_DELETED
    assert set(result.preserved) == {"dependent_resources"}
    assert cleanup_refs(result.cleanup) == {
        (kind, f"ws-gone/{kind}") for kind in SOFT_DELETED | HARD_DELETED}
    with pytest.raises(rb.WorkspaceNotFound):
        rb.Workspace.get_deleted("ws-gone", SUB, RG, engine=engine)
    assert list(rb.Workspace.list_deleted(SUB, engine=engine)) == []
    assert create(engine, "ws-gone").id != ws.id


def test_permanently_delete_from_the_bin(engine: rb.Engine, clock: rb.ManualClock) -> None:
    ws = create(engine, "ws-purged")
    ws.delete()
    clock.advance(timedelta(days=2))
    result = rb.Workspace.purge(SUB, RG, "ws-purged", engine=engine)

    assert result.permanent is True
    assert result.purge_at is None
    assert result.deleted_at == START + timedelta(days=2)
    assert set(result.destroyed) >= SOFT_DELETED
    assert cleanup_refs(result.cleanup) == {(kind, f"ws-purged/{kind}") for kind in SOFT_DELETED}
    with pytest.raises(rb.WorkspaceNotFound):
        rb.Workspace.recover(SUB, RG, "ws-purged", engine=engine)
    with pytest.raises(rb.WorkspaceNotFound):
        rb.Workspace.purge(SUB, RG, "ws-purged", engine=engine)
    assert create(engine, "ws-purged").id != ws.id


# --- "Deletion of dependent resources is only possible in combination with permanently
# deleting a workspace, and fails in case a workspace is not permanently deleted"


def test_dependent_resources_only_with_permanent_delete(engine: rb.Engine) -> None:
    ws = create(engine, "ws-deps")
    with pytest.raises(rb.OperationNotAllowed) as refused:
        ws.delete(delete_dependent_resources=True)
    assert "permanently_delete" in str(refused.value)
    assert rb.Workspace.get("ws-deps", SUB, RG, engine=engine).id == ws.id

    result = ws.delete(delete_dependent_resources=True, permanently_delete=True)
    assert result.permanent is True
    assert "dependent_resources" in result.destroyed
    refs = cleanup_refs(result.cleanup)
    assert ("dependent_resources", "ws-deps/storage-account") in refs
    # A standalone resource is never deleted with the workspace.
    assert ("dependent_resources", "ws-deps/shared-key-vault") not in refs
    assert "dependent_resources" in result.preserved


# --- "Workspaces encrypted with customer-managed keys (CMK) are not enabled for soft delete and
# are always hard deleted."


def test_cmk_workspace_is_always_hard_deleted(engine: rb.Engine) -> None:
    ws = create(engine, "ws-cmk", cmk_encrypted=True)
    result = ws.delete()

    assert result.permanent is True
    assert result.purge_at is None
    assert result.retained == []
    assert SOFT_DELETED <= set(result.destroyed)
    with pytest.raises(rb.WorkspaceNotFound):
        rb.Workspace.get_deleted("ws-cmk", SUB, RG, engine=engine)
    assert create(engine, "ws-cmk").name == "ws-cmk"


# --- "Permanently deleting workspaces can only be done one workspace at time, and not using a
# batch operation."


def test_permanent_delete_is_never_a_batch(engine: rb.Engine) -> None:
    first, second, third = (create(engine, name) for name in ("ws-a", "ws-b", "ws-c"))
    with pytest.raises(rb.OperationNotAllowed):
        rb.Workspace.delete_many([first, second], permanently_delete=True, engine=engine)
    # All or nothing: both are still live.
    assert rb.Workspace.get("ws-a", SUB, RG, engine=engine).id == first.id
    assert rb.Workspace.get("ws-b", SUB, RG, engine=engine).id == second.id

    # One at a time is fine, and a batch of soft deletes is fine.
    [single] = rb.Workspace.delete_many([first], permanently_delete=True, engine=engine)
    assert single.permanent is True
    soft = rb.Workspace.delete_many([second, third], engine=engine)
    assert [r.permanent for r in soft] == [False, False]
    assert {d.name for d in rb.Workspace.list_deleted(SUB, engine=engine)} == {"ws-b", "ws-c"}


# --- "Soft-deleted workspaces can be listed by subscription, and by resource group. List by
# subscription allows customers to query soft deleted workspace for which the resource group
# was deleted as well." "show-deleted ... by providing subscription, original resource group
# and original name"


def test_list_deleted_by_subscription_or_group_and_show_deleted(
        engine: rb.Engine, clock: rb.ManualClock) -> None:
    older = create(engine, "ws-old", resource_group="rg-dropped", soft_delete_retention_days=10)
    newer = create(engine, "ws-new")
    elsewhere = rb.Workspace.create("sub-other", RG, "ws-new", engine=engine)
    older.delete()
    clock.advance(timedelta(minutes=5))
    newer.delete()
    elsewhere.delete()

    by_subscription = rb.Workspace.list_deleted(SUB, engine=engine)
    assert [(d.resource_group, d.name) for d in by_subscription] == [(RG, "ws-new"), ("rg-dropped", "ws-old")]
    assert by_subscription.next_cursor is None
    by_group = rb.Workspace.list_deleted(SUB, "rg-dropped", engine=engine)
    assert [d.id for d in by_group] == [older.id]

    first_page = rb.Workspace.list_deleted(SUB, limit=1, engine=engine)
    assert [d.id for d in first_page] == [newer.id]
    assert first_page.next_cursor is not None
    second_page = rb.Workspace.list_deleted(SUB, limit=1, cursor=first_page.next_cursor, engine=engine)
    assert [d.id for d in second_page] == [older.id]

    shown = rb.Workspace.get_deleted("ws-old", SUB, "rg-dropped", engine=engine)
    assert (shown.id, shown.name, shown.subscription_id, shown.resource_group) == (
        older.id, "ws-old", SUB, "rg-dropped")
    assert shown.deleted_at == START
    assert shown.purge_at == START + timedelta(days=10)
    assert shown.retention_days == 10
    assert set(shown.retained) == SOFT_DELETED
    with pytest.raises(rb.WorkspaceNotFound):
        rb.Workspace.get_deleted("ws-old", SUB, RG, engine=engine)


# --- "The service attempts recreation or reattachment of selected hard-deleted resources
# including role assignment at the time of workspace recovery. Other hard-deleted resources
# including compute clusters, should be recreated by you."


def test_recover_restores_data_and_reattaches_role_assignments(
        engine: rb.Engine, clock: rb.ManualClock) -> None:
    ws = create(engine, "ws-back", soft_delete_retention_days=14)
    ws.stop()
    ws.delete()
    clock.set(START + timedelta(days=14) - ONE_MICROSECOND)  # the last moment of retention

    result = rb.Workspace.recover(SUB, RG, "ws-back", engine=engine)
    assert set(result.restored) == SOFT_DELETED
    assert set(result.reattached) == REATTACHED
    assert set(result.must_recreate) == MUST_RECREATE
    recovered = result.workspace
    assert (recovered.id, recovered.name, recovered.resource_group) == (ws.id, "ws-back", RG)
    assert recovered.soft_delete_retention_days == 14
    assert kinds(recovered.components) == SOFT_DELETED | REATTACHED | {"dependent_resources"}

    # Live again: shown, operable, and holding its name as a live workspace.
    assert rb.Workspace.get("ws-back", SUB, RG, engine=engine).id == ws.id
    assert list(rb.Workspace.list_deleted(SUB, engine=engine)) == []
    recovered.start()
    assert rb.Workspace.get("ws-back", SUB, RG, engine=engine).state == "running"
    with pytest.raises(rb.WorkspaceExists):
        create(engine, "ws-back")
    # Its retention counts afresh from the next delete.
    assert recovered.delete().purge_at == clock.now() + timedelta(days=14)


def test_owner_deletes_and_recovers_others_are_refused(engine: rb.Engine) -> None:
    owner = rb.Principal("alice")
    stranger = rb.Principal("mallory")
    ws = rb.Workspace.create(SUB, RG, "ws-owned", principal=owner, engine=engine)

    with pytest.raises(rb.PermissionDenied) as refused:
        ws.delete(principal=stranger)
    assert refused.value.http_status == 403
    assert ws.delete(principal=owner).permanent is False
    with pytest.raises(rb.PermissionDenied):
        rb.Workspace.recover(SUB, RG, "ws-owned", principal=stranger, engine=engine)
    assert rb.Workspace.recover(SUB, RG, "ws-owned", principal=owner, engine=engine).workspace.id == ws.id
