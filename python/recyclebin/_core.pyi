# Hand-written stubs for the C++ module recyclebin._core (cpp/bindings/). Keep in step with
# the bindings; tests/python/test_typing.py checks the package against them.
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any, ClassVar, TypeAlias, final

import recyclebin.engine
from recyclebin.models import Component
from recyclebin.results import (
    AuditRecord,
    CleanupTask,
    DeletableWorkspace,
    DeletedWorkspace,
    DeleteResult,
    Hold,
    Lien,
    PurgeReport,
    RecoverResult,
)
from recyclebin.workspace import Workspace

__version__: str

# --- errors (bind_errors.cpp) ---------------------------------------------------------------

class RecycleBinError(Exception):
    code: ClassVar[str]
    http_status: ClassVar[int]

class WorkspaceNotFound(RecycleBinError): ...
class WorkspaceExists(RecycleBinError): ...

class NameReserved(RecycleBinError):
    reserved_until: datetime | None

class InvalidRetention(RecycleBinError): ...
class OperationNotAllowed(RecycleBinError): ...
class WorkspaceNotStopped(RecycleBinError): ...
class PreconditionFailed(RecycleBinError): ...
class PermissionDenied(RecycleBinError): ...
class PolicyError(RecycleBinError): ...
class EngineClosed(RecycleBinError): ...
class InvalidArgument(RecycleBinError, ValueError): ...
class NotFound(RecycleBinError, KeyError): ...
class StorageError(RecycleBinError): ...
class WorkspaceHeld(OperationNotAllowed): ...

# --- time (bind_time.cpp) --------------------------------------------------------------------

def format_iso8601(when: datetime) -> str: ...
def parse_iso8601(text: str) -> datetime: ...

@final
class ManualClock:
    def __init__(self, start: datetime) -> None: ...
    def now(self) -> datetime: ...
    def now_micros(self) -> int: ...
    def set(self, now: datetime) -> None: ...
    def advance(self, delta: timedelta) -> None: ...

# --- policy (bind_policy.cpp) ----------------------------------------------------------------

@final
class Policy:
    @staticmethod
    def from_yaml(text: str, source: str = "") -> Policy: ...
    @staticmethod
    def load(path: str) -> Policy: ...
    @staticmethod
    def builtin(name: str) -> Policy: ...
    @staticmethod
    def builtin_names() -> list[str]: ...
    @property
    def name(self) -> str: ...
    @property
    def source_text(self) -> str: ...
    def tenants(self) -> list[str]: ...
    def to_yaml(self, subscription_id: str | None = None) -> str: ...
    def rules(self, subscription_id: str | None = None) -> dict[str, Any]: ...

# --- engine values (bind_engine.cpp) ---------------------------------------------------------
# Answers are the package's own classes, built by the binding: the result classes (registered
# by recyclebin.results with _register_types), and the live workspaces as the engine's
# rb.Workspace objects (registered by recyclebin.workspace), from the identity map the call is
# given. An rb.Workspace keeps the engine's answer as a _WorkspaceSnapshot:
# (id, subscription_id, resource_group, name, retention_days, cmk_encrypted, state,
#  created_at, components, purge_protection, auto_delete_at), components as
#  (kind, ref, standalone).

_WorkspaceSnapshot: TypeAlias = tuple[
    str, str, str, str, int, bool, str, datetime, tuple[tuple[str, str, bool], ...], bool,
    datetime | None,
]

def _register_types(
    *,
    cleanup_task: type[CleanupTask],
    delete_result: type[DeleteResult],
    deleted_workspace: type[DeletedWorkspace],
    recover_result: type[RecoverResult],
    purge_report: type[PurgeReport],
    deletable_workspace: type[DeletableWorkspace],
    audit_record: type[AuditRecord],
    hold: type[Hold],
    lien: type[Lien],
) -> None: ...
def _register_workspace_type(cls: type[Workspace]) -> None: ...

@final
class WorkspaceMap:
    def __init__(self, engine: recyclebin.engine.Engine) -> None: ...
    def __len__(self) -> int: ...
    def mark_deleted(self, workspace_ids: Iterable[str]) -> None: ...

@final
class Principal:
    def __init__(self, id: str, roles: list[str] = ...) -> None: ...
    @property
    def id(self) -> str: ...
    @property
    def roles(self) -> list[str]: ...

# --- engine (bind_engine.cpp) ----------------------------------------------------------------

@final
class Engine:
    @staticmethod
    def open(location: str, policy: Policy, clock: ManualClock | None = None) -> Engine: ...
    def close(self) -> None: ...
    @property
    def closed(self) -> bool: ...
    @property
    def policy(self) -> Policy: ...
    def now(self) -> datetime: ...
    def set_facts_provider(
        self, provider: Callable[[Workspace], dict[str, int]] | None, workspaces: WorkspaceMap
    ) -> None: ...
    def create(
        self,
        workspaces: WorkspaceMap,
        subscription_id: str,
        resource_group: str,
        name: str,
        retention_days: int | None = None,
        cmk_encrypted: bool = False,
        components: Iterable[Component] = ...,
        principal: Principal | None = None,
        purge_protection: bool | None = None,
        if_deleted: str = "fail",
        auto_delete_at: datetime | None = None,
    ) -> Workspace: ...
    def get(
        self,
        workspaces: WorkspaceMap,
        subscription_id: str,
        resource_group: str,
        name: str,
        principal: Principal | None = None,
    ) -> Workspace: ...
    def get_by_id(
        self, workspaces: WorkspaceMap, workspace_id: str, principal: Principal | None = None
    ) -> Workspace: ...
    def stop(
        self, workspaces: WorkspaceMap, workspace_id: str, principal: Principal | None = None
    ) -> Workspace: ...
    def start(
        self, workspaces: WorkspaceMap, workspace_id: str, principal: Principal | None = None
    ) -> Workspace: ...
    def grant(
        self, workspace_id: str, member_id: str, role: str, principal: Principal | None = None
    ) -> None: ...
    def revoke(self, workspace_id: str, member_id: str, principal: Principal | None = None) -> None: ...
    def remove(
        self,
        workspace_id: str,
        delete_dependent_resources: bool = False,
        permanently_delete: bool = False,
        confirm_name: str | None = None,
        principal: Principal | None = None,
        dry_run: bool = False,
    ) -> DeleteResult: ...
    def remove_many(
        self,
        workspace_ids: list[str],
        delete_dependent_resources: bool = False,
        permanently_delete: bool = False,
        confirm_name: str | None = None,
        principal: Principal | None = None,
        dry_run: bool = False,
    ) -> list[DeleteResult]: ...
    def list_live(
        self,
        workspaces: WorkspaceMap,
        subscription_id: str,
        resource_group: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
        principal: Principal | None = None,
    ) -> tuple[list[Workspace], str | None]: ...
    def list_deleted(
        self,
        subscription_id: str,
        resource_group: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
        principal: Principal | None = None,
        purge_before: datetime | None = None,
    ) -> tuple[list[DeletedWorkspace], str | None]: ...
    def get_deleted(
        self, subscription_id: str, resource_group: str, name: str, principal: Principal | None = None
    ) -> DeletedWorkspace: ...
    def recover(
        self,
        workspaces: WorkspaceMap,
        subscription_id: str,
        resource_group: str,
        name: str,
        principal: Principal | None = None,
    ) -> RecoverResult: ...
    def purge(
        self, subscription_id: str, resource_group: str, name: str, principal: Principal | None = None
    ) -> DeleteResult: ...
    def purge_expired(
        self, principal: Principal | None = None, dry_run: bool = False
    ) -> PurgeReport: ...
    def list_deletable(self, subscription_id: str) -> list[DeletableWorkspace]: ...
    def purge_by_id(
        self,
        workspace_id: str,
        principal: Principal | None = None,
        dry_run: bool = False,
        expected_refs: list[str] | None = None,
    ) -> DeleteResult: ...
    def cleanup_tasks(self) -> list[CleanupTask]: ...
    def complete_cleanup(self, task_id: int) -> None: ...
    def claim_cleanup(self, worker: str, limit: int, lease: timedelta) -> list[CleanupTask]: ...
    def fail_cleanup(self, task_id: int, error: str, retry_after: timedelta) -> None: ...
    def place_hold(self, workspace_id: str, reason: str, principal: Principal | None = None) -> Hold: ...
    def release_hold(self, hold_id: str, principal: Principal | None = None) -> None: ...
    def holds(self, workspace_id: str) -> list[Hold]: ...
    def add_lien(
        self, workspace_id: str, origin: str, reason: str, principal: Principal | None = None
    ) -> Lien: ...
    def remove_lien(self, lien_id: str, principal: Principal | None = None) -> None: ...
    def liens(self, workspace_id: str) -> list[Lien]: ...
    def enable_purge_protection(
        self, workspaces: WorkspaceMap, workspace_id: str, principal: Principal | None = None
    ) -> Workspace: ...
    def set_auto_delete(
        self, workspaces: WorkspaceMap, workspace_id: str, at: datetime | None,
        principal: Principal | None = None,
    ) -> Workspace: ...
    def audit_log(
        self, subscription_id: str | None = None, after_seq: int | None = None, limit: int | None = None
    ) -> list[AuditRecord]: ...
