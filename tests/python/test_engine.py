"""Engine, clock and policy: opening, closing, reopening, the default engine, cleanup tasks,
the audit log, and datetimes on the Python edge."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

import recyclebin as rb

from conftest import MakeEngine

SUB, RG = "sub-1", "rg-1"
POLICY_DIR = Path(__file__).resolve().parents[2] / "policies"
BUILTINS = ("default", "azureml", "dataworks", "parsec", "exostellar", "cloud-workstation")


def _utc(value: datetime) -> bool:
    return value.tzinfo is not None and value.utcoffset() == timedelta(0)


# --- opening -----------------------------------------------------------------------------------


def test_open_locations(tmp_path: Path, clock: rb.ManualClock, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    locations: list[Any] = [
        str(tmp_path / "plain.db"),
        tmp_path / "pathlike.db",
        "sqlite:///relative.db",
        f"sqlite:///{tmp_path}/absolute.db",  # sqlite:////abs/path.db
        ":memory:",
    ]
    for location in locations:
        with rb.Engine.open(location, clock=clock) as engine:
            rb.Workspace.create(SUB, RG, "ws", engine=engine)
            assert rb.Workspace.get("ws", SUB, RG, engine=engine).name == "ws"
    assert (tmp_path / "plain.db").exists()
    assert (tmp_path / "pathlike.db").exists()
    assert (tmp_path / "relative.db").exists()
    assert (tmp_path / "absolute.db").exists()


@pytest.mark.parametrize("name", BUILTINS)
def test_open_with_builtin_policy_name(tmp_path: Path, name: str) -> None:
    with rb.Engine.open(tmp_path / "bin.db", policy=name) as engine:
        assert engine.policy.name == name


def test_policy_string_with_slash_or_suffix_is_a_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = (POLICY_DIR / "parsec.yaml").read_text()
    (tmp_path / "mine.yaml").write_text(text.replace("name: parsec", "name: mine"))
    (tmp_path / "other.yml").write_text(text.replace("name: parsec", "name: other"))
    monkeypatch.chdir(tmp_path)
    with rb.Engine.open("a.db", policy="mine.yaml") as engine:
        assert engine.policy.name == "mine"
    with rb.Engine.open("b.db", policy="other.yml") as engine:
        assert engine.policy.name == "other"
    with rb.Engine.open("c.db", policy=f"{tmp_path}/mine.yaml") as engine:
        assert engine.policy.name == "mine"
    with rb.Engine.open("d.db", policy=tmp_path / "mine.yaml") as engine:
        assert engine.policy.name == "mine"
    # A name without a slash or suffix is never read from disk.
    (tmp_path / "azureml").write_text("not: a policy")
    with rb.Engine.open("e.db", policy="azureml") as engine:
        assert engine.policy.name == "azureml"
    with pytest.raises(rb.PolicyError):
        rb.Engine.open("f.db", policy="./missing.yaml")


def test_open_with_policy_object(tmp_path: Path, make_policy: Callable[..., rb.Policy]) -> None:
    policy = make_policy(retention={"default_days": 5})
    with rb.Engine.open(tmp_path / "bin.db", policy=policy) as engine:
        assert engine.policy is policy
        assert rb.Workspace.create(SUB, RG, "ws", engine=engine).soft_delete_retention_days == 5


def test_open_rejects_wrong_types(tmp_path: Path) -> None:
    with pytest.raises(TypeError):
        rb.Engine.open(42)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        rb.Engine.open(tmp_path / "a.db", policy=3)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        rb.Engine.open(tmp_path / "a.db", clock=datetime.now(timezone.utc))  # type: ignore[arg-type]


# --- closing -----------------------------------------------------------------------------------


def test_close_is_idempotent_and_context_manager_closes(tmp_path: Path) -> None:
    with rb.Engine.open(tmp_path / "bin.db") as engine:
        assert not engine.closed
    assert engine.closed
    engine.close()
    engine.close()
    assert engine.closed
    assert "closed" in repr(engine)


def _calls(engine: rb.Engine, ws: rb.Workspace) -> dict[str, Callable[[], object]]:
    return {
        "create": lambda: rb.Workspace.create(SUB, RG, "other", engine=engine),
        "get": lambda: rb.Workspace.get("ws", SUB, RG, engine=engine),
        "get_by_id": lambda: rb.Workspace.get_by_id(ws.id, engine=engine),
        "list_deleted": lambda: rb.Workspace.list_deleted(SUB, engine=engine),
        "get_deleted": lambda: rb.Workspace.get_deleted("ws", SUB, RG, engine=engine),
        "recover": lambda: rb.Workspace.recover(SUB, RG, "ws", engine=engine),
        "purge": lambda: rb.Workspace.purge(SUB, RG, "ws", engine=engine),
        "delete_many": lambda: rb.Workspace.delete_many([ws], engine=engine),
        "stop": ws.stop,
        "start": ws.start,
        "grant": lambda: ws.grant("bob", "reader"),
        "revoke": lambda: ws.revoke("bob"),
        "delete": ws.delete,
        "refresh": ws.refresh,
        "purge_expired": engine.purge_expired,
        "list_deletable": lambda: engine.list_deletable(SUB),
        "purge_by_id": lambda: engine.purge_by_id(ws.id),
        "cleanup_tasks": engine.cleanup_tasks,
        "complete_cleanup": lambda: engine.complete_cleanup(1),
        "audit_log": engine.audit_log,
        "set_facts_provider": lambda: engine.set_facts_provider(lambda workspace: {}),
    }


def test_every_call_after_close_raises_engine_closed(engine: rb.Engine) -> None:
    ws = rb.Workspace.create(SUB, RG, "ws", engine=engine)
    engine.close()
    for name, call in _calls(engine, ws).items():
        with pytest.raises(rb.EngineClosed):
            call()
            pytest.fail(f"{name} did not raise EngineClosed")


# --- reopening ---------------------------------------------------------------------------------


def test_reopen_on_the_same_file_sees_everything(tmp_path: Path, clock: rb.ManualClock,
                                                 start: datetime) -> None:
    path = tmp_path / "bin.db"
    with rb.Engine.open(path, policy="azureml", clock=clock) as first:
        owner = rb.Principal("alice")
        kept = rb.Workspace.create(SUB, RG, "kept", principal=owner, engine=first,
                                   components=[rb.Component("compute_instance", "ci-1")])
        kept.stop()
        kept.grant("bob", "reader")
        binned = rb.Workspace.create(SUB, RG, "binned", soft_delete_retention_days=3,
                                     components=[rb.Component("compute_instance", "ci-2"),
                                                 rb.Component("models", "m-1")],
                                     engine=first)
        clock.advance(timedelta(hours=1))
        deleted = binned.delete()
        log = first.audit_log()
        tasks = first.cleanup_tasks()
        kept_id, binned_id = kept.id, binned.id

    assert first.closed
    with rb.Engine.open(path, policy="azureml", clock=clock) as second:
        again = rb.Workspace.get("kept", SUB, RG, engine=second)
        assert (again.id, again.state) == (kept_id, "stopped")
        assert again.components == [rb.Component("compute_instance", "ci-1")]
        with pytest.raises(rb.PermissionDenied):  # membership survived: bob is only a reader
            again.delete(principal=rb.Principal("bob"))
        in_bin = rb.Workspace.get_deleted("binned", SUB, RG, engine=second)
        assert in_bin.id == binned_id
        assert in_bin.deleted_at == deleted.deleted_at == start + timedelta(hours=1)
        assert in_bin.purge_at == deleted.purge_at
        assert in_bin.retention_days == 3
        assert second.cleanup_tasks() == tasks
        assert [r.seq for r in second.audit_log()][: len(log)] == [r.seq for r in log]
        assert second.audit_log()[: len(log)] == log
        with pytest.raises(rb.NameReserved):
            rb.Workspace.create(SUB, RG, "binned", engine=second)
        recovered = rb.Workspace.recover(SUB, RG, "binned", engine=second).workspace
        assert recovered.id == binned_id


# --- the default engine ------------------------------------------------------------------------


def test_default_engine(engine: rb.Engine) -> None:
    with pytest.raises(RuntimeError, match="no engine"):
        rb.Workspace.create(SUB, RG, "ws")
    rb.set_default_engine(engine)
    assert rb.get_default_engine() is engine
    ws = rb.Workspace.create(SUB, RG, "ws")
    assert ws.engine is engine
    assert rb.Workspace.get("ws", SUB, RG) is ws
    rb.set_default_engine(None)
    assert rb.get_default_engine() is None
    for call in (
        lambda: rb.Workspace.get("ws", SUB, RG),
        lambda: rb.Workspace.get_deleted("ws", SUB, RG),
        lambda: rb.Workspace.list_deleted(SUB),
        lambda: rb.Workspace.recover(SUB, RG, "ws"),
        lambda: rb.Workspace.purge(SUB, RG, "ws"),
        lambda: rb.Workspace.get_by_id(ws.id),
        lambda: rb.Workspace.delete_many([]),
    ):
        with pytest.raises(RuntimeError, match="set_default_engine"):
            call()
    ws.stop()  # a Workspace object keeps talking to its own engine
    assert ws.state == "stopped"
    with pytest.raises(TypeError):
        rb.set_default_engine("engine")  # type: ignore[arg-type]


def test_explicit_engine_wins_over_default(make_engine: MakeEngine) -> None:
    first, second = make_engine(), make_engine()
    rb.set_default_engine(first)
    rb.Workspace.create(SUB, RG, "ws", engine=second)
    with pytest.raises(rb.WorkspaceNotFound):
        rb.Workspace.get("ws", SUB, RG)
    assert rb.Workspace.get("ws", SUB, RG, engine=second).engine is second


# --- cleanup tasks and audit -------------------------------------------------------------------


def test_cleanup_tasks_flow(engine: rb.Engine, clock: rb.ManualClock, start: datetime) -> None:
    ws = rb.Workspace.create(SUB, RG, "ws", engine=engine,
                             components=[rb.Component("thing", "ref-a")])
    result = ws.delete(permanently_delete=True)
    assert result.permanent and result.purge_at is None
    assert [(t.kind, t.ref, t.workspace_id) for t in result.cleanup] == [("thing", "ref-a", ws.id)]
    pending = engine.cleanup_tasks()
    assert pending == result.cleanup
    task = pending[0]
    assert isinstance(task.id, int) and task.created_at == start and _utc(task.created_at)
    engine.complete_cleanup(task.id)
    assert engine.cleanup_tasks() == []
    engine.complete_cleanup(task.id)  # a no-op the second time
    with pytest.raises(KeyError):
        engine.complete_cleanup(task.id + 1000)
    with pytest.raises(TypeError):
        engine.complete_cleanup("1")  # type: ignore[arg-type]


def test_cleanup_tasks_oldest_first(engine: rb.Engine, clock: rb.ManualClock) -> None:
    for index in range(3):
        rb.Workspace.create(SUB, RG, f"ws{index}", engine=engine,
                            components=[rb.Component("thing", f"ref-{index}")]
                            ).delete(permanently_delete=True)
        clock.advance(timedelta(seconds=1))
    tasks = engine.cleanup_tasks()
    assert [t.ref for t in tasks] == ["ref-0", "ref-1", "ref-2"]
    assert [t.created_at for t in tasks] == sorted(t.created_at for t in tasks)


def test_audit_log(engine: rb.Engine, start: datetime) -> None:
    ws = rb.Workspace.create(SUB, RG, "ws", engine=engine, principal=rb.Principal("alice"))
    ws.stop()
    ws.start()
    ws.grant("bob", "reader")
    ws.revoke("bob")
    with pytest.raises(rb.PermissionDenied):
        ws.delete(principal=rb.Principal("mallory"))
    ws.delete()
    rb.Workspace.recover(SUB, RG, "ws", engine=engine)
    ws.delete()
    rb.Workspace.purge(SUB, RG, "ws", engine=engine)
    rb.Workspace.create("sub-2", RG, "elsewhere", engine=engine)

    records = engine.audit_log()
    assert [r.seq for r in records] == sorted(r.seq for r in records)
    assert len({r.seq for r in records}) == len(records)
    mine = [(r.action, r.outcome) for r in engine.audit_log(SUB)]
    assert mine == [
        ("create", "ok"), ("stop", "ok"), ("start", "ok"), ("grant", "ok"), ("revoke", "ok"),
        ("delete", "refused:permission_denied"), ("delete", "ok"), ("recover", "ok"),
        ("delete", "ok"), ("purge", "ok"),
    ]
    assert all(r.subscription_id == SUB for r in engine.audit_log(SUB))
    assert [r.name for r in engine.audit_log("sub-2")] == ["elsewhere"]
    first = records[0]
    assert (first.subscription_id, first.resource_group, first.name) == (SUB, RG, "ws")
    assert first.at == start and _utc(first.at)
    assert first.principal_id == "alice"


def test_audit_feed_a_tailing_consumer_reads_in_pages(engine: rb.Engine) -> None:
    """Version 2: a consumer tails the log by passing the last seq it saw as after_seq."""
    alice = rb.Principal("alice")
    for index in range(5):
        rb.Workspace.create(SUB if index % 2 == 0 else "sub-2", RG, f"ws{index}", engine=engine,
                            principal=alice if index == 1 else None)
    everything = engine.audit_log()
    assert len(everything) == 5

    def tail(last: int, limit: int, subscription: str | None = None) -> tuple[list[rb.AuditRecord], int]:
        seen: list[rb.AuditRecord] = []
        for _ in range(20):
            page = engine.audit_log(subscription, after_seq=last, limit=limit)
            assert len(page) <= limit
            if not page:
                break
            seen += page
            last = page[-1].seq
        return seen, last

    seen, last = tail(0, 2)
    assert seen == everything
    # New records, and only those, are the consumer's next page.
    ws = rb.Workspace.get("ws0", SUB, RG, engine=engine)
    ws.stop(principal=None)
    more, last = tail(last, 2)
    assert [(r.action, r.name) for r in more] == [("stop", "ws0")]
    assert engine.audit_log(after_seq=last) == []
    # Of one subscription: its records only, in pages.
    mine, _ = tail(0, 1, SUB)
    assert [(r.action, r.name) for r in mine] == [("create", "ws0"), ("create", "ws2"),
                                                  ("create", "ws4"), ("stop", "ws0")]
    assert engine.audit_log(SUB, after_seq=mine[0].seq, limit=1)[0].name == "ws2"
    # The feed's fields: workspace_id, and principal_id None for the platform.
    by_alice = next(r for r in everything if r.name == "ws1")
    assert by_alice.principal_id == "alice"
    assert by_alice.workspace_id == rb.Workspace.get("ws1", "sub-2", RG, engine=engine).id
    assert all(r.principal_id is None for r in everything if r.name != "ws1")
    assert engine.audit_log(limit=10**30) == everything + more  # beyond any count: everything
    assert engine.audit_log(after_seq=10**30) == []


@pytest.mark.parametrize(("kwargs", "error", "words"), [
    ({"after_seq": -1}, rb.InvalidArgument, "after_seq must be 0 or more"),
    ({"limit": 0}, rb.InvalidArgument, "limit must be at least 1"),
    ({"limit": -5}, rb.InvalidArgument, "limit must be at least 1"),
    ({"after_seq": "3"}, TypeError, "after_seq must be an int or None, not str"),
    ({"limit": 2.0}, TypeError, "limit must be an int or None, not float"),
    ({"limit": True}, TypeError, "limit must be an int or None, not bool"),
])
def test_audit_feed_bad_arguments(engine: rb.Engine, kwargs: dict[str, Any],
                                  error: type[Exception], words: str) -> None:
    rb.Workspace.create(SUB, RG, "ws", engine=engine)
    with pytest.raises(error, match=words):
        engine.audit_log(**kwargs)


def test_audit_feed_core_refuses_bad_limits_too(engine: rb.Engine) -> None:
    with pytest.raises(rb.InvalidArgument, match="limit must be at least 1"):
        engine._core.audit_log(None, None, 0)
    with pytest.raises(rb.InvalidArgument, match="after_seq must be 0 or more"):
        engine._core.audit_log(None, -2, None)


def test_expire_is_audited(engine: rb.Engine, clock: rb.ManualClock) -> None:
    rb.Workspace.create(SUB, RG, "ws", soft_delete_retention_days=1, engine=engine).delete()
    clock.advance(timedelta(days=1))
    engine.purge_expired()
    assert engine.audit_log(SUB)[-1].action == "expire"


# --- time --------------------------------------------------------------------------------------


def test_manual_clock(start: datetime) -> None:
    clock = rb.ManualClock(start)
    assert clock.now() == start and _utc(clock.now())
    clock.advance(timedelta(days=3, microseconds=1))
    assert clock.now() == start + timedelta(days=3, microseconds=1)
    eastern = timezone(timedelta(hours=-5))
    clock.set(datetime(2026, 2, 1, 7, 0, tzinfo=eastern))
    assert clock.now() == datetime(2026, 2, 1, 12, 0, tzinfo=timezone.utc)
    assert clock.now().tzinfo == timezone.utc
    with pytest.raises(ValueError):
        clock.advance(timedelta(seconds=-1))
    with pytest.raises(TypeError):
        clock.advance(60)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        clock.set("2026-01-01T00:00:00Z")  # type: ignore[arg-type]
    assert repr(clock) == "ManualClock(2026-02-01T12:00:00Z)"


def test_engine_reads_the_same_clock(engine: rb.Engine, clock: rb.ManualClock, start: datetime) -> None:
    assert engine.clock is clock
    assert engine.now() == start
    clock.advance(timedelta(minutes=5))
    assert engine.now() == start + timedelta(minutes=5)
    assert rb.Workspace.create(SUB, RG, "ws", engine=engine).created_at == start + timedelta(minutes=5)


def test_system_clock_by_default(tmp_path: Path) -> None:
    before = datetime.now(timezone.utc)
    with rb.Engine.open(tmp_path / "bin.db") as engine:
        assert engine.clock is None
        now = engine.now()
        ws = rb.Workspace.create(SUB, RG, "ws", engine=engine)
    after = datetime.now(timezone.utc)
    assert _utc(now) and before - timedelta(seconds=1) <= now <= after + timedelta(seconds=1)
    assert before - timedelta(seconds=1) <= ws.created_at <= after + timedelta(seconds=1)


def test_times_far_from_the_epoch(tmp_path: Path) -> None:
    for moment in (datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=timezone.utc),
                   datetime(1900, 2, 28, 1, 2, 3, 4, tzinfo=timezone.utc),
                   datetime(2400, 2, 29, 23, 0, 0, 500000, tzinfo=timezone.utc)):
        clock = rb.ManualClock(moment)
        assert clock.now() == moment
        with rb.Engine.open(tmp_path / f"{moment.year}.db", clock=clock) as engine:
            result = rb.Workspace.create(SUB, RG, "ws", engine=engine).delete()
            assert result.deleted_at == moment
            assert result.purge_at == moment + timedelta(days=14)


# --- policy ------------------------------------------------------------------------------------


def test_policy_accessors(policy_yaml: Callable[..., str]) -> None:
    policy = rb.Policy.from_yaml(policy_yaml(
        retention={"default_days": 10, "max_days": 30},
        tenants={"contoso": {"retention": {"default_days": 7}}, "acme": {}},
    ))
    assert policy.name == "test"
    assert policy.tenants == ["acme", "contoso"]
    assert "default_days: 10" in policy.source_text
    rules = policy.rules()
    assert rules["retention"]["default_days"] == 10
    assert rules["retention"]["on_expiry"] == "purge"
    assert rules["orphans"]["purge_after_days"] is None
    assert rules["permissions"] == {}
    assert policy.rules("contoso")["retention"]["default_days"] == 7
    assert policy.rules("contoso")["retention"]["max_days"] == 30  # mappings merge
    assert policy.rules("unknown-tenant") == rules
    effective = policy.to_yaml("contoso")
    reparsed = rb.Policy.from_yaml(effective)
    assert reparsed.rules()["retention"] == policy.rules("contoso")["retention"]
    assert "Policy(name='test'" in repr(policy)


def test_policy_constructors_check_types() -> None:
    with pytest.raises(TypeError):
        rb.Policy.builtin(3)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        rb.Policy.from_yaml(b"version: 1")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        rb.Policy.load(None)  # type: ignore[arg-type]


def test_builtin_policies() -> None:
    assert sorted(rb.Policy.builtin_names()) == sorted(BUILTINS)
    for name in BUILTINS:
        policy = rb.Policy.builtin(name)
        assert policy.name == name
        assert rb.Policy.load(POLICY_DIR / f"{name}.yaml").rules() == policy.rules()
    azureml = rb.Policy.builtin("azureml").rules()
    assert azureml["permissions"]["delete"] == ["owner"]  # "delete", not the C++ spelling


def test_tenant_override_applies(make_engine: MakeEngine) -> None:
    engine = make_engine(tenants={"contoso": {"retention": {"default_days": 7}}})
    assert rb.Workspace.create("contoso", RG, "ws", engine=engine).soft_delete_retention_days == 7
    assert rb.Workspace.create("fabrikam", RG, "ws", engine=engine).soft_delete_retention_days == 14


def test_policy_shared_between_engines(tmp_path: Path) -> None:
    policy = rb.Policy.builtin("dataworks")
    with rb.Engine.open(tmp_path / "a.db", policy=policy) as a, \
            rb.Engine.open(tmp_path / "b.db", policy=policy) as b:
        assert a.policy.rules() == b.policy.rules() == policy.rules()
