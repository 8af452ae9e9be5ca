"""A small reference model of the engine's documented (API.md, version 1) behaviour, for the
Hypothesis stateful test and the kill -9 harness.

The model is plain Python over the policy's effective rules (``rb.Policy.rules(sub)``). Each
operation either returns what the engine must answer, or raises :class:`Refused` with the
error code the engine must raise; a refused operation changes nothing. The caller makes the
real call first and hands the model what the engine chose freely (a new workspace's id,
cleanup task ids).

Expiry is a fact of time: a workspace whose ``purge_at`` has passed under ``on_expiry:
purge`` behaves as gone at once; *when* its row is removed (by ``purge_expired``, or by a
create that takes its name) is the store's business, so the model learns it from the audit
log (:meth:`Model.resolve_expiry`), and checks that it happens exactly once.
"""

from __future__ import annotations

import copy

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

Rules = dict[str, Any]

LIVE, BIN, REMOVED = "live", "bin", "removed"


class Refused(Exception):
    """The engine must refuse with ``code`` (and, for name_reserved, ``reserved_until``)."""

    def __init__(self, code: str, reserved_until: datetime | None = None) -> None:
        super().__init__(code)
        self.code = code
        self.reserved_until = reserved_until


@dataclass
class Comp:
    kind: str
    ref: str
    standalone: bool = False
    destroyed: bool = False


@dataclass
class Task:
    """A cleanup task the model expects: ``id`` is the engine's (None until learned)."""

    workspace_id: str
    kind: str
    ref: str
    id: int | None = None
    completed: bool = False

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.workspace_id, self.kind, self.ref)


@dataclass
class Ws:
    id: str
    sub: str
    rg: str
    name: str
    retention_days: int
    cmk: bool
    created_at: datetime
    components: list[Comp]
    state: str = "running"
    status: str = LIVE
    deleted_at: datetime | None = None
    purge_at: datetime | None = None
    delete_order: int = 0          # ties of deleted_at: later deletes list first
    retained: list[str] = field(default_factory=list)
    members: dict[str, str] = field(default_factory=dict)
    had_members: bool = False
    orphaned_at: datetime | None = None
    removed_by: str | None = None  # delete | purge | expire


@dataclass
class DeleteOutcome:
    """What a delete, purge or expiry must answer (DeleteResult's fields; warnings counted)."""

    permanent: bool
    deleted_at: datetime
    purge_at: datetime | None
    cleanup: list[Task] = field(default_factory=list)
    warnings: int = 0
    kinds: dict[str, list[str]] = field(
        default_factory=lambda: {"retained": [], "destroyed": [], "preserved": []})

    @property
    def retained(self) -> list[str]:
        return self.kinds["retained"]

    @property
    def destroyed(self) -> list[str]:
        return self.kinds["destroyed"]

    @property
    def preserved(self) -> list[str]:
        return self.kinds["preserved"]


@dataclass
class RecoverOutcome:
    ws: Ws
    restored: list[str]
    reattached: list[str]
    must_recreate: list[str]


@dataclass(frozen=True)
class AuditEntry:
    action: str
    outcome: str
    workspace_id: str = ""
    sub: str = ""
    rg: str = ""
    name: str = ""


def _add(kinds: list[str], kind: str) -> None:
    if kind not in kinds:
        kinds.append(kind)


class Model:
    def __init__(self, rules_for: Callable[[str], Rules]) -> None:
        self._rules_for = rules_for
        self._rules_cache: dict[str, Rules] = {}
        self.workspaces: dict[str, Ws] = {}
        self.tasks: list[Task] = []
        self.audit: list[AuditEntry] = []   # every record but `expire` ones, in order
        self.expired_removed: set[str] = set()
        # Tasks completed by id before the model learned which of its tasks has that id.
        self.completed_unknown: set[int] = set()
        self._order = 0

    def __deepcopy__(self, memo: dict[int, Any]) -> Model:
        """A copy to try an operation on. Shared, as nothing changes them: the policy, removed
        workspaces and audit entries (a long run's model is mostly these)."""
        twin = Model.__new__(Model)
        twin.__dict__.update(self.__dict__)
        twin.workspaces = {wid: ws if ws.status == REMOVED else copy.deepcopy(ws, memo)
                           for wid, ws in self.workspaces.items()}
        twin.tasks = [copy.copy(task) for task in self.tasks]
        twin.audit = list(self.audit)
        twin.expired_removed = set(self.expired_removed)
        twin.completed_unknown = set(self.completed_unknown)
        return twin

    # --- the policy -------------------------------------------------------------------------

    def rules(self, sub: str) -> Rules:
        if sub not in self._rules_cache:
            self._rules_cache[sub] = self._rules_for(sub)
        return self._rules_cache[sub]

    def component_rule(self, sub: str, kind: str) -> dict[str, str]:
        components = self.rules(sub)["components"]
        rule = components.get(kind, components.get("default", {"on_delete": "retain"}))
        return {"on_delete": rule.get("on_delete", "retain"), "on_recover": rule.get("on_recover", "none")}

    def expired(self, ws: Ws, now: datetime) -> bool:
        return ws.status == BIN and ws.purge_at is not None and now >= ws.purge_at

    def gone(self, ws: Ws, now: datetime) -> bool:
        """Removed, or past its purge time under on_expiry: purge (as good as purged)."""
        if ws.status == REMOVED:
            return True
        return self.expired(ws, now) and self.rules(ws.sub)["retention"]["on_expiry"] == "purge"

    # --- lookups ----------------------------------------------------------------------------

    def live(self, sub: str, rg: str, name: str) -> Ws | None:
        for ws in self.workspaces.values():
            if ws.status == LIVE and (ws.sub, ws.rg, ws.name) == (sub, rg, name):
                return ws
        return None

    def in_bin(self, sub: str, rg: str, name: str, now: datetime) -> Ws | None:
        """The newest soft-deleted workspace with this name that is still in the bin."""
        found = [ws for ws in self.workspaces.values()
                 if ws.status == BIN and (ws.sub, ws.rg, ws.name) == (sub, rg, name)
                 and not self.gone(ws, now)]
        if not found:
            return None
        return max(found, key=lambda ws: (ws.deleted_at, ws.delete_order))

    def name_holders(self, sub: str, rg: str, name: str, now: datetime) -> list[Ws]:
        """Soft-deleted workspaces (not gone) that hold this name, as name_reservation.scope
        says: in their group, in their whole tenant, or nowhere."""
        scope = self.rules(sub)["name_reservation"]["scope"]
        holders = []
        for ws in self.workspaces.values():
            if ws.status != BIN or ws.sub != sub or ws.name != name or self.gone(ws, now):
                continue
            if scope == "tenant" or (scope == "group" and ws.rg == rg):
                holders.append(ws)
        return holders

    def list_deleted(self, sub: str, rg: str | None, now: datetime) -> list[Ws]:
        rows = [ws for ws in self.workspaces.values()
                if ws.status == BIN and ws.sub == sub and (rg is None or ws.rg == rg)
                and not self.gone(ws, now)]
        rows.sort(key=lambda ws: (ws.deleted_at, ws.delete_order), reverse=True)
        return rows

    def list_deletable(self, sub: str, now: datetime) -> list[tuple[str, str, datetime]]:
        out: list[tuple[str, str, datetime]] = []
        seen: set[str] = set()
        if self.rules(sub)["retention"]["on_expiry"] == "hold":
            for ws in sorted(self.workspaces.values(), key=lambda w: (w.purge_at or now, w.id)):
                if ws.sub == sub and self.expired(ws, now):
                    assert ws.purge_at is not None
                    out.append(("deletion_planned", ws.id, ws.purge_at))
                    seen.add(ws.id)
        for ws in self.workspaces.values():
            if (ws.sub == sub and ws.orphaned_at is not None and ws.orphaned_at <= now
                    and not self.gone(ws, now) and ws.id not in seen):
                out.append(("orphaned", ws.id, ws.orphaned_at))
        out.sort(key=lambda item: item[2])
        return out

    def pending_tasks(self) -> list[Task]:
        return [task for task in self.tasks if not task.completed]

    # --- audit ------------------------------------------------------------------------------

    def _ok(self, action: str, ws: Ws) -> None:
        self.audit.append(AuditEntry(action, "ok", ws.id, ws.sub, ws.rg, ws.name))

    def refuse(self, action: str, code: str, *, reserved_until: datetime | None = None,
               audited: bool = True) -> Refused:
        if audited:
            self.audit.append(AuditEntry(action, f"refused:{code}"))
        return Refused(code, reserved_until)

    # --- operations -------------------------------------------------------------------------

    def create(self, sub: str, rg: str, name: str, *, retention: int | None, cmk: bool,
               components: Sequence[tuple[str, str, bool]], owner: str | None,
               now: datetime, new_id: str | None) -> Ws:
        """``new_id``: the id the engine gave the workspace (None if the engine refused)."""
        r = self.rules(sub)["retention"]
        days = r["default_days"]
        if retention is not None:
            if not r["per_workspace"] and retention != r["default_days"]:
                raise self.refuse("create", "invalid_retention")
            if not r["min_days"] <= retention <= r["max_days"]:
                raise self.refuse("create", "invalid_retention")
            days = retention
        if self.live(sub, rg, name) is not None:
            raise self.refuse("create", "workspace_exists")
        holders = self.name_holders(sub, rg, name, now)
        if holders:
            until = max(ws.purge_at for ws in holders if ws.purge_at is not None)
            raise self.refuse("create", "name_reserved", reserved_until=until)
        if new_id is None:
            raise AssertionError(f"the model expects create {sub}/{rg}/{name} to succeed")
        ws = Ws(new_id, sub, rg, name, days, cmk, now,
                [Comp(kind, ref, standalone) for kind, ref, standalone in components])
        if owner is not None:
            ws.members[owner] = "owner"
            ws.had_members = True
        self.workspaces[new_id] = ws
        self._ok("create", ws)
        return ws

    def _load(self, action: str, workspace_id: str, now: datetime) -> Ws:
        ws = self.workspaces.get(workspace_id)
        if ws is None or self.gone(ws, now):
            raise self.refuse(action, "workspace_not_found")
        return ws

    def _live_only(self, action: str, ws: Ws) -> None:
        if ws.status != LIVE:
            raise self.refuse(action, "operation_not_allowed")

    def set_state(self, workspace_id: str, state: str, now: datetime) -> Ws:
        action = "stop" if state == "stopped" else "start"
        ws = self._load(action, workspace_id, now)
        self._live_only(action, ws)
        ws.state = state
        self._ok(action, ws)
        return ws

    def grant(self, workspace_id: str, member: str, role: str, now: datetime) -> None:
        ws = self._load("grant", workspace_id, now)
        self._live_only("grant", ws)
        ws.members[member] = role
        ws.had_members = True
        ws.orphaned_at = None
        self._ok("grant", ws)

    def revoke(self, workspace_id: str, member: str, now: datetime) -> None:
        ws = self._load("revoke", workspace_id, now)
        self._live_only("revoke", ws)
        if ws.members.pop(member, None) is not None and not ws.members:
            ws.orphaned_at = now
        self._ok("revoke", ws)

    def _plan_delete(self, ws: Ws, *, permanently: bool, dependent: bool,
                     confirm_name: str | None, batch: int) -> bool:
        rules = self.rules(ws.sub)
        self._live_only("delete", ws)
        if rules["preconditions"]["require_stopped"] and ws.state == "running":
            raise self.refuse("delete", "workspace_not_stopped")
        permanent = (permanently or not rules["soft_delete"]["enabled"]
                     or (ws.cmk and rules["soft_delete"]["hard_delete_if_cmk"]))
        pd = rules["permanent_delete"]
        if dependent and not permanently and pd["dependent_resources_require_permanent"]:
            raise self.refuse("delete", "operation_not_allowed")
        if permanently and not pd["allowed"]:
            raise self.refuse("delete", "operation_not_allowed")
        if permanent and batch > 1 and not pd["batch"]:
            raise self.refuse("delete", "operation_not_allowed")
        if confirm_name is not None and confirm_name != ws.name:
            raise self.refuse("delete", "precondition_failed")
        if rules["preconditions"]["require_confirm_name"] and confirm_name is None:
            raise self.refuse("delete", "precondition_failed")
        if rules["preconditions"]["blockers"]:
            raise self.refuse("delete", "precondition_failed")  # no facts provider: unverifiable
        return permanent

    def delete_many(self, workspace_ids: Sequence[str], *, permanently: bool = False,
                    dependent: bool = False, confirm_name: str | None = None,
                    now: datetime) -> list[DeleteOutcome]:
        plans: list[tuple[Ws, bool]] = []
        for workspace_id in workspace_ids:
            ws = self._load("delete", workspace_id, now)
            if any(earlier.id == ws.id for earlier, _ in plans):
                raise self.refuse("delete", "invalid_argument")
            plans.append((ws, self._plan_delete(ws, permanently=permanently, dependent=dependent,
                                                confirm_name=confirm_name,
                                                batch=len(workspace_ids))))
        outcomes = []
        for ws, permanent in plans:
            outcome = (self._hard_delete(ws, dependent, "delete", now) if permanent
                       else self._soft_delete(ws, dependent, now))
            outcome.warnings = len(self.rules(ws.sub)["preconditions"]["warnings"])
            outcomes.append(outcome)
        return outcomes

    def _soft_delete(self, ws: Ws, dependent: bool, now: datetime) -> DeleteOutcome:
        r = self.rules(ws.sub)["retention"]
        days = (min(max(ws.retention_days, r["min_days"]), r["max_days"]) if r["per_workspace"]
                else r["default_days"])
        outcome = DeleteOutcome(False, now, now + timedelta(days=days))
        for comp in ws.components:
            on_delete = self.component_rule(ws.sub, comp.kind)["on_delete"]
            if comp.standalone or (on_delete == "preserve" and not dependent):
                _add(outcome.preserved, comp.kind)
            elif on_delete == "retain":
                _add(outcome.retained, comp.kind)
            else:
                _add(outcome.destroyed, comp.kind)
                comp.destroyed = True
                outcome.cleanup.append(self._task(ws, comp))
        ws.status = BIN
        ws.deleted_at = now
        ws.purge_at = outcome.purge_at
        ws.retention_days = days
        ws.retained = list(outcome.retained)
        self._order += 1
        ws.delete_order = self._order
        self._ok("delete", ws)
        return outcome

    def _task(self, ws: Ws, comp: Comp) -> Task:
        task = Task(ws.id, comp.kind, comp.ref)
        self.tasks.append(task)
        return task

    def _dispose(self, ws: Ws, dependent: bool, outcome: DeleteOutcome) -> None:
        for comp in ws.components:
            on_delete = self.component_rule(ws.sub, comp.kind)["on_delete"]
            if comp.standalone or (on_delete == "preserve" and not dependent):
                _add(outcome.preserved, comp.kind)
                continue
            _add(outcome.destroyed, comp.kind)
            if not comp.destroyed:
                outcome.cleanup.append(self._task(ws, comp))

    def _hard_delete(self, ws: Ws, dependent: bool, action: str, now: datetime) -> DeleteOutcome:
        outcome = DeleteOutcome(True, now, None)
        self._dispose(ws, dependent, outcome)
        ws.status = REMOVED
        ws.removed_by = action
        if action == "expire":
            self.expired_removed.add(ws.id)
        else:
            self._ok(action, ws)
        return outcome

    def recover(self, sub: str, rg: str, name: str, now: datetime) -> RecoverOutcome:
        ws = self.in_bin(sub, rg, name, now)
        if ws is None:
            raise self.refuse("recover", "workspace_not_found")
        if self.live(sub, rg, name) is not None:
            raise self.refuse("recover", "workspace_exists")
        outcome = RecoverOutcome(ws, [], [], [])
        kept = []
        for comp in ws.components:
            rule = self.component_rule(sub, comp.kind)
            if not comp.destroyed:
                if not comp.standalone and rule["on_delete"] == "retain":
                    _add(outcome.restored, comp.kind)
                kept.append(comp)
            elif rule["on_recover"] == "reattach":
                _add(outcome.reattached, comp.kind)
                comp.destroyed = False
                kept.append(comp)
            else:
                _add(outcome.must_recreate, comp.kind)
        ws.components = kept
        ws.status = LIVE
        ws.deleted_at = ws.purge_at = None
        ws.retained = []
        self._ok("recover", ws)
        return outcome

    def purge(self, sub: str, rg: str, name: str, now: datetime) -> DeleteOutcome:
        ws = self.in_bin(sub, rg, name, now)
        if ws is None:
            raise self.refuse("purge", "workspace_not_found")
        if not self.rules(sub)["permanent_delete"]["allowed"] and not self.expired(ws, now):
            raise self.refuse("purge", "operation_not_allowed")
        return self._hard_delete(ws, False, "purge", now)

    def purge_by_id(self, workspace_id: str, now: datetime) -> DeleteOutcome:
        ws = self.workspaces.get(workspace_id)
        deletable = ws is not None and any(
            item[1] == workspace_id for item in self.list_deletable(ws.sub, now))
        if ws is None or not deletable:
            raise self.refuse("purge", "operation_not_allowed")
        return self._hard_delete(ws, False, "purge", now)

    def expire_due(self, now: datetime) -> list[Ws]:
        """What ``purge_expired`` must remove now (orphan purges: policies here have none)."""
        due = []
        for ws in self.workspaces.values():
            rules = self.rules(ws.sub)
            assert rules["orphans"]["purge_after_days"] is None, "the model has no orphan purge"
            if self.expired(ws, now) and rules["retention"]["on_expiry"] == "purge":
                due.append(ws)
        return due

    def expire(self, ws: Ws, now: datetime) -> DeleteOutcome:
        """The store removed an expired workspace (purge_expired, or a create over its name)."""
        assert self.gone(ws, now) and ws.status == BIN, ws
        return self._hard_delete(ws, False, "expire", now)

    def complete_cleanup(self, task_id: int) -> None:
        for task in self.tasks:
            if task.id == task_id:
                task.completed = True
                return
        raise Refused("not_found")

    # --- learning what the store chose ------------------------------------------------------

    def learn_task_ids(self, expected: Sequence[Task], actual: Sequence[Any]) -> None:
        """Binds the engine's task ids to the model's tasks (same order, same content)."""
        got = [(t.workspace_id, t.kind, t.ref) for t in actual]
        want = [t.key for t in expected]
        assert got == want, f"cleanup tasks: expected {want}, the engine wrote {got}"
        for task, real in zip(expected, actual):
            task.id = real.id

    def resolve_expiry(self, expire_records: Sequence[Any], now: datetime) -> list[Task]:
        """Applies the engine's `expire` audit records (each: .workspace_id) that the model has
        not seen yet; each must name an expired workspace, once. Returns the new tasks."""
        new: list[Task] = []
        for record in expire_records:
            if record.workspace_id in self.expired_removed:
                continue
            ws = self.workspaces.get(record.workspace_id)
            assert ws is not None, f"expire record for unknown workspace {record.workspace_id}"
            assert ws.status == BIN and self.gone(ws, now), (
                f"expire record for {ws.sub}/{ws.rg}/{ws.name} ({ws.status}, purge_at "
                f"{ws.purge_at}, now {now}), which has not expired")
            new.extend(self.expire(ws, now).cleanup)
        return new
