"""The SDK facade: every Behaviour bullet of API.md, plus the facade's own promises (state
kept current, frozen results, readable reprs)."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

import recyclebin as rb

from conftest import START, MakeEngine

SUB, RG = "sub-1", "rg-1"
US = timedelta(microseconds=1)


def create(engine: rb.Engine, name: str = "ws", **kwargs: Any) -> rb.Workspace:
    return rb.Workspace.create(SUB, kwargs.pop("group", RG), name, engine=engine, **kwargs)


# --- the workspace object ----------------------------------------------------------------------


def test_create_and_attributes(engine: rb.Engine, start: datetime) -> None:
    components = [rb.Component("compute_instance", "ci-1"),
                  rb.Component("volume", "vol-1", standalone=True)]
    ws = rb.Workspace.create(SUB, RG, "ws", soft_delete_retention_days=7, cmk_encrypted=False,
                             components=components, engine=engine)
    assert isinstance(ws.id, str) and ws.id
    assert (ws.name, ws.subscription_id, ws.resource_group) == ("ws", SUB, RG)
    assert ws.soft_delete_retention_days == 7
    assert ws.state == "running"
    assert ws.components == components
    assert ws.cmk_encrypted is False
    assert ws.created_at == start
    ws.components.clear()  # a copy
    assert ws.components == components
    default = create(engine, "ws2")
    assert default.soft_delete_retention_days == 14  # the policy's default
    assert "ws" in repr(ws) and ws.id in repr(ws) and "running" in repr(ws)
    with pytest.raises(AttributeError):
        ws.state = "stopped"  # type: ignore[misc]
    with pytest.raises(TypeError):
        rb.Workspace()


def test_stop_start_idempotent_and_state_current(engine: rb.Engine) -> None:
    ws = create(engine)
    ws.stop()
    assert ws.state == "stopped"
    ws.stop()
    assert ws.state == "stopped"
    ws.start()
    ws.start()
    assert ws.state == "running"
    assert rb.Workspace.get("ws", SUB, RG, engine=engine).state == "running"


def test_one_object_per_workspace(engine: rb.Engine) -> None:
    ws = create(engine)
    again = rb.Workspace.get("ws", SUB, RG, engine=engine)
    assert again is ws
    again.stop()
    assert ws.state == "stopped"
    assert rb.Workspace.get_by_id(ws.id, engine=engine) is ws


def test_component_and_principal_values() -> None:
    component = rb.Component("kind", "ref")
    assert component.standalone is False
    with pytest.raises(dataclasses.FrozenInstanceError):
        component.kind = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        rb.Component("kind", 3)  # type: ignore[arg-type]
    principal = rb.Principal("alice")
    assert principal.roles == frozenset()
    admin = rb.Principal("bob", roles={"admin", "reader"})  # any collection of names
    assert admin.roles == frozenset({"admin", "reader"})
    assert admin == rb.Principal("bob", roles=frozenset({"reader", "admin"}))
    assert repr(admin) == "Principal('bob', roles={'admin', 'reader'})"
    with pytest.raises(AttributeError):
        admin.id = "eve"  # type: ignore[misc]
    with pytest.raises(TypeError):
        rb.Principal("bob", roles="admin")


def test_facade_type_checks(engine: rb.Engine) -> None:
    with pytest.raises(TypeError):
        rb.Workspace.create(SUB, RG, 5, engine=engine)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        create(engine, components=[("compute_instance", "ci-1")])
    with pytest.raises(TypeError):
        create(engine, principal="alice")
    with pytest.raises(TypeError):
        rb.Workspace.list_deleted(SUB, limit=True, engine=engine)
    for limit in (0, -1):
        with pytest.raises(ValueError, match="at least 1"):
            rb.Workspace.list_deleted(SUB, limit=limit, engine=engine)
    ws = create(engine)
    with pytest.raises(TypeError):
        ws.delete(permanently_delete="yes")  # type: ignore[arg-type]
    assert ws.state == "running"
    ws.delete()
    assert [i.id for i in rb.Workspace.list_deleted(SUB, limit=2**64 - 1, engine=engine)] == [ws.id]


# --- Behaviour: soft-deleted workspaces --------------------------------------------------------


def test_get_of_soft_deleted_is_not_found(engine: rb.Engine) -> None:
    ws = create(engine)
    ws.delete()
    assert ws.state == "deleted"
    with pytest.raises(rb.WorkspaceNotFound):
        rb.Workspace.get("ws", SUB, RG, engine=engine)
    with pytest.raises(rb.WorkspaceNotFound):
        rb.Workspace.get_by_id(ws.id, engine=engine)


@pytest.mark.parametrize("operation", ["stop", "start", "grant", "revoke", "delete"])
def test_operations_on_soft_deleted_are_not_allowed(engine: rb.Engine, operation: str) -> None:
    ws = create(engine)
    ws.grant("bob", "reader")
    ws.delete()
    calls = {
        "stop": ws.stop,
        "start": ws.start,
        "grant": lambda: ws.grant("carol", "reader"),
        "revoke": lambda: ws.revoke("bob"),
        "delete": ws.delete,
    }
    with pytest.raises(rb.OperationNotAllowed) as caught:
        calls[operation]()
    assert "recover" in str(caught.value) and "purge" in str(caught.value)


def test_purge_and_get_deleted_of_workspace_not_in_bin(engine: rb.Engine) -> None:
    create(engine)  # live, not in the bin
    with pytest.raises(rb.WorkspaceNotFound):
        rb.Workspace.purge(SUB, RG, "ws", engine=engine)
    with pytest.raises(rb.WorkspaceNotFound):
        rb.Workspace.get_deleted("ws", SUB, RG, engine=engine)
    with pytest.raises(rb.WorkspaceNotFound):
        rb.Workspace.get_deleted("never", SUB, RG, engine=engine)
    with pytest.raises(rb.WorkspaceNotFound):
        rb.Workspace.recover(SUB, RG, "never", engine=engine)


# --- Behaviour: list_deleted -------------------------------------------------------------------


def test_list_live_by_group_then_name_paged_with_the_same_objects(engine: rb.Engine) -> None:
    made = {(rg, name): rb.Workspace.create("sub", rg, name, engine=engine)
            for rg, name in (("rg-2", "b"), ("rg-1", "z"), ("rg-2", "a.b"), ("rg-1", "é"))}
    made[("rg-1", "z")].stop()
    rb.Workspace.create("sub", "rg-1", "gone", engine=engine).delete()
    rb.Workspace.create("other", "rg-1", "elsewhere", engine=engine)

    everything = rb.Workspace.list("sub", engine=engine)
    assert isinstance(everything, rb.WorkspacePage) and isinstance(everything, list)
    assert [(w.resource_group, w.name) for w in everything] == [
        ("rg-1", "z"), ("rg-1", "é"), ("rg-2", "a.b"), ("rg-2", "b")]
    assert everything.next_cursor is None
    assert all(w is made[(w.resource_group, w.name)] for w in everything)  # one object each
    assert everything[0].state == "stopped"

    seen: list[str] = []
    cursor: str | None = None
    for _ in range(4):  # bounded: 4 items, pages of 3
        page = rb.Workspace.list("sub", limit=3, cursor=cursor, engine=engine)
        seen += [w.name for w in page]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == ["z", "é", "a.b", "b"]
    assert [w.name for w in rb.Workspace.list("sub", "rg-2", engine=engine)] == ["a.b", "b"]
    assert rb.Workspace.list("nobody", engine=engine) == []
    assert repr(rb.Workspace.list("sub", "rg-2", limit=1, engine=engine)).startswith(
        "WorkspacePage([Workspace(name='a.b'")

    rb.Workspace.recover("sub", "rg-1", "gone", engine=engine)
    assert "gone" in [w.name for w in rb.Workspace.list("sub", "rg-1", engine=engine)]


def test_list_live_argument_errors(engine: rb.Engine) -> None:
    with pytest.raises(TypeError, match="limit must be an int"):
        rb.Workspace.list("sub", limit="2", engine=engine)  # type: ignore[arg-type]
    with pytest.raises(rb.InvalidArgument, match="at least 1"):
        rb.Workspace.list("sub", limit=0, engine=engine)
    with pytest.raises(rb.InvalidArgument, match="not a list cursor"):
        rb.Workspace.list("sub", limit=1, cursor="abc.de", engine=engine)
    with pytest.raises(TypeError):
        rb.Workspace.list(7, engine=engine)  # type: ignore[arg-type]
    with pytest.raises(RuntimeError):
        rb.Workspace.list("sub")  # neither engine= nor a default engine


def test_list_deleted_purge_before(engine: rb.Engine, clock: rb.ManualClock) -> None:
    """Version 2: only those whose purge_at is earlier than purge_before (strictly)."""
    purge_at: list[datetime] = []
    for index in range(5):
        result = create(engine, f"ws{index}", group=f"rg-{index % 2}",
                        soft_delete_retention_days=7 + index).delete()
        assert result.purge_at is not None
        purge_at.append(result.purge_at)
        clock.advance(timedelta(minutes=1))

    def names(before: datetime | None, group: str | None = None, limit: int | None = None) -> list[str]:
        out: list[str] = []
        cursor: str | None = None
        for _ in range(20):
            page = rb.Workspace.list_deleted(SUB, group, limit=limit, cursor=cursor, engine=engine,
                                             purge_before=before)
            out += [item.name for item in page]
            assert all(before is None or item.purge_at < before for item in page)
            cursor = page.next_cursor
            if cursor is None:
                break
        return out

    assert names(None) == ["ws4", "ws3", "ws2", "ws1", "ws0"]
    assert names(purge_at[2]) == ["ws1", "ws0"]  # equal is not earlier
    assert names(purge_at[2] + timedelta(microseconds=1), limit=1) == ["ws2", "ws1", "ws0"]
    assert names(purge_at[4], group="rg-0") == ["ws2", "ws0"]
    assert names(purge_at[0]) == []
    # Any timezone: the same instant.
    plus_two = timezone(timedelta(hours=2))
    assert names(purge_at[2].astimezone(plus_two)) == ["ws1", "ws0"]


def test_list_deleted_purge_before_refuses_naive_and_other_types(engine: rb.Engine) -> None:
    create(engine).delete()
    with pytest.raises(ValueError, match="purge_before is a naive datetime"):
        rb.Workspace.list_deleted(SUB, engine=engine, purge_before=datetime(2030, 1, 1))
    with pytest.raises(TypeError, match="purge_before must be a datetime.datetime or None, not str"):
        rb.Workspace.list_deleted(SUB, engine=engine,
                                  purge_before="2030-01-01T00:00:00Z")  # type: ignore[arg-type]
    # The core refuses a naive datetime too.
    with pytest.raises(ValueError, match="purge_before is a naive datetime"):
        engine._core.list_deleted(SUB, None, None, None, None, datetime(2030, 1, 1))


def test_list_deleted_newest_first_and_paged(engine: rb.Engine, clock: rb.ManualClock) -> None:
    names = [f"ws{index}" for index in range(7)]
    for index, name in enumerate(names):
        create(engine, name, group=f"rg-{index % 2}").delete()
        clock.advance(timedelta(minutes=1))
    create(engine, "live")
    rb.Workspace.create("sub-other", RG, "elsewhere", engine=engine).delete()

    everything = rb.Workspace.list_deleted(SUB, engine=engine)
    assert isinstance(everything, rb.DeletedPage) and isinstance(everything, list)
    assert [item.name for item in everything] == names[::-1]
    assert everything.next_cursor is None
    assert [i.deleted_at for i in everything] == sorted((i.deleted_at for i in everything),
                                                         reverse=True)

    pages: list[list[str]] = []
    cursor: str | None = None
    while True:
        page = rb.Workspace.list_deleted(SUB, limit=3, cursor=cursor, engine=engine)
        pages.append([item.name for item in page])
        cursor = page.next_cursor
        if cursor is None:
            break
    assert pages == [names[6:3:-1], names[3:0:-1], names[0:1]]

    group = rb.Workspace.list_deleted(SUB, "rg-1", engine=engine)
    assert [item.name for item in group] == ["ws5", "ws3", "ws1"]
    assert all(item.resource_group == "rg-1" for item in group)


def test_list_deleted_equal_deletion_times_page_without_loss(engine: rb.Engine) -> None:
    names = {f"ws{index}" for index in range(5)}
    for name in sorted(names):
        create(engine, name).delete()  # all at the same instant
    seen: list[str] = []
    cursor: str | None = None
    while True:
        page = rb.Workspace.list_deleted(SUB, limit=2, cursor=cursor, engine=engine)
        seen += [item.name for item in page]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert sorted(seen) == sorted(names) and len(seen) == len(names)
    assert seen == [item.name for item in rb.Workspace.list_deleted(SUB, engine=engine)]


def test_deleted_workspace_fields(engine: rb.Engine, start: datetime) -> None:
    ws = create(engine, soft_delete_retention_days=5,
                components=[rb.Component("models", "m-1"), rb.Component("notebooks", "nb-1")])
    ws.delete()
    item = rb.Workspace.get_deleted("ws", SUB, RG, engine=engine)
    assert (item.id, item.name, item.subscription_id, item.resource_group) == (ws.id, "ws", SUB, RG)
    assert item.deleted_at == start
    assert item.purge_at == start + timedelta(days=5)
    assert item.retention_days == 5
    assert sorted(item.retained) == ["models", "notebooks"]
    assert item.time_to_purge == timedelta(days=5)
    assert rb.Workspace.list_deleted(SUB, engine=engine) == [item]


# --- Behaviour: delete flavours ----------------------------------------------------------------


def test_soft_delete_result(make_engine: MakeEngine, start: datetime) -> None:
    engine = make_engine(components={"compute_instance": {"on_delete": "destroy"},
                                     "volume": {"on_delete": "preserve"},
                                     "default": {"on_delete": "retain"}})
    ws = create(engine, soft_delete_retention_days=2, components=[
        rb.Component("compute_instance", "ci-1"), rb.Component("volume", "vol-1"),
        rb.Component("models", "m-1")])
    result = ws.delete()
    assert result.permanent is False
    assert result.deleted_at == start
    assert result.purge_at == start + timedelta(days=2)
    assert result.retained == ["models"]
    assert result.destroyed == ["compute_instance"]
    assert result.preserved == ["volume"]
    assert [(t.kind, t.ref) for t in result.cleanup] == [("compute_instance", "ci-1")]
    assert result.warnings == []


def test_permanent_delete_puts_retain_kinds_in_destroyed(make_engine: MakeEngine) -> None:
    engine = make_engine(components={"volume": {"on_delete": "preserve"}})
    ws = create(engine, components=[rb.Component("models", "m-1"), rb.Component("volume", "v-1")])
    result = ws.delete(permanently_delete=True)
    assert result.permanent is True and result.purge_at is None
    assert result.destroyed == ["models"] and result.retained == []
    assert result.preserved == ["volume"]
    with pytest.raises(rb.WorkspaceNotFound):
        rb.Workspace.get_deleted("ws", SUB, RG, engine=engine)
    create(engine)  # the name is free at once


def test_delete_dependent_resources_destroys_preserved_but_never_standalone(
        make_engine: MakeEngine) -> None:
    engine = make_engine(components={"volume": {"on_delete": "preserve"}})
    ws = create(engine, components=[rb.Component("volume", "vol-1"),
                                    rb.Component("volume", "vol-standalone", standalone=True)])
    result = ws.delete(permanently_delete=True, delete_dependent_resources=True)
    assert result.destroyed == ["volume"]
    assert result.preserved == ["volume"]
    assert [t.ref for t in result.cleanup] == ["vol-1"]


def test_no_wait_has_no_effect(engine: rb.Engine) -> None:
    ws = create(engine)
    result = ws.delete(no_wait=True)
    assert result.permanent is False
    assert rb.Workspace.get_deleted("ws", SUB, RG, engine=engine).id == ws.id


def test_cmk_workspaces_are_always_hard_deleted(engine: rb.Engine) -> None:
    ws = create(engine, cmk_encrypted=True)
    assert ws.cmk_encrypted is True
    assert ws.delete().permanent is True
    create(engine, cmk_encrypted=True)


def test_soft_delete_disabled_makes_every_delete_permanent(make_engine: MakeEngine) -> None:
    engine = make_engine(soft_delete={"enabled": False})
    assert create(engine).delete().permanent is True


# --- Behaviour: delete_many --------------------------------------------------------------------


def test_delete_many_is_all_or_nothing(make_engine: MakeEngine) -> None:
    engine = make_engine(preconditions={"require_stopped": True})
    first, second, third = create(engine, "a"), create(engine, "b"), create(engine, "c")
    first.stop()
    third.stop()
    with pytest.raises(rb.WorkspaceNotStopped) as caught:
        rb.Workspace.delete_many([first, second, third])
    assert "'b'" in str(caught.value) or "b" in str(caught.value)
    for name in ("a", "b", "c"):
        assert rb.Workspace.get(name, SUB, RG, engine=engine).state != "deleted"
    assert first.state == "stopped"
    second.stop()
    results = rb.Workspace.delete_many([first, second, third])
    assert [r.permanent for r in results] == [False, False, False]
    assert {w.state for w in (first, second, third)} == {"deleted"}
    assert len(rb.Workspace.list_deleted(SUB, engine=engine)) == 3


def test_delete_many_permanent_batch_refused(engine: rb.Engine, make_engine: MakeEngine) -> None:
    first, second = create(engine, "a"), create(engine, "b")
    with pytest.raises(rb.OperationNotAllowed):
        rb.Workspace.delete_many([first, second], permanently_delete=True)
    assert [w.state for w in (first, second)] == ["running", "running"]
    assert [r.permanent for r in rb.Workspace.delete_many([first], permanently_delete=True)] == [True]
    batch = make_engine(permanent_delete={"batch": True})
    results = rb.Workspace.delete_many([create(batch, "a"), create(batch, "b")],
                                       permanently_delete=True)
    assert [r.permanent for r in results] == [True, True]


def test_delete_many_engines(make_engine: MakeEngine) -> None:
    one, two = make_engine(), make_engine()
    with pytest.raises(ValueError):
        rb.Workspace.delete_many([create(one), create(two)])
    assert rb.Workspace.delete_many([], engine=one) == []
    with pytest.raises(TypeError):
        rb.Workspace.delete_many(["id"], engine=one)  # type: ignore[list-item]


# --- Behaviour: recover ------------------------------------------------------------------------


def test_recover_restores_and_reports(make_engine: MakeEngine) -> None:
    engine = make_engine(components={
        "compute_instance": {"on_delete": "destroy"},
        "role_assignments": {"on_delete": "destroy", "on_recover": "reattach"},
        "default": {"on_delete": "retain"}})
    ws = create(engine, components=[rb.Component("compute_instance", "ci-1"),
                                    rb.Component("role_assignments", "ra-1"),
                                    rb.Component("models", "m-1")])
    ws.stop()
    ws.delete()
    result = rb.Workspace.recover(SUB, RG, "ws", engine=engine)
    assert result.workspace is ws  # the same object, current again
    assert ws.state in ("running", "stopped")
    assert result.restored == ["models"]
    assert result.reattached == ["role_assignments"]
    assert result.must_recreate == ["compute_instance"]
    assert sorted(c.kind for c in ws.components) == ["models", "role_assignments"]
    assert rb.Workspace.get("ws", SUB, RG, engine=engine) is ws
    ws.start()
    assert ws.state == "running"


def test_recover_when_live_workspace_holds_the_name(make_engine: MakeEngine) -> None:
    engine = make_engine(name_reservation={"scope": "none"})
    create(engine).delete()
    create(engine)  # possible with scope: none
    with pytest.raises(rb.WorkspaceExists):
        rb.Workspace.recover(SUB, RG, "ws", engine=engine)


def test_name_reservation_scopes(make_engine: MakeEngine) -> None:
    group = make_engine()
    create(group).delete()
    create(group, group="rg-other")  # another group: free
    tenant = make_engine(name_reservation={"scope": "tenant"})
    create(tenant).delete()
    with pytest.raises(rb.NameReserved):
        create(tenant, group="rg-other")
    rb.Workspace.create("sub-other", RG, "ws", engine=tenant)  # another tenant: free


# --- Behaviour: expiry -------------------------------------------------------------------------


def test_retention_boundary_one_microsecond(engine: rb.Engine, clock: rb.ManualClock,
                                            start: datetime) -> None:
    ws = create(engine, soft_delete_retention_days=1, components=[rb.Component("models", "m-1")])
    purge_at = ws.delete().purge_at
    assert purge_at == start + timedelta(days=1)

    clock.set(purge_at - US)  # still in the bin
    assert rb.Workspace.get_deleted("ws", SUB, RG, engine=engine).purge_at == purge_at
    assert [item.name for item in rb.Workspace.list_deleted(SUB, engine=engine)] == ["ws"]
    with pytest.raises(rb.NameReserved) as caught:
        create(engine)
    assert caught.value.reserved_until == purge_at

    clock.set(purge_at)  # expired: now >= purge_at
    with pytest.raises(rb.WorkspaceNotFound):
        rb.Workspace.get_deleted("ws", SUB, RG, engine=engine)
    with pytest.raises(rb.WorkspaceNotFound):
        rb.Workspace.recover(SUB, RG, "ws", engine=engine)
    with pytest.raises(rb.WorkspaceNotFound):
        rb.Workspace.purge(SUB, RG, "ws", engine=engine)
    assert list(rb.Workspace.list_deleted(SUB, engine=engine)) == []
    assert engine.cleanup_tasks() == []  # purge_expired has not run...
    fresh = create(engine)  # ...yet the name is free
    assert fresh.id != ws.id


def test_recover_one_microsecond_before_expiry(engine: rb.Engine, clock: rb.ManualClock) -> None:
    ws = create(engine, soft_delete_retention_days=1)
    purge_at = ws.delete().purge_at
    assert purge_at is not None
    clock.set(purge_at - US)
    assert rb.Workspace.recover(SUB, RG, "ws", engine=engine).workspace.id == ws.id


def test_purge_expired_removes_and_writes_cleanup(engine: rb.Engine, clock: rb.ManualClock) -> None:
    create(engine, "old", soft_delete_retention_days=1,
           components=[rb.Component("models", "m-1")]).delete()
    create(engine, "young", soft_delete_retention_days=5).delete()
    clock.advance(timedelta(days=1))
    report = engine.purge_expired()
    assert report.purged == [(SUB, RG, "old")]
    assert [(t.kind, t.ref) for t in report.cleanup] == [("models", "m-1")]
    assert engine.cleanup_tasks() == report.cleanup
    assert engine.purge_expired().purged == []
    assert [item.name for item in rb.Workspace.list_deleted(SUB, engine=engine)] == ["young"]


def test_on_expiry_hold(make_engine: MakeEngine, clock: rb.ManualClock) -> None:
    engine = make_engine(retention={"on_expiry": "hold"})
    ws = create(engine, soft_delete_retention_days=1)
    purge_at = ws.delete().purge_at
    assert purge_at is not None
    clock.set(purge_at - US)
    assert engine.list_deletable(SUB) == []
    clock.set(purge_at)
    assert rb.Workspace.get_deleted("ws", SUB, RG, engine=engine).id == ws.id
    with pytest.raises(rb.NameReserved):
        create(engine)
    assert engine.purge_expired().purged == []
    deletable = engine.list_deletable(SUB)
    assert [(d.kind, d.workspace_id, d.since) for d in deletable] == [
        ("deletion_planned", ws.id, purge_at)]
    assert rb.Workspace.recover(SUB, RG, "ws", engine=engine).workspace is ws
    ws.delete()
    clock.advance(timedelta(days=2))
    result = engine.purge_by_id(ws.id)
    assert result.permanent is True
    assert engine.list_deletable(SUB) == []
    with pytest.raises(rb.WorkspaceNotFound):
        rb.Workspace.get_deleted("ws", SUB, RG, engine=engine)


# --- Behaviour: orphans ------------------------------------------------------------------------


def test_orphans_listed_at_once(engine: rb.Engine, clock: rb.ManualClock, start: datetime) -> None:
    never_had_members = create(engine, "quiet")
    ws = create(engine, principal=rb.Principal("alice"))
    ws.grant("bob", "reader")
    ws.revoke("alice")
    assert engine.list_deletable(SUB) == []
    clock.advance(timedelta(hours=2))
    ws.revoke("bob")
    assert engine.list_deletable(SUB) == [
        rb.DeletableWorkspace("orphaned", ws.id, start + timedelta(hours=2))]
    assert never_had_members.id not in {d.workspace_id for d in engine.list_deletable(SUB)}
    clock.advance(timedelta(days=365))
    assert engine.purge_expired().purged == []  # purge_after_days: null
    assert engine.purge_by_id(ws.id).permanent is True
    with pytest.raises(rb.WorkspaceNotFound):
        rb.Workspace.get("ws", SUB, RG, engine=engine)
    assert ws.state == "deleted"


def test_orphans_purged_after_days(make_engine: MakeEngine, clock: rb.ManualClock) -> None:
    engine = make_engine(orphans={"purge_after_days": 3})
    ws = create(engine, principal=rb.Principal("alice"),
                components=[rb.Component("models", "m-1")])
    ws.revoke("alice")
    clock.advance(timedelta(days=3) - US)
    assert engine.purge_expired().purged == []
    clock.advance(US)
    report = engine.purge_expired()
    assert report.purged == [(SUB, RG, "ws")]
    assert [t.ref for t in report.cleanup] == ["m-1"]


def test_purge_by_id_of_something_not_deletable(engine: rb.Engine) -> None:
    ws = create(engine)
    with pytest.raises(rb.OperationNotAllowed):
        engine.purge_by_id(ws.id)
    ws.delete()
    with pytest.raises(rb.OperationNotAllowed):
        engine.purge_by_id(ws.id)


# --- Behaviour: facts --------------------------------------------------------------------------


def test_blockers_refuse_while_above_zero(make_engine: MakeEngine) -> None:
    engine = make_engine(preconditions={"blockers": ["running_jobs", "active_sessions"]})
    seen: list[rb.Workspace] = []
    answers = {"running_jobs": 0, "active_sessions": 1}

    def provider(workspace: rb.Workspace) -> dict[str, int]:
        seen.append(workspace)
        return dict(answers)

    engine.set_facts_provider(provider)
    ws = create(engine)
    with pytest.raises(rb.PreconditionFailed) as caught:
        ws.delete()
    assert "active_sessions" in str(caught.value)
    assert seen and seen[0] is ws
    answers["active_sessions"] = 0
    assert ws.delete().permanent is False


def test_no_provider_or_failing_provider_refuses(make_engine: MakeEngine) -> None:
    engine = make_engine(preconditions={"blockers": ["running_jobs"]})
    ws = create(engine)
    with pytest.raises(rb.PreconditionFailed):
        ws.delete()  # no provider: cannot verify

    def broken(workspace: rb.Workspace) -> dict[str, int]:
        raise ConnectionError("scheduler unreachable")

    engine.set_facts_provider(broken)
    with pytest.raises(rb.PreconditionFailed) as caught:
        ws.delete()
    assert "scheduler unreachable" in str(caught.value) or "verify" in str(caught.value)

    for bad_answer in (None, {"running_jobs": "0"}, {1: 0}, [("running_jobs", 0.5)]):
        engine.set_facts_provider(lambda workspace, answer=bad_answer: answer)  # type: ignore[misc]
        with pytest.raises(rb.PreconditionFailed):
            ws.delete()
    engine.set_facts_provider(lambda workspace: {"running_jobs": 0})
    assert ws.delete().permanent is False
    engine.set_facts_provider(None)
    with pytest.raises(TypeError):
        engine.set_facts_provider(42)  # type: ignore[arg-type]


def test_warnings_are_reported(make_engine: MakeEngine) -> None:
    engine = make_engine(preconditions={"warnings": ["billable_scheduled_tasks", "linked"]})
    engine.set_facts_provider(lambda workspace: {"billable_scheduled_tasks": 2, "linked": 0})
    result = create(engine).delete()
    assert len(result.warnings) == 1 and "billable_scheduled_tasks" in result.warnings[0]
    engine.set_facts_provider(None)
    result = create(engine, "other").delete()  # warnings never refuse
    assert len(result.warnings) == 2


# --- Behaviour: order of checks ----------------------------------------------------------------


def test_permission_comes_before_state(engine: rb.Engine) -> None:
    ws = create(engine, principal=rb.Principal("alice"))
    ws.delete()
    with pytest.raises(rb.PermissionDenied):
        ws.delete(principal=rb.Principal("mallory"))


def test_state_comes_before_flags(make_engine: MakeEngine) -> None:
    engine = make_engine(preconditions={"require_stopped": True})
    with pytest.raises(rb.WorkspaceNotStopped):
        create(engine).delete(delete_dependent_resources=True)


def test_flags_come_before_preconditions(make_engine: MakeEngine) -> None:
    engine = make_engine(preconditions={"require_confirm_name": True, "blockers": ["jobs"]})
    with pytest.raises(rb.OperationNotAllowed):
        create(engine).delete(delete_dependent_resources=True)


def test_confirm_name_comes_before_blockers(make_engine: MakeEngine) -> None:
    engine = make_engine(preconditions={"require_confirm_name": True, "blockers": ["jobs"]})
    engine.set_facts_provider(lambda workspace: {"jobs": 1})
    with pytest.raises(rb.PreconditionFailed) as caught:
        create(engine).delete()
    assert "jobs" not in str(caught.value)


# --- principals --------------------------------------------------------------------------------


def test_principals_and_roles(make_engine: MakeEngine) -> None:
    engine = make_engine(permissions={"delete": ["owner"], "recover": ["owner", "operator"],
                                      "purge": ["admin"], "stop": ["owner", "contributor"]})
    alice, bob = rb.Principal("alice"), rb.Principal("bob")
    ws = create(engine, principal=alice)  # the creator becomes owner
    with pytest.raises(rb.PermissionDenied):
        ws.stop(principal=bob)
    ws.grant("bob", "contributor", principal=alice)
    ws.stop(principal=bob)
    # "start" is not listed: fail closed, the owner's alone (API.md version 2)
    with pytest.raises(rb.PermissionDenied, match=r"\[owner\] \(the default for an action it does not list\)"):
        ws.start(principal=bob)
    ws.start(principal=alice)
    with pytest.raises(rb.PermissionDenied):  # nor can bob make himself owner
        ws.grant("bob", "owner", principal=bob)
    ws.grant("bob", "reader")  # replaces contributor
    with pytest.raises(rb.PermissionDenied):
        ws.stop(principal=bob)
    ws.delete(principal=alice)
    rb.Workspace.recover(SUB, RG, "ws", principal=rb.Principal("ops", roles={"operator"}),
                         engine=engine)
    ws.delete(principal=alice)
    with pytest.raises(rb.PermissionDenied):
        rb.Workspace.purge(SUB, RG, "ws", principal=alice, engine=engine)
    result = rb.Workspace.purge(SUB, RG, "ws", principal=rb.Principal("root", roles={"admin"}),
                                engine=engine)
    assert result.permanent is True


# --- results -----------------------------------------------------------------------------------


def test_results_are_frozen(make_engine: MakeEngine, clock: rb.ManualClock) -> None:
    engine = make_engine(retention={"on_expiry": "hold"})
    ws = create(engine, components=[rb.Component("models", "m-1")])
    deleted = ws.delete()
    in_bin = rb.Workspace.get_deleted("ws", SUB, RG, engine=engine)
    recovered = rb.Workspace.recover(SUB, RG, "ws", engine=engine)
    permanent = ws.delete(permanently_delete=True)
    task = engine.cleanup_tasks()[0]
    report = engine.purge_expired()
    create(engine, "held", soft_delete_retention_days=1).delete()
    clock.advance(timedelta(days=1))
    deletable = engine.list_deletable(SUB)[0]
    record = engine.audit_log()[0]
    for result, field in ((deleted, "permanent"), (in_bin, "name"), (recovered, "workspace"),
                          (permanent, "purge_at"), (task, "ref"), (report, "purged"),
                          (deletable, "kind"), (record, "outcome")):
        with pytest.raises(AttributeError):
            setattr(result, field, None)
    page = rb.Workspace.list_deleted(SUB, engine=engine)
    with pytest.raises(AttributeError):
        page.next_cursor = "x"  # type: ignore[misc]


def test_datetimes_out_are_aware_utc(engine: rb.Engine, clock: rb.ManualClock) -> None:
    ws = create(engine, components=[rb.Component("thing", "t")])
    result = ws.delete()
    values: list[datetime | None] = [ws.created_at, result.deleted_at, result.purge_at,
                                     engine.audit_log()[0].at, engine.now(), clock.now()]
    item = rb.Workspace.get_deleted("ws", SUB, RG, engine=engine)
    values += [item.deleted_at, item.purge_at]
    for value in values:
        assert value is not None and value.tzinfo is not None
        assert value.utcoffset() == timedelta(0)


def test_reprs_and_html(engine: rb.Engine, clock: rb.ManualClock) -> None:
    ws = create(engine, soft_delete_retention_days=3, components=[rb.Component("models", "m-1")])
    result = ws.delete()
    assert repr(result).startswith("DeleteResult(permanent=False, deleted_at=2026-01-01T00:00:00Z,")
    assert "purge_at=2026-01-04T00:00:00Z" in repr(result)
    assert "<table" in result._repr_html_() and "3d 0h 0m" in result._repr_html_()
    clock.advance(timedelta(hours=5, minutes=30))
    page = rb.Workspace.list_deleted(SUB, engine=engine)
    assert repr(page).startswith("DeletedPage([DeletedWorkspace(id=")
    assert repr(page).endswith("next_cursor=None)")
    html = page._repr_html_()
    assert "<table" in html and "deleted_at" in html and "purge in" in html
    assert "2026-01-01T00:00:00Z" in html  # deletion time
    assert "2d 18h 30m" in html  # countdown to purge, from the engine's clock
    item = page[0]
    assert "2d 18h 30m" in item._repr_html_()
    assert "name='ws'" in repr(item)
    recovered = rb.Workspace.recover(SUB, RG, "ws", engine=engine)
    assert "RecoverResult(workspace=Workspace(name='ws'" in repr(recovered)
    assert "<table" in recovered._repr_html_()
    clock.advance(timedelta(days=10))
    ws.delete()
    clock.advance(timedelta(days=3))
    report = engine.purge_expired()
    assert "purged=[('sub-1', 'rg-1', 'ws')]" in repr(report)
    assert "sub-1/rg-1/ws" in report._repr_html_()
    assert "<table" in engine.audit_log()[0]._repr_html_()


# --- dry runs (API.md version 2) -----------------------------------------------------------------


def test_dry_run_delete_answers_and_changes_nothing(make_engine: MakeEngine) -> None:
    engine = make_engine(components={"models": {"on_delete": "retain"},
                                     "compute_instance": {"on_delete": "destroy"}})
    ws = create(engine, components=[rb.Component("models", "m"), rb.Component("compute_instance", "ci")])
    audit = len(engine.audit_log())
    for permanent in (False, True):
        result = ws.delete(permanently_delete=permanent, dry_run=True)
        assert result.dry_run is True and result.permanent is permanent
        assert [t.id for t in result.cleanup] == ([0, 0] if permanent else [0])
        assert (result.purge_at is None) is permanent
    assert rb.Workspace.get("ws", SUB, RG, engine=engine).state == "running"
    assert len(engine.audit_log()) == audit and engine.cleanup_tasks() == []
    real = ws.delete()
    assert real.dry_run is False and real.retained == ["models"]
    with pytest.raises(rb.OperationNotAllowed):  # in the bin now: the dry run raises as the real call
        ws.delete(dry_run=True)
    with pytest.raises(TypeError, match="dry_run"):
        ws.delete(dry_run="yes")  # type: ignore[arg-type]


def test_dry_run_purge_expired_reports_and_removes_nothing(make_engine: MakeEngine,
                                                           clock: rb.ManualClock) -> None:
    engine = make_engine()
    ws = create(engine, soft_delete_retention_days=1)
    ws.delete()
    clock.advance(timedelta(days=1))
    report = engine.purge_expired(dry_run=True)
    assert report.dry_run is True and report.purged == [(SUB, RG, "ws")]
    assert len(engine.audit_log()) == 2
    real = engine.purge_expired()
    assert real.dry_run is False and real.purged == [(SUB, RG, "ws")]
    assert engine.purge_expired(dry_run=True).purged == []


def test_tenant_scope_every_workspace_in_the_bin_holds_its_name(make_engine: MakeEngine,
                                                                 clock: rb.ManualClock) -> None:
    # Found by the stateful test: only the first of several soft-deleted workspaces with one
    # name held it tenant-wide, so recovering that one freed the name while others were
    # still in the bin, and reserved_until named the first holder's date, not the last.
    engine = make_engine(name_reservation={"scope": "tenant"})
    a = rb.Workspace.create(SUB, "rg-a", "x", engine=engine)
    b = rb.Workspace.create(SUB, "rg-b", "x", soft_delete_retention_days=2, engine=engine)
    a.delete()                              # purge_at: +14 days
    clock.advance(timedelta(days=1))
    b.delete()                              # purge_at: +1 + 2 days, earlier than a's
    with pytest.raises(rb.NameReserved) as reserved:
        rb.Workspace.create(SUB, "rg-c", "x", engine=engine)
    first = reserved.value.reserved_until
    assert first == START + timedelta(days=14)  # the reservation that ends last
    rb.Workspace.recover(SUB, "rg-a", "x", engine=engine)  # a leaves the bin; b still holds the name
    with pytest.raises(rb.NameReserved) as reserved:
        rb.Workspace.create(SUB, "rg-c", "x", engine=engine)
    assert reserved.value.reserved_until == START + timedelta(days=3)
    clock.advance(timedelta(days=2))  # b's retention ends: the name is free outside rg-a
    assert rb.Workspace.create(SUB, "rg-c", "x", engine=engine).name == "x"
