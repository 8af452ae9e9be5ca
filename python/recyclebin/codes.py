"""Error codes, HTTP statuses and CLI exit codes: one registry, read off the exception classes.

Every class under :class:`~recyclebin.RecycleBinError` carries its stable ``code`` and its
``http_status`` (the bindings set both from the core). This module walks the hierarchy as it
is, so a class the bindings gain later (say ``WorkspaceHeld``, a kind of
``OperationNotAllowed``) is in :func:`error_codes` with no list to edit here, and exits as its
nearest base with an exit status of its own (``OperationNotAllowed``'s 7).

The REST layer answers ``http_status(exc)`` with ``exc``'s code; the CLI exits with
``exit_code(exc)``.
"""

from __future__ import annotations

from dataclasses import dataclass

from recyclebin.errors import RecycleBinError

__all__ = [
    "EXIT_INTERRUPTED",
    "EXIT_STORAGE",
    "EXIT_UNEXPECTED",
    "EXIT_USAGE",
    "ErrorCode",
    "error_classes",
    "error_codes",
    "exit_code",
    "exit_help",
    "http_status",
]

EXIT_UNEXPECTED = 1     # anything else (a bug, or an environment problem not listed)
EXIT_USAGE = 2          # bad command line: unknown option, bad value, missing consent
EXIT_STORAGE = 12       # the database cannot be opened or written (OSError, engine closed)
EXIT_INTERRUPTED = 130  # Ctrl-C

# The CLI's exit status of each family of errors, by the code of the class at its head
# (documented in `recyclebin --help`). A class whose code is not here exits as its nearest
# base whose code is; the base of all (recyclebin_error) exits 1, as a bug does.
_EXIT_BY_CODE: dict[str, int] = {
    "workspace_not_found": 3,
    "workspace_exists": 4,
    "name_reserved": 5,
    "invalid_retention": 6,
    "operation_not_allowed": 7,
    "workspace_not_stopped": 8,
    "precondition_failed": 9,
    "permission_denied": 10,
    "policy_error": 11,
    "engine_closed": EXIT_STORAGE,
    "storage_error": EXIT_STORAGE,
    "invalid_argument": EXIT_USAGE,
    "not_found": 3,
}


@dataclass(frozen=True)
class ErrorCode:
    """One error code: the class raising it, its REST status and its CLI exit status."""

    code: str
    error_class: type[RecycleBinError]
    http_status: int
    exit_code: int


def error_classes() -> list[type[RecycleBinError]]:
    """:class:`RecycleBinError` and every class below it, each base before its subclasses,
    siblings in the order they were made."""
    found: list[type[RecycleBinError]] = []
    pending = [RecycleBinError]
    while pending:
        cls = pending.pop(0)
        if cls not in found:
            found.append(cls)
            pending[:0] = cls.__subclasses__()
    return found


def exit_code(error: RecycleBinError | type[RecycleBinError]) -> int:
    """The CLI's exit status for ``error`` (an exception or its class)."""
    cls = error if isinstance(error, type) else type(error)
    for base in cls.__mro__:
        if isinstance(base, type) and issubclass(base, RecycleBinError):
            status = _EXIT_BY_CODE.get(str(base.code))
            if status is not None:
                return status
    return EXIT_UNEXPECTED


def http_status(error: RecycleBinError | type[RecycleBinError]) -> int:
    """The status a REST front end answers for ``error`` (an exception or its class)."""
    return int(error.http_status)


def exit_help() -> str:
    """The exit statuses in a sentence, for ``--help``: each status with the codes that exit
    with it, from the registry (a class added later is listed under its family's status)."""
    by_status: dict[int, list[str]] = {}
    for entry in error_codes().values():
        by_status.setdefault(entry.exit_code, []).append(entry.code)
    usage = ", ".join(by_status.pop(EXIT_USAGE, []))
    storage = ", ".join(by_status.pop(EXIT_STORAGE, []))
    parts = ["0 ok", f"{EXIT_UNEXPECTED} unexpected error",
             f"{EXIT_USAGE} bad command line, {usage} or missing --yes/--confirm"]
    parts += [f"{status} {', '.join(names)}" for status, names in sorted(by_status.items())
              if status != EXIT_UNEXPECTED]
    parts += [f"{EXIT_STORAGE} {storage} or an unusable database file",
              f"{EXIT_INTERRUPTED} interrupted"]
    return "Exit codes: " + "; ".join(parts) + "."


def error_codes() -> dict[str, ErrorCode]:
    """Every error code of the hierarchy (the base's ``recyclebin_error`` apart), in
    :func:`error_classes` order. A subclass that keeps its base's code is that code."""
    registry: dict[str, ErrorCode] = {}
    for cls in error_classes():
        if cls is RecycleBinError:
            continue
        code = str(cls.code)
        if code not in registry:
            registry[code] = ErrorCode(code=code, error_class=cls,
                                       http_status=http_status(cls), exit_code=exit_code(cls))
    return registry
