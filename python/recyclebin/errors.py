"""The exceptions of recyclebin: one hierarchy under :class:`RecycleBinError`.

The classes are created once, in the C++ bindings (``recyclebin._core``), which raise them
for the core's error codes; this module re-exports them as its own (their ``__module__`` is
this module, where users import them from and where pickle finds them). Every class carries ``.code`` (a
stable snake_case string, the same one the REST plugin answers) and ``.http_status``.

====================  =========================  ====
class                 code                       HTTP
====================  =========================  ====
WorkspaceNotFound     workspace_not_found        404
WorkspaceExists       workspace_exists           409
NameReserved          name_reserved              409
InvalidRetention      invalid_retention          400
OperationNotAllowed   operation_not_allowed      409
WorkspaceNotStopped   workspace_not_stopped      400
PreconditionFailed    precondition_failed        412
PermissionDenied      permission_denied          403
PolicyError           policy_error               400
EngineClosed          engine_closed              503
StorageError          storage_error              503  (nothing applied; safe to retry)
WorkspaceHeld         workspace_held             409  (also an OperationNotAllowed)
InvalidArgument       invalid_argument           400  (also a ValueError)
NotFound              not_found                  404  (also a KeyError)
====================  =========================  ====
"""

from __future__ import annotations

from ._core import (
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

__all__ = [
    "EngineClosed",
    "InvalidArgument",
    "InvalidRetention",
    "NameReserved",
    "NotFound",
    "OperationNotAllowed",
    "PermissionDenied",
    "PolicyError",
    "PreconditionFailed",
    "RecycleBinError",
    "StorageError",
    "WorkspaceExists",
    "WorkspaceHeld",
    "WorkspaceNotFound",
    "WorkspaceNotStopped",
    "error_class",
]

def error_class(code: str) -> type[RecycleBinError]:
    """The exception class for an error code (e.g. from a REST answer); unknown codes give
    :class:`RecycleBinError`."""
    from .codes import error_codes  # codes imports this module: look it up when asked

    entry = error_codes().get(code)
    return entry.error_class if entry is not None else RecycleBinError


for _name in __all__:
    _exported = globals()[_name]
    if isinstance(_exported, type):
        _exported.__module__ = __name__
