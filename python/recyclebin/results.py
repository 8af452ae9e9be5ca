"""What the engine answers: frozen result objects (assignment raises ``AttributeError``).

Datetimes are timezone-aware UTC. ``repr()`` shows them in ISO 8601 with ``Z``; in a
notebook, :class:`DeletedPage` and the result objects render as HTML tables with the
deletion time and a countdown to the purge.
"""

from __future__ import annotations

import dataclasses
import html
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from . import _core

if TYPE_CHECKING:
    from .workspace import Workspace

__all__ = [
    "AuditRecord",
    "CleanupTask",
    "DeletableWorkspace",
    "DeleteResult",
    "DeletedPage",
    "DeletedWorkspace",
    "Hold",
    "Lien",
    "PurgeReport",
    "RecoverResult",
    "format_countdown",
    "isoformat_z",
]


def isoformat_z(when: datetime) -> str:
    """ISO 8601 in UTC with ``Z``, microseconds only when there are any:
    ``2026-01-15T00:00:00Z``."""
    return when.astimezone(timezone.utc).replace(tzinfo=None).isoformat() + "Z"


def format_countdown(remaining: timedelta) -> str:
    """A countdown as a person reads it: ``13d 23h 59m``, ``4m 10s``, or ``due`` at zero and below."""
    seconds = int(remaining.total_seconds())
    if remaining <= timedelta(0):
        return "due"
    days, seconds = divmod(seconds, 86_400)
    hours, seconds = divmod(seconds, 3_600)
    minutes, seconds = divmod(seconds, 60)
    if days:
        return f"{days}d {hours}h {minutes}m"
    if hours:
        return f"{hours}h {minutes}m {seconds}s"
    if minutes:
        return f"{minutes}m {seconds}s"
    return f"{seconds}s" if seconds else "<1s"


def _show(value: object) -> str:
    if isinstance(value, datetime):
        return isoformat_z(value)
    if isinstance(value, list):
        return "[" + ", ".join(_show(item) for item in value) + "]"
    if isinstance(value, tuple):
        return "(" + ", ".join(_show(item) for item in value) + ")"
    return repr(value)


def _cell(value: object) -> str:
    if isinstance(value, datetime):
        return html.escape(isoformat_z(value))
    if isinstance(value, list):
        return html.escape(", ".join(str(_plain(item)) for item in value)) or "&mdash;"
    if value is None:
        return "&mdash;"
    return html.escape(str(_plain(value)))


def _plain(value: object) -> object:
    if isinstance(value, datetime):
        return isoformat_z(value)
    if isinstance(value, CleanupTask):
        return f"{value.kind}:{value.ref}"
    if isinstance(value, tuple):
        return "/".join(str(part) for part in value)
    return value


class _Result:
    """What the result classes below share: repr(), _repr_html_() and loading older pickles.

    They are plain ``dataclass(frozen=True)`` classes: assignment raises
    ``FrozenInstanceError``; they copy, compare and pickle as dataclasses do.
    """

    def __setstate__(self, state: dict[str, Any]) -> None:
        # A pickle from an older version lacks the fields added since: they take their defaults.
        for field in dataclasses.fields(self):  # type: ignore[arg-type]
            if field.name in state:
                continue
            if field.default is not dataclasses.MISSING:
                state[field.name] = field.default
            elif field.default_factory is not dataclasses.MISSING:
                state[field.name] = field.default_factory()
        self.__dict__.update(state)

    def __repr__(self) -> str:
        parts = [
            f"{f.name}={_show(getattr(self, f.name))}"
            for f in dataclasses.fields(self)  # type: ignore[arg-type]
            if f.repr
        ]
        return f"{type(self).__name__}({', '.join(parts)})"

    def _html_rows(self) -> list[tuple[str, str]]:
        return [
            (f.name, _cell(getattr(self, f.name)))
            for f in dataclasses.fields(self)  # type: ignore[arg-type]
            if f.repr
        ]

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><th style='text-align:left'>{html.escape(name)}</th><td>{cell}</td></tr>"
            for name, cell in self._html_rows()
        )
        return f"<table><caption>{type(self).__name__}</caption>{rows}</table>"


@dataclass(frozen=True, repr=False)
class CleanupTask(_Result):
    """Something the platform must destroy in its own storage (the cleanup outbox).

    Workers claim tasks with :meth:`Engine.claim_cleanup` (a lease), destroy ``ref``, then
    :meth:`Engine.complete_cleanup` with ``id`` (or :meth:`Engine.fail_cleanup` to retry
    later). At least once: make the destroy idempotent. ``attempts`` counts failed tries,
    ``last_error`` is what the last one reported; ``leased_by``/``leased_until`` name the
    worker holding it and until when (a lease that ended no longer holds).
    """

    id: int
    kind: str
    ref: str
    workspace_id: str
    created_at: datetime
    attempts: int = 0
    last_error: str | None = None
    leased_by: str | None = None
    leased_until: datetime | None = None


@dataclass(frozen=True, repr=False)
class DeleteResult(_Result):
    """What a delete or purge did.

    ``retained``, ``destroyed`` and ``preserved`` list the kinds of this workspace's
    components as the policy classifies them (on a permanent delete, retain kinds are in
    ``destroyed``); ``cleanup`` the tasks written for the platform; ``warnings`` one line per
    warning fact above zero, or that could not be checked. ``dry_run``: the answer of a dry
    run, which wrote nothing (its cleanup tasks, the ones the call would write, have id 0).
    """

    permanent: bool
    deleted_at: datetime
    purge_at: datetime | None
    retained: list[str]
    destroyed: list[str]
    preserved: list[str]
    cleanup: list[CleanupTask]
    warnings: list[str]
    dry_run: bool = False

    def _html_rows(self) -> list[tuple[str, str]]:
        rows = super()._html_rows()
        if self.purge_at is not None:
            rows.insert(3, ("purge in", html.escape(format_countdown(self.purge_at - self.deleted_at))))
        return rows


@dataclass(frozen=True, repr=False)
class DeletedWorkspace(_Result):
    """A workspace in the recycle bin.

    ``held``: a legal hold keeps it there (past ``purge_at`` too) until released.
    ``as_of`` is the engine's time when it was read; :attr:`time_to_purge` counts down from it.
    """

    id: str
    name: str
    subscription_id: str
    resource_group: str
    deleted_at: datetime
    purge_at: datetime
    retention_days: int
    retained: list[str]
    held: bool = False
    as_of: datetime | None = field(default=None, repr=False, compare=False)

    @property
    def time_to_purge(self) -> timedelta:
        """``purge_at`` minus the time it was read (or now); zero or less: due."""
        now = self.as_of if self.as_of is not None else datetime.now(timezone.utc)
        return self.purge_at - now

    def _html_rows(self) -> list[tuple[str, str]]:
        rows = super()._html_rows()
        rows.insert(6, ("purge in", html.escape(format_countdown(self.time_to_purge))))
        return rows


_DELETED_COLUMNS = ("name", "resource_group", "deleted_at", "purge_at", "purge in", "retained")


def _deleted_table(items: Iterable[DeletedWorkspace], caption: str) -> str:
    head = "".join(f"<th>{html.escape(column)}</th>" for column in _DELETED_COLUMNS)
    body = []
    for item in items:
        cells = [
            _cell(item.name),
            _cell(item.resource_group),
            _cell(item.deleted_at),
            _cell(item.purge_at),
            html.escape(format_countdown(item.time_to_purge)),
            _cell(item.retained),
        ]
        body.append("<tr>" + "".join(f"<td>{cell}</td>" for cell in cells) + "</tr>")
    return (
        f"<table><caption>{html.escape(caption)}</caption>"
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
    )


_Item = TypeVar("_Item")
_R = TypeVar("_R")


class _Page(list[_Item], Generic[_Item]):
    """A page of a keyset-paged listing: a list, with ``next_cursor`` (``None`` on the last
    page) to pass back as ``cursor=`` for the next page."""

    __slots__ = ("_next_cursor",)

    def __init__(self, items: Iterable[_Item] = (), next_cursor: str | None = None) -> None:
        super().__init__(items)
        self._next_cursor = next_cursor

    @property
    def next_cursor(self) -> str | None:
        """Where the next page starts, or ``None`` when there is none."""
        return self._next_cursor

    def __repr__(self) -> str:
        return f"{type(self).__name__}({super().__repr__()}, next_cursor={self._next_cursor!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (list(self), self._next_cursor))


class DeletedPage(_Page[DeletedWorkspace]):
    """One page of :meth:`Workspace.list_deleted`: a ``list[DeletedWorkspace]``, newest
    deletion first, with ``next_cursor`` (``None`` on the last page) to pass back as
    ``cursor=`` for the next page."""

    __slots__ = ()

    def _repr_html_(self) -> str:
        caption = f"{len(self)} deleted workspace{'s' if len(self) != 1 else ''}"
        if self._next_cursor is not None:
            caption += " (more: pass next_cursor)"
        return _deleted_table(self, caption)


@dataclass(frozen=True, repr=False)
class RecoverResult(_Result):
    """What a recover did: the live ``workspace`` again, the component kinds ``restored``
    from the bin, those ``reattached`` (best effort) and those the platform
    ``must_recreate``."""

    workspace: Workspace
    restored: list[str]
    reattached: list[str]
    must_recreate: list[str]


@dataclass(frozen=True, repr=False)
class PurgeReport(_Result):
    """What :meth:`Engine.purge_expired` removed: ``(subscription, group, name)`` of each
    purged workspace, and the cleanup tasks written. ``dry_run``: the report of a dry run,
    which removed nothing (its cleanup tasks have ``id == 0``).

    ``auto_deleted``: the live workspaces whose ``auto_delete_at`` had come and that it
    deleted; ``auto_delete_refused``: those the policy's checks refused, which stay live, as
    ``(subscription, group, name, code)`` with the refusal's error code."""

    purged: list[tuple[str, str, str]]
    cleanup: list[CleanupTask]
    dry_run: bool = False
    auto_deleted: list[tuple[str, str, str]] = field(default_factory=list)
    auto_delete_refused: list[tuple[str, str, str, str]] = field(default_factory=list)


@dataclass(frozen=True, repr=False)
class DeletableWorkspace(_Result):
    """A workspace an admin may purge now (:meth:`Engine.list_deletable`): ``kind`` is
    ``"deletion_planned"`` (past its date, held) or ``"orphaned"`` (no member left);
    ``since`` the date or when it became orphaned. Names are not shown, by design."""

    kind: str
    workspace_id: str
    since: datetime


@dataclass(frozen=True, repr=False)
class AuditRecord(_Result):
    """One audited operation. ``outcome`` is ``"ok"`` or ``"refused:<code>"``;
    ``workspace_id`` is ``""`` when the target did not exist; ``principal_id`` is ``None``
    for the platform (version 2: the feed's fields)."""

    seq: int
    at: datetime
    action: str
    subscription_id: str
    resource_group: str
    name: str
    outcome: str
    workspace_id: str = ""
    principal_id: str | None = None


@dataclass(frozen=True, repr=False)
class Hold(_Result):
    """A legal hold (:meth:`Engine.place_hold`): while a workspace has one, nothing destroys
    it (permanent delete, purge, expiry); soft delete and recover work as usual.
    ``placed_by`` is ``None`` when the platform placed it."""

    id: str
    workspace_id: str
    reason: str
    placed_by: str | None
    placed_at: datetime


@dataclass(frozen=True, repr=False)
class Lien(_Result):
    """A lien (:meth:`Engine.add_lien`): while a live workspace has one, every delete of it
    raises ``PreconditionFailed`` naming the lien's ``origin`` and ``reason``."""

    id: str
    workspace_id: str
    origin: str
    reason: str
    created_at: datetime


# --- from the C++ core ------------------------------------------------------------------------
# The core answers with plain records: one tuple per answer, its values in the order of the
# field names in _core.FIELDS. The facade makes its objects of them here (_core.instance:
# object.__new__, then each field set as object.__setattr__ would; no __init__ runs: the core's
# values are already what the fields hold). Each class's fields are checked against the core's
# at import, so a field added on one side only fails loudly instead of going missing.

Record = tuple[Any, ...]


class _Maker(Generic[_R]):
    """Makes ``cls`` objects of the core's records for answers of kind ``key``, one (call) or a
    list (:meth:`all`). ``with_tasks``: a record's ``cleanup`` holds cleanup-task records, made
    into CleanupTask objects too."""

    __slots__ = ("_cls", "_names", "_with_tasks")

    def __init__(self, cls: type[_R], key: str, *, with_tasks: bool = False) -> None:
        names = tuple(f.name for f in dataclasses.fields(cls))  # type: ignore[arg-type]
        if names != _core.FIELDS[key]:
            raise ImportError(f"recyclebin.{cls.__name__} has the fields {names}, but the core "
                              f"answers {key} with {_core.FIELDS[key]}: the package and its _core "
                              "do not match")
        self._cls = cls
        self._names = _core.FIELDS[key]
        self._with_tasks = with_tasks

    def __call__(self, record: Record) -> _R:
        made = _core.instance(self._cls, self._names, record)
        if self._with_tasks and made.cleanup:  # type: ignore[attr-defined]
            _set(made, "cleanup", _core.instances(CleanupTask, _TASK_FIELDS, made.cleanup))  # type: ignore[attr-defined]
        return made

    def all(self, records: list[Record]) -> list[_R]:
        if self._with_tasks:
            return [self(record) for record in records]
        return _core.instances(self._cls, self._names, records)


_set = object.__setattr__  # a field of a frozen result, while it is being made
_TASK_FIELDS = _core.FIELDS["cleanup_task"]

cleanup_task = _Maker(CleanupTask, "cleanup_task")
delete_result = _Maker(DeleteResult, "delete_result", with_tasks=True)
deleted_workspace = _Maker(DeletedWorkspace, "deleted_workspace")
purge_report = _Maker(PurgeReport, "purge_report", with_tasks=True)
deletable_workspace = _Maker(DeletableWorkspace, "deletable_workspace")
audit_record = _Maker(AuditRecord, "audit_record")
hold = _Maker(Hold, "hold")
lien = _Maker(Lien, "lien")
_recover_result = _Maker(RecoverResult, "recover_result")


def recover_result(record: Record, track: Callable[[Any], Workspace]) -> RecoverResult:
    """A RecoverResult of the core's record; ``track`` makes its live workspace (the engine's
    object) of the workspace's snapshot."""
    made = _recover_result(record)
    _set(made, "workspace", track(made.workspace))
    return made
