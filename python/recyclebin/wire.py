"""The wire schema: the JSON shapes of the engine's answers, shared by every client-facing
layer (the REST plugin's bodies and OpenAPI, the CLI's ``--output json`` and its tables).

Each answer model reads its fields off the engine's result object by name
(``from_attributes``): ``DeleteResultModel.model_validate(result)``. So a model lists the
fields it shows, with their documentation, and never copies them one by one; a field the
result gains is added here once (``tests/python/test_wire.py`` checks that the two agree).
Datetimes are ISO 8601 UTC with ``Z`` (:func:`format_datetime`); bodies are snake_case.

Request bodies (``WorkspaceCreate``, ...) are strict: ``"3"`` is not a number of days, nor
``"true"`` a bool, as in the Python API.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    StrictBool,
    StrictInt,
    StrictStr,
    model_validator,
)

import recyclebin as rb
from recyclebin.results import isoformat_z

__all__ = [
    "AuditRecordModel",
    "AutoDeleteBody",
    "CallerModel",
    "CleanupClaimBody",
    "CleanupFailBody",
    "CleanupTaskModel",
    "ComponentModel",
    "DeletableWorkspaceModel",
    "DeleteOptionsBody",
    "DeleteResultModel",
    "DeletedPageModel",
    "DeletedWorkspaceModel",
    "ErrorDetail",
    "ErrorResponse",
    "FieldErrorModel",
    "GrantBody",
    "HoldBody",
    "HoldModel",
    "LienBody",
    "LienModel",
    "PermanentDeleteRulesModel",
    "PolicyRulesModel",
    "PreconditionRulesModel",
    "PurgeReportModel",
    "PurgedWorkspaceModel",
    "RecoverResultModel",
    "RefusedAutoDeleteModel",
    "RetentionRulesModel",
    "SoftDeleteRulesModel",
    "UtcDatetime",
    "WireModel",
    "WorkspaceCreate",
    "WorkspaceModel",
    "WorkspacePageModel",
    "WorkstationDeleted",
    "caller_model",
    "format_datetime",
    "plain_text",
    "policy_rules_model",
]


# ------------------------------------------------------------------------- values

def format_datetime(value: datetime) -> str:
    """ISO 8601 in UTC with ``Z`` (microseconds only when non-zero). A naive datetime is
    refused: the engine only hands out UTC-aware ones, so one here is a bug."""
    if value.tzinfo is None:
        raise ValueError("naive datetime: the engine only hands out UTC-aware datetimes")
    return isoformat_z(value)


def plain_text(value: object) -> str:
    """An enum-ish value (Python enum, pybind11 enum or str) as its plain name."""
    if isinstance(value, enum.Enum):
        return value.value if isinstance(value.value, str) else value.name
    if isinstance(value, str):
        return str.__str__(value)
    name = getattr(value, "name", None)
    return name if isinstance(name, str) else str(value)


UtcDatetime = Annotated[datetime, PlainSerializer(format_datetime, return_type=str)]
#: A state or kind as its plain name, whatever type the engine hands it out as.
PlainText = Annotated[str, BeforeValidator(plain_text)]


class WireModel(BaseModel):
    """A request or response body: unknown fields are refused."""
    model_config = ConfigDict(extra="forbid")


class _Answer(WireModel):
    """A model of one of the engine's answers, read off the result object's attributes."""
    model_config = ConfigDict(from_attributes=True)


# ------------------------------------------------------------------------- errors

class FieldErrorModel(WireModel):
    field: str = Field(description="Where the bad value is, e.g. `body.components.0.kind`.")
    message: str


class ErrorDetail(WireModel):
    code: str = Field(description="Stable snake_case code, e.g. `workspace_not_found`.")
    message: str = Field(description="What was wrong and what would be allowed.")
    fields: list[FieldErrorModel] | None = Field(
        default=None, description="Request validation errors only: one entry per bad field.")
    reserved_until: UtcDatetime | None = Field(
        default=None, description="`name_reserved` only: when the name becomes free.")


class ErrorResponse(WireModel):
    error: ErrorDetail


# --------------------------------------------------------------------- workspaces

class ComponentModel(_Answer):
    kind: StrictStr = Field(min_length=1,
                            description="Policy component kind, e.g. `compute_instance`.")
    ref: StrictStr = Field(description="The platform's reference: a resource id, a block path.")
    standalone: StrictBool = Field(default=False,
                                   description="Created on its own: always preserved.")


class WorkspaceCreate(WireModel):
    soft_delete_retention_days: StrictInt | None = Field(
        default=None, description="Days in the recycle bin (an integer); omitted: the "
                                  "policy's default.")
    cmk_encrypted: StrictBool = Field(default=False,
                                      description="Customer-managed keys: always hard-deleted.")
    components: list[ComponentModel] = Field(default_factory=list)
    purge_protection: StrictBool | None = Field(
        default=None, description="Turn purge protection on (irreversible); omitted: the "
                                  "policy's `purge_protection.default`.")
    if_deleted: Literal["fail", "recover", "purge"] = Field(
        default="fail", description="When a soft-deleted workspace holds the name: `fail` "
        "(409 `name_reserved`), `recover` it (the one in this resource group, with its own "
        "settings), or `purge` it and then create, in one transaction.")
    auto_delete_at: AwareDatetime | None = Field(
        default=None, description="When the reaper deletes it (ISO 8601 with a UTC offset); "
                                  "omitted: created + the policy's `auto_delete.after_days`, "
                                  "or never.")


class WorkspaceModel(_Answer):
    id: str
    name: str
    subscription_id: str
    resource_group: str
    soft_delete_retention_days: int
    state: PlainText = Field(description="`running` or `stopped`.")
    components: list[ComponentModel]
    purge_protection: bool = Field(description="On for good: every delete is soft, and nothing "
                                               "purges it before its purge date.")
    auto_delete_at: UtcDatetime | None = Field(description="When the reaper deletes it, or "
                                                           "`null`.")


class _Page(WireModel):
    """One page of a keyset-paged listing; each listing narrows ``value`` (which keeps its
    place, first)."""
    value: list[Any]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page.")
    next_link: str | None = Field(description="The URL of the next page, or `null`.")


class WorkspacePageModel(_Page):
    value: list[WorkspaceModel] = Field(description="Ordered by resource group, then name.")


class DeleteOptionsBody(WireModel):
    """The delete options, as an alternative to the query parameters."""
    permanently_delete: StrictBool | None = None
    delete_dependent_resources: StrictBool | None = None
    confirm_name: StrictStr | None = None
    no_wait: StrictBool | None = None
    dry_run: StrictBool | None = None


class GrantBody(WireModel):
    role: StrictStr = Field(min_length=1, description="The role on the workspace, e.g. `owner`.")


# ------------------------------------------------------------- deletes and the bin

class CleanupTaskModel(_Answer):
    id: int
    kind: str
    ref: str
    workspace_id: str
    created_at: UtcDatetime
    attempts: int = 0
    last_error: str | None = None
    leased_by: str | None = None
    leased_until: UtcDatetime | None = None


class DeleteResultModel(_Answer):
    permanent: bool
    deleted_at: UtcDatetime
    purge_at: UtcDatetime | None = Field(description="`null` when permanent.")
    retained: list[str]
    destroyed: list[str]
    preserved: list[str]
    cleanup: list[CleanupTaskModel]
    warnings: list[str]
    dry_run: bool = Field(default=False, description="`true`: what the delete would do; "
                          "nothing was changed (cleanup tasks have `id` 0).")


class DeletedWorkspaceModel(_Answer):
    id: str
    name: str
    subscription_id: str
    resource_group: str
    deleted_at: UtcDatetime
    purge_at: UtcDatetime
    retention_days: int
    retained: list[str]
    held: bool = Field(description="A legal hold keeps it in the recycle bin, past its purge "
                                   "date too.")


class DeletedPageModel(_Page):
    value: list[DeletedWorkspaceModel] = Field(description="Newest deletion first.")


class RecoverResultModel(_Answer):
    workspace: WorkspaceModel
    restored: list[str]
    reattached: list[str]
    must_recreate: list[str]


# ------------------------------------------------------------------- operations

class _FromTuple(_Answer):
    """An answer the engine gives as a tuple of the model's fields, in their order (a purge
    report names each workspace as (subscription_id, resource_group, name), ...)."""

    @model_validator(mode="before")
    @classmethod
    def _from_tuple(cls, value: Any) -> Any:
        if isinstance(value, tuple):
            return dict(zip(cls.model_fields, value, strict=True))
        return value


class PurgedWorkspaceModel(_FromTuple):
    subscription_id: str
    resource_group: str
    name: str


class RefusedAutoDeleteModel(_FromTuple):
    subscription_id: str
    resource_group: str
    name: str
    code: str = Field(description="The refusal's error code, e.g. `precondition_failed`.")


class PurgeReportModel(_Answer):
    purged: list[PurgedWorkspaceModel]
    cleanup: list[CleanupTaskModel]
    dry_run: bool = Field(default=False, description="`true`: what the purge would remove; "
                          "nothing was changed (cleanup tasks have `id` 0).")
    auto_deleted: list[PurgedWorkspaceModel] = Field(
        description="Live workspaces whose auto-deletion time had come, deleted.")
    auto_delete_refused: list[RefusedAutoDeleteModel] = Field(
        description="Those the policy's checks refused: they stay live.")


# ------------------------------------------------------------------- protections

class HoldModel(_Answer):
    id: str
    workspace_id: str
    reason: str
    placed_by: str | None = Field(description="`null`: the platform.")
    placed_at: UtcDatetime


class LienModel(_Answer):
    id: str
    workspace_id: str
    origin: str = Field(description="Who needs the workspace kept, e.g. `billing-service`.")
    reason: str
    created_at: UtcDatetime


class HoldBody(WireModel):
    """A legal hold: stops destruction (not soft delete) until released."""
    reason: StrictStr = Field(min_length=1, max_length=4096)


class LienBody(WireModel):
    """A lien: stops every delete of a live workspace until removed."""
    origin: StrictStr = Field(min_length=1, max_length=4096)
    reason: StrictStr = Field(min_length=1, max_length=4096)


class AutoDeleteBody(WireModel):
    """When the reaper deletes the workspace; `null` cancels."""
    at: AwareDatetime | None = Field(description="ISO 8601 with a UTC offset, or `null`.")


class CleanupClaimBody(WireModel):
    """A cleanup worker's claim: up to `limit` tasks, leased for `lease_seconds`."""
    worker: str = Field(min_length=1, max_length=200)
    limit: int = Field(default=100, ge=1, le=10_000)
    lease_seconds: float = Field(default=300, gt=0, le=366 * 86_400)


class CleanupFailBody(WireModel):
    """What went wrong, and when the task may be claimed again."""
    error: str = Field(max_length=65_536)
    retry_after_seconds: float = Field(default=0, ge=0, le=366 * 86_400)


class DeletableWorkspaceModel(_Answer):
    kind: PlainText = Field(description="`deletion_planned` or `orphaned`.")
    workspace_id: str
    since: UtcDatetime = Field(description="The deletion date, or when it became orphaned.")


class AuditRecordModel(_Answer):
    seq: int
    at: UtcDatetime
    action: str
    subscription_id: str
    resource_group: str
    name: str
    outcome: str = Field(description='`"ok"` or `"refused:<code>"`.')
    workspace_id: str = Field(description="Empty when the target did not exist.")
    principal_id: str | None = Field(description="`null` for the trusted platform.")


# ---------------------------------------------------------------- rules and caller

class RetentionRulesModel(WireModel):
    default_days: int
    min_days: int
    max_days: int
    per_workspace: bool = Field(description="`false`: the retention is fixed.")
    on_expiry: str = Field(description="`purge` or `hold`.")


class SoftDeleteRulesModel(WireModel):
    enabled: bool = Field(description="`false`: every delete is permanent.")
    hard_delete_if_cmk: bool


class PermanentDeleteRulesModel(WireModel):
    allowed: bool = Field(description="A permanent delete, and a purge, may be asked for.")
    batch: bool
    dependent_resources_require_permanent: bool


class PreconditionRulesModel(WireModel):
    require_stopped: bool
    require_confirm_name: bool = Field(description="A delete needs `confirm_name`.")
    blockers: list[str]
    warnings: list[str]


class PolicyRulesModel(WireModel):
    """The effective rules of one subscription that a client needs before it asks."""
    name: str = Field(description="The policy's name.")
    subscription_id: str
    retention: RetentionRulesModel
    soft_delete: SoftDeleteRulesModel
    permanent_delete: PermanentDeleteRulesModel
    preconditions: PreconditionRulesModel
    name_reservation_scope: str = Field(description="`group`, `tenant` or `none`.")


def policy_rules_model(policy: rb.Policy, subscription_id: str) -> PolicyRulesModel:
    """The rules of ``subscription_id`` under ``policy``, each section as its model shows it
    (the policy's other keys are left out)."""
    rules = policy.rules(subscription_id)

    def section(model: type[WireModel], key: str) -> Any:
        values = rules[key]
        return model(**{name: values[name] for name in model.model_fields})

    return PolicyRulesModel(
        name=policy.name, subscription_id=subscription_id,
        retention=section(RetentionRulesModel, "retention"),
        soft_delete=section(SoftDeleteRulesModel, "soft_delete"),
        permanent_delete=section(PermanentDeleteRulesModel, "permanent_delete"),
        preconditions=section(PreconditionRulesModel, "preconditions"),
        name_reservation_scope=str(rules["name_reservation"]["scope"]))


class CallerModel(WireModel):
    principal_id: str | None = Field(description="`null` for the trusted platform.")
    platform: bool = Field(description="The caller passes every check and may use the "
                                       "operator routes.")
    roles: list[str] = Field(description="Its roles in the tenant.")


def caller_model(caller: rb.Principal | None) -> CallerModel:
    """Who a request stands for: ``None`` is the trusted platform."""
    if caller is None:
        return CallerModel(principal_id=None, platform=True, roles=[])
    return CallerModel(principal_id=caller.id, platform=False, roles=sorted(caller.roles))


class WorkstationDeleted(WireModel):
    id: str
    status: Literal["deleted"]
