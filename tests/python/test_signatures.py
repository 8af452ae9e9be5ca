"""Every callable API.md names has API.md's signature: parameter names, order, which are
keyword-only, and defaults. Written out by hand from API.md, so a drift on either side fails."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import pytest

import recyclebin as rb

P = inspect.Parameter
REQUIRED = P.empty

# name -> [(parameter, kind, default)], "self"/"cls" omitted; "*" marks the keyword-only start.
EXPECTED: dict[str, str] = {
    "Engine.open": "location, policy='default', clock=None",
    "Engine.close": "",
    "Engine.set_facts_provider": "fn",
    "Engine.purge_expired": "*, principal=None, dry_run=False",  # version 2: dry runs
    "Engine.list_deletable": "subscription_id",
    # Version 2: a dry run; expected_refs is delete-realm's export fence (issue 16).
    "Engine.purge_by_id": "workspace_id, *, principal=None, dry_run=False, expected_refs=None",
    "Engine.cleanup_tasks": "",
    "Engine.complete_cleanup": "task_id",
    "Engine.audit_log": "subscription_id=None, *, after_seq=None, limit=None",  # version 2: feed
    "Policy.builtin": "name",
    "Policy.load": "path",
    "Policy.from_yaml": "text",
    "ManualClock": "start",
    "ManualClock.now": "",
    "ManualClock.advance": "delta",
    "ManualClock.set": "now",
    "set_default_engine": "engine",
    "Principal": "id, roles=frozenset()",
    "Component": "kind, ref, standalone=False",
    "Workspace.create": (
        "subscription_id, resource_group, name, *, soft_delete_retention_days=None, "
        "cmk_encrypted=False, components=None, principal=None, engine=None, "
        "purge_protection=None, if_deleted='fail', auto_delete_at=None"),  # version 2: protections
    "Workspace.place_hold": "reason, *, principal=None",
    "Workspace.enable_purge_protection": "*, principal=None",
    "Workspace.set_auto_delete": "at, *, principal=None",
    "Engine.place_hold": "workspace_id, reason, *, principal=None",
    "Engine.release_hold": "hold_id, *, principal=None",
    "Engine.holds": "workspace_id",
    "Engine.add_lien": "workspace_id, origin, reason, *, principal=None",
    "Engine.remove_lien": "lien_id, *, principal=None",
    "Engine.liens": "workspace_id",
    "Workspace.stop": "*, principal=None",
    "Workspace.start": "*, principal=None",
    "Workspace.grant": "principal_id, role, *, principal=None",
    "Workspace.revoke": "principal_id, *, principal=None",
    "Workspace.delete": (  # version 2: dry_run
        "*, delete_dependent_resources=False, permanently_delete=False, no_wait=False, "
        "confirm_name=None, principal=None, dry_run=False"),  # version 2: dry runs
    "Workspace.get": "name, subscription_id, resource_group, *, principal=None, engine=None",
    "Workspace.list_deleted": (
        "subscription_id, resource_group=None, *, limit=None, cursor=None, principal=None, "
        "engine=None, purge_before=None"),  # version 2: purge_before
    "Workspace.get_deleted": "name, subscription_id, resource_group, *, principal=None, engine=None",
    "Workspace.recover": "subscription_id, resource_group, name, *, principal=None, engine=None",
    "Workspace.purge": "subscription_id, resource_group, name, *, principal=None, engine=None",
    "Workspace.delete_many": "workspaces, *, permanently_delete=False, principal=None, engine=None",
}


def _resolve(dotted: str) -> Callable[..., Any]:
    target: Any = rb
    for part in dotted.split("."):
        target = getattr(target, part)
    return target  # type: ignore[no-any-return]


def _render(signature: inspect.Signature) -> str:
    parts: list[str] = []
    star = False
    for parameter in signature.parameters.values():
        if parameter.name in ("self", "cls"):
            continue
        if parameter.kind is P.KEYWORD_ONLY and not star:
            parts.append("*")
            star = True
        assert parameter.kind in (P.POSITIONAL_OR_KEYWORD, P.KEYWORD_ONLY), parameter
        if parameter.default is REQUIRED:
            parts.append(parameter.name)
        else:
            parts.append(f"{parameter.name}={parameter.default!r}")
    return ", ".join(parts)


@pytest.mark.parametrize("dotted", sorted(EXPECTED))
def test_signature(dotted: str) -> None:
    target = _resolve(dotted)
    signature = inspect.signature(target)
    assert _render(signature) == EXPECTED[dotted]


def test_instance_methods_bound_to_instances(engine: rb.Engine) -> None:
    ws = rb.Workspace.create("s", "g", "n", engine=engine)
    for name in ("stop", "start", "grant", "revoke", "delete"):
        assert _render(inspect.signature(getattr(ws, name))) == EXPECTED[f"Workspace.{name}"]
    for name in ("close", "set_facts_provider", "purge_expired", "list_deletable", "purge_by_id",
                 "cleanup_tasks", "complete_cleanup", "audit_log"):
        assert _render(inspect.signature(getattr(engine, name))) == EXPECTED[f"Engine.{name}"]


def test_static_facade_calls_need_no_instance() -> None:
    for name in ("create", "get", "list_deleted", "get_deleted", "recover", "purge", "delete_many"):
        assert isinstance(inspect.getattr_static(rb.Workspace, name), (staticmethod, classmethod))


def test_result_fields() -> None:
    import dataclasses

    def fields(cls: Any) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    assert fields(rb.DeleteResult) == ["permanent", "deleted_at", "purge_at", "retained",
                                       "destroyed", "preserved", "cleanup", "warnings",
                                       "dry_run"]  # version 2: DeleteResult.dry_run
    assert fields(rb.DeletedWorkspace)[:8] == ["id", "name", "subscription_id", "resource_group",
                                               "deleted_at", "purge_at", "retention_days",
                                               "retained"]
    assert fields(rb.RecoverResult) == ["workspace", "restored", "reattached", "must_recreate"]
    assert fields(rb.PurgeReport) == ["purged", "cleanup", "dry_run",  # version 2: dry runs
                                      "auto_deleted", "auto_delete_refused"]  # and auto-deletion
    assert "held" in fields(rb.DeletedWorkspace)  # version 2: legal holds
    assert fields(rb.Hold) == ["id", "workspace_id", "reason", "placed_by", "placed_at"]
    assert fields(rb.Lien) == ["id", "workspace_id", "origin", "reason", "created_at"]
    assert fields(rb.DeletableWorkspace) == ["kind", "workspace_id", "since"]
    assert fields(rb.CleanupTask) == ["id", "kind", "ref", "workspace_id", "created_at",  # version 2:
                                      "attempts", "last_error", "leased_by", "leased_until"]  # leases
    assert fields(rb.AuditRecord) == ["seq", "at", "action", "subscription_id",  # version 2:
                                      "resource_group", "name", "outcome",  # the audit feed's
                                      "workspace_id", "principal_id"]  # workspace and principal
    for cls in (rb.DeleteResult, rb.DeletedWorkspace, rb.RecoverResult, rb.PurgeReport,
                rb.DeletableWorkspace, rb.CleanupTask, rb.AuditRecord, rb.Component):
        assert cls.__dataclass_params__.frozen  # type: ignore[attr-defined]
    assert issubclass(rb.DeletedPage, list)


def test_all_names_exported() -> None:
    for name in ("Engine", "Policy", "ManualClock", "set_default_engine", "Workspace", "Principal",
                 "Component", "DeleteResult", "DeletedWorkspace", "DeletedPage", "RecoverResult",
                 "PurgeReport", "DeletableWorkspace", "CleanupTask", "AuditRecord",
                 "RecycleBinError", "WorkspaceNotFound", "WorkspaceExists", "NameReserved",
                 "InvalidRetention", "OperationNotAllowed", "WorkspaceNotStopped",
                 "PreconditionFailed", "PermissionDenied", "PolicyError", "EngineClosed"):
        assert name in rb.__all__
        assert getattr(rb, name) is not None
    assert sorted(rb.__all__) == sorted(set(rb.__all__))
    for name in rb.__all__:
        assert hasattr(rb, name), name
