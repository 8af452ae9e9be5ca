"""recyclebin: deletion protection for workspaces.

Soft delete with retention, name reservation, recover and purge, decided by a policy and
recorded durably by a C++ engine::

    import recyclebin as rb

    with rb.Engine.open("recyclebin.db", policy="azureml") as engine:
        ws = rb.Workspace.create("sub", "rg", "ml-ws", engine=engine)
        result = ws.delete()                      # into the recycle bin
        rb.Workspace.recover("sub", "rg", "ml-ws", engine=engine)

See API.md for the contract: names, signatures, errors and the policy file.
"""

from __future__ import annotations

from ._core import __version__
from .clock import ManualClock
from .engine import Engine, FactsProvider, get_default_engine, set_default_engine
from .errors import (
    EngineClosed,
    InvalidArgument,
    InvalidRetention,
    NameReserved,
    NotFound,
    OperationNotAllowed,
    PermissionDenied,
    PolicyError,
    PreconditionFailed,
    RecycleBinError,
    StorageError,
    WorkspaceExists,
    WorkspaceHeld,
    WorkspaceNotFound,
    WorkspaceNotStopped,
)
from .models import Component, Principal
from .policy import Policy
from .results import (
    AuditRecord,
    CleanupTask,
    DeletableWorkspace,
    DeletedPage,
    DeletedWorkspace,
    DeleteResult,
    Hold,
    Lien,
    PurgeReport,
    RecoverResult,
)
from .workspace import Workspace, WorkspacePage

__all__ = [
    "AuditRecord",
    "CleanupTask",
    "Component",
    "DeletableWorkspace",
    "DeleteResult",
    "DeletedPage",
    "DeletedWorkspace",
    "Engine",
    "EngineClosed",
    "FactsProvider",
    "Hold",
    "InvalidArgument",
    "InvalidRetention",
    "Lien",
    "ManualClock",
    "NameReserved",
    "NotFound",
    "OperationNotAllowed",
    "PermissionDenied",
    "Policy",
    "PolicyError",
    "PreconditionFailed",
    "Principal",
    "PurgeReport",
    "RecoverResult",
    "RecycleBinError",
    "StorageError",
    "Workspace",
    "WorkspaceExists",
    "WorkspaceHeld",
    "WorkspaceNotFound",
    "WorkspaceNotStopped",
    "WorkspacePage",
    "__version__",
    "get_default_engine",
    "set_default_engine",
]
