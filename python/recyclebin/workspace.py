"""The SDK facade: workspaces as the ML-workspace SDK that platforms already use shapes them.

Required arguments may be positional; every optional argument is keyword-only. Static
calls address a workspace by ``(subscription_id, resource_group, name)`` and take
``engine=`` (default: :func:`rb.set_default_engine`'s); a :class:`Workspace` object
addresses its workspace by id, through the engine it came from.
"""

from __future__ import annotations

import builtins
import numbers
import threading
import weakref
from collections.abc import Iterable
from datetime import datetime
from typing import Final

from . import _core
from .engine import Engine, _resolve_engine
from .errors import InvalidArgument, InvalidRetention
from .models import Component, Principal, _core_principal, _require_str
from . import results
from .results import DeletedPage, DeletedWorkspace, DeleteResult, Hold, RecoverResult, _Page

__all__ = ["Workspace", "WorkspacePage"]

# Where each field is in the core's tuple for a live workspace (literal, for the type checker;
# checked against the core's own _core.FIELDS["workspace"] at import).
_ID: Final = 0
_SUBSCRIPTION_ID: Final = 1
_RESOURCE_GROUP: Final = 2
_NAME: Final = 3
_RETENTION_DAYS: Final = 4
_CMK_ENCRYPTED: Final = 5
_STATE: Final = 6
_CREATED_AT: Final = 7
_COMPONENTS: Final = 8
_PURGE_PROTECTION: Final = 9
_AUTO_DELETE_AT: Final = 10
for _index, _field in enumerate(_core.FIELDS["workspace"]):
    if globals().get(f"_{_field.upper()}") != _index:
        raise ImportError(f"the core answers a workspace's {_field!r} at {_index}, not where "
                          "recyclebin.Workspace reads it: the package and its _core do not match")

_INT32_MAX = 2**31 - 1
_LIMIT_MAX = 2**62


def _retention(value: object, engine: Engine, subscription_id: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(
            f"soft_delete_retention_days must be an int (days) or None, not {type(value).__name__}"
        )
    days = int(value)
    if not -_INT32_MAX <= days <= _INT32_MAX:
        retention = engine.policy.rules(subscription_id)["retention"]
        raise InvalidRetention(
            f"soft_delete_retention_days={days} is out of range; the policy allows "
            f"{retention['min_days']}..{retention['max_days']} days"
        )
    return days


def _flag(value: object, what: str) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{what} must be a bool, not {type(value).__name__}")
    return value


def _aware(value: object, what: str) -> datetime | None:
    """A timezone-aware datetime or None, as the core takes it."""
    if value is None:
        return None
    if not isinstance(value, datetime):
        raise TypeError(f"{what} must be a datetime.datetime or None, not {type(value).__name__}")
    if value.utcoffset() is None:
        raise ValueError(f"{what} is a naive datetime; pass a timezone-aware one, "
                         "e.g. datetime(..., tzinfo=timezone.utc)")
    return value


def _listing_limit(subscription_id: object, resource_group: object, cursor: object,
                   limit: object) -> int | None:
    """Checks a listing's arguments; the limit to hand the core."""
    _require_str(subscription_id, "subscription_id")
    if resource_group is not None:
        _require_str(resource_group, "resource_group")
    if cursor is not None:
        _require_str(cursor, "cursor")
    if limit is None:
        return None
    if isinstance(limit, bool) or not isinstance(limit, int):
        raise TypeError(f"limit must be an int or None, not {type(limit).__name__}")
    if limit < 1:
        raise InvalidArgument(f"limit must be at least 1 (or None for everything), not {limit}")
    return min(limit, _LIMIT_MAX)  # beyond any count; keeps the core's limit + 1 in range


class Workspace:
    """A live workspace, as the engine last answered for it.

    Get one from :meth:`create`, :meth:`get` or :attr:`RecoverResult.workspace`. One object
    per workspace and engine: every answer about it (stop, start, delete, recover) updates
    the same object, so ``ws.state`` and ``ws.components`` stay current.
    """

    __slots__ = ("_engine", "_snapshot", "_state", "__weakref__")

    # Made and kept current by the engine's identity map (_WorkspaceMap, its _workspaces).
    # _snapshot is the core's last answer for it, a tuple in the order of
    # _core.FIELDS["workspace"]; _state is its state, or "deleted" once this object saw the
    # workspace deleted. Both are replaced whole, never mutated.
    _engine: Engine
    _snapshot: _core._WorkspaceSnapshot
    _state: str

    def __init__(self) -> None:
        raise TypeError(
            "create workspaces with rb.Workspace.create(...), or find them with rb.Workspace.get(...)"
        )

    # --- what it is ------------------------------------------------------------------------------

    @property
    def id(self) -> str:
        """Opaque, stable workspace id."""
        return self._snapshot[_ID]

    @property
    def name(self) -> str:
        return self._snapshot[_NAME]

    @property
    def subscription_id(self) -> str:
        return self._snapshot[_SUBSCRIPTION_ID]

    @property
    def resource_group(self) -> str:
        return self._snapshot[_RESOURCE_GROUP]

    @property
    def soft_delete_retention_days(self) -> int:
        """The effective retention in days (the policy's default when none was given)."""
        return self._snapshot[_RETENTION_DAYS]

    @property
    def cmk_encrypted(self) -> bool:
        """Encrypted with a customer-managed key (such workspaces may skip the bin)."""
        return self._snapshot[_CMK_ENCRYPTED]

    @property
    def state(self) -> str:
        """``"running"`` (at creation), ``"stopped"``, or ``"deleted"`` once this object
        saw it deleted."""
        return self._state

    @property
    def created_at(self) -> datetime:
        return self._snapshot[_CREATED_AT]

    @property
    def components(self) -> builtins.list[Component]:
        """The workspace's components (a copy). After a recover, without those the platform
        must recreate."""
        return [Component(kind, ref, standalone) for kind, ref, standalone in self._snapshot[_COMPONENTS]]

    @property
    def purge_protection(self) -> bool:
        """Purge protection is on (for good): every delete is soft, and nothing purges it
        before its ``purge_at``."""
        return self._snapshot[_PURGE_PROTECTION]

    @property
    def auto_delete_at(self) -> datetime | None:
        """When :meth:`Engine.purge_expired` deletes it (a temporary workspace), or ``None``."""
        return self._snapshot[_AUTO_DELETE_AT]

    @property
    def engine(self) -> Engine:
        """The engine this object talks to."""
        return self._engine

    def __repr__(self) -> str:
        return (
            f"Workspace(name={self.name!r}, subscription_id={self.subscription_id!r}, "
            f"resource_group={self.resource_group!r}, id={self.id!r}, state={self.state!r})"
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Workspace):
            return NotImplemented
        return self.id == other.id and self._engine is other._engine

    def __hash__(self) -> int:
        return hash(self.id)

    # --- create and find -------------------------------------------------------------------------

    @staticmethod
    def create(
        subscription_id: str,
        resource_group: str,
        name: str,
        *,
        soft_delete_retention_days: int | None = None,
        cmk_encrypted: bool = False,
        components: Iterable[Component] | None = None,
        principal: Principal | None = None,
        engine: Engine | None = None,
        purge_protection: bool | None = None,
        if_deleted: str = "fail",
        auto_delete_at: datetime | None = None,
    ) -> Workspace:
        """Creates a running workspace; ``principal`` (if any) becomes its ``owner``.

        Raises ``WorkspaceExists`` if a live workspace has the name, ``NameReserved`` if a
        soft-deleted one holds it, ``InvalidRetention`` for a retention the policy does not
        allow (``TypeError`` for a non-integer).

        ``purge_protection``: ``None`` takes the policy's ``purge_protection.default``.
        ``if_deleted``: ``"fail"`` (``NameReserved``), ``"recover"`` (recover the holder in
        this group and return it, ignoring the other arguments) or ``"purge"`` (purge the
        holder, then create, in one transaction). ``auto_delete_at``: ``None`` takes
        created + the policy's ``auto_delete.after_days``, or never.
        """
        eng = _resolve_engine(engine)
        if not (isinstance(subscription_id, str) and isinstance(resource_group, str)
                and isinstance(name, str)):
            _require_str(subscription_id, "subscription_id")
            _require_str(resource_group, "resource_group")
            _require_str(name, "name")
        retention = (None if soft_delete_retention_days is None
                     else _retention(soft_delete_retention_days, eng, subscription_id))
        members = []
        if components:
            for component in components:
                if not isinstance(component, Component):
                    raise TypeError(
                        f"components must be rb.Component values, not {type(component).__name__}"
                    )
                members.append((component.kind, component.ref, component.standalone))
        if cmk_encrypted is not False and cmk_encrypted is not True:
            _flag(cmk_encrypted, "cmk_encrypted")
        if purge_protection is not None:
            _flag(purge_protection, "purge_protection")
        if not isinstance(if_deleted, str):  # its value is the core's to check
            raise TypeError(f"if_deleted must be a str, not {type(if_deleted).__name__}")
        if auto_delete_at is not None:
            _aware(auto_delete_at, "auto_delete_at")
        return eng._workspaces.track(eng._core.create(
            subscription_id,
            resource_group,
            name,
            retention,
            cmk_encrypted,
            members,
            None if principal is None else _core_principal(principal),
            purge_protection,
            if_deleted,
            auto_delete_at,
        ))

    @staticmethod
    def get(
        name: str,
        subscription_id: str,
        resource_group: str,
        *,
        principal: Principal | None = None,
        engine: Engine | None = None,
    ) -> Workspace:
        """The live workspace with this name; a soft-deleted or unknown one raises
        ``WorkspaceNotFound``."""
        eng = _resolve_engine(engine)
        _require_str(name, "name")
        _require_str(subscription_id, "subscription_id")
        _require_str(resource_group, "resource_group")
        return eng._workspaces.track(
            eng._core.get(subscription_id, resource_group, name, _core_principal(principal))
        )

    @staticmethod
    def get_by_id(
        workspace_id: str, *, principal: Principal | None = None, engine: Engine | None = None
    ) -> Workspace:
        """The live workspace with this id; a soft-deleted or unknown one raises
        ``WorkspaceNotFound``."""
        eng = _resolve_engine(engine)
        _require_str(workspace_id, "workspace_id")
        return eng._workspaces.track(eng._core.get_by_id(workspace_id, _core_principal(principal)))

    @staticmethod
    def list(
        subscription_id: str,
        resource_group: str | None = None,
        *,
        limit: int | None = None,
        cursor: str | None = None,
        principal: Principal | None = None,
        engine: Engine | None = None,
    ) -> WorkspacePage:
        """Live workspaces (running or stopped, never soft-deleted ones) of a subscription,
        or of one group, ordered by ``(resource_group, name)``. ``limit=None`` lists
        everything; otherwise pass the page's ``next_cursor`` back as ``cursor=`` for the
        next page (a page costs the same at any depth)."""
        eng = _resolve_engine(engine)
        limit = _listing_limit(subscription_id, resource_group, cursor, limit)
        items, next_cursor = eng._core.list_live(
            subscription_id, resource_group, limit, cursor,
            None if principal is None else _core_principal(principal),
        )
        return WorkspacePage(map(eng._workspaces.track, items), next_cursor)

    # --- the recycle bin -------------------------------------------------------------------------

    @staticmethod
    def list_deleted(
        subscription_id: str,
        resource_group: str | None = None,
        *,
        limit: int | None = None,
        cursor: str | None = None,
        principal: Principal | None = None,
        engine: Engine | None = None,
        purge_before: datetime | None = None,
    ) -> DeletedPage:
        """Soft-deleted workspaces of a subscription (or of one group), newest deletion
        first; also those whose group is gone. ``limit=None`` lists everything; otherwise
        pass the page's ``next_cursor`` back as ``cursor=`` for the next page.
        ``purge_before`` (a timezone-aware datetime): only those whose ``purge_at`` is
        earlier. Keep it the same across the pages of one listing."""
        eng = _resolve_engine(engine)
        limit = _listing_limit(subscription_id, resource_group, cursor, limit)
        _aware(purge_before, "purge_before")
        # Each item's as_of is the engine's time just before the read (taken by the binding).
        items, next_cursor = eng._core.list_deleted(
            subscription_id, resource_group, limit, cursor,
            None if principal is None else _core_principal(principal), purge_before,
        )
        return DeletedPage(results.deleted_workspace.all(items), next_cursor)

    @staticmethod
    def get_deleted(
        name: str,
        subscription_id: str,
        resource_group: str,
        *,
        principal: Principal | None = None,
        engine: Engine | None = None,
    ) -> DeletedWorkspace:
        """The workspace with this name in the recycle bin (by its original subscription and
        group); one that is not there (or has expired) raises ``WorkspaceNotFound``."""
        eng = _resolve_engine(engine)
        _require_str(name, "name")
        _require_str(subscription_id, "subscription_id")
        _require_str(resource_group, "resource_group")
        return results.deleted_workspace(
            eng._core.get_deleted(subscription_id, resource_group, name, _core_principal(principal))
        )

    @staticmethod
    def recover(
        subscription_id: str,
        resource_group: str,
        name: str,
        *,
        principal: Principal | None = None,
        engine: Engine | None = None,
    ) -> RecoverResult:
        """Brings a soft-deleted workspace back, restoring what the bin kept and re-attaching
        what it can. ``WorkspaceNotFound`` if it is not in the bin, ``WorkspaceExists`` if a
        live workspace now holds the name."""
        eng = _resolve_engine(engine)
        if not (isinstance(subscription_id, str) and isinstance(resource_group, str)
                and isinstance(name, str)):
            _require_str(subscription_id, "subscription_id")
            _require_str(resource_group, "resource_group")
            _require_str(name, "name")
        answer = eng._core.recover(
            subscription_id, resource_group, name,
            None if principal is None else _core_principal(principal),
        )
        return results.recover_result(answer, eng._workspaces.track)

    @staticmethod
    def purge(
        subscription_id: str,
        resource_group: str,
        name: str,
        *,
        principal: Principal | None = None,
        engine: Engine | None = None,
    ) -> DeleteResult:
        """Hard-deletes a workspace from the recycle bin now (where the policy allows
        permanent delete). ``WorkspaceNotFound`` if it is not in the bin."""
        eng = _resolve_engine(engine)
        _require_str(subscription_id, "subscription_id")
        _require_str(resource_group, "resource_group")
        _require_str(name, "name")
        return results.delete_result(
            eng._core.purge(subscription_id, resource_group, name, _core_principal(principal))
        )

    @staticmethod
    def delete_many(
        workspaces: Iterable[Workspace],
        *,
        permanently_delete: bool = False,
        principal: Principal | None = None,
        engine: Engine | None = None,
    ) -> builtins.list[DeleteResult]:
        """Deletes several workspaces, all or nothing: if any is refused, none is deleted and
        the first refused one's error is raised. A permanent batch of more than one needs
        ``permanent_delete.batch: true``. Without ``engine=``, uses the workspaces' engine."""
        members = list(workspaces)
        for member in members:
            if not isinstance(member, Workspace):
                raise TypeError(
                    f"delete_many takes rb.Workspace objects, not {type(member).__name__}"
                )
        if engine is None and members:
            first = members[0]._engine
            for member in members:
                if member._engine is not first:
                    raise ValueError(
                        "these workspaces come from different engines; pass engine= to choose one"
                    )
            engine = first
        eng = _resolve_engine(engine)
        ids = [member._snapshot[_ID] for member in members]
        answers = eng._core.remove_many(
            ids, False, _flag(permanently_delete, "permanently_delete"), None,
            _core_principal(principal),
        )
        eng._workspaces.mark_deleted(ids)
        return results.delete_result.all(answers)

    # --- operations on this workspace ------------------------------------------------------------

    def stop(self, *, principal: Principal | None = None) -> None:
        """Stops the workspace (idempotent)."""
        engine = self._engine
        engine._workspaces.track(engine._core.stop(self._snapshot[_ID], _core_principal(principal)))

    def start(self, *, principal: Principal | None = None) -> None:
        """Starts the workspace (idempotent)."""
        engine = self._engine
        engine._workspaces.track(engine._core.start(self._snapshot[_ID], _core_principal(principal)))

    def grant(self, principal_id: str, role: str, *, principal: Principal | None = None) -> None:
        """Gives ``principal_id`` a role on this workspace, replacing any role it had."""
        _require_str(principal_id, "principal_id")
        _require_str(role, "role")
        self._engine._core.grant(self.id, principal_id, role, _core_principal(principal))

    def revoke(self, principal_id: str, *, principal: Principal | None = None) -> None:
        """Takes ``principal_id``'s role away. Revoking the last member orphans the workspace."""
        _require_str(principal_id, "principal_id")
        self._engine._core.revoke(self.id, principal_id, _core_principal(principal))

    def delete(
        self,
        *,
        delete_dependent_resources: bool = False,
        permanently_delete: bool = False,
        no_wait: bool = False,
        confirm_name: str | None = None,
        principal: Principal | None = None,
        dry_run: bool = False,
    ) -> DeleteResult:
        """Deletes the workspace: into the recycle bin by default, for good with
        ``permanently_delete=True`` (or where the policy says so, e.g. CMK workspaces).

        ``delete_dependent_resources`` (permanent only) also destroys components the policy
        preserves, never standalone ones. ``no_wait`` has no effect in-process. Where the
        policy asks, ``confirm_name`` must equal the workspace's name.

        ``dry_run=True`` makes every check of the real call, in the same order, and raises
        what it would raise (not audited); otherwise it answers what the delete would do
        (``result.dry_run`` is ``True``, cleanup tasks have ``id == 0``) and changes nothing.
        """
        # no_wait: the engine is synchronous; accepted (and checked) for SDK compatibility.
        if (type(no_wait) is not bool or type(delete_dependent_resources) is not bool
                or type(permanently_delete) is not bool or type(dry_run) is not bool):
            _flag(no_wait, "no_wait")
            _flag(delete_dependent_resources, "delete_dependent_resources")
            _flag(permanently_delete, "permanently_delete")
            _flag(dry_run, "dry_run")
        if confirm_name is not None:
            _require_str(confirm_name, "confirm_name")
        answer = self._engine._core.remove(
            self._snapshot[_ID],
            delete_dependent_resources,
            permanently_delete,
            confirm_name,
            None if principal is None else _core_principal(principal),
            dry_run,
        )
        if not dry_run:
            self._state = "deleted"
        return results.delete_result(answer)

    def place_hold(self, reason: str, *, principal: Principal | None = None) -> Hold:
        """Places a legal hold on this workspace (see :meth:`Engine.place_hold`)."""
        return self._engine.place_hold(self._snapshot[_ID], reason, principal=principal)

    def enable_purge_protection(self, *, principal: Principal | None = None) -> None:
        """Turns purge protection on, for good (there is no disable): from now on every delete
        is soft and nothing purges it before its ``purge_at``. ``OperationNotAllowed`` where
        the policy always deletes it permanently (CMK with ``hard_delete_if_cmk``, or
        ``soft_delete.enabled: false``). Permission action ``protect``."""
        engine = self._engine
        engine._workspaces.track(
            engine._core.enable_purge_protection(self._snapshot[_ID], _core_principal(principal))
        )

    def set_auto_delete(self, at: datetime | None, *, principal: Principal | None = None) -> None:
        """Sets when :meth:`Engine.purge_expired` deletes this workspace (``None`` cancels).
        Permission action ``delete``."""
        engine = self._engine
        engine._workspaces.track(engine._core.set_auto_delete(
            self._snapshot[_ID], _aware(at, "at"), _core_principal(principal)
        ))

    def refresh(self, *, principal: Principal | None = None) -> None:
        """Re-reads the workspace from the engine (``WorkspaceNotFound`` once it is deleted)."""
        engine = self._engine
        engine._workspaces.track(engine._core.get_by_id(self._snapshot[_ID], _core_principal(principal)))


class WorkspacePage(_Page[Workspace]):
    """One page of :meth:`Workspace.list`: a ``list[Workspace]`` ordered by
    ``(resource_group, name)``, with ``next_cursor`` (``None`` on the last page) to pass
    back as ``cursor=`` for the next page."""

    __slots__ = ()


class _WorkspaceMap:
    """The identity map of one rb.Engine (its ``_workspaces``): the one rb.Workspace object per
    workspace id, updated to every answer of the core that carries the workspace, so
    ``ws.state`` and ``ws.components`` stay current. Weak: the caller owns the objects. Dead
    entries are not removed one by one (a callback per object costs more than the lookup);
    the map is swept when it has doubled since the last sweep, so it stays within twice the
    live objects. It holds its engine weakly (the engine holds the map). Thread-safe: making
    an object (a lookup and the insert after it) happens under a lock (reentrant: a
    finalizer run by a collection in between may use the engine too); updating a known
    object is two stores, each of which is whole.
    """

    __slots__ = ("_engine", "_entries", "_lock", "_sweep_at")

    _SWEEP_MIN = 1024  # not swept below this many entries

    def __init__(self, engine: Engine) -> None:
        self._engine = weakref.ref(engine)
        self._entries: dict[str, weakref.ref[Workspace]] = {}
        self._lock = threading.RLock()
        self._sweep_at = self._SWEEP_MIN

    def track(self, snapshot: _core._WorkspaceSnapshot) -> Workspace:
        """The engine's one rb.Workspace for the core's answer ``snapshot``, updated to it."""
        known = self._entries.get(snapshot[_ID])
        workspace = None if known is None else known()
        if workspace is None:
            return self._make(snapshot)
        workspace._snapshot = snapshot
        workspace._state = snapshot[_STATE]
        return workspace

    def _make(self, snapshot: _core._WorkspaceSnapshot) -> Workspace:
        # Under the lock: two threads answered for one workspace that has no object yet must
        # end with one object between them.
        with self._lock:
            known = self._entries.get(snapshot[_ID])
            workspace = None if known is None else known()
            if workspace is None:
                engine = self._engine()
                if engine is None:
                    raise RuntimeError("recyclebin: the engine of this answer is gone")
                workspace = _new(Workspace)
                workspace._engine = engine
                self._entries[snapshot[_ID]] = weakref.ref(workspace)
                if len(self._entries) > self._sweep_at:
                    self._sweep()
            workspace._snapshot = snapshot
            workspace._state = snapshot[_STATE]
            return workspace

    def mark_deleted(self, workspace_ids: Iterable[str]) -> None:
        """The objects of these workspaces (those alive) say state ``"deleted"`` from now on."""
        with self._lock:
            for workspace_id in workspace_ids:
                known = self._entries.get(workspace_id)
                workspace = None if known is None else known()
                if workspace is not None:
                    workspace._state = "deleted"

    def __len__(self) -> int:
        return len(self._entries)

    def _sweep(self) -> None:
        self._entries = {key: ref for key, ref in self._entries.items() if ref() is not None}
        self._sweep_at = max(self._SWEEP_MIN, 2 * len(self._entries))


_new = object.__new__
