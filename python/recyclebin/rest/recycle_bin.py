"""REST area: the recycle bin (list, show, recover and purge soft-deleted workspaces)."""

# No ``from __future__ import annotations``: FastAPI reads the endpoints' annotations.

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

import recyclebin as rb
from recyclebin.rest.common import (
    DELETED_PATH,
    Cursor,
    Group,
    Limit,
    Name,
    PurgeBefore,
    RouterContext,
    Subscription,
    next_link,
)
from recyclebin.rest.errors import E404_WS, E409, e400, responses
from recyclebin.wire import (
    DeletedPageModel,
    DeletedWorkspaceModel,
    DeleteResultModel,
    RecoverResultModel,
)

__all__ = ["add_routes"]


def add_routes(routes: APIRouter, context: RouterContext) -> None:
    """Adds the recycle-bin routes over ``context.engine`` to ``routes``."""
    Caller = Annotated[rb.Principal | None, Depends(context.authenticate)]

    def page_of(request: Request, subscription_id: str, resource_group: str | None,
                limit: int, cursor: str | None, caller: "rb.Principal | None",
                purge_before: datetime | None) -> DeletedPageModel:
        page = rb.Workspace.list_deleted(subscription_id, resource_group, limit=limit,
                                         cursor=cursor, principal=caller, engine=context.engine,
                                         purge_before=purge_before)
        return DeletedPageModel(value=[DeletedWorkspaceModel.model_validate(d) for d in page],
                                next_cursor=page.next_cursor,
                                next_link=next_link(request, page.next_cursor, limit))

    @routes.get("/subscriptions/{subscription_id}/deletedWorkspaces",
                response_model=DeletedPageModel, tags=context.tagged("recycle bin"),
                summary="List soft-deleted workspaces of a subscription",
                responses=responses(e400("invalid_request")))
    def list_deleted_in_subscription(
        request: Request, subscription_id: Subscription, caller: Caller,
        resource_group: Annotated[str | None, Query(
            min_length=1, description="Only this resource group.")] = None,
        limit: Limit = 100, cursor: Cursor = None, purge_before: PurgeBefore = None,
    ) -> DeletedPageModel:
        """Newest deletion first; works even when the resource group is gone."""
        return page_of(request, subscription_id, resource_group, limit, cursor, caller,
                       purge_before)

    @routes.get("/subscriptions/{subscription_id}/resourceGroups/{resource_group}"
                "/deletedWorkspaces", response_model=DeletedPageModel,
                tags=context.tagged("recycle bin"),
                summary="List soft-deleted workspaces of a resource group",
                responses=responses(e400("invalid_request")))
    def list_deleted_in_group(request: Request, subscription_id: Subscription,
                              resource_group: Group, caller: Caller,
                              limit: Limit = 100, cursor: Cursor = None,
                              purge_before: PurgeBefore = None) -> DeletedPageModel:
        """Newest deletion first."""
        return page_of(request, subscription_id, resource_group, limit, cursor, caller,
                       purge_before)

    @routes.get(DELETED_PATH, response_model=DeletedWorkspaceModel, tags=context.tagged("recycle bin"),
                summary="Show a soft-deleted workspace", responses=responses(E404_WS))
    def show_deleted(subscription_id: Subscription, resource_group: Group, name: Name,
                     caller: Caller) -> DeletedWorkspaceModel:
        """By its original subscription, group and name; with `purge_at`."""
        return DeletedWorkspaceModel.model_validate(rb.Workspace.get_deleted(
            name, subscription_id, resource_group, principal=caller, engine=context.engine))

    @routes.post(DELETED_PATH + "/recover", response_model=RecoverResultModel,
                 tags=context.tagged("recycle bin"), summary="Recover a soft-deleted workspace",
                 responses=responses(E404_WS, E409))
    def recover_workspace(subscription_id: Subscription, resource_group: Group, name: Name,
                          caller: Caller) -> RecoverResultModel:
        """Restores retained data; re-attaches what the policy says (best effort) and
        lists what must be recreated."""
        return RecoverResultModel.model_validate(rb.Workspace.recover(
            subscription_id, resource_group, name, principal=caller, engine=context.engine))

    @routes.delete(DELETED_PATH, response_model=DeleteResultModel, tags=context.tagged("recycle bin"),
                   summary="Purge a soft-deleted workspace now",
                   responses=responses(E404_WS, E409))
    def purge_workspace(subscription_id: Subscription, resource_group: Group, name: Name,
                        caller: Caller) -> DeleteResultModel:
        """Hard-deletes it and queues its cleanup tasks; the name becomes free."""
        return DeleteResultModel.model_validate(rb.Workspace.purge(
            subscription_id, resource_group, name, principal=caller, engine=context.engine))

