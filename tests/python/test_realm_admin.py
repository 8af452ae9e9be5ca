"""The realm admin's commands as the realm server runs them (issue 16): ``list-deletable``
lists a realm both orphaned and past its deletion date under each kind; ``delete-realm``
exports the complete block list, durably, before it deletes the metadata (checked by killing
the command at random moments); ``--dry-run`` changes nothing; a refusal exits as
``OperationNotAllowed``. Also the engine calls underneath: ``list_deletable`` and
``purge_by_id(dry_run=..., expected_refs=...)``."""

from __future__ import annotations

import errno
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

import recyclebin as rb
from recyclebin import cli
from conftest import MakeEngine, pg_location
from rest_helpers import RG, SUB, cli_command, run_cli

ISO_Z = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?Z"
US = timedelta(microseconds=1)
ALICE = rb.Principal("alice")
EXIT_REFUSED = cli.EXIT_CODES[rb.OperationNotAllowed.code]

# The realm server's policy, with one kind destroyed at delete time, so that a planned realm
# also has cleanup tasks pending before delete-realm runs (the dump lists those too).
POLICY_WITH_CACHE = """\
version: 1
name: realm-with-cache
retention: {default_days: 30, min_days: 1, max_days: 3650, per_workspace: false,
            on_expiry: hold}
soft_delete: {enabled: true, hard_delete_if_cmk: false}
permanent_delete: {allowed: false, batch: false}
name_reservation: {scope: none}
components:
  block: {on_delete: retain}
  cache: {on_delete: destroy}
permissions: {delete: [owner], recover: [owner], purge: [admin]}
"""


@pytest.fixture(autouse=True)
def _run_in_tmp_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def seed_engine(db: Path, policy: str, days_ago: float) -> rb.Engine:
    """An engine on the CLI's database whose clock stands ``days_ago`` in the past, so what
    it deletes is past its date by the system clock the CLI runs on."""
    start = datetime.now(timezone.utc) - timedelta(days=days_ago)
    return rb.Engine.open(str(db), policy=policy, clock=rb.ManualClock(start))


def blocks(prefix: str, count: int) -> list[rb.Component]:
    return [rb.Component("block", f"blocks/{prefix}/{i:05d}") for i in range(count)]


def planned_realm(engine: rb.Engine, name: str, components: list[rb.Component]) -> rb.Workspace:
    ws = rb.Workspace.create(SUB, RG, name, principal=ALICE, components=components, engine=engine)
    ws.delete(principal=ALICE)
    return ws


def orphaned_realm(engine: rb.Engine, name: str, components: list[rb.Component]) -> rb.Workspace:
    ws = rb.Workspace.create(SUB, RG, name, principal=ALICE, components=components, engine=engine)
    ws.revoke("alice")
    return ws


def deletable_ids(db: Path, policy: str = "parsec") -> list[str]:
    with rb.Engine.open(str(db), policy=policy) as engine:
        return [d.workspace_id for d in engine.list_deletable(SUB)]


def base_args(db: Path, policy: str = "parsec") -> list[str]:
    return ["--organization", SUB, "--db", str(db), "--policy", policy]


# ------------------------------------------------------------------- the engine calls

def test_list_deletable_lists_an_orphaned_realm_past_its_date_under_each_kind(
        make_engine: MakeEngine, clock: rb.ManualClock, start: datetime) -> None:
    engine = make_engine("parsec")
    ws = rb.Workspace.create(SUB, RG, "realm", principal=ALICE, engine=engine,
                             components=blocks("a", 2))
    clock.advance(timedelta(hours=1))
    ws.revoke("alice")
    purge_at = ws.delete().purge_at
    assert purge_at is not None
    clock.set(purge_at - US)
    assert engine.list_deletable(SUB) == [
        rb.DeletableWorkspace("orphaned", ws.id, start + timedelta(hours=1))]
    clock.set(purge_at)
    assert engine.list_deletable(SUB) == [
        rb.DeletableWorkspace("orphaned", ws.id, start + timedelta(hours=1)),
        rb.DeletableWorkspace("deletion_planned", ws.id, purge_at)]
    assert [t.ref for t in engine.purge_by_id(ws.id).cleanup] == [
        "blocks/a/00000", "blocks/a/00001"]
    assert engine.list_deletable(SUB) == []


def test_purge_by_id_dry_run_changes_nothing(make_engine: MakeEngine, clock: rb.ManualClock) -> None:
    engine = make_engine(rb.Policy.from_yaml(POLICY_WITH_CACHE))
    ws = planned_realm(engine, "realm", [*blocks("a", 2), rb.Component("cache", "cache/1")])
    clock.advance(timedelta(days=31))
    before = (engine.audit_log(), engine.cleanup_tasks(), engine.list_deletable(SUB))
    planned = engine.purge_by_id(ws.id, dry_run=True)
    assert planned.dry_run is True and planned.permanent is True and planned.purge_at is None
    assert planned.deleted_at == clock.now()
    assert [(t.id, t.kind, t.ref, t.workspace_id, t.created_at) for t in planned.cleanup] == [
        (0, "block", "blocks/a/00000", ws.id, clock.now()),
        (0, "block", "blocks/a/00001", ws.id, clock.now())]  # cache/1: pending since the delete
    assert (engine.audit_log(), engine.cleanup_tasks(), engine.list_deletable(SUB)) == before
    assert rb.Workspace.get_deleted("realm", SUB, RG, engine=engine).id == ws.id
    real = engine.purge_by_id(ws.id)
    assert real.dry_run is False
    assert [t.ref for t in real.cleanup] == [t.ref for t in planned.cleanup]
    assert (real.destroyed, real.preserved) == (planned.destroyed, planned.preserved)
    with pytest.raises(rb.OperationNotAllowed, match="not deletable"):
        engine.purge_by_id(ws.id, dry_run=True)


def test_purge_by_id_dry_run_raises_what_the_real_call_raises_unaudited(
        make_engine: MakeEngine) -> None:
    engine = make_engine("parsec")
    ws = rb.Workspace.create(SUB, RG, "realm", principal=ALICE, engine=engine)
    audited = len(engine.audit_log())
    with pytest.raises(rb.PermissionDenied):
        engine.purge_by_id(ws.id, principal=rb.Principal("mallory"), dry_run=True)
    with pytest.raises(rb.OperationNotAllowed):
        engine.purge_by_id(ws.id, dry_run=True)
    with pytest.raises(rb.OperationNotAllowed):
        engine.purge_by_id("no-such-realm", dry_run=True)
    assert len(engine.audit_log()) == audited
    with pytest.raises(TypeError, match="dry_run must be a bool"):
        engine.purge_by_id(ws.id, dry_run="yes")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="collection of refs"):
        engine.purge_by_id(ws.id, expected_refs="blocks/1")
    with pytest.raises(TypeError, match="each of expected_refs must be a str"):
        engine.purge_by_id(ws.id, expected_refs=[b"blocks/1"])  # type: ignore[list-item]
    ws.revoke("alice")
    assert engine.purge_by_id(ws.id, dry_run=True).cleanup == []
    assert ws.state != "deleted"  # a dry run leaves the live handle alone


def test_purge_by_id_with_expected_refs_removes_nothing_unless_all_were_exported(
        make_engine: MakeEngine, clock: rb.ManualClock) -> None:
    engine = make_engine("parsec")
    ws = planned_realm(engine, "realm", blocks("a", 3))
    clock.advance(timedelta(days=31))
    with pytest.raises(rb.OperationNotAllowed, match=r"blocks/a/00002.*nothing was removed"):
        engine.purge_by_id(ws.id, expected_refs=["blocks/a/00000", "blocks/a/00001"])
    assert engine.cleanup_tasks() == [] and [d.workspace_id for d in engine.list_deletable(SUB)] == [ws.id]
    assert engine.audit_log()[-1].outcome == "refused:operation_not_allowed"
    result = engine.purge_by_id(ws.id, expected_refs=(f"blocks/a/{i:05d}" for i in range(3)))
    assert len(result.cleanup) == 3 and engine.list_deletable(SUB) == []


# ------------------------------------------------------------------------ list-deletable

def test_cli_lists_both_kinds_with_each_date_in_table_and_json(tmp_path: Path) -> None:
    db = tmp_path / "parsec.db"
    with seed_engine(db, "parsec", days_ago=40) as engine:
        both = rb.Workspace.create(SUB, RG, "secret-both", principal=ALICE, engine=engine)
        both.revoke("alice")
        both.delete()
        orphan_since = engine.list_deletable(SUB)[0].since
    listed = run_cli(["admin", "list-deletable", *base_args(db)])
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0] == "Found 2 deletion candidate(s):"
    assert re.fullmatch(rf"Realm {both.id}  kind=orphaned          orphaned_since={ISO_Z}",
                        lines[1]), lines
    assert re.fullmatch(rf"Realm {both.id}  kind=deletion_planned  deletion_date={ISO_Z}",
                        lines[2]), lines
    assert lines[1].endswith(cli._iso(orphan_since)) and len(lines) == 3
    as_json = json.loads(run_cli(["admin", "list-deletable", *base_args(db), "-o", "json"]).stdout)
    assert [(c["kind"], c["workspace_id"]) for c in as_json] == [
        ("orphaned", both.id), ("deletion_planned", both.id)]
    assert as_json[0]["orphaned_since"] == as_json[0]["since"] == cli._iso(orphan_since)
    assert as_json[1]["deletion_date"] == as_json[1]["since"]
    assert "orphaned_since" not in as_json[1] and "deletion_date" not in as_json[0]
    assert "secret" not in listed.stdout


def test_cli_empty_listing_in_the_realm_servers_words(tmp_path: Path) -> None:
    db = tmp_path / "parsec.db"
    listed = run_cli(["admin", "list-deletable", *base_args(db)])
    assert (listed.returncode, listed.stdout) == (0, "Found 0 deletion candidate(s):\n")
    as_json = run_cli(["admin", "list-deletable", *base_args(db), "-o", "json"])
    assert json.loads(as_json.stdout) == []


# --------------------------------------------------------------------------- delete-realm

def planned_realm_with_cache(tmp_path: Path, block_count: int) -> tuple[Path, Path, rb.Workspace]:
    """realm.db with one realm past its date: ``block_count`` blocks, and cache/1 whose
    cleanup task has been pending since the delete; and the policy file it needs."""
    db = tmp_path / "realm.db"
    policy = tmp_path / "realm.yaml"
    policy.write_text(POLICY_WITH_CACHE)
    with seed_engine(db, str(policy), days_ago=40) as engine:
        ws = planned_realm(engine, "r", [*blocks("a", block_count), rb.Component("cache", "cache/1")])
    return db, policy, ws


def test_delete_realm_exports_before_it_deletes(tmp_path: Path) -> None:
    db, policy, ws = planned_realm_with_cache(tmp_path, 3)
    dump = tmp_path / "paths-to-delete.txt"
    deleted = run_cli(["admin", "delete-realm", *base_args(db, str(policy)), "--realm", ws.id,
                       "--dump-realm-blocks", str(dump), "--yes"])
    assert deleted.returncode == 0, deleted.stderr
    # The pending task first (cache/1, written at the soft delete), then the purge's own.
    assert dump.read_text() == "cache/1\n" + "".join(f"blocks/a/{i:05d}\n" for i in range(3))
    lines = deleted.stdout.splitlines()
    assert lines == [
        f"Exported 4 block slug(s) to {dump}",
        f"Deleting metadata for realm {ws.id}... ✔",
        "⚠️ The realm has been deleted, however its blocks are still present in the object "
        "storage",
        "⚠️ You should now manually clean the object storage by removing all the path listed "
        f"in {dump}"]
    assert "Exporting a list of all the realm's block that can be removed" in deleted.stderr
    assert "4/4" in deleted.stderr
    assert deletable_ids(db, str(policy)) == []
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".partial")] == []


def test_delete_realm_refused_exits_as_operation_not_allowed(tmp_path: Path) -> None:
    db = tmp_path / "parsec.db"
    with seed_engine(db, "parsec", days_ago=10) as engine:
        young = planned_realm(engine, "young", blocks("y", 1))   # deletion date not reached
        live = rb.Workspace.create(SUB, RG, "live", principal=ALICE, engine=engine)
        other = rb.Workspace.create("other-org", RG, "o", principal=ALICE, engine=engine)
        other.revoke("alice")
    assert EXIT_REFUSED == 7 and EXIT_REFUSED != cli.EXIT_CODES["workspace_not_found"]
    dump = tmp_path / "dump.txt"
    for realm in (young.id, live.id, "no-such-realm", other.id):
        for extra in ([], ["--dry-run"]):
            result = run_cli(["admin", "delete-realm", *base_args(db), "--realm", realm,
                              "--dump-blocks", str(dump), "--yes", *extra])
            assert result.returncode == EXIT_REFUSED, (realm, extra, result.stderr)
            assert "not deletable" in result.stderr and "list-deletable" in result.stderr
            assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
            assert not dump.exists()
    assert "in organization 'sub-1'" in run_cli(
        ["admin", "delete-realm", *base_args(db), "--realm", other.id, "--dry-run"]).stderr
    with rb.Engine.open(str(db), policy="parsec") as engine:
        assert [d.workspace_id for d in engine.list_deletable("other-org")] == [other.id]


def test_delete_realm_needs_a_dump_file_unless_dry_run(tmp_path: Path) -> None:
    db = tmp_path / "parsec.db"
    result = run_cli(["admin", "delete-realm", *base_args(db), "--realm", "r", "--yes"])
    assert result.returncode == 2 and "--dump-blocks FILE is required" in result.stderr
    result = run_cli(["admin", "delete-realm", *base_args(db), "--realm", "r",
                      "--dump-blocks", str(tmp_path / "d.txt")])
    assert result.returncode == 2 and "--yes" in result.stderr
    assert not (tmp_path / "d.txt").exists() and not db.exists()


def test_delete_realm_dry_run_prints_and_changes_nothing(tmp_path: Path) -> None:
    db, policy, ws = planned_realm_with_cache(tmp_path, 2)
    with rb.Engine.open(str(db), policy=str(policy)) as engine:
        before = (engine.audit_log(), engine.cleanup_tasks(), engine.list_deletable(SUB))
    db_bytes = db.read_bytes()
    existing = tmp_path / "existing.txt"
    existing.write_text("an earlier dump\n")
    for extra in ([], ["--yes"], ["--dump-blocks", str(tmp_path / "new.txt")],
                  ["--dump-blocks", str(existing), "--yes"]):
        result = run_cli(["admin", "delete-realm", *base_args(db, str(policy)), "--realm", ws.id,
                          "--dry-run", *extra])
        assert result.returncode == 0, (extra, result.stderr)
        assert result.stdout.splitlines() == [
            "Would export 3 block slug(s) (dry run: no file is written):",
            "  cache/1", "  blocks/a/00000", "  blocks/a/00001",
            f"Would delete metadata for realm {ws.id} (dry run: nothing was deleted)"]
    assert not (tmp_path / "new.txt").exists() and existing.read_text() == "an earlier dump\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["existing.txt", "realm.db", "realm.yaml", *(p.name for p in tmp_path.glob("realm.db-*"))])
    with rb.Engine.open(str(db), policy=str(policy)) as engine:
        assert (engine.audit_log(), engine.cleanup_tasks(), engine.list_deletable(SUB)) == before
    assert db.read_bytes() == db_bytes or db.with_name("realm.db-wal").exists()


def test_delete_realm_keeps_an_existing_dump_and_the_realm(tmp_path: Path) -> None:
    db = tmp_path / "parsec.db"
    with seed_engine(db, "parsec", days_ago=40) as engine:
        ws = planned_realm(engine, "r", blocks("a", 2))
    dump = tmp_path / "dump.txt"
    dump.write_text("blocks of an earlier realm\n")
    result = run_cli(["admin", "delete-realm", *base_args(db), "--realm", ws.id,
                      "--dump-blocks", str(dump), "--yes"])
    assert result.returncode == 2 and "exists" in result.stderr
    assert dump.read_text() == "blocks of an earlier realm\n"
    assert deletable_ids(db) == [ws.id]
    missing_dir = run_cli(["admin", "delete-realm", *base_args(db), "--realm", ws.id,
                           "--dump-blocks", str(tmp_path / "no" / "dump.txt"), "--yes"])
    assert missing_dir.returncode == cli.EXIT_STORAGE, missing_dir.stderr
    assert deletable_ids(db) == [ws.id]


# In-process runs (CliRunner), to make a step fail where a subprocess cannot reach.

@pytest.fixture
def planned_db(tmp_path: Path) -> Iterator[tuple[Path, rb.Workspace]]:
    db = tmp_path / "parsec.db"
    with seed_engine(db, "parsec", days_ago=40) as engine:
        ws = planned_realm(engine, "r", blocks("a", 3))
    yield db, ws


def delete_in_process(db: Path, ws: rb.Workspace, dump: Path) -> Result:
    return CliRunner().invoke(cli.app, ["admin", "delete-realm", *base_args(db), "--realm", ws.id,
                                        "--dump-blocks", str(dump), "--yes"],
                              catch_exceptions=False)


def assert_kept_without_dump(db: Path, ws: rb.Workspace, dump: Path) -> None:
    assert not dump.exists() and list(dump.parent.glob(f".{dump.name}.*")) == []
    assert deletable_ids(db) == [ws.id]


def test_a_failed_write_leaves_no_dump_and_the_realm(
        planned_db: tuple[Path, rb.Workspace], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    db, ws = planned_db
    real_fsync = os.fsync

    def full_disk(fd: int) -> None:
        if not os.path.isdir(f"/proc/self/fd/{fd}") and os.fstat(fd).st_size > 0:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", full_disk)
    dump = tmp_path / "dump.txt"
    result = delete_in_process(db, ws, dump)
    assert result.exit_code == cli.EXIT_STORAGE
    assert "No space left on device" in result.output
    assert_kept_without_dump(db, ws, dump)


def test_without_hard_links_the_dump_is_renamed_into_place(
        planned_db: tuple[Path, rb.Workspace], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    db, ws = planned_db

    def no_links(src: object, dst: object) -> None:
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    dump = tmp_path / "dump.txt"
    result = delete_in_process(db, ws, dump)
    assert result.exit_code == 0, result.output
    assert dump.read_text().splitlines() == [f"blocks/a/{i:05d}" for i in range(3)]
    assert deletable_ids(db) == [] and list(tmp_path.glob(".dump.txt.*")) == []


def test_a_block_reference_with_a_line_break_is_not_exported(tmp_path: Path) -> None:
    db = tmp_path / "parsec.db"
    with seed_engine(db, "parsec", days_ago=40) as engine:
        ws = planned_realm(engine, "r", [rb.Component("block", "blocks/a\nblocks/b")])
    dump = tmp_path / "dump.txt"
    result = delete_in_process(db, ws, dump)
    assert result.exit_code == cli.EXIT_CODES["invalid_argument"], result.output
    assert "line break ('blocks/a\\nblocks/b')" in result.output
    assert_kept_without_dump(db, ws, dump)


def _stale_dry_runs(monkeypatch: pytest.MonkeyPatch, stale: int) -> list[str]:
    """The first ``stale`` dry runs answer one block fewer than the realm has, as if a block
    was added between the export and the purge; returns the log of calls."""
    calls: list[str] = []
    real = rb.Engine.purge_by_id

    def purge_by_id(self: rb.Engine, workspace_id: str, **kwargs: object) -> rb.DeleteResult:
        calls.append("dry" if kwargs.get("dry_run") else "purge")
        result = real(self, workspace_id, **kwargs)  # type: ignore[arg-type]
        if kwargs.get("dry_run") and calls.count("dry") <= stale:
            return rb.DeleteResult(result.permanent, result.deleted_at, result.purge_at,
                                   result.retained, result.destroyed, result.preserved,
                                   result.cleanup[:-1], result.warnings, True)
        return result

    monkeypatch.setattr(rb.Engine, "purge_by_id", purge_by_id)
    return calls


def test_blocks_changed_after_the_export_are_exported_again(
        planned_db: tuple[Path, rb.Workspace], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    db, ws = planned_db
    calls = _stale_dry_runs(monkeypatch, stale=1)
    dump = tmp_path / "dump.txt"
    result = delete_in_process(db, ws, dump)
    assert result.exit_code == 0, result.output
    assert calls == ["dry", "purge", "dry", "purge"]  # the fenced purge refused the stale list
    assert dump.read_text().splitlines() == [f"blocks/a/{i:05d}" for i in range(3)]
    assert "exporting them again (attempt 2 of 3)" in result.output
    assert "Exported 3 block slug(s)" in result.output
    assert deletable_ids(db) == []


def test_blocks_that_keep_changing_leave_the_realm_and_no_dump(
        planned_db: tuple[Path, rb.Workspace], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    db, ws = planned_db
    _stale_dry_runs(monkeypatch, stale=10)
    dump = tmp_path / "dump.txt"
    result = delete_in_process(db, ws, dump)
    assert result.exit_code == EXIT_REFUSED, result.output
    assert "was not deleted" in result.output
    assert_kept_without_dump(db, ws, dump)


def test_a_realm_adopted_after_the_export_stays_and_loses_its_dump(
        planned_db: tuple[Path, rb.Workspace], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Between the export and the purge the realm stops being deletable (here: recovered):
    the purge is refused, and the dump, which lists blocks still in use, is removed."""
    db, ws = planned_db
    real = rb.Engine.purge_by_id

    def recover_first(self: rb.Engine, workspace_id: str, **kwargs: object) -> rb.DeleteResult:
        if not kwargs.get("dry_run"):
            rb.Workspace.recover(SUB, RG, "r", engine=self)
        return real(self, workspace_id, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(rb.Engine, "purge_by_id", recover_first)
    dump = tmp_path / "dump.txt"
    result = delete_in_process(db, ws, dump)
    assert result.exit_code == EXIT_REFUSED, result.output
    assert not dump.exists()
    with rb.Engine.open(str(db), policy="parsec") as engine:
        assert rb.Workspace.get("r", SUB, RG, engine=engine).id == ws.id


# ----------------------------------------------------------------- killed at random moments

KILL_RUNS = int(os.environ.get("RECYCLEBIN_REALM_KILL_RUNS", "30"))
BLOCKS_PER_REALM = 400


def _expected_dump(index: int, planned: bool) -> str:
    refs = ([f"cache/{index}"] if planned else []) + [
        c.ref for c in blocks(f"r{index}", BLOCKS_PER_REALM)]
    return "".join(ref + "\n" for ref in refs)


def _start_delete(db: Path, policy: Path, realm: str, dump: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECYCLEBIN_")}
    return subprocess.Popen([*cli_command(), "admin", "delete-realm", *base_args(db, str(policy)),
                             "--realm", realm, "--dump-blocks", str(dump), "--yes"],
                            env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def _export_started(dump: Path) -> bool:
    return dump.exists() or any(dump.parent.glob(f".{dump.name}.*.partial"))


def test_killed_at_random_moments_the_realm_stays_or_goes_with_a_complete_dump(
        tmp_path: Path) -> None:
    """kill -9 at random moments, most of them after the export began: afterwards the realm
    is in place (with no dump, or a complete one), or deleted with a complete dump; a dump
    file is never partial. RECYCLEBIN_REALM_KILL_RUNS sets the number of runs (30)."""
    rng = random.Random(int(os.environ.get("RECYCLEBIN_REALM_KILL_SEED", "16")))
    db = tmp_path / "realms.db"
    policy = tmp_path / "realm.yaml"
    policy.write_text(POLICY_WITH_CACHE)
    realms: list[tuple[str, bool]] = []
    with seed_engine(db, str(policy), days_ago=40) as engine:
        for i in range(KILL_RUNS + 1):
            components = blocks(f"r{i}", BLOCKS_PER_REALM)
            if i % 2 == 0:
                realms.append((planned_realm(engine, f"r{i}", [
                    rb.Component("cache", f"cache/{i}"), *components]).id, True))
            else:
                realms.append((orphaned_realm(engine, f"r{i}", components).id, False))

    # One run to the end: when the export begins (its temporary file), when the dump is in
    # place (the purge starts), when the command ends.
    dump = tmp_path / "dump-calibrate.txt"
    proc = _start_delete(db, policy, realms[-1][0], dump)
    started = time.monotonic()
    began = dumped = None
    while proc.poll() is None and time.monotonic() - started < 60:
        if began is None and _export_started(dump):
            began = time.monotonic()
        if dumped is None and dump.exists():
            dumped = time.monotonic()
        time.sleep(0.0002)
    assert proc.wait(timeout=60) == 0
    ended = time.monotonic()
    assert dump.read_text() == _expected_dump(KILL_RUNS, realms[-1][1])
    total = ended - started
    export_to_end = ended - (began if began is not None else started)
    dump_to_end = ended - (dumped if dumped is not None else started)

    outcomes: dict[str, int] = {"in place, no dump": 0, "in place, complete dump": 0,
                                "deleted, complete dump": 0}
    killed_after_export = 0
    for i, (realm, planned) in enumerate(realms[:-1]):
        dump = tmp_path / f"dump-{i}.txt"
        proc = _start_delete(db, policy, realm, dump)
        t0 = time.monotonic()
        # Where the kill lands: anywhere in the run (start-up included); once the export has
        # begun; or once the dump is in place, while the metadata is being deleted.
        strategy = i % 3
        if strategy == 0:
            time.sleep(rng.uniform(0, total * 1.1))
        else:
            ready = _export_started if strategy == 1 else Path.exists
            while proc.poll() is None and not ready(dump) and time.monotonic() - t0 < 60:
                time.sleep(0.0002)
            time.sleep(rng.uniform(0, export_to_end * 1.1 if strategy == 1
                                   else dump_to_end * 0.3))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            killed_after_export += _export_started(dump)
        proc.wait(timeout=60)

        in_place = realm in deletable_ids(db, str(policy))
        if dump.exists():
            assert dump.read_text() == _expected_dump(i, planned), f"run {i}: partial dump"
        else:
            assert in_place, f"run {i}: the realm was deleted without its dump"
        if proc.returncode == 0:
            assert not in_place and dump.exists()
        outcomes[("in place, " if in_place else "deleted, ")
                 + ("complete dump" if dump.exists() else "no dump")] += 1
        # Leftovers are only hidden temporary files, never at the dump's own path.
        for leftover in tmp_path.glob(f"*dump-{i}.txt*"):
            assert leftover == dump or leftover.name.endswith(".partial"), leftover
        if in_place and not dump.exists() and outcomes["in place, no dump"] <= 2:
            again = run_cli(["admin", "delete-realm", *base_args(db, str(policy)), "--realm",
                             realm, "--dump-blocks", str(dump), "--yes"])
            assert again.returncode == 0, again.stderr  # a crash leaves a realm one can delete
            assert dump.read_text() == _expected_dump(i, planned)
    print(f"\n{KILL_RUNS} kills: {outcomes}; {killed_after_export} after the export began "
          f"(run {total:.3f} s, export to exit {export_to_end:.3f} s, dump in place to exit "
          f"{dump_to_end:.3f} s)", file=sys.stderr)
    assert killed_after_export >= 1
    with rb.Engine.open(str(db), policy=str(policy)) as engine:  # the store is sound
        assert len(engine.audit_log()) > 0


def test_the_realm_admin_commands_run_against_postgresql(tmp_path: Path) -> None:
    # The realm server's admin commands take --db $PG_URL: the same commands, the same
    # answers, on the shared store (issue 11).
    db = pg_location(str(tmp_path / "realm-admin"))
    policy = tmp_path / "realm.yaml"
    policy.write_text(POLICY_WITH_CACHE)
    with seed_engine(db, str(policy), days_ago=40) as engine:  # type: ignore[arg-type]
        ws = planned_realm(engine, "r", [*blocks("a", 2), rb.Component("cache", "cache/1")])
    args = ["--organization", SUB, "--db", db, "--policy", str(policy)]
    listed = run_cli(["admin", "list-deletable", *args, "-o", "json"])
    assert listed.returncode == 0, listed.stderr
    assert [(c["kind"], c["workspace_id"]) for c in json.loads(listed.stdout)] == [
        ("deletion_planned", ws.id)]
    dry = run_cli(["admin", "delete-realm", *args, "--realm", ws.id, "--dry-run"])
    assert dry.returncode == 0, dry.stderr
    dump = tmp_path / "blocks.txt"
    assert not dump.exists()
    deleted = run_cli(["admin", "delete-realm", *args, "--realm", ws.id,
                       "--dump-blocks", str(dump), "--yes"])
    assert deleted.returncode == 0, deleted.stderr
    assert dump.read_text() == "cache/1\nblocks/a/00000\nblocks/a/00001\n"
    password = urllib.parse.urlsplit(db).password
    assert password and all(password not in out.stdout + out.stderr for out in (listed, dry, deleted))
    again = run_cli(["admin", "list-deletable", *args])
    assert (again.returncode, again.stdout) == (0, "Found 0 deletion candidate(s):\n")
