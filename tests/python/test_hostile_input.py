"""Issue 10 in the Python API: text with a NUL byte or a lone surrogate is refused with
InvalidArgument, showing the value escaped and whole, wherever it is a name, id, group,
subscription, kind, ref, principal, role, cursor or path, and nothing is written; an empty
principal id is refused; integers beyond 64 bits answer not-found; an engine message is
never cut at a NUL byte."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import recyclebin as rb
from recyclebin import _core

SUB, RG = "sub-1", "rg-1"
BAD = {"nul": ("a\0bcdef", "'a\\x00bcdef'", "NUL byte"),
       "surrogate": ("a\ud800bcdef", "'a\\ud800bcdef'", "lone surrogate")}


@pytest.fixture
def engine(clock: rb.ManualClock) -> Any:
    with rb.Engine.open(":memory:", clock=clock) as opened:
        yield opened


def _calls(engine: rb.Engine, ws: rb.Workspace, bad: str) -> list[tuple[str, Callable[[], Any]]]:
    e = engine
    return [
        ("subscription_id", lambda: rb.Workspace.create(bad, RG, "n", engine=e)),
        ("resource_group", lambda: rb.Workspace.create(SUB, bad, "n", engine=e)),
        ("name", lambda: rb.Workspace.create(SUB, RG, bad, engine=e)),
        ("name", lambda: rb.Workspace.get(bad, SUB, RG, engine=e)),
        ("subscription_id", lambda: rb.Workspace.get("n", bad, RG, engine=e)),
        ("workspace_id", lambda: rb.Workspace.get_by_id(bad, engine=e)),
        ("subscription_id", lambda: rb.Workspace.list_deleted(bad, engine=e)),
        ("resource_group", lambda: rb.Workspace.list_deleted(SUB, bad, engine=e)),
        ("cursor", lambda: rb.Workspace.list_deleted(SUB, cursor=bad, limit=1, engine=e)),
        ("name", lambda: rb.Workspace.get_deleted(bad, SUB, RG, engine=e)),
        ("name", lambda: rb.Workspace.recover(SUB, RG, bad, engine=e)),
        ("resource_group", lambda: rb.Workspace.purge(SUB, bad, "n", engine=e)),
        ("member_id", lambda: ws.grant(bad, "owner")),
        ("role", lambda: ws.grant("bob", bad)),
        ("member_id", lambda: ws.revoke(bad)),
        ("confirm_name", lambda: ws.delete(confirm_name=bad)),
        ("subscription_id", lambda: e.list_deletable(bad)),
        ("workspace_id", lambda: e.purge_by_id(bad)),
        ("subscription_id", lambda: e.audit_log(bad)),
        ("Component.kind", lambda: rb.Workspace.create(
            SUB, RG, "n", components=[rb.Component(bad, "r")], engine=e)),
        ("Component.ref", lambda: rb.Workspace.create(
            SUB, RG, "n", components=[rb.Component("notebooks", bad)], engine=e)),
        ("Principal.id", lambda: rb.Workspace.create(
            SUB, RG, "n", principal=rb.Principal(bad), engine=e)),
        ("a role in Principal.roles", lambda: rb.Principal("alice", roles={bad})),
        ("subscription_id", lambda: e.policy.rules(bad)),
    ]


@pytest.mark.parametrize("kind", sorted(BAD))
def test_hostile_text_is_invalid_argument_shown_whole_and_nothing_is_written(
        engine: rb.Engine, kind: str) -> None:
    bad, shown, problem = BAD[kind]
    ws = rb.Workspace.create(SUB, RG, "ws1", principal=rb.Principal("alice"), engine=engine)
    before = engine.audit_log()
    calls = _calls(engine, ws, bad)
    for what, call in calls:
        with pytest.raises(rb.InvalidArgument) as caught:
            call()
        message = str(caught.value)
        assert message.startswith(f"{what} {shown} contains a {problem}"), (what, message)
        assert "Unicode text without NUL bytes" in message
        assert isinstance(caught.value, ValueError) and caught.value.code == "invalid_argument"
    assert engine.audit_log() == before
    assert rb.Workspace.get("ws1", SUB, RG, engine=engine).state == "running"
    assert [w.name for w in [rb.Workspace.get_by_id(ws.id, engine=engine)]] == ["ws1"]


def test_a_long_hostile_value_is_shortened_and_says_so(engine: rb.Engine) -> None:
    bad = "x" * 10_000 + "\0"
    with pytest.raises(rb.InvalidArgument, match=r"\.\.\. \(10001 characters\) contains a NUL"):
        rb.Workspace.create(SUB, RG, bad, engine=engine)


def test_a_location_or_policy_path_with_a_nul_is_refused(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for location in ("a\0b.db", tmp_path / "a\0b.db", "sqlite:///a\0b.db", "a\udc80.db"):
        with pytest.raises(rb.InvalidArgument, match="^location "):
            rb.Engine.open(location)
    assert list(tmp_path.iterdir()) == []  # before the fix, the file 'a' was created
    with pytest.raises(rb.InvalidArgument, match="^path 'p\\\\x00.yaml'"):
        rb.Policy.load("p\0.yaml")
    with pytest.raises(rb.InvalidArgument, match="^name 'default\\\\x00'"):
        rb.Policy.builtin("default\0")


def test_an_empty_principal_id_is_refused() -> None:
    with pytest.raises(rb.InvalidArgument, match="empty id is the platform's"):
        rb.Principal("")
    with pytest.raises(rb.InvalidArgument, match="Principal.id 'a\\\\x00'"):
        rb.Principal("a\0")
    assert rb.Principal(" ").id == " "  # any other text names someone


def test_an_engine_message_is_not_cut_at_a_nul_byte() -> None:
    # A policy's source label is shown escaped (a message never holds a NUL byte), and the
    # message goes on after it.
    with pytest.raises(rb.PolicyError) as caught:
        _core.Policy.from_yaml("version: [", "x\0y")
    assert str(caught.value).startswith("x\\x00y:1:1: not valid YAML")


@pytest.mark.parametrize("task_id", [2**63 - 1, 2**63, 2**70, -(2**63), -(2**63) - 1, -(2**70)])
def test_a_task_id_beyond_64_bits_is_not_found(engine: rb.Engine, task_id: int) -> None:
    with pytest.raises(KeyError) as caught:
        engine.complete_cleanup(task_id)
    assert isinstance(caught.value, rb.NotFound) and str(task_id) in str(caught.value)
