"""REST area: live workspaces (list, create, show, stop, start, delete, members)."""

# No ``from __future__ import annotations``: FastAPI reads the endpoints' annotations.

from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Path, Query, Request, Response, status

import recyclebin as rb
from recyclebin.rest.common import (
    WS_PATH,
    Cursor,
    Group,
    Limit,
    Name,
    RouterContext,
    Subscription,
    live_workspace,
    next_link,
    pick,
)
from recyclebin.rest.errors import (
    E400,
    E403,
    E404_WS,
    E409,
    E412,
    e400,
    responses,
)
from recyclebin.wire import (
    DeleteOptionsBody,
    DeleteResultModel,
    GrantBody,
    WorkspaceCreate,
    WorkspaceModel,
    WorkspacePageModel,
)

__all__ = ["add_routes"]


def add_routes(routes: APIRouter, context: RouterContext) -> None:
    """Adds the live-workspace routes over ``context.engine`` to ``routes``."""
    Caller = Annotated[rb.Principal | None, Depends(context.authenticate)]

    def live(subscription_id: str, resource_group: str, name: str,
             caller: "rb.Principal | None") -> rb.Workspace:
        return live_workspace(context, subscription_id, resource_group, name, caller)

    def live_page(request: Request, subscription_id: str, resource_group: str | None,
                  limit: int, cursor: str | None, caller: "rb.Principal | None"
                  ) -> WorkspacePageModel:
        page = rb.Workspace.list(subscription_id, resource_group, limit=limit, cursor=cursor,
                                 principal=caller, engine=context.engine)
        return WorkspacePageModel(value=[WorkspaceModel.model_validate(ws) for ws in page],
                                  next_cursor=page.next_cursor,
                                  next_link=next_link(request, page.next_cursor, limit))

    @routes.get("/subscriptions/{subscription_id}/workspaces", response_model=WorkspacePageModel,
                tags=context.tagged("workspaces"), summary="List the live workspaces of a subscription",
                responses=responses(E400, E403))
    def list_in_subscription(request: Request, subscription_id: Subscription, caller: Caller,
                             limit: Limit = 100, cursor: Cursor = None) -> WorkspacePageModel:
        """Running and stopped workspaces, by resource group, then name (never soft-deleted
        ones: see `deletedWorkspaces`)."""
        return live_page(request, subscription_id, None, limit, cursor, caller)

    @routes.get("/subscriptions/{subscription_id}/resourceGroups/{resource_group}/workspaces",
                response_model=WorkspacePageModel, tags=context.tagged("workspaces"),
                summary="List the live workspaces of a resource group",
                responses=responses(E400, E403))
    def list_in_group(request: Request, subscription_id: Subscription, resource_group: Group,
                      caller: Caller, limit: Limit = 100,
                      cursor: Cursor = None) -> WorkspacePageModel:
        """Running and stopped workspaces, by name."""
        return live_page(request, subscription_id, resource_group, limit, cursor, caller)

    @routes.put(WS_PATH, status_code=201, response_model=WorkspaceModel,
                tags=context.tagged("workspaces"), summary="Create a workspace",
                responses=responses(e400("invalid_retention"), E409))
    def create_workspace(subscription_id: Subscription, resource_group: Group, name: Name,
                         caller: Caller,
                         body: Annotated[WorkspaceCreate | None, Body()] = None
                         ) -> WorkspaceModel:
        """Create a workspace; the caller becomes its `owner`. A name held by a
        soft-deleted workspace is refused with `name_reserved` until its retention ends,
        unless `if_deleted` is `recover` (the holder comes back, with its own settings) or
        `purge` (the holder is purged first, in the same transaction)."""
        spec = body or WorkspaceCreate()
        ws = rb.Workspace.create(
            subscription_id, resource_group, name,
            soft_delete_retention_days=spec.soft_delete_retention_days,
            cmk_encrypted=spec.cmk_encrypted,
            components=[rb.Component(c.kind, c.ref, standalone=c.standalone)
                        for c in spec.components],
            principal=caller, engine=context.engine, purge_protection=spec.purge_protection,
            if_deleted=spec.if_deleted, auto_delete_at=spec.auto_delete_at)
        return WorkspaceModel.model_validate(ws)

    @routes.get(WS_PATH, response_model=WorkspaceModel, tags=context.tagged("workspaces"),
                summary="Show a workspace", responses=responses(E404_WS))
    def show_workspace(subscription_id: Subscription, resource_group: Group, name: Name,
                       caller: Caller) -> WorkspaceModel:
        """A live workspace. A soft-deleted one answers 404 (see `deletedWorkspaces`)."""
        return WorkspaceModel.model_validate(rb.Workspace.get(
            name, subscription_id, resource_group, principal=caller, engine=context.engine))

    def add_power_route(action: str, act: Callable[..., None]) -> None:
        """``POST .../stop`` or ``.../start``: ``act(workspace, principal=caller)``."""
        def endpoint(subscription_id: Subscription, resource_group: Group, name: Name,
                     caller: Caller) -> WorkspaceModel:
            """Idempotent."""
            ws = live(subscription_id, resource_group, name, caller)
            act(ws, principal=caller)
            return WorkspaceModel.model_validate(ws)

        endpoint.__name__ = f"{action}_workspace"  # the OpenAPI operation id's stem
        routes.post(WS_PATH + f"/{action}", response_model=WorkspaceModel,
                    tags=context.tagged("workspaces"), summary=f"{action.title()} a workspace",
                    responses=responses(E404_WS, E409))(endpoint)

    add_power_route("stop", rb.Workspace.stop)
    add_power_route("start", rb.Workspace.start)

    @routes.delete(
        WS_PATH, response_model=DeleteResultModel, tags=context.tagged("workspaces"),
        summary="Delete a workspace (soft by default)",
        responses=responses(
            {202: {"model": DeleteResultModel,
                   "description": "Accepted (`no_wait=true`); the body is the result."}},
            e400("invalid_request", "workspace_not_stopped"), E404_WS, E409, E412))
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
        permanent = pick("permanently_delete", permanently_delete, body.permanently_delete, False)
        dependent = pick("delete_dependent_resources", delete_dependent_resources,
                         body.delete_dependent_resources, False)
        typed_name = pick("confirm_name", confirm_name, body.confirm_name, None)
        wait_not = pick("no_wait", no_wait, body.no_wait, False)
        trial = pick("dry_run", dry_run, body.dry_run, False)
        ws = live(subscription_id, resource_group, name, caller)
        result = ws.delete(delete_dependent_resources=dependent, permanently_delete=permanent,
                           no_wait=wait_not, confirm_name=typed_name, principal=caller,
                           dry_run=trial)
        if wait_not and not trial:  # a dry run accepts nothing for later
            response.status_code = status.HTTP_202_ACCEPTED
        return DeleteResultModel.model_validate(result)

    @routes.put(WS_PATH + "/members/{principal_id}", status_code=204, response_class=Response,
                tags=context.tagged("workspaces"), summary="Grant a role on a workspace",
                responses=responses(E404_WS, E409))
    def grant_role(subscription_id: Subscription, resource_group: Group, name: Name,
                   principal_id: Annotated[str, Path(min_length=1, max_length=256)],
                   body: GrantBody, caller: Caller) -> None:
        """Replaces the member's existing role."""
        live(subscription_id, resource_group, name, caller).grant(
            principal_id, body.role, principal=caller)

    @routes.delete(WS_PATH + "/members/{principal_id}", status_code=204, response_class=Response,
                   tags=context.tagged("workspaces"), summary="Revoke a member's role",
                   responses=responses(E404_WS, E409))
    def revoke_role(subscription_id: Subscription, resource_group: Group, name: Name,
                    principal_id: Annotated[str, Path(min_length=1, max_length=256)],
                    caller: Caller) -> None:
        """Revoking the last member makes the workspace orphaned."""
        live(subscription_id, resource_group, name, caller).revoke(principal_id, principal=caller)

