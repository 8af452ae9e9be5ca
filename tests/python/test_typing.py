"""Typing: ``mypy --strict`` accepts the package and a program that uses the whole API (which
also runs), and rejects misuse, so the stubs are real types, not Any."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import recyclebin as rb

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "python"

# mypy is in the test extras: without it these tests fail (they never skip).

SAMPLE = '''
from __future__ import annotations

import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

from typing_extensions import assert_type

import recyclebin as rb


def facts(workspace: rb.Workspace) -> dict[str, int]:
    return {"running_jobs": 0 if workspace.state == "stopped" else 1}


def main(directory: Path) -> None:
    clock = rb.ManualClock(datetime(2026, 1, 1, tzinfo=timezone.utc))
    clock.advance(timedelta(hours=1))
    clock.set(datetime(2026, 1, 1, tzinfo=timezone.utc))
    assert_type(clock.now(), datetime)

    policy = rb.Policy.from_yaml(
        "version: 1\\nname: sample\\npreconditions: {blockers: [running_jobs]}\\n"
        "permanent_delete: {batch: true}\\nretention: {on_expiry: hold}\\n")
    assert_type(policy.name, str)
    assert_type(policy.tenants, list[str])
    assert_type(policy.to_yaml(), str)
    assert_type(rb.Policy.builtin("azureml"), rb.Policy)
    assert_type(rb.Policy.builtin_names(), list[str])
    (directory / "p.yaml").write_text(policy.source_text)
    assert rb.Policy.load(directory / "p.yaml").name == "sample"

    with rb.Engine.open(directory / "sample.db", policy=policy, clock=clock) as engine:
        rb.set_default_engine(engine)
        engine.set_facts_provider(facts)
        owner = rb.Principal("alice", roles=frozenset({"admin"}))
        ws = rb.Workspace.create(
            "sub", "rg", "ws", soft_delete_retention_days=3, cmk_encrypted=False,
            components=[rb.Component("compute_instance", "ci-1"),
                        rb.Component("volume", "v-1", standalone=True)],
            principal=owner)
        assert_type(ws.id, str)
        assert_type(ws.soft_delete_retention_days, int)
        assert_type(ws.components, list[rb.Component])
        kinds: list[str] = [c.kind for c in ws.components if not c.standalone]
        assert kinds == ["compute_instance"]
        ws.grant("bob", "reader", principal=owner)
        ws.revoke("bob")
        ws.stop(principal=owner)
        ws.start()
        ws.stop()
        result = ws.delete(confirm_name=ws.name, no_wait=True, principal=owner)
        assert_type(result, rb.DeleteResult)
        assert_type(result.purge_at, datetime | None)
        assert_type(result.cleanup, list[rb.CleanupTask])
        if result.purge_at is not None:
            print("purge at", result.purge_at.isoformat())

        try:
            rb.Workspace.create("sub", "rg", "ws")
        except rb.NameReserved as error:
            assert_type(error.reserved_until, datetime | None)
            assert_type(error.code, str)
            assert_type(error.http_status, int)
        except rb.RecycleBinError:
            raise

        page = rb.Workspace.list_deleted("sub", "rg", limit=10)
        assert_type(page, rb.DeletedPage)
        assert_type(page.next_cursor, str | None)
        for item in page:
            assert_type(item, rb.DeletedWorkspace)
            assert_type(item.retained, list[str])
        more = rb.Workspace.list_deleted("sub", limit=10, cursor=page.next_cursor, engine=engine)
        assert len(more) == 1
        deleted = rb.Workspace.get_deleted("ws", "sub", "rg", principal=owner)
        assert_type(deleted.purge_at, datetime)
        recovered = rb.Workspace.recover("sub", "rg", "ws", principal=owner)
        assert_type(recovered.workspace, rb.Workspace)
        assert_type(recovered.must_recreate, list[str])
        again = rb.Workspace.get("ws", "sub", "rg", principal=owner, engine=engine)
        assert again is recovered.workspace
        assert rb.Workspace.get_by_id(ws.id).name == "ws"
        again.delete()
        purged = rb.Workspace.purge("sub", "rg", "ws", principal=owner)
        assert_type(purged.permanent, bool)

        batch = [rb.Workspace.create("sub", "rg", f"b{i}") for i in range(2)]
        for member in batch:
            member.stop()
        results = rb.Workspace.delete_many(batch, permanently_delete=True, principal=None)
        assert_type(results, list[rb.DeleteResult])

        held = rb.Workspace.create("sub", "rg", "held", soft_delete_retention_days=1)
        held.stop()
        held.delete()
        clock.advance(timedelta(days=1))
        report = engine.purge_expired(principal=None)
        assert_type(report.purged, list[tuple[str, str, str]])
        deletable = engine.list_deletable("sub")
        assert_type(deletable, list[rb.DeletableWorkspace])
        for entry in deletable:
            assert_type(entry.since, datetime)
            engine.purge_by_id(entry.workspace_id, principal=None)
        tasks = engine.cleanup_tasks()
        assert_type(tasks, list[rb.CleanupTask])
        for task in tasks:
            assert_type(task.id, int)
            engine.complete_cleanup(task.id)
        records = engine.audit_log("sub")
        assert_type(records, list[rb.AuditRecord])
        outcomes: set[str] = {record.outcome for record in records}
        assert "ok" in outcomes
        try:
            engine.complete_cleanup(10**9)
        except KeyError:
            pass
        rb.set_default_engine(None)
    try:
        engine.audit_log()
    except rb.EngineClosed as error:
        assert error.http_status == 503


if __name__ == "__main__":
    main(Path(sys.argv[1]))
    print("sample ok")
'''

MISUSE = '''
from datetime import datetime
import recyclebin as rb

engine = rb.Engine.open("x.db", policy="default")
ws = rb.Workspace.create("sub", "rg", "ws", soft_delete_retention_days="7", engine=engine)
ws.delete(True)
result = ws.delete()
result.permanent = True
stamp: str = result.deleted_at
rb.Workspace.get("ws", "sub")
engine.complete_cleanup("1")
rb.ManualClock(5)
'''


def _mypy(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, MYPYPATH=str(SOURCE))
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(ROOT / ".mypy_cache"),
         "--no-error-summary", "--show-error-codes", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("modules", [("recyclebin", "recyclebin.errors", "recyclebin.engine",
                                      "recyclebin.workspace", "recyclebin.policy",
                                      "recyclebin.clock", "recyclebin.results",
                                      "recyclebin.models")])
def test_mypy_strict_on_the_api_modules(tmp_path: Path, modules: tuple[str, ...]) -> None:
    args = [part for module in modules for part in ("-m", module)]
    result = _mypy(*args, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict_on_the_whole_package_as_configured() -> None:
    """pyproject's [tool.mypy]: strict over python/recyclebin (CLI and plugins included)."""
    env = dict(os.environ)
    env.pop("MYPYPATH", None)
    result = subprocess.run([sys.executable, "-m", "mypy", "--no-error-summary"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr


def test_sample_program_type_checks_and_runs(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(textwrap.dedent(SAMPLE))
    checked = _mypy(str(sample), cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    ran = subprocess.run([sys.executable, str(sample), str(tmp_path)], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120,
                         env=dict(os.environ, PYTHONPATH=os.pathsep.join(
                             [str(Path(rb.__file__).parents[1]), os.environ.get("PYTHONPATH", "")])))
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "sample ok" in ran.stdout


def test_core_stub_matches_the_module(tmp_path: Path) -> None:
    """stubtest: _core.pyi names what the compiled module has, and nothing else. pybind11's
    metaclass and the implicit __init__ of classes without constructors are not stubbed."""
    package_parent = Path(rb.__file__).parents[1]
    env = dict(os.environ)
    env.pop("MYPYPATH", None)
    if "site-packages" not in package_parent.parts:
        env["MYPYPATH"] = str(package_parent)
    result = subprocess.run([sys.executable, "-m", "mypy.stubtest", "recyclebin._core"],
                            capture_output=True, text=True, timeout=600, env=env,
                            cwd=tmp_path)
    errors = [line for line in result.stdout.splitlines() if line.startswith("error:")]
    unexpected = [line for line in errors
                  if not line.endswith("metaclass differs")
                  and not re.search(r"\.__init__ is inconsistent, stub does not have \*args", line)]
    assert unexpected == [], result.stdout + result.stderr
    assert "checked 1 module" in result.stdout or result.returncode == 0, result.stdout


def test_mypy_rejects_misuse(tmp_path: Path) -> None:
    sample = tmp_path / "misuse.py"
    sample.write_text(MISUSE)
    checked = _mypy(str(sample), cwd=tmp_path)
    assert checked.returncode == 1
    flagged = {int(line.split(":")[1]) for line in checked.stdout.splitlines() if ": error:" in line}
    assert flagged == {6, 7, 9, 10, 11, 12, 13}, checked.stdout
