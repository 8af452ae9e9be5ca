"""The engine: the only door to the recycle bin, and the default engine of the facade."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from types import TracebackType
from typing import TYPE_CHECKING

from . import _core, results
from ._core import InvalidArgument, NotFound
from .clock import ManualClock
from .models import Principal, _core_principal, _require_str
from .policy import Policy, resolve_policy
from .results import (
    AuditRecord,
    CleanupTask,
    DeletableWorkspace,
    DeleteResult,
    Hold,
    Lien,
    PurgeReport,
)

if TYPE_CHECKING:
    from .workspace import Workspace

__all__ = ["Engine", "FactsProvider", "get_default_engine", "set_default_engine"]

FactsProvider = Callable[["Workspace"], Mapping[str, int]]
"""``fn(workspace) -> {"running_jobs": 0, "active_sessions": 1}``: what the platform knows."""

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_URI_PASSWORD = re.compile(r"^(postgres(?:ql)?://[^:/@?]*:)[^/?]*@")


def _without_password(location: str) -> str:
    """``location`` with a PostgreSQL URI's password replaced by ``***`` (for reprs and logs)."""
    return _URI_PASSWORD.sub(r"\1***@", location)


class Engine:
    """Decides deletes, recovers and purges by policy and records them durably.

    Open one with :meth:`open`; share it between threads freely (calls run in C++ with the
    GIL released). Use it as a context manager, or call :meth:`close`; any call after that
    raises :class:`~recyclebin.EngineClosed`.
    """

    def __init__(self, core: _core.Engine, location: str, policy: Policy,
                 clock: ManualClock | None) -> None:
        # Not for users: use Engine.open.
        self._core = core
        self._location = location
        self._policy = policy
        self._clock = clock
        self._facts_provider: FactsProvider | None = None
        # One facade object per workspace id, kept current by every answer that carries
        # the workspace (stop, start, recover, delete...): the calls that answer with a
        # workspace are given this map and answer with its object. Weak: the caller owns them.
        from .workspace import _WorkspaceMap  # workspace.py imports this module

        self._workspaces = _WorkspaceMap(self)

    @classmethod
    def open(
        cls,
        location: str | os.PathLike[str],
        policy: str | os.PathLike[str] | Policy = "default",
        clock: ManualClock | None = None,
    ) -> Engine:
        """Opens (creating and migrating as needed) the store at ``location`` and returns an
        engine deciding by ``policy``.

        ``location``: a file path, ``"sqlite:///relative.db"``, ``"sqlite:////abs/path.db"``
        or ``":memory:"`` (SQLite), or a libpq URI ``"postgresql://user:pw@host:5432/db"``
        (also ``postgres://``; ``?options=-csearch_path%3Dschema`` picks the schema) for the
        PostgreSQL store that several replicas share. ``policy``: a built-in name (a string with no ``/`` and no
        ``.yaml``/``.yml`` suffix), a path to a YAML file, or an :class:`rb.Policy`.
        ``clock``: ``None`` for the system's UTC clock, or an :class:`rb.ManualClock`.
        """
        if not isinstance(location, (str, os.PathLike)):
            raise TypeError(f"location must be a str or a path, not {type(location).__name__}")
        location_text = os.fspath(location)
        resolved = resolve_policy(policy)
        if clock is not None and not isinstance(clock, ManualClock):
            raise TypeError(f"clock must be an rb.ManualClock or None, not {type(clock).__name__}")
        core = _core.Engine.open(location_text, resolved._core, None if clock is None else clock._core)
        return cls(core, location_text, resolved, clock)

    # --- lifecycle -------------------------------------------------------------------------------

    def close(self) -> None:
        """Waits for calls in flight and closes the store. Idempotent."""
        self._core.close()

    @property
    def closed(self) -> bool:
        """True after :meth:`close`."""
        return self._core.closed

    def __enter__(self) -> Engine:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # --- what it is ------------------------------------------------------------------------------

    @property
    def location(self) -> str:
        """Where the store is, as given to :meth:`open`."""
        return self._location

    @property
    def policy(self) -> Policy:
        """The policy this engine decides by."""
        return self._policy

    @property
    def clock(self) -> ManualClock | None:
        """The ManualClock given to :meth:`open`, or ``None`` for the system clock."""
        return self._clock

    def now(self) -> datetime:
        """The engine's current time (aware, UTC): its ManualClock's, or the system's."""
        return self._core.now()

    # --- facts -----------------------------------------------------------------------------------

    def set_facts_provider(self, fn: FactsProvider | None) -> None:
        """Sets what a delete asks for facts where the policy lists ``preconditions.blockers``
        or ``warnings``: ``fn(workspace) -> dict[str, int]``, e.g.
        ``{"running_jobs": 0, "active_sessions": 1}``. ``None`` removes it.

        ``fn`` runs on the thread that asked for the delete. Without a provider, or when it
        raises or answers something other than a mapping of str to int, a delete under such
        a policy is refused (the engine cannot verify).
        """
        if fn is not None and not callable(fn):
            raise TypeError(f"the facts provider must be callable or None, not {type(fn).__name__}")
        self._facts_provider = fn
        if fn is None:
            self._core.set_facts_provider(None)
            return

        # The core passes the workspace as its tuple; the provider gets the caller's own
        # object from this engine's identity map. Nothing here refers to the engine (the map
        # holds it weakly): the provider lives inside the C++ engine, where Python's GC cannot
        # see a cycle.
        track = self._workspaces.track

        def ask(snapshot: _core._WorkspaceSnapshot) -> dict[str, int]:
            return dict(fn(track(snapshot)))

        self._core.set_facts_provider(ask)

    # --- admin -----------------------------------------------------------------------------------

    def purge_expired(self, *, principal: Principal | None = None,
                      dry_run: bool = False) -> PurgeReport:
        """Removes what has expired (and orphans due for purge) from storage and writes their
        cleanup tasks. Expired workspaces already behave as purged; this makes storage match.
        Held workspaces stay. It also deletes, as the platform would, every live workspace
        whose ``auto_delete_at`` has come (the policy's checks apply, except
        ``require_confirm_name``): ``report.auto_deleted``; those refused stay live and are in
        ``report.auto_delete_refused`` with the error's code (audited as ``"auto-delete"``).

        ``dry_run=True`` makes the same checks and answers what the call would remove (the
        cleanup tasks it would write, each with ``id == 0``), changing nothing."""
        if not isinstance(dry_run, bool):
            raise TypeError(f"dry_run must be a bool, not {type(dry_run).__name__}")
        return results.purge_report(self._core.purge_expired(_core_principal(principal), dry_run))

    def list_deletable(self, subscription_id: str) -> list[DeletableWorkspace]:
        """Workspaces an admin may purge now with :meth:`purge_by_id`: held past their date
        (``deletion_planned``, ``since`` the deletion date) or ``orphaned`` (``since`` when the
        last member was revoked); one that is both is listed once under each kind. Oldest
        ``since`` first. Names are not shown."""
        _require_str(subscription_id, "subscription_id")
        return results.deletable_workspace.all(self._core.list_deletable(subscription_id))

    def purge_by_id(
        self,
        workspace_id: str,
        *,
        principal: Principal | None = None,
        dry_run: bool = False,
        expected_refs: Iterable[str] | None = None,
    ) -> DeleteResult:
        """Hard-deletes one workspace that :meth:`list_deletable` lists; anything else raises
        ``OperationNotAllowed``.

        ``dry_run=True`` makes the same checks and raises what the real call would raise, or
        answers what it would do (``cleanup``: the tasks it would write, each with id 0),
        writing nothing. ``expected_refs``: the purge goes ahead only if every cleanup task it
        writes has its ``ref`` among these (a caller that exported them first, as
        ``delete-realm`` does); otherwise it raises ``OperationNotAllowed`` and removes
        nothing, checked in the purge's own transaction."""
        _require_str(workspace_id, "workspace_id")
        if not isinstance(dry_run, bool):
            raise TypeError(f"dry_run must be a bool, not {type(dry_run).__name__}")
        refs: list[str] | None = None
        if expected_refs is not None:
            if isinstance(expected_refs, (str, bytes)):
                raise TypeError("expected_refs must be a collection of refs (e.g. a list of "
                                f"str), not a single {type(expected_refs).__name__}")
            refs = list(expected_refs)
            for ref in refs:
                _require_str(ref, "each of expected_refs")
        answer = self._core.purge_by_id(workspace_id, _core_principal(principal), dry_run, refs)
        if not dry_run:
            self._workspaces.mark_deleted([workspace_id])
        return results.delete_result(answer)

    def cleanup_tasks(self) -> list[CleanupTask]:
        """Pending cleanup tasks, oldest first."""
        return results.cleanup_task.all(self._core.cleanup_tasks())

    def complete_cleanup(self, task_id: int) -> None:
        """Marks a cleanup task done. Completing a completed task is a no-op; an unknown id
        raises ``KeyError`` (:class:`rb.NotFound`)."""
        if isinstance(task_id, bool) or not isinstance(task_id, int):
            raise TypeError(f"task_id must be an int, not {type(task_id).__name__}")
        if not _INT64_MIN <= task_id <= _INT64_MAX:
            # No task has such an id (ids are 64-bit): the answer for any unknown id.
            raise NotFound(f"no cleanup task {task_id}: task ids are 64-bit integers")
        self._core.complete_cleanup(task_id)

    def claim_cleanup(
        self, worker: str, *, limit: int = 100, lease: timedelta = timedelta(minutes=5)
    ) -> list[CleanupTask]:
        """Leases up to ``limit`` pending tasks, oldest first, to ``worker`` until
        ``now + lease``: those not leased (or whose lease ran out) whose retry time has come.
        Several workers, in one process or many, sharing one store, never get the same task
        while its lease holds. Finish each with :meth:`complete_cleanup` or
        :meth:`fail_cleanup`."""
        _require_str(worker, "worker")
        if isinstance(limit, bool) or not isinstance(limit, int):
            raise TypeError(f"limit must be an int, not {type(limit).__name__}")
        if limit < 1:
            raise ValueError(f"limit must be at least 1, not {limit}")
        if not isinstance(lease, timedelta):
            raise TypeError(f"lease must be a datetime.timedelta, not {type(lease).__name__}")
        return results.cleanup_task.all(self._core.claim_cleanup(worker, limit, lease))

    def fail_cleanup(self, task_id: int, error: str, *,
                     retry_after: timedelta = timedelta(0)) -> None:
        """Ends the task's lease, adds one to its ``attempts``, records ``error`` as its
        ``last_error`` and makes it claimable again from ``now + retry_after``. A completed
        task is left as it is; an unknown id raises ``KeyError`` (:class:`rb.NotFound`)."""
        if isinstance(task_id, bool) or not isinstance(task_id, int):
            raise TypeError(f"task_id must be an int, not {type(task_id).__name__}")
        _require_str(error, "error")
        if not isinstance(retry_after, timedelta):
            raise TypeError(
                f"retry_after must be a datetime.timedelta, not {type(retry_after).__name__}")
        self._core.fail_cleanup(task_id, error, retry_after)

    # --- protections -------------------------------------------------------------------------

    def place_hold(self, workspace_id: str, reason: str, *,
                   principal: Principal | None = None) -> Hold:
        """Places a legal hold on a live or soft-deleted workspace: while it has one, a
        permanent delete, ``purge``, ``purge_by_id`` and ``if_deleted="purge"`` raise
        ``WorkspaceHeld``, and it does not expire (past ``purge_at`` it stays in the bin,
        recoverable and holding its name). Soft delete and recover work as usual. An unknown
        or purged workspace raises ``WorkspaceNotFound``. Permission action ``hold``."""
        _require_str(workspace_id, "workspace_id")
        _require_str(reason, "reason")
        return results.hold(self._core.place_hold(workspace_id, reason, _core_principal(principal)))

    def release_hold(self, hold_id: str, *, principal: Principal | None = None) -> None:
        """Releases a hold (an unknown id raises ``KeyError``, :class:`rb.NotFound`). When the
        last hold goes and ``purge_at`` has passed, the workspace expires at once."""
        _require_str(hold_id, "hold_id")
        self._core.release_hold(hold_id, _core_principal(principal))

    def holds(self, workspace_id: str) -> list[Hold]:
        """The workspace's holds, oldest first."""
        _require_str(workspace_id, "workspace_id")
        return results.hold.all(self._core.holds(workspace_id))

    def add_lien(self, workspace_id: str, origin: str, reason: str, *,
                 principal: Principal | None = None) -> Lien:
        """Adds a lien to a live workspace: while it has one, every delete of it (soft or
        permanent, ``delete_many``, auto-deletion) raises ``PreconditionFailed`` naming each
        lien's origin and reason. Permission action ``lien``."""
        _require_str(workspace_id, "workspace_id")
        _require_str(origin, "origin")
        _require_str(reason, "reason")
        return results.lien(self._core.add_lien(workspace_id, origin, reason, _core_principal(principal)))

    def remove_lien(self, lien_id: str, *, principal: Principal | None = None) -> None:
        """Removes a lien (an unknown id raises ``KeyError``, :class:`rb.NotFound`)."""
        _require_str(lien_id, "lien_id")
        self._core.remove_lien(lien_id, _core_principal(principal))

    def liens(self, workspace_id: str) -> list[Lien]:
        """The workspace's liens, oldest first."""
        _require_str(workspace_id, "workspace_id")
        return results.lien.all(self._core.liens(workspace_id))

    def audit_log(self, subscription_id: str | None = None, *, after_seq: int | None = None,
                  limit: int | None = None) -> list[AuditRecord]:
        """Audited operations (refusals included), seq ascending; of one subscription when
        given. ``after_seq``: only those with a greater ``seq`` (a consumer tails the log by
        passing the last ``seq`` it saw); ``limit``: at most this many (``None``: all)."""
        if subscription_id is not None:
            _require_str(subscription_id, "subscription_id")
        for value, what in ((after_seq, "after_seq"), (limit, "limit")):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise TypeError(f"{what} must be an int or None, not {type(value).__name__}")
        if after_seq is not None and after_seq < 0:
            raise InvalidArgument(f"after_seq must be 0 or more (the last seq seen), not {after_seq}")
        if limit is not None and limit < 1:
            raise InvalidArgument(f"limit must be at least 1 (or None for everything), not {limit}")
        # Beyond any count of records, and within the core's 64-bit range.
        records = self._core.audit_log(subscription_id, min(after_seq, 2**62) if after_seq is not None
                                       else None, min(limit, 2**62) if limit is not None else None)
        return results.audit_record.all(records)

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        location = _without_password(self._location)
        return f"<recyclebin.Engine {location!r} policy={self._policy.name!r} {state}>"


_default_engine: Engine | None = None


def set_default_engine(engine: Engine | None) -> None:
    """Sets the engine the facade uses when a call has no ``engine=``; ``None`` clears it."""
    global _default_engine
    if engine is not None and not isinstance(engine, Engine):
        raise TypeError(f"engine must be an rb.Engine or None, not {type(engine).__name__}")
    _default_engine = engine


def get_default_engine() -> Engine | None:
    """The engine set by :func:`set_default_engine`, or ``None``."""
    return _default_engine


def _resolve_engine(engine: Engine | None) -> Engine:
    if engine is not None:
        if not isinstance(engine, Engine):
            raise TypeError(f"engine must be an rb.Engine or None, not {type(engine).__name__}")
        return engine
    if _default_engine is None:
        raise RuntimeError(
            "no engine: pass engine=rb.Engine.open(...) to this call, or set one for all calls "
            "with rb.set_default_engine(engine)"
        )
    return _default_engine
