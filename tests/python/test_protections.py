"""Protections (API.md, version 2): legal holds, liens, purge protection, create over a
soft-deleted name (if_deleted), auto-deletion of temporary workspaces, and the check order
where they meet the other checks. Runs on both stores (conftest.STORE_MODULES). Times are
set on a manual clock, at the exact boundaries (one microsecond either side)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

import recyclebin as rb

from conftest import MakeEngine

SUB, RG = "sub-1", "rg-1"
US = timedelta(microseconds=1)
ALICE = rb.Principal("alice")
BOB = rb.Principal("bob")


def create(engine: rb.Engine, name: str = "ws", **kwargs: Any) -> rb.Workspace:
    kwargs.setdefault("resource_group", RG)
    group = kwargs.pop("resource_group")
    return rb.Workspace.create(SUB, group, name, engine=engine, **kwargs)


def in_bin(engine: rb.Engine, name: str = "ws", group: str = RG) -> bool:
    try:
        rb.Workspace.get_deleted(name, SUB, group, engine=engine)
    except rb.WorkspaceNotFound:
        return False
    return True


def actions(engine: rb.Engine) -> list[tuple[str, str]]:
    return [(r.action, r.outcome) for r in engine.audit_log(SUB)]


# --- legal holds -------------------------------------------------------------------------------


def test_hold_fields_and_listing(engine: rb.Engine, start: datetime, clock: rb.ManualClock) -> None:
    ws = create(engine, principal=ALICE)
    first = ws.place_hold("litigation 2026-17", principal=ALICE)
    clock.advance(US)  # oldest first
    second = engine.place_hold(ws.id, "audit")
    assert isinstance(first, rb.Hold)
    assert (first.workspace_id, first.reason, first.placed_by, first.placed_at) == (
        ws.id, "litigation 2026-17", "alice", start)
    assert second.placed_by is None  # the platform
    assert first.id != second.id and isinstance(first.id, str)
    assert engine.holds(ws.id) == [first, second]
    with pytest.raises(AttributeError):
        first.reason = "changed"  # type: ignore[misc]
    engine.release_hold(first.id, principal=ALICE)
    assert engine.holds(ws.id) == [second]
    assert actions(engine)[-3:] == [("place_hold", "ok"), ("place_hold", "ok"), ("release_hold", "ok")]
    records = engine.audit_log(SUB)
    assert records[-3].principal_id == "alice" and records[-3].workspace_id == ws.id


def test_hold_stops_destruction_not_soft_delete_or_recover(engine: rb.Engine) -> None:
    ws = create(engine)
    engine.place_hold(ws.id, "legal: case 12")
    with pytest.raises(rb.WorkspaceHeld) as held:
        ws.delete(permanently_delete=True)
    error = held.value
    assert isinstance(error, rb.OperationNotAllowed)
    assert (error.code, error.http_status) == ("workspace_held", 409)
    assert "legal: case 12" in str(error)
    with pytest.raises(rb.WorkspaceHeld):  # a dry run makes the same check
        ws.delete(permanently_delete=True, dry_run=True)
    ws.delete()  # soft delete works as usual
    item = rb.Workspace.get_deleted("ws", SUB, RG, engine=engine)
    assert item.held is True
    with pytest.raises(rb.WorkspaceHeld):
        rb.Workspace.purge(SUB, RG, "ws", engine=engine)
    rb.Workspace.recover(SUB, RG, "ws", engine=engine)
    assert rb.Workspace.get("ws", SUB, RG, engine=engine).id == ws.id
    assert ("delete", "refused:workspace_held") in actions(engine)
    assert ("purge", "refused:workspace_held") in actions(engine)


def test_hold_stops_a_delete_the_policy_makes_permanent(make_engine: MakeEngine) -> None:
    engine = make_engine(soft_delete={"enabled": True, "hard_delete_if_cmk": True})
    cmk = create(engine, "cmk", cmk_encrypted=True)
    engine.place_hold(cmk.id, "keep the key material")
    with pytest.raises(rb.WorkspaceHeld, match="keep the key material"):
        cmk.delete()
    no_bin = make_engine(soft_delete={"enabled": False})
    ws = create(no_bin)
    no_bin.place_hold(ws.id, "regulator")
    with pytest.raises(rb.WorkspaceHeld):
        ws.delete()
    assert rb.Workspace.get("ws", SUB, RG, engine=no_bin).id == ws.id


def test_held_workspace_does_not_expire(engine: rb.Engine, clock: rb.ManualClock) -> None:
    ws = create(engine, soft_delete_retention_days=3)
    engine.place_hold(ws.id, "hold")
    purge_at = ws.delete().purge_at
    assert purge_at is not None
    clock.set(purge_at + timedelta(days=30))
    assert in_bin(engine)  # still recoverable, still holding its name
    with pytest.raises(rb.NameReserved):
        create(engine)
    assert engine.purge_expired().purged == []
    assert [w.name for w in rb.Workspace.list_deleted(SUB, engine=engine)] == ["ws"]
    assert rb.Workspace.list_deleted(SUB, engine=engine)[0].held is True
    rb.Workspace.recover(SUB, RG, "ws", engine=engine)


@pytest.mark.parametrize("released_at, expires_at_once", [(US, True), (-US, False), (timedelta(0), True)])
def test_releasing_the_last_hold_around_purge_at(engine: rb.Engine, clock: rb.ManualClock,
                                                 released_at: timedelta, expires_at_once: bool) -> None:
    ws = create(engine, soft_delete_retention_days=2)
    first = engine.place_hold(ws.id, "first")
    second = engine.place_hold(ws.id, "second")
    purge_at = ws.delete().purge_at
    assert purge_at is not None
    clock.set(purge_at + released_at)
    engine.release_hold(first.id)
    assert in_bin(engine)  # one hold is left
    engine.release_hold(second.id)
    assert in_bin(engine) is not expires_at_once
    if expires_at_once:
        assert engine.purge_expired().purged == [(SUB, RG, "ws")]
        create(engine)  # the name is free
        return
    clock.set(purge_at - US)
    assert in_bin(engine)
    clock.set(purge_at)
    assert not in_bin(engine)
    assert engine.purge_expired().purged == [(SUB, RG, "ws")]


def test_hold_on_live_orphan_and_under_on_expiry_hold(make_engine: MakeEngine, clock: rb.ManualClock) -> None:
    engine = make_engine(retention={"on_expiry": "hold", "default_days": 1, "min_days": 1, "max_days": 1},
                         orphans={"purge_after_days": 1})
    orphan = create(engine, "orphan", principal=ALICE)
    orphan.revoke("alice")
    planned = create(engine, "planned")
    hold_o = engine.place_hold(orphan.id, "orphan hold")
    hold_p = engine.place_hold(planned.id, "planned hold")
    planned.delete()
    clock.advance(timedelta(days=3))
    assert engine.list_deletable(SUB) == []
    with pytest.raises(rb.WorkspaceHeld):
        engine.purge_by_id(orphan.id)
    with pytest.raises(rb.WorkspaceHeld):
        engine.purge_by_id(planned.id, dry_run=True)
    report = engine.purge_expired()
    assert report.purged == []
    engine.release_hold(hold_o.id)
    engine.release_hold(hold_p.id)
    kinds = sorted(d.kind for d in engine.list_deletable(SUB))
    assert kinds == ["deletion_planned", "orphaned"]
    engine.purge_by_id(planned.id)
    assert engine.purge_expired().purged == [(SUB, RG, "orphan")]


def test_hold_errors(engine: rb.Engine, clock: rb.ManualClock) -> None:
    with pytest.raises(rb.WorkspaceNotFound):
        engine.place_hold("no-such-id", "why")
    ws = create(engine, soft_delete_retention_days=1)
    with pytest.raises(rb.InvalidArgument, match="must not be empty"):
        engine.place_hold(ws.id, "")
    with pytest.raises(rb.InvalidArgument, match="NUL"):
        engine.place_hold(ws.id, "a\0b")
    with pytest.raises(rb.InvalidArgument, match="at most 4096"):
        engine.place_hold(ws.id, "x" * 4097)
    with pytest.raises(KeyError):
        engine.release_hold("no-such-hold")
    hold = engine.place_hold(ws.id, "once")
    engine.release_hold(hold.id)
    with pytest.raises(rb.NotFound):
        engine.release_hold(hold.id)
    purge_at = ws.delete().purge_at
    assert purge_at is not None
    clock.set(purge_at)  # expired: gone
    with pytest.raises(rb.WorkspaceNotFound):
        engine.place_hold(ws.id, "too late")
    with pytest.raises(rb.WorkspaceNotFound):
        engine.holds(ws.id)


def test_hold_permission_fails_closed(make_engine: MakeEngine) -> None:
    engine = make_engine()
    ws = create(engine, principal=ALICE)
    with pytest.raises(rb.PermissionDenied):
        engine.place_hold(ws.id, "mine now", principal=BOB)
    hold = engine.place_hold(ws.id, "owner's", principal=ALICE)
    with pytest.raises(rb.PermissionDenied):
        engine.release_hold(hold.id, principal=BOB)
    assert ("place_hold", "refused:permission_denied") in actions(engine)
    legal = make_engine(permissions={"hold": ["legal"]})
    other = create(legal, principal=ALICE)
    with pytest.raises(rb.PermissionDenied):  # listed: the owner is not enough
        legal.place_hold(other.id, "owner", principal=ALICE)
    placed = legal.place_hold(other.id, "legal team", principal=rb.Principal("lee", frozenset({"legal"})))
    legal.release_hold(placed.id, principal=rb.Principal("lee", frozenset({"legal"})))


# --- liens -------------------------------------------------------------------------------------


def test_lien_stops_every_delete_of_a_live_workspace(engine: rb.Engine) -> None:
    ws = create(engine)
    other = create(engine, "other")
    lien = engine.add_lien(ws.id, "billing-service", "open invoice 42")
    assert isinstance(lien, rb.Lien)
    assert (lien.workspace_id, lien.origin, lien.reason) == (ws.id, "billing-service", "open invoice 42")
    assert engine.liens(ws.id) == [lien]
    for kwargs in ({}, {"permanently_delete": True}, {"dry_run": True}):
        with pytest.raises(rb.PreconditionFailed) as refused:
            ws.delete(**kwargs)
        assert "billing-service" in str(refused.value) and "open invoice 42" in str(refused.value)
    with pytest.raises(rb.PreconditionFailed):
        rb.Workspace.delete_many([other, ws], engine=engine)
    assert rb.Workspace.get("other", SUB, RG, engine=engine).state == "running"  # all or nothing
    engine.remove_lien(lien.id)
    assert engine.liens(ws.id) == []
    ws.delete()
    assert actions(engine).count(("add_lien", "ok")) == 1
    assert ("remove_lien", "ok") in actions(engine)
    assert ("delete", "refused:precondition_failed") in actions(engine)


def test_lien_errors_and_permission(engine: rb.Engine) -> None:
    ws = create(engine, principal=ALICE)
    with pytest.raises(rb.WorkspaceNotFound):
        engine.add_lien("nope", "o", "r")
    with pytest.raises(rb.InvalidArgument):
        engine.add_lien(ws.id, "", "r")
    with pytest.raises(rb.InvalidArgument):
        engine.add_lien(ws.id, "o", "")
    with pytest.raises(rb.PermissionDenied):
        engine.add_lien(ws.id, "o", "r", principal=BOB)
    lien = engine.add_lien(ws.id, "o", "r", principal=ALICE)
    with pytest.raises(rb.PermissionDenied):
        engine.remove_lien(lien.id, principal=BOB)
    with pytest.raises(KeyError):
        engine.remove_lien("no-such-lien")
    engine.remove_lien(lien.id, principal=ALICE)
    with pytest.raises(rb.NotFound):
        engine.remove_lien(lien.id)
    ws.delete()
    with pytest.raises(rb.OperationNotAllowed, match="soft-deleted"):
        engine.add_lien(ws.id, "o", "r")


def test_two_liens_both_named_and_the_flag_clears_only_with_the_last(engine: rb.Engine,
                                                                    clock: rb.ManualClock) -> None:
    ws = create(engine)
    a = engine.add_lien(ws.id, "origin-a", "reason-a")
    clock.advance(US)
    b = engine.add_lien(ws.id, "origin-b", "reason-b")
    with pytest.raises(rb.PreconditionFailed) as refused:
        ws.delete()
    assert "origin-a" in str(refused.value) and "origin-b" in str(refused.value)
    engine.remove_lien(a.id)
    with pytest.raises(rb.PreconditionFailed, match="origin-b"):
        ws.delete()
    engine.remove_lien(b.id)
    ws.delete()


# --- purge protection --------------------------------------------------------------------------


def test_purge_protection_makes_the_bin_the_only_way_out(engine: rb.Engine, clock: rb.ManualClock) -> None:
    ws = create(engine, purge_protection=True, soft_delete_retention_days=5)
    assert ws.purge_protection is True
    assert not hasattr(ws, "disable_purge_protection")
    with pytest.raises(rb.OperationNotAllowed, match="purge protection") as refused:
        ws.delete(permanently_delete=True)
    assert not isinstance(refused.value, rb.WorkspaceHeld)
    result = ws.delete()
    assert result.permanent is False and result.purge_at is not None
    with pytest.raises(rb.OperationNotAllowed, match=rb._core.format_iso8601(result.purge_at)):
        rb.Workspace.purge(SUB, RG, "ws", engine=engine)
    clock.set(result.purge_at - US)
    assert in_bin(engine)
    with pytest.raises(rb.OperationNotAllowed, match="purge protection"):
        rb.Workspace.purge(SUB, RG, "ws", engine=engine)
    assert engine.purge_expired().purged == []
    clock.set(result.purge_at)  # expiry purges it as usual, at exactly purge_at
    assert not in_bin(engine)
    assert engine.purge_expired().purged == [(SUB, RG, "ws")]


def test_enable_purge_protection_is_idempotent_and_audited(engine: rb.Engine) -> None:
    ws = create(engine, principal=ALICE)
    assert ws.purge_protection is False
    with pytest.raises(rb.PermissionDenied):
        ws.enable_purge_protection(principal=BOB)
    ws.enable_purge_protection(principal=ALICE)
    assert ws.purge_protection is True
    ws.enable_purge_protection()
    assert rb.Workspace.get("ws", SUB, RG, engine=engine).purge_protection is True
    assert actions(engine).count(("enable_purge_protection", "ok")) == 2
    ws.delete()
    deleted = rb.Workspace.get_deleted("ws", SUB, RG, engine=engine)
    recovered = rb.Workspace.recover(SUB, RG, "ws", engine=engine).workspace
    assert deleted.held is False and recovered.purge_protection is True


def test_purge_protection_refused_where_the_policy_always_hard_deletes(make_engine: MakeEngine) -> None:
    engine = make_engine()
    with pytest.raises(rb.OperationNotAllowed, match="customer-managed key"):
        create(engine, "cmk", cmk_encrypted=True, purge_protection=True)
    cmk = create(engine, "cmk", cmk_encrypted=True)
    with pytest.raises(rb.OperationNotAllowed, match="purge protection cannot be turned on"):
        cmk.enable_purge_protection()
    no_bin = make_engine(soft_delete={"enabled": False})
    with pytest.raises(rb.OperationNotAllowed, match="soft_delete.enabled is false"):
        create(no_bin, purge_protection=True)


def test_policy_default_purge_protection(make_engine: MakeEngine) -> None:
    engine = make_engine(purge_protection={"default": True})
    assert create(engine, "a").purge_protection is True
    assert create(engine, "b", purge_protection=False).purge_protection is False
    assert create(engine, "cmk", cmk_encrypted=True).purge_protection is False  # cannot have it


def test_purge_protection_under_on_expiry_hold(make_engine: MakeEngine, clock: rb.ManualClock) -> None:
    engine = make_engine(retention={"on_expiry": "hold", "default_days": 2, "min_days": 1, "max_days": 2},
                         orphans={"purge_after_days": 0})
    orphan = create(engine, "orphan", purge_protection=True, principal=ALICE)
    orphan.revoke("alice")
    ws = create(engine, purge_protection=True)
    purge_at = ws.delete().purge_at
    assert purge_at is not None
    clock.set(purge_at - US)
    with pytest.raises(rb.OperationNotAllowed, match="purge protection"):
        engine.purge_by_id(ws.id)
    assert engine.list_deletable(SUB) == []  # not the protected orphan, not before purge_at
    assert engine.purge_expired().purged == []
    clock.set(purge_at)
    assert [d.workspace_id for d in engine.list_deletable(SUB)] == [ws.id]
    assert engine.purge_by_id(ws.id).permanent is True
    with pytest.raises(rb.OperationNotAllowed, match="purge protection"):
        engine.purge_by_id(orphan.id)


def test_purge_protection_permission_at_create(make_engine: MakeEngine) -> None:
    engine = make_engine(permissions={"protect": ["security"]})
    with pytest.raises(rb.PermissionDenied):
        create(engine, purge_protection=True, principal=ALICE)
    ws = create(engine, purge_protection=True, principal=rb.Principal("sam", frozenset({"security"})))
    assert ws.purge_protection is True
    assert create(engine, "plain", principal=ALICE).purge_protection is False


# --- create over a soft-deleted name -----------------------------------------------------------


def test_if_deleted_fail_is_the_default(engine: rb.Engine) -> None:
    create(engine).delete()
    with pytest.raises(rb.NameReserved, match="if_deleted"):
        create(engine)
    with pytest.raises(rb.NameReserved):
        create(engine, if_deleted="fail")


def test_if_deleted_recover_returns_the_holder_with_its_own_settings(engine: rb.Engine) -> None:
    old = create(engine, soft_delete_retention_days=3, components=[rb.Component("models", "m1")])
    old.delete()
    back = create(engine, soft_delete_retention_days=9, if_deleted="recover")
    assert back.id == old.id and back is old
    assert back.soft_delete_retention_days == 3
    assert [c.ref for c in back.components] == ["m1"]
    assert not in_bin(engine)
    assert actions(engine)[-1] == ("recover", "ok")
    fresh = create(engine, "fresh", if_deleted="recover")  # nothing to recover: a plain create
    assert fresh.name == "fresh" and actions(engine)[-1] == ("create", "ok")


def test_if_deleted_recover_leaves_a_holder_in_another_group(make_engine: MakeEngine) -> None:
    engine = make_engine(name_reservation={"scope": "tenant"})
    create(engine, resource_group="other").delete()
    with pytest.raises(rb.NameReserved):
        create(engine, if_deleted="recover")
    assert in_bin(engine, group="other")


def test_if_deleted_purge_purges_then_creates_in_one_transaction(make_engine: MakeEngine) -> None:
    engine = make_engine(name_reservation={"scope": "tenant"})
    old = create(engine, resource_group="other", components=[rb.Component("models", "m-old")])
    old.delete()
    new = create(engine, if_deleted="purge")
    assert new.id != old.id and new.resource_group == RG
    assert not in_bin(engine, group="other")
    assert [t.ref for t in engine.cleanup_tasks()] == ["m-old"]
    assert actions(engine)[-2:] == [("purge", "ok"), ("create", "ok")]


@pytest.mark.parametrize("protection", ["hold", "purge_protection"])
def test_if_deleted_purge_refused_by_a_protection_changes_nothing(engine: rb.Engine, protection: str) -> None:
    old = create(engine, purge_protection=protection == "purge_protection")
    if protection == "hold":
        engine.place_hold(old.id, "keep")
    old.delete()
    expected = rb.WorkspaceHeld if protection == "hold" else rb.OperationNotAllowed
    with pytest.raises(expected):
        create(engine, if_deleted="purge")
    assert in_bin(engine)
    assert engine.cleanup_tasks() == []
    assert actions(engine)[-1][0] == "create" and actions(engine)[-1][1].startswith("refused:")


def test_if_deleted_checks_permissions_create_first(make_engine: MakeEngine) -> None:
    engine = make_engine(permissions={"create": ["maker"], "purge": ["admin"], "recover": ["admin"]})
    maker = rb.Principal("mo", frozenset({"maker"}))
    old = create(engine, principal=maker)
    old.grant("mo", "owner")
    rb.Workspace.delete_many([old], engine=engine)
    with pytest.raises(rb.PermissionDenied, match="create"):
        create(engine, if_deleted="purge", principal=BOB)
    with pytest.raises(rb.PermissionDenied, match="purge"):
        create(engine, if_deleted="purge", principal=maker)
    with pytest.raises(rb.PermissionDenied, match="recover"):
        create(engine, if_deleted="recover", principal=maker)
    assert in_bin(engine)


def test_if_deleted_bad_values(engine: rb.Engine) -> None:
    with pytest.raises(rb.InvalidArgument, match="fail, recover, purge"):
        create(engine, if_deleted="replace")
    with pytest.raises(TypeError):
        create(engine, if_deleted=1)  # type: ignore[arg-type]
    with pytest.raises(rb.InvalidArgument, match="fail, recover, purge"):
        engine._core.create(SUB, RG, "x", None, False, [], None, None, "Recover", None)


# --- auto-deletion -----------------------------------------------------------------------------


def test_auto_delete_runs_at_exactly_its_time(engine: rb.Engine, start: datetime, clock: rb.ManualClock) -> None:
    due = start + timedelta(hours=5)
    ws = create(engine, auto_delete_at=due)
    keep = create(engine, "keep")
    assert ws.auto_delete_at == due and keep.auto_delete_at is None
    clock.set(due - US)
    report = engine.purge_expired()
    assert report.auto_deleted == [] and rb.Workspace.get("ws", SUB, RG, engine=engine)
    clock.set(due)
    report = engine.purge_expired()
    assert report.auto_deleted == [(SUB, RG, "ws")] and report.auto_delete_refused == []
    assert in_bin(engine) and rb.Workspace.get("keep", SUB, RG, engine=engine)
    record = engine.audit_log(SUB)[-1]
    assert (record.action, record.outcome, record.principal_id, record.workspace_id) == (
        "delete", "ok", "auto-delete", ws.id)
    assert engine.purge_expired().auto_deleted == []  # once
    recovered = rb.Workspace.recover(SUB, RG, "ws", engine=engine).workspace
    assert recovered.auto_delete_at is None  # done; a recover does not delete it again
    assert engine.purge_expired().auto_deleted == []


def test_auto_delete_from_the_policy_and_set_auto_delete(make_engine: MakeEngine, start: datetime,
                                                         clock: rb.ManualClock) -> None:
    engine = make_engine(auto_delete={"after_days": 2}, permissions={"delete": ["owner", "ops"]})
    ws = create(engine, principal=ALICE)
    assert ws.auto_delete_at == start + timedelta(days=2)
    explicit = create(engine, "explicit", auto_delete_at=start + timedelta(hours=1))
    assert explicit.auto_delete_at == start + timedelta(hours=1)
    with pytest.raises(rb.PermissionDenied):
        ws.set_auto_delete(None, principal=BOB)
    ws.set_auto_delete(None, principal=rb.Principal("olga", frozenset({"ops"})))
    assert ws.auto_delete_at is None
    later = start + timedelta(days=9)
    ws.set_auto_delete(later, principal=ALICE)
    assert rb.Workspace.get("ws", SUB, RG, engine=engine).auto_delete_at == later
    assert ("set_auto_delete", "refused:permission_denied") in actions(engine)
    clock.set(start + timedelta(days=3))
    assert engine.purge_expired().auto_deleted == [(SUB, RG, "explicit")]
    with pytest.raises(ValueError, match="naive"):
        ws.set_auto_delete(datetime(2030, 1, 1))
    with pytest.raises(TypeError):
        ws.set_auto_delete("tomorrow")  # type: ignore[arg-type]
    ws.delete()
    with pytest.raises(rb.OperationNotAllowed):
        ws.set_auto_delete(later)


def test_auto_delete_refusals_stay_live_and_are_reported(make_engine: MakeEngine, start: datetime,
                                                         clock: rb.ManualClock) -> None:
    engine = make_engine(preconditions={"require_stopped": True, "require_confirm_name": True,
                                        "blockers": ["running_jobs"]})
    engine.set_facts_provider(lambda w: {"running_jobs": 2 if w.name == "busy" else 0})
    at = start + timedelta(minutes=1)
    running = create(engine, "running", auto_delete_at=at)
    busy = create(engine, "busy", auto_delete_at=at)
    busy.stop()
    liened = create(engine, "liened", auto_delete_at=at)
    liened.stop()
    engine.add_lien(liened.id, "ci", "pipeline uses it")
    ok = create(engine, "ok", auto_delete_at=at)
    ok.stop()  # confirm_name is not asked of an auto-deletion
    clock.set(at)
    dry = engine.purge_expired(dry_run=True)
    assert dry.dry_run and dry.auto_deleted == [(SUB, RG, "ok")]
    assert rb.Workspace.get("ok", SUB, RG, engine=engine)
    report = engine.purge_expired()
    assert report.auto_deleted == [(SUB, RG, "ok")]
    assert sorted(report.auto_delete_refused) == sorted([
        (SUB, RG, "running", "workspace_not_stopped"),
        (SUB, RG, "busy", "precondition_failed"),
        (SUB, RG, "liened", "precondition_failed"),
    ])
    assert sorted(report.auto_delete_refused) == sorted(dry.auto_delete_refused)
    for name in ("running", "busy", "liened"):
        assert rb.Workspace.get(name, SUB, RG, engine=engine).state in ("running", "stopped")
    refused = [r for r in engine.audit_log(SUB) if r.outcome.startswith("refused:")]
    assert {r.name for r in refused} == {"running", "busy", "liened"}
    assert all(r.principal_id == "auto-delete" and r.action == "delete" for r in refused)


def test_auto_delete_of_a_workspace_the_policy_hard_deletes(make_engine: MakeEngine, start: datetime,
                                                            clock: rb.ManualClock) -> None:
    engine = make_engine()
    cmk = create(engine, "cmk", cmk_encrypted=True, auto_delete_at=start,
                 components=[rb.Component("compute_instance", "ci-1")])
    held = create(engine, "held", cmk_encrypted=True, auto_delete_at=start)
    engine.place_hold(held.id, "evidence")
    report = engine.purge_expired()
    assert report.auto_deleted == [(SUB, RG, "cmk")]
    assert report.auto_delete_refused == [(SUB, RG, "held", "workspace_held")]
    assert [t.ref for t in report.cleanup] == ["ci-1"]
    assert not in_bin(engine, "cmk")
    with pytest.raises(rb.WorkspaceNotFound):
        rb.Workspace.get_by_id(cmk.id, engine=engine)


def test_auto_delete_bad_values(engine: rb.Engine, make_policy: Any) -> None:
    with pytest.raises(ValueError, match="naive"):
        create(engine, auto_delete_at=datetime(2030, 1, 1))
    ws = create(engine, "edge")
    # Valid datetimes whose UTC value Python cannot hold: refused, never an OverflowError.
    for edge in (datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=14))),
                 datetime(9999, 12, 31, 23, 0, tzinfo=timezone(timedelta(hours=-14)))):
        with pytest.raises(rb.InvalidArgument, match="outside the times recyclebin can represent"):
            ws.set_auto_delete(edge)
        with pytest.raises(rb.InvalidArgument, match="outside"):
            rb.Workspace.list_deleted(SUB, engine=engine, purge_before=edge)
    ws.set_auto_delete(datetime(1, 1, 1, 14, tzinfo=timezone(timedelta(hours=14))))  # exactly the first
    assert ws.auto_delete_at == datetime(1, 1, 1, tzinfo=timezone.utc)
    with pytest.raises(TypeError):
        create(engine, auto_delete_at="2030-01-01")  # type: ignore[arg-type]
    for bad in (0, -1, 36_501):
        with pytest.raises(rb.PolicyError, match="auto_delete.after_days"):
            make_policy(auto_delete={"after_days": bad})


# --- check order -------------------------------------------------------------------------------


def test_check_order_where_protections_meet_other_checks(make_engine: MakeEngine) -> None:
    # permission before hold
    engine = make_engine(preconditions={"require_confirm_name": True, "blockers": ["jobs"]})
    engine.set_facts_provider(lambda w: {"jobs": 1})
    ws = create(engine, principal=ALICE, purge_protection=True)
    engine.place_hold(ws.id, "h")
    engine.add_lien(ws.id, "o", "r")
    with pytest.raises(rb.PermissionDenied):
        ws.delete(permanently_delete=True, principal=BOB)
    # flags (dependent resources) before the hold
    with pytest.raises(rb.OperationNotAllowed, match="delete_dependent_resources") as flag:
        ws.delete(delete_dependent_resources=True)
    assert not isinstance(flag.value, rb.WorkspaceHeld)
    # a hold before purge protection
    with pytest.raises(rb.WorkspaceHeld):
        ws.delete(permanently_delete=True)
    # purge protection before the preconditions (liens)
    engine.release_hold(engine.holds(ws.id)[0].id)
    with pytest.raises(rb.OperationNotAllowed, match="purge protection"):
        ws.delete(permanently_delete=True)
    # liens first among the preconditions: before confirm_name and blockers
    with pytest.raises(rb.PreconditionFailed, match="liens"):
        ws.delete()
    with pytest.raises(rb.PreconditionFailed, match="liens"):
        ws.delete(confirm_name="wrong")
    engine.remove_lien(engine.liens(ws.id)[0].id)
    with pytest.raises(rb.PreconditionFailed, match="confirm"):
        ws.delete()
    with pytest.raises(rb.PreconditionFailed, match="jobs"):
        ws.delete(confirm_name="ws")


def test_check_order_permanent_delete_not_allowed_comes_before_the_hold(make_engine: MakeEngine) -> None:
    engine = make_engine(permanent_delete={"allowed": False})
    ws = create(engine)
    engine.place_hold(ws.id, "h")
    with pytest.raises(rb.OperationNotAllowed, match="does not allow permanent delete") as refused:
        ws.delete(permanently_delete=True)
    assert not isinstance(refused.value, rb.WorkspaceHeld)
    ws.delete()
    with pytest.raises(rb.OperationNotAllowed, match="does not allow purging") as purge:
        rb.Workspace.purge(SUB, RG, "ws", engine=engine)
    assert not isinstance(purge.value, rb.WorkspaceHeld)


def test_check_order_state_before_protections(engine: rb.Engine) -> None:
    ws = create(engine)
    engine.place_hold(ws.id, "h")
    ws.delete()
    with pytest.raises(rb.OperationNotAllowed, match="soft-deleted") as refused:
        engine._core.remove(ws.id, False, True, None, None, False)
    assert not isinstance(refused.value, rb.WorkspaceHeld)


# --- one sweep over many ----------------------------------------------------------------------


def test_purge_expired_over_10000_mixed_workspaces(make_engine: MakeEngine, start: datetime,
                                                   clock: rb.ManualClock) -> None:
    engine = make_engine(retention={"default_days": 1, "min_days": 1, "max_days": 1},
                         preconditions={"blockers": ["running_jobs"]})
    engine.set_facts_provider(lambda w: {"running_jobs": 1 if w.name.startswith("blocked") else 0})
    expected_purged: set[str] = set()
    expected_auto: set[str] = set()
    expected_refused: set[str] = set()
    total = 10_000
    for i in range(total):
        kind = i % 5
        if kind == 0:  # expired, plain
            name = f"plain-{i}"
            create(engine, name).delete()
            expected_purged.add(name)
        elif kind == 1:  # expired, held: stays
            name = f"held-{i}"
            ws = create(engine, name)
            engine.place_hold(ws.id, "hold")
            ws.delete()
        elif kind == 2:  # expired, protected: expiry purges it as usual
            name = f"protected-{i}"
            create(engine, name, purge_protection=True).delete()
            expected_purged.add(name)
        elif kind == 3:  # auto-delete due, no blocker
            name = f"auto-{i}"
            create(engine, name, auto_delete_at=start + timedelta(hours=1))
            expected_auto.add(name)
        else:  # auto-delete due, blocked
            name = f"blocked-{i}"
            create(engine, name, auto_delete_at=start + timedelta(hours=1))
            expected_refused.add(name)
    clock.set(start + timedelta(days=1))
    report = engine.purge_expired()
    assert {n for _, _, n in report.purged} == expected_purged
    assert len(report.purged) == len(expected_purged) == 4_000
    assert {n for _, _, n in report.auto_deleted} == expected_auto
    assert {(n, code) for _, _, n, code in report.auto_delete_refused} == {
        (n, "precondition_failed") for n in expected_refused}
    held = [w for w in rb.Workspace.list_deleted(SUB, engine=engine) if w.held]
    assert len(held) == 2_000
    bin_names = {w.name for w in rb.Workspace.list_deleted(SUB, engine=engine)}
    assert bin_names == {w.name for w in held} | expected_auto
    again = engine.purge_expired()
    assert again.purged == [] and again.auto_deleted == []
    assert len(again.auto_delete_refused) == 2_000


# --- policy keys -------------------------------------------------------------------------------


def test_policy_keys_decode_and_show() -> None:
    policy = rb.Policy.from_yaml(
        "version: 1\nname: p\npurge_protection: {default: true}\nauto_delete: {after_days: 3}\n"
        "permissions: {hold: [legal], lien: [platform-ops], protect: [security]}\n"
        "tenants:\n  contoso: {purge_protection: {default: false}, auto_delete: {after_days: null}}\n")
    rules = policy.rules()
    assert rules["purge_protection"] == {"default": True}
    assert rules["auto_delete"] == {"after_days": 3}
    assert rules["permissions"]["hold"] == ["legal"]
    assert policy.rules("contoso")["purge_protection"] == {"default": False}
    assert policy.rules("contoso")["auto_delete"] == {"after_days": None}
    assert "purge_protection:\n  default: true" in policy.to_yaml()
    for name in rb.Policy.builtin_names():  # every built-in stays valid, protections off
        builtin = rb.Policy.builtin(name).rules()
        assert builtin["purge_protection"] == {"default": False}
        assert builtin["auto_delete"] == {"after_days": None}


@pytest.mark.parametrize("text, message", [
    ("purge_protection: {default: yes}", "3:29: 'purge_protection.default' must be true or false, not 'yes'"),
    ("purge_protection: {default: \"true\"}", "3:29: 'purge_protection.default' must be true or false, "
                                              "not the string"),
    ("purge_protection: {enabled: true}", "3:20: unknown key 'enabled' in 'purge_protection'; allowed: default"),
    ("auto_delete: {after_days: 0}", "3:27: 'auto_delete.after_days' is 0; allowed: null (never) or 1..36500"),
    ("auto_delete: {after_days: many}", "3:27: 'auto_delete.after_days' must be an integer"),
    ("auto_delete: {days: 3}", "3:15: unknown key 'days' in 'auto_delete'; allowed: after_days"),
    ("permissions: {hold: []}", "3:21: 'permissions.hold' lists no role"),
    ("permissions: {freeze: [admin]}", "3:15: unknown key 'freeze' in 'permissions'; allowed: create, stop, "
                                       "start, grant, revoke, delete, recover, purge, hold, lien, protect"),
    ("soft_delete: {enabled: false}\npurge_protection: {default: true}",
     "4:29: 'purge_protection.default' is true, but 'soft_delete.enabled' is false"),
    ("tenants: {c: {auto_delete: {after_days: -1}}}",
     "3:41: 'auto_delete.after_days' is -1; allowed: null (never) or 1..36500 days (tenant 'c'"),
    ("tenants: {c: {holds: {}}}", "3:15: unknown key 'holds' in 'tenants.c'; a tenant may override: retention, "
                                  "soft_delete, permanent_delete, name_reservation, preconditions, orphans, "
                                  "purge_protection, auto_delete, components, permissions"),
])
def test_policy_key_errors_point_at_the_value(text: str, message: str) -> None:
    with pytest.raises(rb.PolicyError) as error:
        rb.Policy.from_yaml("version: 1\nname: p\n" + text + "\n")
    assert str(error.value).startswith(message), str(error.value)


def test_check_order_batch_before_the_hold_and_protection_before_retention(make_engine: MakeEngine,
                                                                          clock: rb.ManualClock) -> None:
    engine = make_engine()
    a, b = create(engine, "a"), create(engine, "b")
    engine.place_hold(b.id, "h")
    with pytest.raises(rb.OperationNotAllowed, match="one workspace at a time") as batch:
        rb.Workspace.delete_many([a, b], permanently_delete=True, engine=engine)
    assert not isinstance(batch.value, rb.WorkspaceHeld)
    with pytest.raises(rb.WorkspaceHeld):  # alone, the hold is what refuses
        rb.Workspace.delete_many([b], permanently_delete=True, engine=engine)
    # A purge date that cannot be written (retention) is checked after purge protection.
    far = make_engine(retention={"default_days": 36_500, "min_days": 1, "max_days": 36_500})
    clock.set(datetime(9950, 1, 1, tzinfo=timezone.utc))
    ws = create(far, "far", purge_protection=True)
    with pytest.raises(rb.OperationNotAllowed, match="purge protection"):
        ws.delete(permanently_delete=True)
    with pytest.raises(rb.InvalidArgument, match="purge date"):
        ws.delete()
