"""The wire schema (recyclebin.wire), shared by the REST plugin and the CLI: each answer
model shows exactly the fields of the engine's result it is read from; datetimes have one
formatter; the policy= rule has one resolver."""

from __future__ import annotations

import dataclasses
import enum
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pydantic
import pytest

import recyclebin as rb
from recyclebin import policy as policy_module
from recyclebin import server, wire
from recyclebin.results import isoformat_z

POLICY_DIR = Path(__file__).resolve().parents[2] / "policies"

#: Each answer model and the result class it is read from.
ANSWERS: list[tuple[type[pydantic.BaseModel], type]] = [
    (wire.CleanupTaskModel, rb.CleanupTask),
    (wire.DeleteResultModel, rb.DeleteResult),
    (wire.DeletedWorkspaceModel, rb.DeletedWorkspace),
    (wire.RecoverResultModel, rb.RecoverResult),
    (wire.PurgeReportModel, rb.PurgeReport),
    (wire.DeletableWorkspaceModel, rb.DeletableWorkspace),
    (wire.AuditRecordModel, rb.AuditRecord),
]


@pytest.mark.parametrize(("model", "result"), ANSWERS, ids=lambda x: x.__name__)
def test_an_answer_model_shows_every_field_of_its_result(model: type[pydantic.BaseModel],
                                                         result: type) -> None:
    # Fields kept out of repr are the engine's bookkeeping (as_of), not part of the answer.
    shown = [f.name for f in dataclasses.fields(result) if f.repr]
    assert list(model.model_fields) == shown


def test_the_workspace_model_reads_workspace_properties() -> None:
    for name in wire.WorkspaceModel.model_fields:
        assert isinstance(getattr(rb.Workspace, name, None), property), name
    for name in wire.ComponentModel.model_fields:
        assert name in {f.name for f in dataclasses.fields(rb.Component)}, name


def test_models_read_off_real_results(engine: rb.Engine) -> None:
    ws = rb.Workspace.create("sub-1", "rg-1", "ws1", engine=engine,
                             components=[rb.Component("notebooks", "nb-1"),
                                         rb.Component("volume", "vol-1", standalone=True)])
    shown = wire.WorkspaceModel.model_validate(ws).model_dump(mode="json")
    assert shown == {"id": ws.id, "name": "ws1", "subscription_id": "sub-1",
                     "resource_group": "rg-1", "soft_delete_retention_days":
                     ws.soft_delete_retention_days, "state": "running",
                     "components": [{"kind": "notebooks", "ref": "nb-1", "standalone": False},
                                    {"kind": "volume", "ref": "vol-1", "standalone": True}],
                     "purge_protection": False, "auto_delete_at": None}
    deleted = ws.delete()
    body = wire.DeleteResultModel.model_validate(deleted).model_dump(mode="json")
    assert body["deleted_at"] == isoformat_z(deleted.deleted_at)
    assert deleted.purge_at is not None and body["purge_at"] == isoformat_z(deleted.purge_at)
    assert body["cleanup"] == [wire.CleanupTaskModel.model_validate(t).model_dump(mode="json")
                               for t in deleted.cleanup]
    recovered = rb.Workspace.recover("sub-1", "rg-1", "ws1", engine=engine)
    again = wire.RecoverResultModel.model_validate(recovered).model_dump(mode="json")
    assert again["workspace"] == shown


def test_a_purge_report_names_each_workspace_by_its_triple() -> None:
    created = datetime(2026, 1, 1, tzinfo=timezone.utc)
    report = rb.PurgeReport(
        purged=[("sub-1", "rg-1", "ws1")],
        cleanup=[rb.CleanupTask(id=0, kind="notebooks", ref="nb-1", workspace_id="w",
                                created_at=created)],
        dry_run=True)
    body = wire.PurgeReportModel.model_validate(report).model_dump(mode="json")
    assert body["purged"] == [{"subscription_id": "sub-1", "resource_group": "rg-1",
                               "name": "ws1"}]
    assert body["cleanup"][0]["created_at"] == "2026-01-01T00:00:00Z"
    assert body["dry_run"] is True
    with pytest.raises(pydantic.ValidationError):
        wire.PurgedWorkspaceModel.model_validate(("sub-1", "rg-1"))


def test_a_state_or_kind_is_shown_as_its_plain_name() -> None:
    class Kind(enum.Enum):
        orphaned = 1

    class Text(str, enum.Enum):
        deletion_planned = "deletion_planned"

    assert wire.plain_text(Kind.orphaned) == "orphaned"
    assert wire.plain_text(Text.deletion_planned) == "deletion_planned"
    since = datetime(2026, 1, 1, tzinfo=timezone.utc)
    item = rb.DeletableWorkspace(kind=Text.deletion_planned, workspace_id="w", since=since)
    assert wire.DeletableWorkspaceModel.model_validate(item).kind == "deletion_planned"


# ------------------------------------------------------------------------ datetimes

def test_one_formatter_utc_with_z() -> None:
    paris = timezone(timedelta(hours=1))
    assert wire.format_datetime(datetime(2026, 1, 15, 1, 0, tzinfo=paris)) == "2026-01-15T00:00:00Z"
    assert wire.format_datetime(datetime(2026, 1, 15, 0, 0, 0, 5, tzinfo=timezone.utc)) == \
        "2026-01-15T00:00:00.000005Z"
    with pytest.raises(ValueError, match="naive datetime"):
        wire.format_datetime(datetime(2026, 1, 15))


# -------------------------------------------------------------------- policy resolver

@pytest.mark.parametrize(("source", "builtin"), [
    ("azureml", True), ("cloud-workstation", True), ("policy.yaml", False),
    ("policy.yml", False), ("./azureml", False), ("dir/azureml", False), ("/abs/x", False),
])
def test_the_builtin_name_rule(source: str, builtin: bool) -> None:
    assert policy_module.is_builtin_name(source) is builtin


def test_one_resolver_for_every_policy_argument(tmp_path: Path) -> None:
    assert server.resolve_policy is policy_module.resolve_policy
    named = policy_module.resolve_policy("azureml")
    assert named.name == rb.Policy.builtin("azureml").name
    assert policy_module.resolve_policy(named) is named
    text = (POLICY_DIR / "azureml.yaml").read_text(encoding="utf-8")
    file = tmp_path / "mine.yml"
    file.write_text(text, encoding="utf-8")
    assert policy_module.resolve_policy(file).source_text == text
    assert policy_module.resolve_policy(str(file)).source_text == text
    with pytest.raises(rb.PolicyError):
        policy_module.resolve_policy("no-such-built-in")
    with pytest.raises(TypeError, match="policy must be a built-in policy name"):
        policy_module.resolve_policy(3)  # type: ignore[arg-type]
