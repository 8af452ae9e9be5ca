"""API.md's error table, one test per row, through the public package only; plus the
hierarchy itself (codes, HTTP statuses, never a bare RuntimeError)."""

from __future__ import annotations

import pickle
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

import recyclebin as rb

from conftest import MakeEngine

SUB, RG = "sub-1", "rg-1"

TABLE = [
    (rb.WorkspaceNotFound, "workspace_not_found", 404),
    (rb.WorkspaceExists, "workspace_exists", 409),
    (rb.NameReserved, "name_reserved", 409),
    (rb.InvalidRetention, "invalid_retention", 400),
    (rb.OperationNotAllowed, "operation_not_allowed", 409),
    (rb.WorkspaceNotStopped, "workspace_not_stopped", 400),
    (rb.PreconditionFailed, "precondition_failed", 412),
    (rb.PermissionDenied, "permission_denied", 403),
    (rb.PolicyError, "policy_error", 400),
    (rb.EngineClosed, "engine_closed", 503),
    (rb.StorageError, "storage_error", 503),  # v2: unavailable, safe to retry
    (rb.InvalidArgument, "invalid_argument", 400),
    (rb.NotFound, "not_found", 404),
]


@pytest.mark.parametrize(("cls", "code", "status"), TABLE, ids=[row[1] for row in TABLE])
def test_error_class_has_code_and_http_status(cls: type[rb.RecycleBinError], code: str,
                                              status: int) -> None:
    assert issubclass(cls, rb.RecycleBinError)
    assert not issubclass(cls, RuntimeError)
    assert cls.code == code
    assert cls.http_status == status
    error = cls("message")
    assert error.code == code and error.http_status == status
    assert str(error) == "message"  # also for the KeyError one: no quoting
    assert cls.__module__ == "recyclebin.errors"
    assert getattr(rb.errors, cls.__name__) is cls
    assert rb.errors.error_class(code) is cls


def test_value_and_key_errors_are_in_the_hierarchy_too() -> None:
    assert issubclass(rb.InvalidArgument, ValueError)
    assert issubclass(rb.InvalidArgument, rb.RecycleBinError)
    assert issubclass(rb.NotFound, KeyError)
    assert issubclass(rb.NotFound, rb.RecycleBinError)
    assert str(rb.NotFound("no cleanup task 7")) == "no cleanup task 7"  # not KeyError's quoting


def test_workspace_not_found(engine: rb.Engine) -> None:
    with pytest.raises(rb.WorkspaceNotFound) as caught:
        rb.Workspace.get("nope", SUB, RG, engine=engine)
    assert caught.value.code == "workspace_not_found" and caught.value.http_status == 404
    assert "nope" in str(caught.value)


def test_workspace_exists(engine: rb.Engine) -> None:
    rb.Workspace.create(SUB, RG, "ws", engine=engine)
    with pytest.raises(rb.WorkspaceExists) as caught:
        rb.Workspace.create(SUB, RG, "ws", engine=engine)
    assert caught.value.http_status == 409
    assert "ws" in str(caught.value)


def test_name_reserved_carries_reserved_until(engine: rb.Engine, start: datetime) -> None:
    ws = rb.Workspace.create(SUB, RG, "ws", soft_delete_retention_days=3, engine=engine)
    deleted = ws.delete()
    with pytest.raises(rb.NameReserved) as caught:
        rb.Workspace.create(SUB, RG, "ws", engine=engine)
    error = caught.value
    assert error.code == "name_reserved" and error.http_status == 409
    assert error.reserved_until == start + timedelta(days=3) == deleted.purge_at
    assert error.reserved_until is not None and error.reserved_until.tzinfo is not None
    assert error.reserved_until.utcoffset() == timedelta(0)
    assert re.search(r"2026-01-04T00:00:00(\.0+)?Z", str(error)), str(error)
    # It survives pickling (e.g. across a process pool), attribute included.
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is rb.NameReserved and copy.reserved_until == error.reserved_until


@pytest.mark.parametrize("days", [0, 15, -1])
def test_invalid_retention_outside_range(engine: rb.Engine, days: int) -> None:
    with pytest.raises(rb.InvalidRetention) as caught:
        rb.Workspace.create(SUB, RG, "ws", soft_delete_retention_days=days, engine=engine)
    assert caught.value.http_status == 400
    assert "14" in str(caught.value)  # says what would be allowed


def test_invalid_retention_huge_integer(engine: rb.Engine) -> None:
    with pytest.raises(rb.InvalidRetention):
        rb.Workspace.create(SUB, RG, "ws", soft_delete_retention_days=10**30, engine=engine)


def test_invalid_retention_differs_from_fixed(make_engine: MakeEngine) -> None:
    engine = make_engine(retention={"default_days": 14, "min_days": 14, "max_days": 14,
                                    "per_workspace": False})
    with pytest.raises(rb.InvalidRetention):
        rb.Workspace.create(SUB, RG, "ws", soft_delete_retention_days=7, engine=engine)
    ws = rb.Workspace.create(SUB, RG, "ws", engine=engine)
    assert ws.soft_delete_retention_days == 14


@pytest.mark.parametrize("days", [7.0, 7.5, True, "7"])
def test_non_integer_retention_is_a_type_error(engine: rb.Engine, days: Any) -> None:
    with pytest.raises(TypeError):
        rb.Workspace.create(SUB, RG, "ws", soft_delete_retention_days=days, engine=engine)
    with pytest.raises(rb.WorkspaceNotFound):  # nothing was created
        rb.Workspace.get("ws", SUB, RG, engine=engine)


def test_operation_not_allowed_on_soft_deleted(engine: rb.Engine) -> None:
    ws = rb.Workspace.create(SUB, RG, "ws", engine=engine)
    ws.delete()
    with pytest.raises(rb.OperationNotAllowed) as caught:
        ws.stop()
    assert caught.value.http_status == 409
    assert "recover" in str(caught.value) and "purge" in str(caught.value)


def test_operation_not_allowed_dependent_resources_without_permanent(engine: rb.Engine) -> None:
    ws = rb.Workspace.create(SUB, RG, "ws", engine=engine)
    with pytest.raises(rb.OperationNotAllowed):
        ws.delete(delete_dependent_resources=True)
    assert rb.Workspace.get("ws", SUB, RG, engine=engine).state == "running"


def test_operation_not_allowed_where_policy_forbids_permanent(make_engine: MakeEngine) -> None:
    engine = make_engine(permanent_delete={"allowed": False})
    ws = rb.Workspace.create(SUB, RG, "ws", engine=engine)
    with pytest.raises(rb.OperationNotAllowed):
        ws.delete(permanently_delete=True)
    ws.delete()
    with pytest.raises(rb.OperationNotAllowed):
        rb.Workspace.purge(SUB, RG, "ws", engine=engine)


def test_workspace_not_stopped(make_engine: MakeEngine) -> None:
    engine = make_engine(preconditions={"require_stopped": True})
    ws = rb.Workspace.create(SUB, RG, "ws", engine=engine)
    with pytest.raises(rb.WorkspaceNotStopped) as caught:
        ws.delete()
    assert caught.value.http_status == 400
    ws.stop()
    assert ws.delete().permanent is False


def test_precondition_failed_confirm_name(make_engine: MakeEngine) -> None:
    engine = make_engine(preconditions={"require_confirm_name": True})
    ws = rb.Workspace.create(SUB, RG, "ws", engine=engine)
    with pytest.raises(rb.PreconditionFailed) as missing:
        ws.delete()
    assert missing.value.http_status == 412
    with pytest.raises(rb.PreconditionFailed):
        ws.delete(confirm_name="wrong")
    assert ws.delete(confirm_name="ws").permanent is False


def test_precondition_failed_blocker(make_engine: MakeEngine) -> None:
    engine = make_engine(preconditions={"blockers": ["running_jobs"]})
    engine.set_facts_provider(lambda ws: {"running_jobs": 2})
    ws = rb.Workspace.create(SUB, RG, "ws", engine=engine)
    with pytest.raises(rb.PreconditionFailed) as caught:
        ws.delete()
    assert "running_jobs" in str(caught.value)


def test_permission_denied(engine: rb.Engine) -> None:
    owner, stranger = rb.Principal("alice"), rb.Principal("mallory")
    ws = rb.Workspace.create(SUB, RG, "ws", principal=owner, engine=engine)
    with pytest.raises(rb.PermissionDenied) as caught:
        ws.delete(principal=stranger)
    assert caught.value.http_status == 403
    assert ws.delete(principal=owner).permanent is False


def test_policy_error_from_yaml_position() -> None:
    with pytest.raises(rb.PolicyError) as caught:
        rb.Policy.from_yaml("version: 1\nname: x\nretention:\n  default_days: many\n")
    assert caught.value.http_status == 400
    assert str(caught.value).startswith("4:17:"), str(caught.value)


def test_policy_error_load_position(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("version: 1\nname: x\nsoft_delete: {enabled: true, colour: red}\n")
    with pytest.raises(rb.PolicyError) as caught:
        rb.Policy.load(path)
    assert str(caught.value).startswith(f"{path}:3:"), str(caught.value)
    assert "colour" in str(caught.value)


def test_policy_error_unknown_builtin_lists_names() -> None:
    with pytest.raises(rb.PolicyError) as caught:
        rb.Policy.builtin("nope")
    for name in ("default", "azureml", "dataworks", "parsec", "exostellar", "cloud-workstation"):
        assert name in str(caught.value)


@pytest.mark.parametrize("permissions", [{"teleport": ["owner"]}, {"delete": []}])
def test_policy_error_bad_permissions(policy_yaml: Any, permissions: dict[str, Any]) -> None:
    with pytest.raises(rb.PolicyError):
        rb.Policy.from_yaml(policy_yaml(permissions=permissions))


def test_engine_closed(engine: rb.Engine) -> None:
    engine.close()
    with pytest.raises(rb.EngineClosed) as caught:
        rb.Workspace.create(SUB, RG, "ws", engine=engine)
    assert caught.value.http_status == 503


def test_complete_cleanup_unknown_id_is_key_error(engine: rb.Engine) -> None:
    with pytest.raises(KeyError) as caught:
        engine.complete_cleanup(12345)
    assert isinstance(caught.value, rb.NotFound)
    assert caught.value.code == "not_found"


def test_storage_error_is_not_a_runtime_error(tmp_path: Path) -> None:
    missing_dir = tmp_path / "no" / "such" / "dir" / "bin.db"
    with pytest.raises(rb.RecycleBinError) as caught:
        rb.Engine.open(missing_dir)
    assert isinstance(caught.value, rb.StorageError)
    assert not isinstance(caught.value, RuntimeError)
    assert caught.value.http_status == 503  # v2: StorageError is 503


def test_naive_datetime_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="naive"):
        rb.ManualClock(datetime(2026, 1, 1))
    clock = rb.ManualClock(datetime(2026, 1, 1, tzinfo=timezone.utc))
    with pytest.raises(ValueError, match="naive"):
        clock.set(datetime(2026, 1, 2))


def test_facade_without_engine_is_a_runtime_error_saying_so() -> None:
    with pytest.raises(RuntimeError, match="set_default_engine"):
        rb.Workspace.get("ws", SUB, RG)


def test_a_delete_whose_purge_date_is_past_year_9999_changes_nothing(
        engine: rb.Engine, clock: rb.ManualClock) -> None:
    # issue 10, item 9: it used to commit the delete, then raise "year 10000 is out of range",
    # and every later list_deleted raised too.
    ws = rb.Workspace.create(SUB, RG, "ws", components=[rb.Component("compute_instance", "ci-1")],
                             engine=engine)
    clock.set(datetime(9999, 12, 25, tzinfo=timezone.utc))
    with pytest.raises(rb.InvalidArgument, match="outside the times recyclebin can represent"):
        ws.delete()
    assert rb.Workspace.get("ws", SUB, RG, engine=engine).id == ws.id
    assert list(rb.Workspace.list_deleted(SUB, engine=engine)) == []
    assert engine.cleanup_tasks() == []
    clock.set(datetime(9999, 12, 17, 23, 59, 59, 999999, tzinfo=timezone.utc))
    result = ws.delete()  # 14 days later is the last representable microsecond
    assert result.purge_at == datetime.max.replace(tzinfo=timezone.utc)
    assert [d.name for d in rb.Workspace.list_deleted(SUB, engine=engine)] == ["ws"]
