"""Data-development recycle bin (policies/dataworks.yaml), walked through the public API.

Each test quotes the behaviour of the product document it shows.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

import recyclebin as rb

from .support import OpenEngine, ONE_MICROSECOND, START, cleanup_refs, facts, failing_provider, kinds

ACCOUNT = "aliyun-1234"  # the subscription: one Alibaba Cloud account
RG = "rg-default"

# "What gets recovered": Yes / No.
RECOVERABLE = {"data_sources", "computing_resources", "nodes", "resources"}
NOT_RECOVERABLE = {"scheduling_tasks", "data_integration_tasks"}

# "your account must meet one of the following conditions"
CLOUD_ACCOUNT = rb.Principal("main-account", roles=frozenset({"alibaba_cloud_account"}))
FULL_ACCESS_USER = rb.Principal("ram-ops", roles=frozenset({"aliyun_dataworks_full_access"}))
DEVELOPER = rb.Principal("ram-dev", roles=frozenset({"aliyun_dataworks_read_only"}))


def assets(name: str) -> list[rb.Component]:
    components = [rb.Component(kind, f"{name}/{kind}") for kind in sorted(RECOVERABLE | NOT_RECOVERABLE)]
    # Models and Metrics are core assets, but not among the recoverable types.
    components.append(rb.Component("models", f"{name}/models"))
    return components


@pytest.fixture
def engine(open_engine: OpenEngine) -> rb.Engine:
    engine = open_engine("dataworks")
    engine.set_facts_provider(facts(linked_workspaces=0, billable_scheduled_tasks=0))
    return engine


def create(engine: rb.Engine, name: str, resource_group: str = RG, **options: object) -> rb.Workspace:
    options.setdefault("principal", DEVELOPER)
    return rb.Workspace.create(ACCOUNT, resource_group, name, components=assets(name),
                               engine=engine, **options)


# --- "The 14-day retention period is a fixed policy and cannot be extended."


def test_retention_is_fixed_at_14_days(engine: rb.Engine) -> None:
    assert create(engine, "dw_default").soft_delete_retention_days == 14
    assert create(engine, "dw_explicit", soft_delete_retention_days=14).soft_delete_retention_days == 14
    for days in (1, 7, 13, 15, 30):
        with pytest.raises(rb.InvalidRetention) as refused:
            create(engine, f"dw_{days}", soft_delete_retention_days=days)
        assert "14" in str(refused.value)
        with pytest.raises(rb.WorkspaceNotFound):
            rb.Workspace.get(f"dw_{days}", ACCOUNT, RG, engine=engine)


# --- "Enter the workspace name and click OK."


def test_delete_is_confirmed_by_typing_the_workspace_name(engine: rb.Engine) -> None:
    ws = create(engine, "dw_confirm")
    for typed in (None, "dw_confir", "DW_CONFIRM", "dw_confirm "):
        with pytest.raises(rb.PreconditionFailed) as refused:
            ws.delete(confirm_name=typed, principal=FULL_ACCESS_USER)
        assert refused.value.code == "precondition_failed"
        assert refused.value.http_status == 412
    assert rb.Workspace.get("dw_confirm", ACCOUNT, RG, engine=engine).id == ws.id
    assert engine.audit_log(ACCOUNT)[-1].outcome == "refused:precondition_failed"

    assert ws.delete(confirm_name="dw_confirm", principal=FULL_ACCESS_USER).permanent is False


# --- "To delete or recover a workspace, your account must meet one of the following
# conditions: an Alibaba Cloud account, or a RAM user with AliyunDataWorksFullAccess."


def test_only_permitted_accounts_delete_and_recover(engine: rb.Engine) -> None:
    ws = create(engine, "dw_perm")  # DEVELOPER created it and is its owner
    # Being the workspace's owner is not enough; permission is checked before the typed name.
    for principal in (DEVELOPER, rb.Principal("stranger")):
        with pytest.raises(rb.PermissionDenied) as refused:
            ws.delete(principal=principal)
        assert refused.value.http_status == 403
    assert engine.audit_log(ACCOUNT)[-1].outcome == "refused:permission_denied"

    assert ws.delete(confirm_name="dw_perm", principal=FULL_ACCESS_USER).permanent is False
    with pytest.raises(rb.PermissionDenied):
        rb.Workspace.recover(ACCOUNT, RG, "dw_perm", principal=DEVELOPER, engine=engine)
    recovered = rb.Workspace.recover(ACCOUNT, RG, "dw_perm", principal=CLOUD_ACCOUNT, engine=engine)
    assert recovered.workspace.id == ws.id

    assert ws.delete(confirm_name="dw_perm", principal=CLOUD_ACCOUNT).permanent is False
    assert rb.Workspace.recover(ACCOUNT, RG, "dw_perm", principal=FULL_ACCESS_USER,
                                engine=engine).workspace.id == ws.id


# --- "Pre-deletion checks": Check PAI assets; Stop billable items. Warnings, not refusals.


def test_pre_deletion_checks_are_reported_not_enforced(engine: rb.Engine) -> None:
    engine.set_facts_provider(facts(linked_workspaces=1, billable_scheduled_tasks=3))
    ws = create(engine, "dw_warned")
    result = ws.delete(confirm_name="dw_warned", principal=FULL_ACCESS_USER)
    assert result.permanent is False
    assert len(result.warnings) == 2
    assert any("linked_workspaces" in line for line in result.warnings)
    assert any("billable_scheduled_tasks" in line for line in result.warnings)

    engine.set_facts_provider(facts(linked_workspaces=0, billable_scheduled_tasks=2))
    ws = create(engine, "dw_billing")
    result = ws.delete(confirm_name="dw_billing", principal=FULL_ACCESS_USER)
    assert len(result.warnings) == 1 and "billable_scheduled_tasks" in result.warnings[0]

    engine.set_facts_provider(facts(linked_workspaces=0, billable_scheduled_tasks=0))
    ws = create(engine, "dw_clean")
    assert ws.delete(confirm_name="dw_clean", principal=FULL_ACCESS_USER).warnings == []


def test_unverifiable_pre_deletion_checks_are_reported(engine: rb.Engine) -> None:
    engine.set_facts_provider(failing_provider)
    ws = create(engine, "dw_unknown")
    result = ws.delete(confirm_name="dw_unknown", principal=FULL_ACCESS_USER)
    assert result.permanent is False
    assert len(result.warnings) == 2
    assert any("linked_workspaces" in line for line in result.warnings)
    assert any("billable_scheduled_tasks" in line for line in result.warnings)


# --- "After deletion, the following core assets are moved to the recycle bin: data sources,
# computing resources, nodes, and resources." "Recovering a workspace only restores the asset
# types listed in the table below."


def test_recycle_bin_keeps_only_the_recoverable_asset_types(engine: rb.Engine) -> None:
    ws = create(engine, "dw_assets")
    result = ws.delete(confirm_name="dw_assets", principal=FULL_ACCESS_USER)
    assert set(result.retained) == RECOVERABLE
    assert set(result.destroyed) == NOT_RECOVERABLE | {"models"}
    assert result.preserved == []
    assert cleanup_refs(result.cleanup) == {
        (kind, f"dw_assets/{kind}") for kind in NOT_RECOVERABLE | {"models"}}

    recovered = rb.Workspace.recover(ACCOUNT, RG, "dw_assets", principal=FULL_ACCESS_USER, engine=engine)
    assert set(recovered.restored) == RECOVERABLE
    assert recovered.reattached == []
    assert set(recovered.must_recreate) == NOT_RECOVERABLE | {"models"}
    assert kinds(recovered.workspace.components) == RECOVERABLE


# --- "check the Deletion Time and Physical Deletion Countdown columns"


def test_recycle_bin_shows_deletion_time_and_countdown(engine: rb.Engine, clock: rb.ManualClock) -> None:
    ws = create(engine, "dw_countdown")
    ws.delete(confirm_name="dw_countdown", principal=FULL_ACCESS_USER)
    clock.advance(timedelta(days=3, hours=2))

    [entry] = rb.Workspace.list_deleted(ACCOUNT, engine=engine)
    assert entry.id == ws.id and entry.name == "dw_countdown"
    assert entry.deleted_at == START
    assert entry.retention_days == 14
    assert entry.purge_at - clock.now() == timedelta(days=10, hours=22)
    assert set(entry.retained) == RECOVERABLE


# --- No early purge: "Wait for automatic purging", "Recover the workspace within this period,
# or the data is permanently lost."


def test_nothing_is_permanently_deleted_early(engine: rb.Engine) -> None:
    ws = create(engine, "dw_keep")
    with pytest.raises(rb.OperationNotAllowed):
        ws.delete(permanently_delete=True, confirm_name="dw_keep", principal=FULL_ACCESS_USER)
    assert rb.Workspace.get("dw_keep", ACCOUNT, RG, engine=engine).id == ws.id

    ws.delete(confirm_name="dw_keep", principal=FULL_ACCESS_USER)
    for principal in (CLOUD_ACCOUNT, None):
        with pytest.raises(rb.OperationNotAllowed):
            rb.Workspace.purge(ACCOUNT, RG, "dw_keep", principal=principal, engine=engine)
    assert rb.Workspace.get_deleted("dw_keep", ACCOUNT, RG, engine=engine).id == ws.id


def test_deleted_workspace_refuses_other_operations(engine: rb.Engine) -> None:
    ws = create(engine, "dw_frozen")
    ws.delete(confirm_name="dw_frozen", principal=FULL_ACCESS_USER)
    with pytest.raises(rb.WorkspaceNotFound):
        rb.Workspace.get("dw_frozen", ACCOUNT, RG, engine=engine)
    for operation in (ws.stop, ws.start, lambda: ws.grant("ram-dev2", "developer")):
        with pytest.raises(rb.OperationNotAllowed):
            operation()
    with pytest.raises(rb.OperationNotAllowed):
        ws.delete(confirm_name="dw_frozen", principal=FULL_ACCESS_USER)


# --- "While a workspace is in the recycle bin, the system reserves its name ... this
# reservation lasts up to 14 days." "After the 14-day retention period ends, the system
# permanently deletes the workspace and releases the name."


def test_name_reserved_for_14_days_then_released_and_purged(
        engine: rb.Engine, clock: rb.ManualClock) -> None:
    ws = create(engine, "dw_name")
    clock.advance(timedelta(seconds=42, microseconds=7))
    deleted = ws.delete(confirm_name="dw_name", principal=FULL_ACCESS_USER)
    purge_at = START + timedelta(days=14, seconds=42, microseconds=7)
    assert deleted.purge_at == purge_at

    for group in (RG, "rg-elsewhere"):  # held in the whole account
        with pytest.raises(rb.NameReserved) as reserved:
            create(engine, "dw_name", resource_group=group)
        assert reserved.value.reserved_until == purge_at

    clock.set(purge_at - ONE_MICROSECOND)
    with pytest.raises(rb.NameReserved):
        create(engine, "dw_name")
    assert rb.Workspace.get_deleted("dw_name", ACCOUNT, RG, engine=engine).id == ws.id

    clock.set(purge_at)
    with pytest.raises(rb.WorkspaceNotFound):
        rb.Workspace.recover(ACCOUNT, RG, "dw_name", principal=CLOUD_ACCOUNT, engine=engine)
    assert list(rb.Workspace.list_deleted(ACCOUNT, engine=engine)) == []

    # "the system permanently deletes the workspace": the kept assets go to the cleanup outbox.
    report = engine.purge_expired()
    assert report.purged == [(ACCOUNT, RG, "dw_name")]
    assert cleanup_refs(report.cleanup) == {(kind, f"dw_name/{kind}") for kind in RECOVERABLE}
    assert all(task.workspace_id == ws.id for task in report.cleanup)
    assert engine.purge_expired().purged == []
    for group in (RG, "rg-elsewhere"):
        assert create(engine, "dw_name", resource_group=group).id != ws.id
