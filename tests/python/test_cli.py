"""The command line through its real entry point (the installed ``recyclebin`` script, or
``python -m recyclebin``), as a subprocess: output, exit codes, consent, bad arguments."""

from __future__ import annotations

import json
import re
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

import recyclebin as rb
from rest_helpers import RG, SUB, run_cli

ISO_Z = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?Z"


@pytest.fixture(autouse=True)
def _run_in_tmp_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI's default --db is ./recyclebin.db: keep any default out of the checkout."""
    monkeypatch.chdir(tmp_path)


def ws_args(name: str, db: Path, *extra: str) -> list[str]:
    return ["-s", SUB, "-g", RG, "-n", name, "--db", str(db), *extra]


def assert_one_line_error(result: subprocess.CompletedProcess[str], code: int,
                          *fragments: str) -> str:
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    stderr = result.stderr
    assert "Traceback" not in stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("recyclebin: error: "), stderr
    for fragment in fragments:
        assert fragment in lines[0], stderr
    return lines[0]


def seed_engine(db: Path, policy: str, days_ago: float) -> rb.Engine:
    """An engine on the CLI's database whose clock stands ``days_ago`` in the past, so what
    it deletes has expired by the system clock the CLI runs on."""
    start = datetime.now(timezone.utc) - timedelta(days=days_ago)
    return rb.Engine.open(str(db), policy=policy, clock=rb.ManualClock(start))


# ------------------------------------------------------------------------------ help

def test_help_lists_the_commands_and_the_exit_codes() -> None:
    result = run_cli(["--help"])
    assert result.returncode == 0, result.stderr
    for word in ("serve", "workspace", "admin", "purge-expired", "policy", "Exit codes"):
        assert word in result.stdout
    workspace = run_cli(["workspace", "--help"])
    for command in ("create", "show", "stop", "start", "delete", "list-deleted",
                    "show-deleted", "recover", "purge"):
        assert command in workspace.stdout


def test_python_dash_m_is_the_same_command_line(tmp_path: Path) -> None:
    db = tmp_path / "rb.db"
    result = run_cli(["workspace", "create", *ws_args("ws1", db), "-o", "json"], module=True)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["name"] == "ws1"
    shown = run_cli(["workspace", "show", *ws_args("ws1", db), "-o", "json"])
    assert json.loads(shown.stdout) == json.loads(result.stdout)


# ------------------------------------------------------------------- workspace lifecycle

def test_workspace_lifecycle_with_tables(tmp_path: Path) -> None:
    db = tmp_path / "rb.db"
    created = run_cli(["workspace", "create", *ws_args("ws1", db, "--retention-days", "7",
                                                       "--component", "notebooks=nb-1")])
    assert created.returncode == 0, created.stderr
    assert "Created workspace ws1" in created.stdout and "running" in created.stdout
    assert "notebooks=nb-1" in created.stdout

    stopped = run_cli(["workspace", "stop", *ws_args("ws1", db)])
    assert stopped.returncode == 0 and "stopped" in stopped.stdout
    started = run_cli(["workspace", "start", *ws_args("ws1", db)])
    assert started.returncode == 0 and "running" in started.stdout

    deleted = run_cli(["workspace", "delete", *ws_args("ws1", db, "--confirm", "ws1")])
    assert deleted.returncode == 0, deleted.stderr
    assert "Soft-deleted workspace ws1" in deleted.stdout
    purge_at = re.search(r"purge at\s+│?\s*" + ISO_Z + r" \(in 7d 0h 0m\)", deleted.stdout)
    assert purge_at, deleted.stdout

    listed = run_cli(["workspace", "list-deleted", "-s", SUB, "--db", str(db)])
    assert listed.returncode == 0 and "ws1" in listed.stdout and RG in listed.stdout

    shown = run_cli(["workspace", "show-deleted", *ws_args("ws1", db)])
    assert shown.returncode == 0 and "retention days" in shown.stdout

    recovered = run_cli(["workspace", "recover", *ws_args("ws1", db)])
    assert recovered.returncode == 0, recovered.stderr
    assert "Recovered workspace ws1" in recovered.stdout and "notebooks" in recovered.stdout
    assert run_cli(["workspace", "show", *ws_args("ws1", db)]).returncode == 0

    assert run_cli(["workspace", "delete", *ws_args("ws1", db, "--yes")]).returncode == 0
    purged = run_cli(["workspace", "purge", *ws_args("ws1", db, "--confirm", "ws1")])
    assert purged.returncode == 0, purged.stderr
    assert "Purged workspace ws1" in purged.stdout
    assert_one_line_error(run_cli(["workspace", "show-deleted", *ws_args("ws1", db)]), 3)


def test_permanent_delete_and_json_output(tmp_path: Path) -> None:
    db = tmp_path / "rb.db"
    run_cli(["workspace", "create", *ws_args("ws1", db, "--component", "notebooks=nb-1",
                                             "--standalone-component", "volume=vol-1")])
    result = run_cli(["workspace", "delete", *ws_args(
        "ws1", db, "--permanently-delete", "--delete-dependent-resources", "--yes",
        "-o", "json")])
    assert result.returncode == 0, result.stderr
    body = json.loads(result.stdout)
    assert body["permanent"] is True and body["purge_at"] is None
    assert [t["ref"] for t in body["cleanup"]] == ["nb-1"]
    assert re.fullmatch(ISO_Z, body["deleted_at"])


def test_list_deleted_pages(tmp_path: Path) -> None:
    db = tmp_path / "rb.db"
    with seed_engine(db, "default", days_ago=1) as engine:
        for name in ("a", "b", "c"):
            rb.Workspace.create(SUB, RG, name, engine=engine).delete()
            assert engine.clock is not None
            engine.clock.advance(timedelta(minutes=1))
    first = run_cli(["workspace", "list-deleted", "-s", SUB, "--db", str(db), "--limit", "2"])
    assert first.returncode == 0, first.stderr
    cursor = re.search(r"more: --cursor (\S+)", first.stdout)
    assert cursor is not None, first.stdout
    second = run_cli(["workspace", "list-deleted", "-s", SUB, "--db", str(db), "--limit", "2",
                      "--cursor", cursor.group(1), "-o", "json"])
    page = json.loads(second.stdout)
    assert [d["name"] for d in page["value"]] == ["a"] and page["next_cursor"] is None
    everything = json.loads(run_cli(["workspace", "list-deleted", "-s", SUB, "--db", str(db),
                                     "-g", RG, "-o", "json"]).stdout)
    assert [d["name"] for d in everything["value"]] == ["c", "b", "a"]


def test_grant_and_revoke(tmp_path: Path) -> None:
    db = tmp_path / "rb.db"
    run_cli(["workspace", "create", *ws_args("ws1", db)])
    granted = run_cli(["workspace", "grant", *ws_args("ws1", db, "--member", "bob",
                                                      "--role", "owner")])
    assert granted.returncode == 0 and "Granted owner on ws1 to bob" in granted.stdout
    revoked = run_cli(["workspace", "revoke", *ws_args("ws1", db, "--member", "bob")])
    assert revoked.returncode == 0 and "Revoked bob" in revoked.stdout


# ------------------------------------------------------------------ errors, exit codes

def test_domain_errors_print_one_line_and_their_exit_code(tmp_path: Path) -> None:
    db = tmp_path / "rb.db"
    run_cli(["workspace", "create", *ws_args("ws1", db)])
    assert_one_line_error(run_cli(["workspace", "show", *ws_args("nope", db)]), 3, "nope")
    assert_one_line_error(run_cli(["workspace", "create", *ws_args("ws1", db)]), 4)
    assert_one_line_error(run_cli(["workspace", "create", *ws_args(
        "ws2", db, "--retention-days", "99")]), 6, "99")
    assert_one_line_error(run_cli(["workspace", "delete", *ws_args(
        "ws1", db, "--delete-dependent-resources", "--yes")]), 7)
    run_cli(["workspace", "delete", *ws_args("ws1", db, "--yes")])
    assert_one_line_error(run_cli(["workspace", "create", *ws_args("ws1", db)]), 5, "Z")
    assert_one_line_error(run_cli(["workspace", "stop", *ws_args("ws1", db)]), 3)


def test_policy_refusals_have_their_own_exit_codes(tmp_path: Path) -> None:
    db = tmp_path / "cw.db"
    cw = ["--policy", "cloud-workstation"]
    run_cli(["workspace", "create", *ws_args("ws1", db, *cw)])
    assert_one_line_error(run_cli(["workspace", "delete", *ws_args("ws1", db, *cw, "--yes")]),
                          8)
    dw_db = tmp_path / "dw.db"
    dw = ["--policy", "dataworks"]
    run_cli(["workspace", "create", *ws_args("ws1", dw_db, *dw)])
    assert_one_line_error(run_cli(["workspace", "delete", *ws_args("ws1", dw_db, *dw, "--yes")]),
                          9)
    assert run_cli(["workspace", "delete", *ws_args("ws1", dw_db, *dw, "--confirm", "ws1")]
                   ).returncode == 0
    assert_one_line_error(run_cli(["workspace", "purge", *ws_args("ws1", dw_db, *dw, "--yes")]),
                          7)


def test_destructive_commands_need_consent(tmp_path: Path) -> None:
    db = tmp_path / "rb.db"
    run_cli(["workspace", "create", *ws_args("ws1", db)])
    assert_one_line_error(run_cli(["workspace", "delete", *ws_args("ws1", db)]), 2,
                          "--confirm ws1")
    assert_one_line_error(run_cli(["workspace", "delete", *ws_args("ws1", db, "--confirm",
                                                                   "ws2")]), 9)
    assert run_cli(["workspace", "show", *ws_args("ws1", db)]).returncode == 0  # still there
    run_cli(["workspace", "delete", *ws_args("ws1", db, "--yes")])
    assert_one_line_error(run_cli(["workspace", "purge", *ws_args("ws1", db)]), 2)
    assert run_cli(["workspace", "show-deleted", *ws_args("ws1", db)]).returncode == 0
    assert_one_line_error(run_cli(["purge-expired", "--db", str(db)]), 2, "--yes")
    assert_one_line_error(run_cli(["admin", "delete-realm", "--organization", SUB, "--db",
                                   str(db), "--realm", "r1", "--dump-blocks",
                                   str(tmp_path / "out.txt")]), 2, "--yes")
    assert not (tmp_path / "out.txt").exists()


@pytest.mark.parametrize("args", [
    ["workspace", "create", "--frobnicate"],
    ["workspace", "create", "-s", SUB, "-g", RG],                      # no --name
    ["workspace", "show", "-s", SUB, "-g", RG, "-n", "x", "-o", "xml"],
    ["workspace", "create", "-s", SUB, "-g", RG, "-n", "x", "--retention-days", "abc"],
    ["workspace", "list-deleted", "-s", SUB, "--limit", "0"],
    ["serve", "--port", "99999"],
    ["no-such-command"],
])
def test_bad_arguments_exit_2_without_a_traceback(tmp_path: Path, args: list[str]) -> None:
    result = run_cli([*args, "--db", str(tmp_path / "rb.db")]
                     if args[0] == "workspace" else args)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "rb.db").exists()


def test_bad_component_spec_is_a_usage_error(tmp_path: Path) -> None:
    assert_one_line_error(run_cli(["workspace", "create", *ws_args(
        "ws1", tmp_path / "rb.db", "--component", "no-equals-sign")]), 2, "KIND=REF")


def test_an_unusable_database_exits_12(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    assert_one_line_error(run_cli(["workspace", "show", *ws_args("ws1", blocker / "rb.db")]), 12)


def test_serve_refuses_the_manual_clock_off_loopback() -> None:
    assert_one_line_error(run_cli(["serve", "--host", "0.0.0.0", "--manual-clock",
                                   "2026-01-01T00:00:00Z"]), 2, "loopback")
    bad = run_cli(["serve", "--manual-clock", "next tuesday"])
    assert bad.returncode == 2 and "ISO 8601" in bad.stderr and "Traceback" not in bad.stderr


def test_serve_with_a_bad_policy_or_token_file_fails_before_listening(tmp_path: Path) -> None:
    assert_one_line_error(run_cli(["serve", "--policy", "no-such-policy", "--port", "1"]), 11)
    tokens = tmp_path / "tokens.yaml"
    tokens.write_text('"t": {roles: [x]}\n')
    assert_one_line_error(run_cli(["serve", "--tokens", str(tokens), "--port", "1",
                                   "--db", str(tmp_path / "rb.db")]), 2, "principal")
    assert not (tmp_path / "rb.db").exists()


def test_serve_refuses_a_tenant_token_without_subscriptions_naming_its_principal(
        tmp_path: Path) -> None:
    tokens = tmp_path / "tokens.yaml"
    tokens.write_text('"platform-tok-123": {principal: svc, platform: true}\n'
                      '"dave-tok-456": {principal: dave, roles: [admin]}\n')
    line = assert_one_line_error(run_cli(["serve", "--tokens", str(tokens), "--port", "1",
                                          "--db", str(tmp_path / "rb.db")]), 2,
                                 "principal 'dave'", "subscriptions")
    assert "tok-" not in line  # never a token
    assert not (tmp_path / "rb.db").exists()
    env_line = assert_one_line_error(
        run_cli(["serve", "--port", "1", "--db", str(tmp_path / "rb.db")],
                env={"RECYCLEBIN_TOKENS": '{"dave-tok-456": {"principal": "dave"}}'}),
        2, "$RECYCLEBIN_TOKENS", "principal 'dave'")
    assert "tok-" not in env_line


def test_serve_refuses_a_max_body_bytes_below_one(tmp_path: Path) -> None:
    bad = run_cli(["serve", "--max-body-bytes", "0", "--db", str(tmp_path / "rb.db")])
    assert bad.returncode == 2 and "--max-body-bytes" in bad.stderr
    assert not (tmp_path / "rb.db").exists()


# ------------------------------------------------------------------------------ admin

def test_admin_list_deletable_and_delete_realm(tmp_path: Path) -> None:
    db = tmp_path / "parsec.db"
    alice = rb.Principal("alice")
    with seed_engine(db, "parsec", days_ago=40) as engine:
        planned = rb.Workspace.create(
            SUB, RG, "secret-plans", principal=alice, engine=engine,
            components=[rb.Component("block", "blocks/aa/1"), rb.Component("block", "blocks/bb/2")])
        planned.delete(principal=alice)
        orphan = rb.Workspace.create(SUB, RG, "secret-orphan", principal=alice, engine=engine)
        orphan.revoke("alice")
        rb.Workspace.create(SUB, RG, "kept", engine=engine)
    base = ["--organization", SUB, "--db", str(db), "--policy", "parsec"]

    listed = run_cli(["admin", "list-deletable", *base])
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0] == "Found 2 deletion candidate(s):"
    assert re.fullmatch(rf"Realm {planned.id}  kind=deletion_planned  deletion_date={ISO_Z}",
                        [line for line in lines if planned.id in line][0])
    assert re.fullmatch(rf"Realm {orphan.id}  kind=orphaned          orphaned_since={ISO_Z}",
                        [line for line in lines if orphan.id in line][0])
    assert "secret" not in listed.stdout
    as_json = json.loads(run_cli(["admin", "list-deletable", *base, "-o", "json"]).stdout)
    assert {c["kind"] for c in as_json} == {"deletion_planned", "orphaned"}

    dump = tmp_path / "paths-to-delete.txt"
    deleted = run_cli(["admin", "delete-realm", *base, "--realm", planned.id,
                       "--dump-blocks", str(dump), "--yes"])
    assert deleted.returncode == 0, deleted.stderr
    assert sorted(dump.read_text().splitlines()) == ["blocks/aa/1", "blocks/bb/2"]
    assert f"Deleting metadata for realm {planned.id}... ✔" in deleted.stdout
    assert f"Exported 2 block slug(s) to {dump}" in deleted.stdout
    assert "still present in the object storage" in deleted.stdout
    assert "2/2" in deleted.stderr  # the progress bar

    again = run_cli(["admin", "list-deletable", *base])
    assert again.stdout.splitlines()[0] == "Found 1 deletion candidate(s):"
    assert_one_line_error(run_cli(["admin", "delete-realm", *base, "--realm", orphan.id,
                                   "--dump-blocks", str(dump), "--yes"]), 2, "exists")
    # A realm no longer deletable is refused as OperationNotAllowed (issue 16), not "not found".
    assert_one_line_error(run_cli(["admin", "delete-realm", *base, "--realm", planned.id,
                                   "--dump-blocks", str(tmp_path / "x.txt"), "--yes"]), 7,
                          "list-deletable")
    assert not (tmp_path / "x.txt").exists()
    orphan_dump = tmp_path / "orphan.txt"
    assert run_cli(["admin", "delete-realm", *base, "--realm", orphan.id, "--dump-blocks",
                    str(orphan_dump), "--yes"]).returncode == 0
    assert orphan_dump.read_text() == ""

    tasks = run_cli(["admin", "cleanup-tasks", "--db", str(db), "--policy", "parsec",
                     "-o", "json"])
    refs = json.loads(tasks.stdout)
    assert sorted(t["ref"] for t in refs) == ["blocks/aa/1", "blocks/bb/2"]
    done = run_cli(["admin", "complete-cleanup", str(refs[0]["id"]), "--db", str(db),
                    "--policy", "parsec"])
    assert done.returncode == 0, done.stderr
    table = run_cli(["admin", "cleanup-tasks", "--db", str(db), "--policy", "parsec"])
    assert "1 pending cleanup task(s)" in table.stdout
    assert_one_line_error(run_cli(["admin", "complete-cleanup", "9999", "--db", str(db),
                                   "--policy", "parsec"]), 3)


# ---------------------------------------------------------------------- purge-expired

def test_purge_expired_with_a_progress_bar(tmp_path: Path) -> None:
    db = tmp_path / "rb.db"
    with seed_engine(db, "default", days_ago=40) as engine:
        rb.Workspace.create(SUB, RG, "old", components=[rb.Component("notebooks", "nb-1")],
                            engine=engine).delete()
        rb.Workspace.create(SUB, RG, "live", engine=engine)
    result = run_cli(["purge-expired", "--db", str(db), "--yes"])
    assert result.returncode == 0, result.stderr
    assert "Purged 1 workspace(s)" in result.stdout and "old" in result.stdout
    assert "1 cleanup task(s) queued" in result.stdout
    assert "Purging expired workspaces" in result.stderr and "1/1" in result.stderr
    again = run_cli(["purge-expired", "--db", str(db), "--yes", "-o", "json"])
    assert json.loads(again.stdout) == {"purged": [], "cleanup": [],  # version 2: auto-deletion
                                        "auto_deleted": [], "auto_delete_refused": []}


# ----------------------------------------------------------------------------- policy

POLICY_WITH_TENANTS = """\
version: 1
name: example
retention: {default_days: 10, max_days: 14}
permissions:
  delete: [owner]
tenants:
  contoso:
    retention: {default_days: 7}
    preconditions: {blockers: [running_jobs]}
"""


def test_policy_check_prints_the_effective_policy_per_tenant(tmp_path: Path) -> None:
    policy = tmp_path / "example.yaml"
    policy.write_text(POLICY_WITH_TENANTS)
    result = run_cli(["policy", "check", str(policy)])
    assert result.returncode == 0, result.stderr
    assert "valid" in result.stdout and "tenant contoso" in result.stdout
    row = [line for line in result.stdout.splitlines() if "retention.default_days" in line][0]
    assert re.search(r"10\D+7", row), row
    as_json = json.loads(run_cli(["policy", "check", str(policy), "-o", "json"]).stdout)
    assert as_json["base"]["retention"]["default_days"] == 10
    assert as_json["tenants"]["contoso"]["retention"]["default_days"] == 7
    assert as_json["tenants"]["contoso"]["preconditions"]["blockers"] == ["running_jobs"]
    assert as_json["base"]["soft_delete"]["enabled"] is True  # defaults spelled out


def test_policy_check_reports_errors_with_line_and_column(tmp_path: Path) -> None:
    policy = tmp_path / "bad.yaml"
    policy.write_text("version: 1\nname: bad\nretention:\n  default_days: lots\n")
    result = run_cli(["policy", "check", str(policy)])
    assert result.returncode == 11, result.stderr
    assert "Traceback" not in result.stderr
    assert re.search(rf"{re.escape(str(policy))}:4:\d+:", result.stderr), result.stderr
    missing = run_cli(["policy", "check", str(tmp_path / "missing.yaml")])
    assert missing.returncode == 2 and "Traceback" not in missing.stderr


def test_policy_show_builtin(tmp_path: Path) -> None:
    result = run_cli(["policy", "show", "parsec"])
    assert result.returncode == 0, result.stderr
    assert "tenant longarchive-org" in result.stdout and "hold" in result.stdout
    as_yaml = run_cli(["policy", "show", "parsec", "-o", "yaml"])
    assert "on_expiry: hold" in as_yaml.stdout and "longarchive-org" in as_yaml.stdout
    assert_one_line_error(run_cli(["policy", "show", "nope"]), 11, "azureml")
