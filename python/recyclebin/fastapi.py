"""FastAPI plugin: the recycle bin as REST routes, mountable under any prefix.

    from fastapi import FastAPI
    import recyclebin as rb
    from recyclebin.auth import BearerTokenAuth
    from recyclebin.fastapi import create_router

    engine = rb.Engine.open("recyclebin.db", policy="azureml")
    app = FastAPI()
    app.include_router(create_router(engine, BearerTokenAuth.from_file("tokens.yaml")),
                       prefix="/recyclebin")

Paths follow Azure Resource Manager's shape; bodies are snake_case JSON; datetimes are
ISO 8601 UTC with ``Z``. Every error, from the engine, the authenticator or request
validation, has the body ``{"error": {"code": ..., "message": ...}}`` with the status of
the engine's exception (``http_status``); validation errors are 422 and name the fields.
Engine calls run in the threadpool (every endpoint is a plain ``def``).

``authenticate`` is a FastAPI dependency returning an ``rb.Principal`` (a tenant user) or
``None`` (the trusted platform); tests replace it with ``app.dependency_overrides``.

Tenants apart (``recyclebin.auth``): every route under ``/subscriptions/{subscription_id}``
first checks that the caller may act in that subscription, reads included (a guard on the
whole router, ``auth.subscription_caller(..., required=False)``, so that a route added later
is checked too); the cloud-workstation route, which names a workspace by id, checks the
workspace's subscription before anything else (``auth.require_workspace_subscription``);
the operator routes (deletable workspaces, purge expired, cleanup tasks, audit log) are for
the platform only. Each refusal is 403 ``permission_denied`` and reveals nothing of the
tenant. Every status and error code a route can answer is listed in its OpenAPI responses.
"""

# No ``from __future__ import annotations`` here: FastAPI reads the endpoints' annotations
# at definition time, and they refer to names local to create_router.

import enum
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from datetime import datetime, timedelta, timezone
from typing import Annotated, Any, Literal

from fastapi import (
    APIRouter,
    Body,
    Depends,
    Header,
    Path,
    Query,
    Request,
    Response,
    Security,
    status,
)
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from fastapi.security import HTTPBearer
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    StrictBool,
    StrictInt,
    StrictStr,
)
from pydantic import ValidationError as PydanticValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

import recyclebin as rb
from recyclebin.auth import (
    AuthError,
    Authenticator,
    require_platform,
    require_workspace_subscription,
    subscription_caller,
)

__all__ = [
    "ERROR_RESPONSES",
    "ApiError",
    "create_router",
    "error_response",
    "format_datetime",
    "validation_error_response",
    "ErrorResponse",
    "RecycleBinRoute",
    "require_platform",
]


# --------------------------------------------------------------------------- JSON models

def format_datetime(value: datetime) -> str:
    """ISO 8601 in UTC with ``Z`` (microseconds only when non-zero)."""
    if value.tzinfo is None:
        raise ValueError("naive datetime: the engine only hands out UTC-aware datetimes")
    return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


UtcDatetime = Annotated[datetime, PlainSerializer(format_datetime, return_type=str)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FieldErrorModel(_Model):
    field: str = Field(description="Where the bad value is, e.g. `body.components.0.kind`.")
    message: str


class ErrorDetail(_Model):
    code: str = Field(description="Stable snake_case code, e.g. `workspace_not_found`.")
    message: str = Field(description="What was wrong and what would be allowed.")
    fields: list[FieldErrorModel] | None = Field(
        default=None, description="Request validation errors only: one entry per bad field.")
    reserved_until: UtcDatetime | None = Field(
        default=None, description="`name_reserved` only: when the name becomes free.")


class ErrorResponse(_Model):
    error: ErrorDetail


class ComponentModel(_Model):
    kind: StrictStr = Field(min_length=1,
                            description="Policy component kind, e.g. `compute_instance`.")
    ref: StrictStr = Field(description="The platform's reference: a resource id, a block path.")
    standalone: StrictBool = Field(default=False,
                                   description="Created on its own: always preserved.")


class WorkspaceCreate(_Model):
    # Strict types, as the Python API: "3" is not a number of days, nor "true" a bool.
    soft_delete_retention_days: StrictInt | None = Field(
        default=None, description="Days in the recycle bin (an integer); omitted: the "
                                  "policy's default.")
    cmk_encrypted: StrictBool = Field(default=False,
                                      description="Customer-managed keys: always hard-deleted.")
    components: list[ComponentModel] = Field(default_factory=list)


class WorkspaceModel(_Model):
    id: str
    name: str
    subscription_id: str
    resource_group: str
    soft_delete_retention_days: int
    state: str = Field(description="`running` or `stopped`.")
    components: list[ComponentModel]


class WorkspacePageModel(_Model):
    value: list[WorkspaceModel] = Field(description="Ordered by resource group, then name.")
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page.")
    next_link: str | None = Field(description="The URL of the next page, or `null`.")


class DeleteOptionsBody(_Model):
    """The delete options, as an alternative to the query parameters."""
    permanently_delete: StrictBool | None = None
    delete_dependent_resources: StrictBool | None = None
    confirm_name: StrictStr | None = None
    no_wait: StrictBool | None = None
    dry_run: StrictBool | None = None


class CleanupTaskModel(_Model):
    id: int
    kind: str
    ref: str
    workspace_id: str
    created_at: UtcDatetime
    attempts: int = 0
    last_error: str | None = None
    leased_by: str | None = None
    leased_until: UtcDatetime | None = None


class CleanupClaimBody(_Model):
    """A cleanup worker's claim: up to `limit` tasks, leased for `lease_seconds`."""
    worker: str = Field(min_length=1, max_length=200)
    limit: int = Field(default=100, ge=1, le=10_000)
    lease_seconds: float = Field(default=300, gt=0, le=366 * 86_400)


class CleanupFailBody(_Model):
    """What went wrong, and when the task may be claimed again."""
    error: str = Field(max_length=65_536)
    retry_after_seconds: float = Field(default=0, ge=0, le=366 * 86_400)


class DeleteResultModel(_Model):
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


class DeletedWorkspaceModel(_Model):
    id: str
    name: str
    subscription_id: str
    resource_group: str
    deleted_at: UtcDatetime
    purge_at: UtcDatetime
    retention_days: int
    retained: list[str]


class DeletedPageModel(_Model):
    value: list[DeletedWorkspaceModel] = Field(description="Newest deletion first.")
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page.")
    next_link: str | None = Field(description="The URL of the next page, or `null`.")


class RecoverResultModel(_Model):
    workspace: WorkspaceModel
    restored: list[str]
    reattached: list[str]
    must_recreate: list[str]


class PurgedWorkspaceModel(_Model):
    subscription_id: str
    resource_group: str
    name: str


class PurgeReportModel(_Model):
    purged: list[PurgedWorkspaceModel]
    cleanup: list[CleanupTaskModel]
    dry_run: bool = Field(default=False, description="`true`: what the purge would remove; "
                          "nothing was changed (cleanup tasks have `id` 0).")


class RetentionRulesModel(_Model):
    default_days: int
    min_days: int
    max_days: int
    per_workspace: bool = Field(description="`false`: the retention is fixed.")
    on_expiry: str = Field(description="`purge` or `hold`.")


class SoftDeleteRulesModel(_Model):
    enabled: bool = Field(description="`false`: every delete is permanent.")
    hard_delete_if_cmk: bool


class PermanentDeleteRulesModel(_Model):
    allowed: bool = Field(description="A permanent delete, and a purge, may be asked for.")
    batch: bool
    dependent_resources_require_permanent: bool


class PreconditionRulesModel(_Model):
    require_stopped: bool
    require_confirm_name: bool = Field(description="A delete needs `confirm_name`.")
    blockers: list[str]
    warnings: list[str]


class PolicyRulesModel(_Model):
    """The effective rules of one subscription that a client needs before it asks."""
    name: str = Field(description="The policy's name.")
    subscription_id: str
    retention: RetentionRulesModel
    soft_delete: SoftDeleteRulesModel
    permanent_delete: PermanentDeleteRulesModel
    preconditions: PreconditionRulesModel
    name_reservation_scope: str = Field(description="`group`, `tenant` or `none`.")


class CallerModel(_Model):
    principal_id: str | None = Field(description="`null` for the trusted platform.")
    platform: bool = Field(description="The caller passes every check and may use the "
                                       "operator routes.")
    roles: list[str] = Field(description="Its roles in the tenant.")


class DeletableWorkspaceModel(_Model):
    kind: str = Field(description="`deletion_planned` or `orphaned`.")
    workspace_id: str
    since: UtcDatetime = Field(description="The deletion date, or when it became orphaned.")


class AuditRecordModel(_Model):
    seq: int
    at: UtcDatetime
    action: str
    subscription_id: str
    resource_group: str
    name: str
    outcome: str = Field(description='`"ok"` or `"refused:<code>"`.')
    workspace_id: str = Field(description="Empty when the target did not exist.")
    principal_id: str | None = Field(description="`null` for the trusted platform.")


class GrantBody(_Model):
    role: StrictStr = Field(min_length=1, description="The role on the workspace, e.g. `owner`.")


class WorkstationDeleted(_Model):
    id: str
    status: Literal["deleted"]


# ------------------------------------------------------------------------- conversions

def _text(value: object) -> str:
    """An enum-ish value (Python enum, pybind11 enum or str) as its plain name."""
    if isinstance(value, enum.Enum):
        return value.value if isinstance(value.value, str) else value.name
    if isinstance(value, str):
        return str.__str__(value)
    name = getattr(value, "name", None)
    return name if isinstance(name, str) else str(value)


def _component(component: Any) -> ComponentModel:
    return ComponentModel(kind=component.kind, ref=component.ref,
                          standalone=bool(component.standalone))


def _workspace(ws: rb.Workspace) -> WorkspaceModel:
    return WorkspaceModel(
        id=ws.id, name=ws.name, subscription_id=ws.subscription_id,
        resource_group=ws.resource_group,
        soft_delete_retention_days=ws.soft_delete_retention_days,
        state=_text(ws.state), components=[_component(c) for c in ws.components])


def _cleanup_task(task: rb.CleanupTask) -> CleanupTaskModel:
    return CleanupTaskModel(id=task.id, kind=task.kind, ref=task.ref,
                            workspace_id=task.workspace_id, created_at=task.created_at,
                            attempts=task.attempts, last_error=task.last_error,
                            leased_by=task.leased_by, leased_until=task.leased_until)


def _delete_result(result: rb.DeleteResult) -> DeleteResultModel:
    return DeleteResultModel(
        permanent=result.permanent, deleted_at=result.deleted_at, purge_at=result.purge_at,
        retained=list(result.retained), destroyed=list(result.destroyed),
        preserved=list(result.preserved), cleanup=[_cleanup_task(t) for t in result.cleanup],
        warnings=list(result.warnings), dry_run=bool(result.dry_run))


def _policy_rules(policy: rb.Policy, subscription_id: str) -> PolicyRulesModel:
    rules = policy.rules(subscription_id)

    def section(model: type[_Model], key: str) -> Any:
        values = rules[key]
        return model(**{name: values[name] for name in model.model_fields})

    return PolicyRulesModel(
        name=policy.name, subscription_id=subscription_id,
        retention=section(RetentionRulesModel, "retention"),
        soft_delete=section(SoftDeleteRulesModel, "soft_delete"),
        permanent_delete=section(PermanentDeleteRulesModel, "permanent_delete"),
        preconditions=section(PreconditionRulesModel, "preconditions"),
        name_reservation_scope=str(rules["name_reservation"]["scope"]))


def _deleted_workspace(item: rb.DeletedWorkspace) -> DeletedWorkspaceModel:
    return DeletedWorkspaceModel(
        id=item.id, name=item.name, subscription_id=item.subscription_id,
        resource_group=item.resource_group, deleted_at=item.deleted_at,
        purge_at=item.purge_at, retention_days=item.retention_days,
        retained=list(item.retained))


# ------------------------------------------------------------------------------ errors

class ApiError(Exception):
    """A refusal decided by the REST layer (malformed combination of parameters, ...)."""

    def __init__(self, http_status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.code = code


def error_response(http_status: int, code: str, message: str, *,
                   headers: dict[str, str] | None = None, **extra: Any) -> JSONResponse:
    """The one error body: ``{"error": {"code": ..., "message": ...}}``."""
    detail = ErrorDetail(code=code, message=message, **extra)
    return JSONResponse(
        status_code=http_status, headers=headers,
        content={"error": detail.model_dump(mode="json", exclude_none=True)})


def validation_error_response(exc: RequestValidationError) -> JSONResponse:
    """422 naming every bad field (``query.limit``, ``body.components.0.kind``, ...)."""
    fields = []
    for err in exc.errors():
        location = ".".join(str(part) for part in err.get("loc", ())) or "request"
        fields.append(FieldErrorModel(field=location, message=str(err.get("msg", "invalid"))))
    message = "invalid request: " + "; ".join(f"{f.field}: {f.message}" for f in fields)
    return error_response(422, "validation_error", message,
                          fields=fields)


def _engine_error_response(exc: rb.RecycleBinError) -> JSONResponse:
    reserved_until = getattr(exc, "reserved_until", None)
    if isinstance(reserved_until, datetime):
        return error_response(int(exc.http_status), str(exc.code), str(exc),
                              reserved_until=reserved_until)
    return error_response(int(exc.http_status), str(exc.code), str(exc))


async def _map_errors(call: Callable[[], Awaitable[Response]]) -> Response:
    try:
        return await call()
    except rb.RecycleBinError as exc:
        return _engine_error_response(exc)
    except AuthError as exc:
        return error_response(exc.http_status, exc.code, str(exc), headers=exc.headers)
    except ApiError as exc:
        return error_response(exc.http_status, exc.code, str(exc))
    except RequestValidationError as exc:
        return validation_error_response(exc)
    except StarletteHTTPException as exc:
        if exc.status_code == 400 and isinstance(exc.__cause__, UnicodeDecodeError):
            # FastAPI's answer to a JSON body that is not UTF-8: a malformed body, as for
            # any other JSON that does not parse.
            return error_response(
                422, "validation_error",
                f"invalid request: body: not UTF-8 JSON text (byte {exc.__cause__.start} "
                "is not UTF-8)", fields=[FieldErrorModel(field="body",
                                                         message="not UTF-8 JSON text")])
        raise
    except PydanticValidationError:
        raise  # a bug in this module's own models, not the caller's fault
    except ValueError as exc:  # e.g. a cursor the engine cannot read
        return error_response(status.HTTP_400_BAD_REQUEST, "invalid_request", str(exc))


class RecycleBinRoute(APIRoute):
    """Turns every error of this router into the error body, wherever it is mounted."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            return await _map_errors(lambda: handler(request))

        return handle


def _doc(status_code: int, description: str) -> dict[int | str, dict[str, Any]]:
    return {status_code: {"model": ErrorResponse, "description": description}}


def _codes(*codes: str) -> str:
    return ", ".join(f"`{code}`" for code in codes)


def _e400(*codes: str) -> dict[int | str, dict[str, Any]]:
    """400: the route's own codes, and `invalid_argument`, which any text can bring."""
    return _doc(400, f"{_codes(*codes, 'invalid_argument')}. `invalid_argument`: a name, id "
                     "or other text with a NUL byte or a lone surrogate, or a value out of "
                     "range.")


def _e404(*codes: str) -> dict[int | str, dict[str, Any]]:
    return _doc(404, f"{_codes(*codes, 'not_found')}. `not_found`: no route at this path "
                     "(e.g. a path parameter holding `/`).")


_E400 = _e400()
_E403 = _doc(403, "`permission_denied`: the token does not name the subscription, the "
                  "caller lacks a role the policy requires, or the route is for the platform "
                  "only.")
_E404 = _e404()
_E404_WS = _e404("workspace_not_found")
_E409 = _doc(409, "`workspace_exists`, `name_reserved` (with `reserved_until`) or "
                  "`operation_not_allowed`.")
_E412 = _doc(412, "`precondition_failed`: confirm_name missing or different, or a blocker "
                  "fact above zero.")
#: The errors any route of this package can answer, for ``APIRouter(responses=...)``.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    **_E400,
    **_doc(401, "`unauthenticated`: no bearer token, or an unknown one."),
    **_E403,
    **_E404,
    **_doc(405, "`method_not_allowed`: the path does not take this method; `Allow` lists "
                "those it takes."),
    **_doc(413, "`payload_too_large`: the request body is above the server's limit "
                "(`serve --max-body-bytes`, default 1 MiB)."),
    **_doc(422, "`validation_error`: a path, query or body field is malformed, or the body "
                "is not UTF-8 JSON; `fields` names each one."),
    **_doc(503, "`engine_closed`: the server is shutting down; `storage_error`: the store "
                "failed or cannot be reached (nothing was applied; safe to retry)."),
}


def _responses(*docs: dict[int | str, dict[str, Any]]) -> dict[int | str, dict[str, Any]]:
    merged: dict[int | str, dict[str, Any]] = {}
    for doc in docs:
        merged.update(doc)
    return merged


def _next_link(request: Request, next_cursor: str | None, limit: int) -> str | None:
    """This request's URL for the page at ``next_cursor``; None on the last page."""
    if next_cursor is None:
        return None
    return str(request.url.include_query_params(cursor=next_cursor, limit=limit))


def _pick(name: str, query_value: Any, body_value: Any, default: Any) -> Any:
    if query_value is not None and body_value is not None and query_value != body_value:
        raise ApiError(400, "invalid_request",
                       f"{name} is given in both the query and the body, with different values")
    if query_value is not None:
        return query_value
    if body_value is not None:
        return body_value
    return default


# ------------------------------------------------------------------------------ router

def create_router(engine: rb.Engine, authenticate: Authenticator, *,
                  bearer_in_openapi: bool = True,
                  tags: Sequence[str] = ()) -> APIRouter:
    """The recycle bin's routes over ``engine``; ``authenticate`` names each caller.

    ``engine`` is borrowed: the router never closes it. ``bearer_in_openapi`` documents
    the bearer scheme in OpenAPI (turn off for an authenticator that is not bearer-based).
    """
    # Every route with a {subscription_id}, those added later too, checks it first.
    tenant_guard = Depends(subscription_caller(authenticate, required=False))
    dependencies = [Security(HTTPBearer(auto_error=False))] if bearer_in_openapi else []
    router = APIRouter(route_class=RecycleBinRoute, dependencies=[*dependencies, tenant_guard],
                       responses=ERROR_RESPONSES)
    extra_tags = list(tags)

    def tagged(*names: str) -> list[str | enum.Enum]:
        return [*names, *extra_tags]

    # The caller, authenticated; the router's guard has checked the path's subscription_id
    # (operator routes require the platform, the by-id route checks the workspace's).
    Caller = Annotated[rb.Principal | None, Depends(authenticate)]
    Subscription = Annotated[str, Path(min_length=1, max_length=256,
                                       description="Subscription (tenant) id.")]
    Group = Annotated[str, Path(min_length=1, max_length=256,
                                description="Resource group.")]
    Name = Annotated[str, Path(min_length=1, max_length=256,
                               description="Workspace name.")]
    Limit = Annotated[int, Query(ge=1, le=1000, description="Page size.")]
    Cursor = Annotated[str | None, Query(min_length=1, description="`next_cursor` of the "
                                                                   "previous page.")]
    PurgeBefore = Annotated[AwareDatetime | None, Query(
        description="Only workspaces whose `purge_at` is earlier (ISO 8601 with a UTC offset, "
                    "e.g. `2026-01-31T00:00:00Z`).")]

    ws_path = "/subscriptions/{subscription_id}/resourceGroups/{resource_group}/workspaces/{name}"
    deleted_path = ("/subscriptions/{subscription_id}/resourceGroups/{resource_group}"
                    "/deletedWorkspaces/{name}")

    def live(subscription_id: str, resource_group: str, name: str,
             caller: "rb.Principal | None") -> rb.Workspace:
        """The live workspace, or a 409 naming recover and purge when it is in the bin."""
        try:
            return rb.Workspace.get(name, subscription_id, resource_group,
                                    principal=caller, engine=engine)
        except rb.WorkspaceNotFound:
            in_bin = True
            try:
                rb.Workspace.get_deleted(name, subscription_id, resource_group,
                                         principal=caller, engine=engine)
            except rb.RecycleBinError:
                in_bin = False
            if not in_bin:
                raise
        in_bin_path = deleted_path.format(subscription_id=subscription_id,
                                          resource_group=resource_group, name=name)
        raise ApiError(
            409, "operation_not_allowed",
            f"workspace {name!r} is soft-deleted: only recover (POST {in_bin_path}/recover) "
            f"and purge (DELETE {in_bin_path}) work on it")

    # ---------------------------------------------------------------- live workspaces

    def live_page(request: Request, subscription_id: str, resource_group: str | None,
                  limit: int, cursor: str | None, caller: "rb.Principal | None"
                  ) -> WorkspacePageModel:
        page = rb.Workspace.list(subscription_id, resource_group, limit=limit, cursor=cursor,
                                 principal=caller, engine=engine)
        return WorkspacePageModel(value=[_workspace(ws) for ws in page],
                                  next_cursor=page.next_cursor,
                                  next_link=_next_link(request, page.next_cursor, limit))

    @router.get("/subscriptions/{subscription_id}/workspaces", response_model=WorkspacePageModel,
                tags=tagged("workspaces"), summary="List the live workspaces of a subscription",
                responses=_responses(_E400, _E403))
    def list_in_subscription(request: Request, subscription_id: Subscription, caller: Caller,
                             limit: Limit = 100, cursor: Cursor = None) -> WorkspacePageModel:
        """Running and stopped workspaces, by resource group, then name (never soft-deleted
        ones: see `deletedWorkspaces`)."""
        return live_page(request, subscription_id, None, limit, cursor, caller)

    @router.get("/subscriptions/{subscription_id}/resourceGroups/{resource_group}/workspaces",
                response_model=WorkspacePageModel, tags=tagged("workspaces"),
                summary="List the live workspaces of a resource group",
                responses=_responses(_E400, _E403))
    def list_in_group(request: Request, subscription_id: Subscription, resource_group: Group,
                      caller: Caller, limit: Limit = 100,
                      cursor: Cursor = None) -> WorkspacePageModel:
        """Running and stopped workspaces, by name."""
        return live_page(request, subscription_id, resource_group, limit, cursor, caller)

    @router.put(ws_path, status_code=201, response_model=WorkspaceModel,
                tags=tagged("workspaces"), summary="Create a workspace",
                responses=_responses(_e400("invalid_retention"), _E409))
    def create_workspace(subscription_id: Subscription, resource_group: Group, name: Name,
                         caller: Caller,
                         body: Annotated[WorkspaceCreate | None, Body()] = None
                         ) -> WorkspaceModel:
        """Create a workspace; the caller becomes its `owner`. A name held by a
        soft-deleted workspace is refused with `name_reserved` until its retention ends."""
        spec = body or WorkspaceCreate()
        ws = rb.Workspace.create(
            subscription_id, resource_group, name,
            soft_delete_retention_days=spec.soft_delete_retention_days,
            cmk_encrypted=spec.cmk_encrypted,
            components=[rb.Component(c.kind, c.ref, standalone=c.standalone)
                        for c in spec.components],
            principal=caller, engine=engine)
        return _workspace(ws)

    @router.get(ws_path, response_model=WorkspaceModel, tags=tagged("workspaces"),
                summary="Show a workspace", responses=_responses(_E404_WS))
    def show_workspace(subscription_id: Subscription, resource_group: Group, name: Name,
                       caller: Caller) -> WorkspaceModel:
        """A live workspace. A soft-deleted one answers 404 (see `deletedWorkspaces`)."""
        return _workspace(rb.Workspace.get(name, subscription_id, resource_group,
                                           principal=caller, engine=engine))

    @router.post(ws_path + "/stop", response_model=WorkspaceModel, tags=tagged("workspaces"),
                 summary="Stop a workspace", responses=_responses(_E404_WS, _E409))
    def stop_workspace(subscription_id: Subscription, resource_group: Group, name: Name,
                       caller: Caller) -> WorkspaceModel:
        """Idempotent."""
        ws = live(subscription_id, resource_group, name, caller)
        ws.stop(principal=caller)
        return _workspace(ws)

    @router.post(ws_path + "/start", response_model=WorkspaceModel, tags=tagged("workspaces"),
                 summary="Start a workspace", responses=_responses(_E404_WS, _E409))
    def start_workspace(subscription_id: Subscription, resource_group: Group, name: Name,
                        caller: Caller) -> WorkspaceModel:
        """Idempotent."""
        ws = live(subscription_id, resource_group, name, caller)
        ws.start(principal=caller)
        return _workspace(ws)

    @router.delete(
        ws_path, response_model=DeleteResultModel, tags=tagged("workspaces"),
        summary="Delete a workspace (soft by default)",
        responses=_responses(
            {202: {"model": DeleteResultModel,
                   "description": "Accepted (`no_wait=true`); the body is the result."}},
            _e400("invalid_request", "workspace_not_stopped"), _E404_WS, _E409, _E412))
    def delete_workspace(
        subscription_id: Subscription, resource_group: Group, name: Name, caller: Caller,
        response: Response,
        permanently_delete: Annotated[bool | None, Query(
            description="Skip the recycle bin (default false).")] = None,
        delete_dependent_resources: Annotated[bool | None, Query(
            description="Permanent delete only: also destroy `preserve` kinds "
                        "(never standalone components).")] = None,
        confirm_name: Annotated[str | None, Query(
            description="The workspace name typed by the user, where the policy asks.")] = None,
        no_wait: Annotated[bool | None, Query(
            description="Answer 202 Accepted instead of 200.")] = None,
        dry_run: Annotated[bool | None, Query(
            description="Make every check and answer what the delete would do (200, "
                        "`dry_run: true`), changing nothing.")] = None,
        options: Annotated[DeleteOptionsBody | None, Body(
            description="The same options as a JSON body (query and body may not "
                        "disagree).")] = None,
    ) -> DeleteResultModel:
        """Soft delete (into the recycle bin, for the retention period) unless
        `permanently_delete` or the policy says otherwise."""
        body = options or DeleteOptionsBody()
        permanent = _pick("permanently_delete", permanently_delete, body.permanently_delete, False)
        dependent = _pick("delete_dependent_resources", delete_dependent_resources,
                          body.delete_dependent_resources, False)
        typed_name = _pick("confirm_name", confirm_name, body.confirm_name, None)
        wait_not = _pick("no_wait", no_wait, body.no_wait, False)
        trial = _pick("dry_run", dry_run, body.dry_run, False)
        ws = live(subscription_id, resource_group, name, caller)
        result = ws.delete(delete_dependent_resources=dependent, permanently_delete=permanent,
                           no_wait=wait_not, confirm_name=typed_name, principal=caller,
                           dry_run=trial)
        if wait_not and not trial:  # a dry run accepts nothing for later
            response.status_code = status.HTTP_202_ACCEPTED
        return _delete_result(result)

    @router.put(ws_path + "/members/{principal_id}", status_code=204, response_class=Response,
                tags=tagged("workspaces"), summary="Grant a role on a workspace",
                responses=_responses(_E404_WS, _E409))
    def grant_role(subscription_id: Subscription, resource_group: Group, name: Name,
                   principal_id: Annotated[str, Path(min_length=1, max_length=256)],
                   body: GrantBody, caller: Caller) -> None:
        """Replaces the member's existing role."""
        live(subscription_id, resource_group, name, caller).grant(
            principal_id, body.role, principal=caller)

    @router.delete(ws_path + "/members/{principal_id}", status_code=204, response_class=Response,
                   tags=tagged("workspaces"), summary="Revoke a member's role",
                   responses=_responses(_E404_WS, _E409))
    def revoke_role(subscription_id: Subscription, resource_group: Group, name: Name,
                    principal_id: Annotated[str, Path(min_length=1, max_length=256)],
                    caller: Caller) -> None:
        """Revoking the last member makes the workspace orphaned."""
        live(subscription_id, resource_group, name, caller).revoke(principal_id, principal=caller)

    # ------------------------------------------------------------ rules and caller

    @router.get("/subscriptions/{subscription_id}/policy", response_model=PolicyRulesModel,
                tags=tagged("policy"), summary="The effective rules of a subscription",
                responses=_responses(_E403))
    def show_policy(subscription_id: Subscription, caller: Caller) -> PolicyRulesModel:
        """The base policy with the tenant's overrides: whether a permanent delete is
        allowed, whether a delete needs the typed name or a stopped workspace, the
        retention. What a client (the console) needs to know before it asks."""
        return _policy_rules(engine.policy, subscription_id)

    @router.get("/me", response_model=CallerModel, tags=tagged("policy"),
                summary="Who the token stands for")
    def who_am_i(caller: Caller) -> CallerModel:
        """Checks a token without touching any workspace (the console's sign-in)."""
        if caller is None:
            return CallerModel(principal_id=None, platform=True, roles=[])
        return CallerModel(principal_id=caller.id, platform=False, roles=sorted(caller.roles))

    # ------------------------------------------------------------------- recycle bin

    def page_of(request: Request, subscription_id: str, resource_group: str | None,
                limit: int, cursor: str | None, caller: "rb.Principal | None",
                purge_before: datetime | None) -> DeletedPageModel:
        page = rb.Workspace.list_deleted(subscription_id, resource_group, limit=limit,
                                         cursor=cursor, principal=caller, engine=engine,
                                         purge_before=purge_before)
        return DeletedPageModel(value=[_deleted_workspace(d) for d in page],
                                next_cursor=page.next_cursor,
                                next_link=_next_link(request, page.next_cursor, limit))

    @router.get("/subscriptions/{subscription_id}/deletedWorkspaces",
                response_model=DeletedPageModel, tags=tagged("recycle bin"),
                summary="List soft-deleted workspaces of a subscription",
                responses=_responses(_e400("invalid_request")))
    def list_deleted_in_subscription(
        request: Request, subscription_id: Subscription, caller: Caller,
        resource_group: Annotated[str | None, Query(
            min_length=1, description="Only this resource group.")] = None,
        limit: Limit = 100, cursor: Cursor = None, purge_before: PurgeBefore = None,
    ) -> DeletedPageModel:
        """Newest deletion first; works even when the resource group is gone."""
        return page_of(request, subscription_id, resource_group, limit, cursor, caller,
                       purge_before)

    @router.get("/subscriptions/{subscription_id}/resourceGroups/{resource_group}"
                "/deletedWorkspaces", response_model=DeletedPageModel,
                tags=tagged("recycle bin"),
                summary="List soft-deleted workspaces of a resource group",
                responses=_responses(_e400("invalid_request")))
    def list_deleted_in_group(request: Request, subscription_id: Subscription,
                              resource_group: Group, caller: Caller,
                              limit: Limit = 100, cursor: Cursor = None,
                              purge_before: PurgeBefore = None) -> DeletedPageModel:
        """Newest deletion first."""
        return page_of(request, subscription_id, resource_group, limit, cursor, caller,
                       purge_before)

    @router.get(deleted_path, response_model=DeletedWorkspaceModel, tags=tagged("recycle bin"),
                summary="Show a soft-deleted workspace", responses=_responses(_E404_WS))
    def show_deleted(subscription_id: Subscription, resource_group: Group, name: Name,
                     caller: Caller) -> DeletedWorkspaceModel:
        """By its original subscription, group and name; with `purge_at`."""
        return _deleted_workspace(rb.Workspace.get_deleted(
            name, subscription_id, resource_group, principal=caller, engine=engine))

    @router.post(deleted_path + "/recover", response_model=RecoverResultModel,
                 tags=tagged("recycle bin"), summary="Recover a soft-deleted workspace",
                 responses=_responses(_E404_WS, _E409))
    def recover_workspace(subscription_id: Subscription, resource_group: Group, name: Name,
                          caller: Caller) -> RecoverResultModel:
        """Restores retained data; re-attaches what the policy says (best effort) and
        lists what must be recreated."""
        result = rb.Workspace.recover(subscription_id, resource_group, name,
                                      principal=caller, engine=engine)
        return RecoverResultModel(workspace=_workspace(result.workspace),
                                  restored=list(result.restored),
                                  reattached=list(result.reattached),
                                  must_recreate=list(result.must_recreate))

    @router.delete(deleted_path, response_model=DeleteResultModel, tags=tagged("recycle bin"),
                   summary="Purge a soft-deleted workspace now",
                   responses=_responses(_E404_WS, _E409))
    def purge_workspace(subscription_id: Subscription, resource_group: Group, name: Name,
                        caller: Caller) -> DeleteResultModel:
        """Hard-deletes it and queues its cleanup tasks; the name becomes free."""
        return _delete_result(rb.Workspace.purge(subscription_id, resource_group, name,
                                                 principal=caller, engine=engine))

    # ------------------------------------------------------------ operator routes

    @router.get("/subscriptions/{subscription_id}/deletableWorkspaces",
                response_model=list[DeletableWorkspaceModel], tags=tagged("operations"),
                summary="List workspaces an operator may purge (platform only)")
    def list_deletable(subscription_id: Subscription,
                       caller: Caller) -> list[DeletableWorkspaceModel]:
        """`deletion_planned` (past their date under `on_expiry: hold`) and `orphaned`
        workspaces: kind, id and date, never names."""
        require_platform(caller, "listing deletable workspaces")
        return [DeletableWorkspaceModel(kind=_text(d.kind), workspace_id=d.workspace_id,
                                        since=d.since)
                for d in engine.list_deletable(subscription_id)]

    @router.delete("/subscriptions/{subscription_id}/deletableWorkspaces/{workspace_id}",
                   response_model=DeleteResultModel, tags=tagged("operations"),
                   summary="Purge one deletable workspace by id",
                   responses=_responses(_E404_WS, _E409))
    def purge_deletable(subscription_id: Subscription,
                        workspace_id: Annotated[str, Path(min_length=1, max_length=256)],
                        caller: Caller) -> DeleteResultModel:
        """Only a workspace that `deletableWorkspaces` lists for this subscription; the
        result's `cleanup` lists every reference to remove from storage."""
        require_platform(caller, "purging by id")
        if not any(d.workspace_id == workspace_id for d in engine.list_deletable(subscription_id)):
            raise ApiError(404, "workspace_not_found",
                           f"no deletable workspace {workspace_id!r} in subscription "
                           f"{subscription_id!r}; see GET .../deletableWorkspaces")
        return _delete_result(engine.purge_by_id(workspace_id, principal=caller))

    @router.post("/purgeExpired", response_model=PurgeReportModel, tags=tagged("operations"),
                 summary="Purge every expired workspace now (platform only)",
                 responses=_responses(_E403))
    def purge_expired(caller: Caller, dry_run: Annotated[bool, Query(
            description="Answer what would be purged, changing nothing.")] = False
                      ) -> PurgeReportModel:
        """What the server's reaper does periodically."""
        require_platform(caller, "purging expired workspaces")
        report = engine.purge_expired(principal=caller, dry_run=dry_run)
        return PurgeReportModel(
            purged=[PurgedWorkspaceModel(subscription_id=s, resource_group=g, name=n)
                    for s, g, n in report.purged],
            cleanup=[_cleanup_task(t) for t in report.cleanup], dry_run=bool(report.dry_run))

    @router.get("/cleanupTasks", response_model=list[CleanupTaskModel],
                tags=tagged("operations"),
                summary="Pending cleanup tasks, oldest first (platform only)")
    def list_cleanup_tasks(caller: Caller, workspace_id: Annotated[str | None, Query(
            min_length=1, description="Only this workspace's tasks.")] = None
                           ) -> list[CleanupTaskModel]:
        """External resources the platform must destroy; complete each when done."""
        require_platform(caller, "the cleanup outbox")
        return [_cleanup_task(t) for t in engine.cleanup_tasks()
                if workspace_id is None or t.workspace_id == workspace_id]

    @router.post("/cleanupTasks/{task_id}/complete", status_code=204, response_class=Response,
                 tags=tagged("operations"), summary="Mark a cleanup task done (platform only)",
                 responses=_responses(_e404("cleanup_task_not_found")))
    def complete_cleanup_task(task_id: Annotated[int, Path(ge=1)], caller: Caller) -> None:
        """Completing a completed task is a no-op."""
        require_platform(caller, "the cleanup outbox")
        try:
            engine.complete_cleanup(task_id)
        except KeyError:
            raise ApiError(404, "cleanup_task_not_found",
                           f"no cleanup task {task_id}; see GET /cleanupTasks") from None

    @router.post("/cleanupTasks/claim", response_model=list[CleanupTaskModel],
                 tags=tagged("operations"),
                 summary="Lease pending cleanup tasks to a worker (platform only)",
                 responses=_responses(_E403))
    def claim_cleanup_tasks(body: CleanupClaimBody, caller: Caller) -> list[CleanupTaskModel]:
        """Oldest first; a task is never handed to two workers while its lease holds."""
        require_platform(caller, "the cleanup outbox")
        return [_cleanup_task(t) for t in engine.claim_cleanup(
            body.worker, limit=body.limit, lease=timedelta(seconds=body.lease_seconds))]

    @router.post("/cleanupTasks/{task_id}/fail", status_code=204, response_class=Response,
                 tags=tagged("operations"),
                 summary="Report a failed cleanup attempt (platform only)",
                 responses=_responses(_E403, _doc(404, "`cleanup_task_not_found`.")))
    def fail_cleanup_task(task_id: Annotated[int, Path(ge=1)], body: CleanupFailBody,
                          caller: Caller) -> None:
        """Ends the lease, counts the attempt, keeps the error; claimable again after
        `retry_after_seconds`. A completed task is left as it is."""
        require_platform(caller, "the cleanup outbox")
        try:
            engine.fail_cleanup(task_id, body.error,
                                retry_after=timedelta(seconds=body.retry_after_seconds))
        except KeyError:
            raise ApiError(404, "cleanup_task_not_found",
                           f"no cleanup task {task_id}; see GET /cleanupTasks") from None

    @router.get("/auditLog", response_model=list[AuditRecordModel], tags=tagged("operations"),
                summary="The audit log, oldest first (platform only)")
    def audit_log(caller: Caller, subscription_id: Annotated[str | None, Query(
            min_length=1, description="Only this subscription.")] = None,
                  after_seq: Annotated[int | None, Query(
                      ge=0, description="Only records with a greater `seq`: the last `seq` "
                      "a consumer saw, to tail the log.")] = None,
                  limit: Annotated[int | None, Query(
                      ge=1, le=1000, description="At most this many records (default: all).")] = None,
                  ) -> list[AuditRecordModel]:
        """Every operation, refused ones included (`outcome: refused:<code>`), seq ascending."""
        require_platform(caller, "the audit log")
        return [AuditRecordModel(seq=r.seq, at=r.at, action=r.action,
                                 subscription_id=r.subscription_id,
                                 resource_group=r.resource_group, name=r.name,
                                 outcome=r.outcome, workspace_id=r.workspace_id,
                                 principal_id=r.principal_id)
                for r in engine.audit_log(subscription_id, after_seq=after_seq, limit=limit)]

    # -------------------------------------------------- cloud-workstation compatibility

    @router.get(
        "/workstations/{workstation_id}/delete", status_code=204, tags=tagged("compatibility"),
        summary="Delete a workstation (cloud-workstation API)",
        response_model=None,
        responses=_responses(
            {204: {"description": "Deleted. HTTP forbids a body on 204, so the documented "
                                  "`{\"id\", \"status\": \"deleted\"}` object is sent only "
                                  "with `Prefer: return=representation` (answered 200)."},
             200: {"model": WorkstationDeleted,
                   "description": "Deleted, with `Prefer: return=representation`."}},
            _e400("workspace_not_stopped"), _E404_WS, _E409, _E412))
    def delete_workstation(
        workstation_id: Annotated[str, Path(min_length=1, max_length=256,
                                            description="The workspace id.")],
        caller: Caller,
        prefer: Annotated[str | None, Header(
            description="`return=representation` for a 200 with the delete object.")] = None,
    ) -> Response:
        """A `GET` that deletes, as the cloud-workstation API defines it. The
        workstation must be stopped (400 otherwise); the policy decides soft or hard. A
        tenant token that may not act everywhere gets 403 for any id that is not a live
        workspace of its subscriptions (whether or not it exists elsewhere)."""
        require_workspace_subscription(caller, engine, workstation_id)
        ws = rb.Workspace.get_by_id(workstation_id, principal=caller, engine=engine)
        ws.delete(principal=caller)
        if prefer is not None and "return=representation" in prefer.replace(" ", "").lower():
            return JSONResponse({"id": workstation_id, "status": "deleted"},
                                headers={"Preference-Applied": "return=representation"})
        return Response(status_code=204)

    return router
