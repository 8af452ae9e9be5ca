"""The ML-workspace ARM protocol: the routes that ``azure-ai-ml``'s ``MLClient.workspaces``
calls, answered by the engine, so that the unchanged SDK lists, shows and deletes (softly
or permanently) recyclebin's workspaces.

    from recyclebin.arm import create_arm_router
    app.include_router(create_arm_router(engine, BearerTokenAuth.from_file("tokens.yaml")))

Point the SDK at the server through cloud metadata whose ``resource_manager`` is the
server's HTTPS URL (see the README). What the SDK sends, and what it gets:

- ``GET .../resourceGroups/{g}/providers/Microsoft.MachineLearningServices/workspaces`` and
  ``GET /subscriptions/{s}/providers/Microsoft.MachineLearningServices/workspaces``
  (``workspaces.list()``, both scopes): ``{"value": [...], "nextLink": ...}``, live
  workspaces only, keyset-paged from the engine; ``nextLink`` carries the cursor as
  ``$skip`` (the SDK follows it as it is). ``$top`` (1..1000, default 100) sets the page size;
  ``kind`` filters (every recyclebin workspace is of kind ``default``).
- ``GET .../workspaces/{name}`` (``workspaces.get``): the ARM resource; a soft-deleted or
  unknown workspace answers 404 (the SDK raises ``ResourceNotFoundError``).
- ``DELETE .../workspaces/{name}`` (``workspaces.begin_delete``): a soft delete, or a
  permanent one with ``forceToPurge=true``; on a workspace that is already in the recycle
  bin, ``forceToPurge=true`` purges it. The engine decides synchronously, so the answer is
  ``200`` with the result (the SDK's poller is done at once), ``204`` when there is nothing
  to delete (ARM's answer for a resource that does not exist), or an ARM error.
- ``begin_delete(..., delete_dependent_resources=True)`` first reads the linked
  Application Insights resource and sends one ``DELETE`` per linked resource (storage
  account, key vault, Application Insights, container registry) to the same server. A
  linked resource is a workspace component whose ``ref`` is that resource's ARM id. The
  server answers the ``GET`` with the resource, and each ``DELETE`` with ``202 Accepted``
  (the SDK does not wait for it), remembering it for that caller and workspace for
  :data:`DEPENDENT_DELETE_TTL` seconds, in this process. The workspace ``DELETE`` from the
  same caller that follows then runs with ``delete_dependent_resources=True``: the engine
  applies its rules (the ``azureml`` policy refuses it without ``forceToPurge=true``, with
  409 ``operation_not_allowed``, and nothing is deleted) and writes one cleanup task per
  destroyed component, the linked resources among them, to the cleanup outbox. Nothing is
  destroyed at the time of the linked ``DELETE`` itself. A standalone component is never
  deleted with its workspace: its ``DELETE`` answers 409 ``operation_not_allowed`` and the
  SDK stops before deleting the workspace. An id that is no component answers 404.

Every route authenticates the bearer token and then calls one subscription check (the
``authorize_subscription`` argument) before anything else, and requires ``api-version``
(``YYYY-MM-DD`` with an optional ``-preview`` suffix; the bodies are the same for every
version). Errors are ARM's ``{"error": {"code", "message"}}`` with recyclebin's codes and
statuses (401 ``unauthenticated`` makes the SDK raise ``ClientAuthenticationError``).
"""

# No ``from __future__ import annotations``: FastAPI reads the endpoints' annotations.

import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.responses import JSONResponse

import recyclebin as rb
from recyclebin.auth import Authenticator
from recyclebin.rest.errors import (
    E409,
    E412,
    ERROR_RESPONSES,
    ApiError,
    RecycleBinRoute,
    e400,
)
from recyclebin.wire import format_datetime

#: The errors the ARM routes can answer (ARM's shape, our codes), for the OpenAPI.
ARM_ERROR_RESPONSES = {**ERROR_RESPONSES, **e400("invalid_request"), **E409, **E412}

__all__ = [
    "DEPENDENT_DELETE_TTL",
    "LINKED_RESOURCE_TYPES",
    "PROVIDER",
    "SubscriptionCheck",
    "WORKSPACE_TYPE",
    "allow_any_subscription",
    "create_arm_router",
    "workspace_resource",
]

PROVIDER = "Microsoft.MachineLearningServices"
WORKSPACE_TYPE = f"{PROVIDER}/workspaces"

#: ARM resource types a workspace links to (lower case, as ARM compares them), and the
#: workspace property that names each; the SDK deletes exactly these.
LINKED_RESOURCE_TYPES: dict[str, str] = {
    "microsoft.storage/storageaccounts": "storageAccount",
    "microsoft.keyvault/vaults": "keyVault",
    "microsoft.insights/components": "applicationInsights",
    "microsoft.containerregistry/registries": "containerRegistry",
}

#: Seconds a linked resource's DELETE is remembered, waiting for its workspace's DELETE.
DEPENDENT_DELETE_TTL = 600.0
_PENDING_MAX = 10_000  # remembered (caller, workspace) pairs; the oldest is forgotten first

_API_VERSION = re.compile(r"\d{4}-\d{2}-\d{2}(-preview)?")
_PAGE_DEFAULT = 100
_SCAN_PAGE = 500  # workspaces read per engine call while looking for a linked resource

#: ``check(caller, subscription_id)`` raises (an ``AuthError`` or ``rb.PermissionDenied``)
#: when the caller may not act in the subscription.
SubscriptionCheck = Callable[["rb.Principal | None", str], None]


def allow_any_subscription(caller: "rb.Principal | None", subscription_id: str) -> None:
    """The subscription rule of today's token table: a token does not name subscriptions,
    so every authenticated caller may address any subscription, and the engine's policy
    decides what it may do there (as on the REST plugin's routes)."""


def _arm_id(subscription_id: str, resource_group: str, name: str) -> str:
    return (f"/subscriptions/{subscription_id}/resourceGroups/{resource_group}"
            f"/providers/{WORKSPACE_TYPE}/{name}")


def _linked_type(ref: str) -> str | None:
    """The lower-case ARM type of a resource id such as
    ``/subscriptions/s/resourceGroups/g/providers/Microsoft.Storage/storageAccounts/x``."""
    parts = ref.strip("/").split("/")
    if (len(parts) != 8 or parts[0].lower() != "subscriptions"
            or parts[2].lower() != "resourcegroups" or parts[4].lower() != "providers"):
        return None
    resource_type = f"{parts[5]}/{parts[6]}".lower()
    return resource_type if resource_type in LINKED_RESOURCE_TYPES else None


def _same_id(a: str, b: str) -> bool:
    return a.strip("/").lower() == b.strip("/").lower()  # ARM ids are case-insensitive


def workspace_resource(ws: rb.Workspace, location: str) -> dict[str, Any]:
    """The ARM resource of a live workspace, as ``Workspace._from_rest_object`` of the SDK
    reads it."""
    properties: dict[str, Any] = {
        "provisioningState": "Succeeded",
        "workspaceId": ws.id,
        "friendlyName": ws.name,
        "softDeleteRetentionInDays": ws.soft_delete_retention_days,
        "hbiWorkspace": False,
        "v1LegacyMode": False,
    }
    for component in ws.components:
        linked = _linked_type(component.ref)
        if linked is not None:
            properties.setdefault(LINKED_RESOURCE_TYPES[linked], component.ref)
    return {
        "id": _arm_id(ws.subscription_id, ws.resource_group, ws.name),
        "name": ws.name,
        "type": WORKSPACE_TYPE,
        "location": location,
        "kind": "Default",
        "tags": {},
        "systemData": {"createdAt": format_datetime(ws.created_at)},
        "properties": properties,
    }


def _delete_result(result: rb.DeleteResult) -> dict[str, Any]:
    return {
        "permanent": result.permanent,
        "deletedAt": format_datetime(result.deleted_at),
        "scheduledPurgeDate": (None if result.purge_at is None
                               else format_datetime(result.purge_at)),
        "retained": list(result.retained),
        "destroyed": list(result.destroyed),
        "preserved": list(result.preserved),
        "cleanupTasks": [{"id": t.id, "kind": t.kind, "ref": t.ref} for t in result.cleanup],
        "warnings": list(result.warnings),
    }


class _PendingDependentDeletes:
    """Linked-resource DELETEs waiting for their workspace's DELETE, by (caller, workspace).

    Keyed by caller so that nobody can make another caller's workspace delete take the
    dependent resources with it. Thread-safe; bounded in time and count (a forgotten entry
    only means the dependent resources are kept, the safe side)."""

    def __init__(self, ttl: float, max_entries: int) -> None:
        self._ttl = ttl
        self._max = max_entries
        self._entries: OrderedDict[tuple[str | None, str], tuple[float, set[str]]] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, caller_id: str | None, workspace_id: str, ref: str) -> None:
        now = time.monotonic()
        with self._lock:
            self._expire(now)
            key = (caller_id, workspace_id)
            _, refs = self._entries.pop(key, (now, set()))
            refs.add(ref)
            self._entries[key] = (now, refs)
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)

    def pop(self, caller_id: str | None, workspace_id: str) -> set[str]:
        """The refs remembered for this caller and workspace (forgotten from now on)."""
        now = time.monotonic()
        with self._lock:
            self._expire(now)
            _, refs = self._entries.pop((caller_id, workspace_id), (now, set()))
            return refs

    def _expire(self, now: float) -> None:
        while self._entries:
            key, (added, _) = next(iter(self._entries.items()))
            if now - added < self._ttl:
                break
            del self._entries[key]


@dataclass(frozen=True)
class _Call:
    """An authenticated ARM call: who, and in which subscription."""
    caller: "rb.Principal | None"
    subscription_id: str


def create_arm_router(engine: rb.Engine, authenticate: Authenticator, *,
                      authorize_subscription: SubscriptionCheck = allow_any_subscription,
                      location: str = "local",
                      dependent_delete_ttl: float = DEPENDENT_DELETE_TTL) -> APIRouter:
    """The ML-workspace ARM routes over ``engine`` (borrowed, never closed).

    ``authenticate`` names the caller (see ``recyclebin.auth``); ``authorize_subscription``
    is the one check, made on every route right after authentication, that the caller may
    act in the path's subscription. ``location`` is the ARM ``location`` of every workspace.
    """
    if dependent_delete_ttl <= 0:
        raise ValueError(f"dependent_delete_ttl must be > 0 seconds, got {dependent_delete_ttl}")
    router = APIRouter(route_class=RecycleBinRoute, tags=["ARM (azure-ai-ml)"],
                       responses=ARM_ERROR_RESPONSES)
    pending = _PendingDependentDeletes(dependent_delete_ttl, _PENDING_MAX)

    Subscription = Annotated[str, Path(min_length=1, max_length=256,
                                       description="Subscription (tenant) id.")]
    Group = Annotated[str, Path(min_length=1, max_length=256, description="Resource group.")]
    Name = Annotated[str, Path(min_length=1, max_length=256, description="Resource name.")]

    def arm_call(request: Request, subscription_id: Subscription,
                 caller: Annotated["rb.Principal | None", Depends(authenticate)]) -> _Call:
        # Authentication (the dependency), then the subscription, then the request itself:
        # a caller that may not be here learns nothing, not even that api-version is wrong.
        authorize_subscription(caller, subscription_id)
        api_version = request.query_params.get("api-version")
        if api_version is None:
            raise ApiError(400, "invalid_request",
                           "the query parameter api-version is required, e.g. "
                           "?api-version=2025-12-01")
        if not _API_VERSION.fullmatch(api_version):
            raise ApiError(400, "invalid_request",
                           f"api-version {api_version!r} is not a version: use YYYY-MM-DD, "
                           "optionally with -preview (every version answers the same bodies)")
        return _Call(caller, subscription_id)

    Call = Annotated[_Call, Depends(arm_call)]
    Top = Annotated[int, Query(alias="$top", ge=1, le=1000, description="Page size.")]
    Skip = Annotated[str | None, Query(alias="$skip", min_length=1,
                                       description="The cursor of `nextLink`.")]
    Kind = Annotated[str | None, Query(description="Comma-separated kinds; recyclebin "
                                                   "workspaces are all `default`.")]

    def page_of(request: Request, call: _Call, resource_group: str | None, top: int,
                skip: str | None, kind: str | None) -> dict[str, Any]:
        if kind is not None and "default" not in {k.strip().lower() for k in kind.split(",")}:
            return {"value": []}
        page = rb.Workspace.list(call.subscription_id, resource_group, limit=top, cursor=skip,
                                 principal=call.caller, engine=engine)
        body: dict[str, Any] = {"value": [workspace_resource(ws, location) for ws in page]}
        if page.next_cursor is not None:
            body["nextLink"] = str(request.url.include_query_params(
                **{"$skip": page.next_cursor, "$top": top}))
        return body

    ws_list_path = ("/subscriptions/{subscription_id}/resourceGroups/{resource_group}"
                    f"/providers/{WORKSPACE_TYPE}")

    @router.get(f"/subscriptions/{{subscription_id}}/providers/{WORKSPACE_TYPE}",
                summary="List the live workspaces of a subscription (ARM)")
    def list_in_subscription(request: Request, call: Call, top: Top = _PAGE_DEFAULT,
                             skip: Skip = None, kind: Kind = None) -> dict[str, Any]:
        """Ordered by resource group, then name; soft-deleted workspaces are not listed."""
        return page_of(request, call, None, top, skip, kind)

    @router.get(ws_list_path, summary="List the live workspaces of a resource group (ARM)")
    def list_in_group(request: Request, call: Call, resource_group: Group,
                      top: Top = _PAGE_DEFAULT, skip: Skip = None,
                      kind: Kind = None) -> dict[str, Any]:
        """Ordered by name; soft-deleted workspaces are not listed."""
        return page_of(request, call, resource_group, top, skip, kind)

    @router.get(ws_list_path + "/{name}", summary="Show a workspace (ARM)")
    def show(call: Call, resource_group: Group, name: Name) -> dict[str, Any]:
        """A soft-deleted workspace answers 404, as in Azure."""
        ws = rb.Workspace.get(name, call.subscription_id, resource_group,
                              principal=call.caller, engine=engine)
        return workspace_resource(ws, location)

    @router.delete(ws_list_path + "/{name}", summary="Delete a workspace (ARM)",
                   response_model=None)
    def delete(call: Call, resource_group: Group, name: Name,
               force_to_purge: Annotated[bool, Query(
                   alias="forceToPurge",
                   description="Permanent: skip the recycle bin, or purge from it.")] = False,
               ) -> Response:
        """Soft by default; 200 with the result, 204 when there is nothing to delete."""
        s, caller = call.subscription_id, call.caller
        try:
            ws = rb.Workspace.get(name, s, resource_group, principal=caller, engine=engine)
        except rb.WorkspaceNotFound:
            if not force_to_purge:
                return Response(status_code=204)
            try:
                result = rb.Workspace.purge(s, resource_group, name, principal=caller,
                                            engine=engine)
            except rb.WorkspaceNotFound:
                return Response(status_code=204)
            return JSONResponse(_delete_result(result))
        dependent = pending.pop(_caller_id(caller), ws.id)
        result = ws.delete(permanently_delete=force_to_purge,
                           delete_dependent_resources=bool(dependent), principal=caller)
        return JSONResponse(_delete_result(result))

    # ------------------------------------------- linked resources (dependent deletes)

    def live_workspaces(subscription_id: str, resource_group: str | None,
                        caller: "rb.Principal | None") -> Iterator[rb.Workspace]:
        cursor: str | None = None
        while True:
            page = rb.Workspace.list(subscription_id, resource_group, limit=_SCAN_PAGE,
                                     cursor=cursor, principal=caller, engine=engine)
            yield from page
            cursor = page.next_cursor
            if cursor is None:
                return

    def find_linked(call: _Call, resource_group: str, namespace: str, resource_type: str,
                    resource_name: str) -> tuple[rb.Workspace, rb.Component, str]:
        arm_id = (f"/subscriptions/{call.subscription_id}/resourceGroups/{resource_group}"
                  f"/providers/{namespace}/{resource_type}/{resource_name}")
        if _linked_type(arm_id) is not None:
            # The linked resource's own group first (where it usually is), then the rest.
            for scope in (resource_group, None):
                for ws in live_workspaces(call.subscription_id, scope, call.caller):
                    if scope is None and ws.resource_group == resource_group:
                        continue
                    for component in ws.components:
                        if _same_id(component.ref, arm_id):
                            return ws, component, arm_id
        raise ApiError(404, "not_found",
                       f"no resource {arm_id!r}: this server knows only the resources "
                       "linked to its live workspaces (components whose ref is their ARM id)")

    linked_path = ("/subscriptions/{subscription_id}/resourceGroups/{resource_group}"
                   "/providers/{namespace}/{resource_type}/{resource_name}")

    @router.get(linked_path, summary="Show a resource linked to a workspace (ARM)")
    def show_linked(call: Call, resource_group: Group, namespace: Name, resource_type: Name,
                    resource_name: Name) -> dict[str, Any]:
        """Storage account, key vault, Application Insights or container registry of a live
        workspace, as a generic ARM resource."""
        _, component, _ = find_linked(call, resource_group, namespace, resource_type,
                                      resource_name)
        return {"id": component.ref, "name": resource_name,
                "type": f"{namespace}/{resource_type}", "location": location,
                "properties": {}}

    @router.delete(linked_path, status_code=202, response_class=Response,
                   summary="Delete a resource linked to a workspace, with the workspace (ARM)")
    def delete_linked(call: Call, resource_group: Group, namespace: Name, resource_type: Name,
                      resource_name: Name) -> Response:
        """Accepted: remembered, and carried out by this caller's DELETE of the workspace
        that follows (as `delete_dependent_resources`), under the policy's rules."""
        ws, component, _ = find_linked(call, resource_group, namespace, resource_type,
                                       resource_name)
        if component.standalone:
            raise ApiError(409, "operation_not_allowed",
                           f"{component.ref} is a standalone component of workspace "
                           f"{ws.name!r}: it is never deleted with the workspace; delete "
                           "the workspace without delete_dependent_resources")
        pending.add(_caller_id(call.caller), ws.id, component.ref)
        return Response(status_code=202)

    return router


def _caller_id(caller: "rb.Principal | None") -> str | None:
    return None if caller is None else caller.id
