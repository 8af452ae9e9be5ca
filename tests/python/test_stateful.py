"""A Hypothesis stateful test of the engine against a small reference model
(reference_model.py): create, delete soft and permanent, delete_many, recover, purge,
purge_by_id, stop/start, purge_expired, complete_cleanup, and a clock moved by small and
large steps and to exactly a workspace's purge_at (and one microsecond either side).

After every step the documented behaviour is checked: get, get_deleted, list_deleted
(contents, order, paging), list_deletable, the cleanup tasks, and the audit log; every call's
answer (results, purge_at arithmetic, NameReserved.reserved_until, error codes) is compared
with the model's.

CI runs a derandomized profile bounded in examples and steps (well under a minute). For a
longer hunt: RECYCLEBIN_STATEFUL_EXAMPLES=500 (and optionally RECYCLEBIN_STATEFUL_STEPS=80)
runs randomized.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, settings, strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

import recyclebin as rb

from reference_model import BIN, LIVE, Model, Refused, Task, Ws

T = TypeVar("T")

START = datetime(2026, 1, 1, tzinfo=timezone.utc)
US = timedelta(microseconds=1)
SUBS = ("sub-1", "longarchive-org")   # parsec overrides retention for longarchive-org
GROUPS = ("rg-a", "rg-b")
NAMES = ("ws-x", "ws-y")
# Few slots, so that names collide often.
SLOTS = [("sub-1", g, n) for g in GROUPS for n in NAMES] + [("longarchive-org", "rg-a", "ws-x")]
# default: the safe defaults; azureml: destroy/reattach/preserve kinds, CMK, dependents;
# dataworks: fixed retention, tenant-wide names, confirm_name, no permanent delete;
# parsec: on_expiry hold, names never reserved, purge only past the date, tenant overrides.
POLICIES = ("default", "azureml", "dataworks", "parsec")

_EXAMPLES = int(os.environ.get("RECYCLEBIN_STATEFUL_EXAMPLES", "0"))
_STEPS = int(os.environ.get("RECYCLEBIN_STATEFUL_STEPS", "0"))
settings.register_profile(
    "recyclebin-ci", max_examples=40, stateful_step_count=40, deadline=None, derandomize=True,
    database=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True)
settings.register_profile(
    "recyclebin-long", max_examples=_EXAMPLES or 25, stateful_step_count=_STEPS or 50,
    deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True)
PROFILE = settings.get_profile("recyclebin-long" if _EXAMPLES else "recyclebin-ci")


def outcome(call: Callable[[], T]) -> tuple[T | None, str | None, rb.RecycleBinError | None]:
    """(result, None, None) or (None, error code, error)."""
    try:
        return call(), None, None
    except rb.RecycleBinError as error:
        return None, error.code, error


def model_outcome(call: Callable[[], T]) -> tuple[T | None, Refused | None]:
    try:
        return call(), None
    except Refused as refusal:
        return None, refusal


def component_rows(ws: rb.Workspace | Any) -> list[tuple[str, str, bool]]:
    return [(c.kind, c.ref, c.standalone) for c in ws.components]


def model_component_rows(ws: Ws) -> list[tuple[str, str, bool]]:
    return [(c.kind, c.ref, c.standalone) for c in ws.components if not c.destroyed]


RETENTIONS = st.sampled_from([None] * 6 + [0, 1, 2, 3, 14, 15, 30, 90])  # mostly the default
COMPONENTS = st.lists(st.tuples(st.integers(0, 6), st.booleans()), max_size=4)


def _any(status: str) -> Callable[[EngineMachine], bool]:
    return lambda machine: any(ws.status == status for ws in machine.model.workspaces.values())


class EngineMachine(RuleBasedStateMachine):
    policy_name = "default"

    def __init__(self) -> None:
        super().__init__()
        self.directory = Path(tempfile.mkdtemp(prefix="rb-stateful-"))
        self.clock = rb.ManualClock(START)
        policy = rb.Policy.builtin(self.policy_name)
        self.engine = rb.Engine.open(self.directory / "bin.db", policy=policy, clock=self.clock)
        self.model = Model(policy.rules)
        self.handles: dict[str, rb.Workspace] = {}
        self.refs = 0
        kinds = [k for k in policy.rules()["components"] if k != "default"]
        self.kinds = sorted(kinds)[:6] + ["unlisted_kind"]

    def teardown(self) -> None:
        self.engine.close()
        shutil.rmtree(self.directory, ignore_errors=True)

    @property
    def now(self) -> datetime:
        return self.clock.now()

    # --- helpers ----------------------------------------------------------------------------

    def pick_workspace(self, data: st.DataObject, status: str = LIVE) -> rb.Workspace | None:
        """Mostly a workspace in this model status; sometimes any (stale handles included)."""
        if not self.handles:
            return None
        ids = [i for i in self.handles if self.model.workspaces[i].status == status]  # creation order
        if not ids or data.draw(st.integers(0, 4), label="any workspace") == 0:
            ids = list(self.handles)
        return self.handles[data.draw(st.sampled_from(ids), label="workspace")]

    def pick_slot(self, data: st.DataObject) -> tuple[str, str, str]:
        """Mostly the slot of a workspace in the bin (expired ones too); sometimes any slot."""
        binned = sorted({(w.sub, w.rg, w.name) for w in self.model.workspaces.values() if w.status == BIN})
        if not binned or data.draw(st.integers(0, 4), label="any slot") == 0:
            binned = SLOTS
        return data.draw(st.sampled_from(binned), label="slot")

    def check_delete_results(self, results: list[rb.DeleteResult], expected: list[Any]) -> None:
        assert len(results) == len(expected)
        for real, want in zip(results, expected):
            assert real.permanent == want.permanent
            assert real.deleted_at == want.deleted_at == self.now
            assert real.purge_at == want.purge_at
            assert (real.retained, real.destroyed, real.preserved) == (
                want.retained, want.destroyed, want.preserved)
            assert len(real.warnings) == want.warnings, real.warnings
            self.model.learn_task_ids(want.cleanup, real.cleanup)

    def agree(self, what: str, code: str | None, refusal: Refused | None,
              error: rb.RecycleBinError | None = None) -> bool:
        """Both refused with one code, or both went ahead. True when they went ahead."""
        want = None if refusal is None else refusal.code
        assert code == want, f"{what}: the engine answered {code or 'ok'} ({error}), the model {want or 'ok'}"
        return code is None

    # --- rules ------------------------------------------------------------------------------

    @initialize()
    def nothing_yet(self) -> None:
        assert self.engine.audit_log() == []

    @rule(slot=st.sampled_from(SLOTS), retention=RETENTIONS, cmk=st.booleans(), components=COMPONENTS)
    def create(self, slot: tuple[str, str, str], retention: int | None, cmk: bool,
               components: list[tuple[int, bool]]) -> None:
        self.create_in(slot, retention, cmk, components)

    @precondition(_any(BIN))
    @rule(data=st.data(), group=st.sampled_from(GROUPS), retention=RETENTIONS, components=COMPONENTS)
    def create_over_a_binned_name(self, data: st.DataObject, group: str, retention: int | None,
                                  components: list[tuple[int, bool]]) -> None:
        """A create with the name of a workspace in the bin, in its group or another one."""
        binned = sorted((ws.sub, ws.name) for ws in self.model.workspaces.values() if ws.status == BIN)
        if binned:
            sub, name = data.draw(st.sampled_from(binned), label="binned name")
            self.create_in((sub, group, name), retention, False, components)

    @rule(name=st.sampled_from(NAMES), retention=RETENTIONS)
    def create_in_every_group(self, name: str, retention: int | None) -> None:
        """The same name in each group at once (live names are unique only within a group)."""
        for group in GROUPS:
            self.create_in(("sub-1", group, name), retention, False, [])

    def create_in(self, slot: tuple[str, str, str], retention: int | None, cmk: bool,
                  components: list[tuple[int, bool]]) -> None:
        sub, rg, name = slot
        rows = []
        for index, standalone in components:
            self.refs += 1
            rows.append((self.kinds[index % len(self.kinds)], f"ref-{self.refs}", standalone))
        real, code, error = outcome(lambda: rb.Workspace.create(
            sub, rg, name, soft_delete_retention_days=retention, cmk_encrypted=cmk,
            components=[rb.Component(*row) for row in rows], engine=self.engine))
        expected, refusal = model_outcome(lambda: self.model.create(
            sub, rg, name, retention=retention, cmk=cmk, components=rows, owner=None,
            now=self.now, new_id=None if real is None else real.id))
        if not self.agree(f"create {slot} retention={retention}", code, refusal, error):
            if code == "name_reserved":
                assert isinstance(error, rb.NameReserved)
                assert refusal is not None
                assert error.reserved_until == refusal.reserved_until, (
                    f"reserved_until {error.reserved_until}, the model {refusal.reserved_until}")
                assert error.reserved_until is not None
                assert error.reserved_until.isoformat().replace("+00:00", "Z")[:19] in str(error)
            return
        assert real is not None and expected is not None
        self.handles[real.id] = real
        assert (real.subscription_id, real.resource_group, real.name) == slot
        assert real.soft_delete_retention_days == expected.retention_days
        assert real.state == "running" and real.created_at == self.now
        assert component_rows(real) == rows

    @precondition(_any(LIVE))
    @rule(data=st.data(),
          flags=st.sampled_from([(False, False)] * 4 + [(True, False), (True, True), (False, True)]),
          confirm=st.sampled_from(["right", "right", "none", "wrong"]))
    def delete(self, data: st.DataObject, flags: tuple[bool, bool], confirm: str) -> None:
        permanently, dependent = flags  # mostly a plain soft delete
        ws = self.pick_workspace(data)
        if ws is None:
            return
        confirm_name = {"none": None, "right": ws.name, "wrong": ws.name + "-typo"}[confirm]
        real, code, error = outcome(lambda: ws.delete(
            permanently_delete=permanently, delete_dependent_resources=dependent,
            confirm_name=confirm_name))
        expected, refusal = model_outcome(lambda: self.model.delete_many(
            [ws.id], permanently=permanently, dependent=dependent, confirm_name=confirm_name,
            now=self.now))
        if self.agree(f"delete {ws.name} permanently={permanently} dependent={dependent}",
                      code, refusal, error):
            assert real is not None and expected is not None
            self.check_delete_results([real], expected)

    @precondition(_any(LIVE))
    @rule(data=st.data(), permanently=st.sampled_from([False, False, True]))
    def delete_many(self, data: st.DataObject, permanently: bool) -> None:
        if not self.handles:
            return
        ids = data.draw(st.lists(st.sampled_from(list(self.handles)), min_size=1, max_size=3),
                        label="members")
        members = [self.handles[i] for i in ids]
        real, code, error = outcome(lambda: rb.Workspace.delete_many(
            members, permanently_delete=permanently, engine=self.engine))
        expected, refusal = model_outcome(lambda: self.model.delete_many(
            ids, permanently=permanently, now=self.now))
        if self.agree(f"delete_many {len(ids)} permanently={permanently}", code, refusal, error):
            assert real is not None and expected is not None
            self.check_delete_results(real, expected)

    @precondition(_any(BIN))
    @rule(data=st.data(), recover=st.booleans())
    def recover_or_purge(self, data: st.DataObject, recover: bool) -> None:
        """Recover or purge by name (mostly a name in the bin, expired ones included)."""
        slot = self.pick_slot(data)
        if recover:
            back, code, error = outcome(lambda: rb.Workspace.recover(*slot, engine=self.engine))
            want, refusal = model_outcome(lambda: self.model.recover(*slot, now=self.now))
            if self.agree(f"recover {slot}", code, refusal, error):
                assert back is not None and want is not None
                assert back.workspace.id == want.ws.id
                assert (back.restored, back.reattached, back.must_recreate) == (
                    want.restored, want.reattached, want.must_recreate)
                assert component_rows(back.workspace) == model_component_rows(want.ws)
                self.handles[back.workspace.id] = back.workspace
            return
        purged, code, error = outcome(lambda: rb.Workspace.purge(*slot, engine=self.engine))
        expected, refusal = model_outcome(lambda: self.model.purge(*slot, now=self.now))
        if self.agree(f"purge {slot}", code, refusal, error):
            assert purged is not None and expected is not None
            self.check_delete_results([purged], [expected])

    @precondition(_any(BIN))
    @rule(data=st.data())
    def purge_by_id(self, data: st.DataObject) -> None:
        ws = self.pick_workspace(data, BIN)
        if ws is None:
            return
        real, code, error = outcome(lambda: self.engine.purge_by_id(ws.id))
        expected, refusal = model_outcome(lambda: self.model.purge_by_id(ws.id, self.now))
        if self.agree(f"purge_by_id {ws.name}", code, refusal, error):
            assert real is not None and expected is not None
            self.check_delete_results([real], [expected])

    @precondition(_any(LIVE))
    @rule(data=st.data(), stop=st.booleans())
    def stop_or_start(self, data: st.DataObject, stop: bool) -> None:
        ws = self.pick_workspace(data)
        if ws is None:
            return
        _, code, error = outcome(ws.stop if stop else ws.start)
        _, refusal = model_outcome(lambda: self.model.set_state(
            ws.id, "stopped" if stop else "running", self.now))
        if self.agree(f"{'stop' if stop else 'start'} {ws.name}", code, refusal, error):
            assert ws.state == ("stopped" if stop else "running")

    @rule()
    def purge_expired(self) -> None:
        due = sorted(self.model.expire_due(self.now), key=lambda w: (w.purge_at, w.id))
        report = self.engine.purge_expired()
        assert sorted(report.purged) == sorted((w.sub, w.rg, w.name) for w in due)
        expected: list[Task] = []
        for ws in due:
            expected.extend(self.model.expire(ws, self.now).cleanup)
        assert sorted((t.workspace_id, t.kind, t.ref) for t in report.cleanup) == sorted(
            t.key for t in expected)
        by_key: dict[tuple[str, str, str], list[Task]] = {}
        for task in expected:
            by_key.setdefault(task.key, []).append(task)
        for real in report.cleanup:
            by_key[(real.workspace_id, real.kind, real.ref)].pop(0).id = real.id
        # A second sweep at the same instant finds nothing.
        again = self.engine.purge_expired()
        assert again.purged == [] and again.cleanup == []

    @precondition(lambda machine: bool(machine.model.tasks))
    @rule(data=st.data(), bogus=st.booleans())
    def complete_cleanup(self, data: st.DataObject, bogus: bool) -> None:
        known = [t for t in self.model.tasks if t.id is not None]
        if bogus or not known:
            task_id = 10**9 + data.draw(st.integers(0, 10), label="bogus task")
            with pytest.raises(KeyError):
                self.engine.complete_cleanup(task_id)
            return
        task = data.draw(st.sampled_from(known), label="task")
        assert task.id is not None
        self.engine.complete_cleanup(task.id)   # completing a completed one is a no-op
        self.model.complete_cleanup(task.id)

    @rule(step=st.sampled_from([US, timedelta(seconds=1), timedelta(hours=1), timedelta(hours=1),
                                timedelta(days=1), timedelta(days=1), timedelta(days=7),
                                timedelta(days=15), timedelta(days=31), timedelta(days=95)]))
    def advance(self, step: timedelta) -> None:
        self.clock.advance(step)

    @precondition(_any(BIN))
    @rule(data=st.data(), offset=st.sampled_from([-US, timedelta(0), US]))
    def to_a_purge_date(self, data: st.DataObject, offset: timedelta) -> None:
        """Moves the clock to exactly a binned workspace's purge_at, or 1 µs before or after."""
        dates = sorted({ws.purge_at + offset for ws in self.model.workspaces.values()
                        if ws.status == BIN and ws.purge_at is not None
                        and ws.purge_at + offset > self.now})
        if dates:
            self.clock.set(data.draw(st.sampled_from(dates), label="purge date"))

    # --- what must hold after every step ----------------------------------------------------

    @invariant()
    def expiry_is_learned_from_the_audit_log(self) -> None:
        log = self.engine.audit_log()
        expires = [r for r in log if r.action == "expire"]
        counts = Counter(r.workspace_id for r in expires)
        assert all(n == 1 for n in counts.values()), f"expired more than once: {counts}"
        assert all(r.outcome == "ok" for r in expires)
        new = self.model.resolve_expiry(expires, self.now)
        if new:  # tasks written by a create over an expired name: their ids from the outbox
            unknown = Counter(t.key for t in new)
            for real in self.engine.cleanup_tasks():
                key = (real.workspace_id, real.kind, real.ref)
                if unknown[key] > 0 and all(t.id != real.id for t in self.model.tasks):
                    unknown[key] -= 1
                    next(t for t in new if t.key == key and t.id is None).id = real.id
            assert not +unknown, f"cleanup tasks of an expired workspace are missing: {+unknown}"
        # Every other record, in order, as the model wrote it.
        rest = [r for r in log if r.action != "expire"]
        got = [(r.action, r.outcome) for r in rest]
        want = [(e.action, e.outcome) for e in self.model.audit]
        assert got == want, f"audit log:\n got {got[-6:]}\nwant {want[-6:]}"
        for record, entry in zip(rest, self.model.audit):
            if entry.outcome == "ok":
                assert (record.workspace_id, record.subscription_id, record.resource_group,
                        record.name) == (entry.workspace_id, entry.sub, entry.rg, entry.name)
        seqs = [r.seq for r in log]
        assert seqs == sorted(set(seqs))

    @invariant()
    def live_workspaces(self) -> None:
        for sub, rg, name in SLOTS:
            ws = self.model.live(sub, rg, name)
            real, code, _ = outcome(lambda: rb.Workspace.get(name, sub, rg, engine=self.engine))
            if ws is None:
                assert code == "workspace_not_found", f"get {sub}/{rg}/{name}: {real}"
                continue
            assert real is not None, f"get {sub}/{rg}/{name}: {code}"
            assert (real.id, real.state, real.soft_delete_retention_days) == (
                ws.id, ws.state, ws.retention_days)
            assert component_rows(real) == model_component_rows(ws)

    @invariant()
    def the_recycle_bin(self) -> None:
        now = self.now
        for sub, rg, name in SLOTS:
            ws = self.model.in_bin(sub, rg, name, now)
            real, code, _ = outcome(lambda: rb.Workspace.get_deleted(name, sub, rg, engine=self.engine))
            if ws is None:
                assert code == "workspace_not_found", f"get_deleted {sub}/{rg}/{name}: {real}"
                continue
            assert real is not None, f"get_deleted {sub}/{rg}/{name}: {code}"
            assert ws.deleted_at is not None
            assert (real.id, real.deleted_at, real.purge_at, real.retention_days, real.retained) == (
                ws.id, ws.deleted_at, ws.purge_at, ws.retention_days, ws.retained)
            assert real.purge_at == real.deleted_at + timedelta(days=real.retention_days)
        for sub in SUBS:
            groups: tuple[str | None, ...] = (None, *GROUPS)
            for group in groups:
                want = [w.id for w in self.model.list_deleted(sub, group, now)]
                page = rb.Workspace.list_deleted(sub, group, engine=self.engine)
                assert [d.id for d in page] == want, f"list_deleted({sub}, {group})"
                assert page.next_cursor is None
                paged: list[str] = []
                cursor: str | None = None
                for _ in range(len(want) + 1):
                    part = rb.Workspace.list_deleted(sub, group, limit=2, cursor=cursor, engine=self.engine)
                    paged.extend(d.id for d in part)
                    cursor = part.next_cursor
                    if cursor is None:
                        break
                assert paged == want, f"list_deleted({sub}, {group}) in pages of 2"
            deletable = [(d.kind, d.workspace_id, d.since) for d in self.engine.list_deletable(sub)]
            # API.md gives no order for list_deletable (ties of `since` come in any order).
            assert sorted(deletable) == sorted(self.model.list_deletable(sub, now)), f"list_deletable({sub})"

    @invariant()
    def the_cleanup_outbox(self) -> None:
        real = self.engine.cleanup_tasks()
        assert Counter((t.workspace_id, t.kind, t.ref) for t in real) == Counter(
            t.key for t in self.model.pending_tasks())
        assert {t.id for t in real} == {t.id for t in self.model.pending_tasks()}
        assert [t.id for t in real] == sorted(t.id for t in real)  # oldest first


def machine(policy: str) -> type[EngineMachine]:
    return type(f"EngineMachine_{policy.replace('-', '_')}", (EngineMachine,), {"policy_name": policy})


@pytest.mark.parametrize("policy", POLICIES)
def test_engine_behaves_as_the_model(policy: str) -> None:
    run_state_machine_as_test(machine(policy), settings=PROFILE)



# --- what the machine found, kept as plain examples ---------------------------------------------


def test_tenant_scope_every_binned_workspace_holds_its_name_tenant_wide(tmp_path: Path) -> None:
    """name_reservation.scope: tenant (dataworks): a soft-deleted workspace holds its name in
    its whole tenant until its purge_at, however many others of that name are in the bin, and
    NameReserved.reserved_until is when the name is free again."""
    clock = rb.ManualClock(START)
    with rb.Engine.open(tmp_path / "bin.db", policy="dataworks", clock=clock) as engine:
        first = rb.Workspace.create("sub-1", "rg-a", "x", engine=engine)
        second = rb.Workspace.create("sub-1", "rg-b", "x", engine=engine)
        first.delete(confirm_name="x")
        clock.advance(timedelta(days=1))
        second.delete(confirm_name="x")   # purge_at a day after the first's
        with pytest.raises(rb.NameReserved) as refused:
            rb.Workspace.create("sub-1", "rg-c", "x", engine=engine)
        assert refused.value.reserved_until == START + timedelta(days=15)
        with pytest.raises(rb.NameReserved) as refused:
            rb.Workspace.create("sub-1", "rg-a", "x", engine=engine)
        assert refused.value.reserved_until == START + timedelta(days=15)

        # The first leaves the bin: the second still holds the name in the whole tenant.
        rb.Workspace.recover("sub-1", "rg-a", "x", engine=engine)
        with pytest.raises(rb.NameReserved) as refused:
            rb.Workspace.create("sub-1", "rg-c", "x", engine=engine)
        assert refused.value.reserved_until == START + timedelta(days=15)
        assert rb.Workspace.get_deleted("x", "sub-1", "rg-b", engine=engine).id == second.id
