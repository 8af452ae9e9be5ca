"""The protection commands of the command line, through the real entry point: holds, liens,
purge protection (with consent), auto-deletion, the create modes, and their exit codes."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

import recyclebin as rb
from rest_helpers import RG, SUB, run_cli
from test_cli import assert_one_line_error, ws_args

EXIT_USAGE, EXIT_NOT_FOUND, EXIT_NOT_ALLOWED, EXIT_PRECONDITION = 2, 3, 7, 9


@pytest.fixture(autouse=True)
def _run_in_tmp_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def ok(args: list[str]) -> str:
    result = run_cli(args)
    assert result.returncode == 0, (result.stdout, result.stderr)
    return result.stdout


def test_holds_from_the_command_line(tmp_path: Path) -> None:
    db = tmp_path / "rb.db"
    ok(["workspace", "create", *ws_args("ws1", db)])
    hold = json.loads(ok(["workspace", "hold", *ws_args("ws1", db, "--reason", "case 17", "-o", "json")]))
    assert hold[0]["reason"] == "case 17" and hold[0]["placed_by"] is None
    assert "case 17" in ok(["workspace", "protections", *ws_args("ws1", db)])
    held = run_cli(["workspace", "delete", *ws_args("ws1", db, "--permanently-delete", "--yes")])
    assert_one_line_error(held, EXIT_NOT_ALLOWED, "legal hold", "case 17")
    ok(["workspace", "delete", *ws_args("ws1", db, "--yes")])
    assert "held" in ok(["workspace", "list-deleted", "-s", SUB, "--db", str(db)])
    listed = json.loads(ok(["workspace", "protections", *ws_args("ws1", db, "--deleted", "-o", "json")]))
    assert [h["id"] for h in listed["holds"]] == [hold[0]["id"]] and listed["liens"] == []
    ok(["workspace", "release-hold", "--hold-id", hold[0]["id"], "--db", str(db)])
    again = run_cli(["workspace", "release-hold", "--hold-id", hold[0]["id"], "--db", str(db)])
    assert_one_line_error(again, EXIT_NOT_FOUND, "no hold")


def test_liens_from_the_command_line(tmp_path: Path) -> None:
    db = tmp_path / "rb.db"
    ok(["workspace", "create", *ws_args("ws1", db)])
    lien = json.loads(ok(["workspace", "lien", *ws_args("ws1", db, "--origin", "billing",
                                                         "--reason", "invoice", "-o", "json")]))
    refused = run_cli(["workspace", "delete", *ws_args("ws1", db, "--yes")])
    assert_one_line_error(refused, EXIT_PRECONDITION, "billing", "invoice")
    assert "billing" in ok(["workspace", "protections", *ws_args("ws1", db)])
    ok(["workspace", "unlien", "--lien-id", lien[0]["id"], "--db", str(db)])
    ok(["workspace", "delete", *ws_args("ws1", db, "--yes")])


def test_protect_asks_for_consent_and_is_for_good(tmp_path: Path) -> None:
    db = tmp_path / "rb.db"
    ok(["workspace", "create", *ws_args("ws1", db)])
    refused = run_cli(["workspace", "protect", *ws_args("ws1", db)])
    assert_one_line_error(refused, EXIT_USAGE, "--yes")
    with rb.Engine.open(str(db)) as engine:
        assert rb.Workspace.get("ws1", SUB, RG, engine=engine).purge_protection is False
    shown = json.loads(ok(["workspace", "protect", *ws_args("ws1", db, "--confirm", "ws1", "-o", "json")]))
    assert shown["purge_protection"] is True
    permanent = run_cli(["workspace", "delete", *ws_args("ws1", db, "--permanently-delete", "--yes")])
    assert_one_line_error(permanent, EXIT_NOT_ALLOWED, "purge protection")
    cmk = run_cli(["workspace", "create", *ws_args("cmk", db, "--cmk", "--purge-protection")])
    assert_one_line_error(cmk, EXIT_NOT_ALLOWED, "customer-managed key")


def test_auto_delete_and_create_modes(tmp_path: Path) -> None:
    db = tmp_path / "rb.db"
    past = (datetime.now(timezone.utc) - timedelta(minutes=1)).isoformat()
    created = json.loads(ok(["workspace", "create", *ws_args("tmp", db, "--auto-delete-at", past, "-o", "json")]))
    assert created["auto_delete_at"] is not None
    ok(["workspace", "create", *ws_args("keep", db)])
    ok(["workspace", "auto-delete", *ws_args("keep", db, "--at", "2099-01-01T00:00:00Z")])
    cancelled = json.loads(ok(["workspace", "auto-delete", *ws_args("keep", db, "--never", "-o", "json")]))
    assert cancelled["auto_delete_at"] is None
    for bad in (["--at", "tomorrow"], ["--at", "2099-01-01T00:00:00"], [], ["--at", "2099-01-01T00:00:00Z", "--never"]):
        assert_one_line_error(run_cli(["workspace", "auto-delete", *ws_args("keep", db, *bad)]), EXIT_USAGE)
    report = ok(["purge-expired", "--db", str(db), "--yes"])
    assert "Auto-deleted 1 workspace(s), 0 refused" in report and "tmp" in report
    # Over the soft-deleted name: fail, recover, or purge (with consent).
    reserved = run_cli(["workspace", "create", *ws_args("tmp", db)])
    assert reserved.returncode == 5 and "if_deleted" in reserved.stderr
    recovered = json.loads(ok(["workspace", "create", *ws_args("tmp", db, "--if-deleted", "recover", "-o", "json")]))
    assert recovered["id"] == created["id"]
    ok(["workspace", "delete", *ws_args("tmp", db, "--yes")])
    no_consent = run_cli(["workspace", "create", *ws_args("tmp", db, "--if-deleted", "purge")])
    assert_one_line_error(no_consent, EXIT_USAGE, "--yes")
    fresh = json.loads(ok(["workspace", "create", *ws_args("tmp", db, "--if-deleted", "purge", "--yes", "-o", "json")]))
    assert fresh["id"] != created["id"]
    bad_mode = run_cli(["workspace", "create", *ws_args("x", db, "--if-deleted", "replace")])
    assert bad_mode.returncode == EXIT_USAGE
    missing = run_cli(["workspace", "hold", *ws_args("nope", db, "--reason", "r")])
    assert_one_line_error(missing, EXIT_NOT_FOUND)
