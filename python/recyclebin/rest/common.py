"""What the REST area routers share: the context they are built in (the engine, the caller
dependency, the extra tags), the path and query parameters, the paging link."""

# No ``from __future__ import annotations``: FastAPI reads the parameters' annotations.

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Path, Query, Request
from pydantic import AwareDatetime

import recyclebin as rb
from recyclebin.auth import Authenticator
from recyclebin.rest.errors import ApiError

__all__ = [
    "DELETED_PATH",
    "WS_PATH",
    "Cursor",
    "Group",
    "Limit",
    "Name",
    "PurgeBefore",
    "RouterContext",
    "Subscription",
    "live_workspace",
    "next_link",
    "pick",
]

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

WS_PATH = "/subscriptions/{subscription_id}/resourceGroups/{resource_group}/workspaces/{name}"
DELETED_PATH = ("/subscriptions/{subscription_id}/resourceGroups/{resource_group}"
                "/deletedWorkspaces/{name}")


@dataclass(frozen=True)
class RouterContext:
    """What every area router of one ``create_router`` call is built with.

    ``engine`` is borrowed (never closed here); ``authenticate`` names each caller (an
    area's endpoints take ``Annotated[rb.Principal | None, Depends(context.authenticate)]``:
    the router's guard has checked the path's ``subscription_id`` by then; operator routes
    require the platform, the by-id route checks the workspace's); ``tags`` are added to
    every route's own tags."""

    engine: rb.Engine
    authenticate: Authenticator
    tags: Sequence[str] = field(default=())

    def tagged(self, *names: str) -> list[str | enum.Enum]:
        """A route's tags: its area's ``names``, then the extra tags."""
        return [*names, *self.tags]


def live_workspace(context: RouterContext, subscription_id: str, resource_group: str, name: str,
                   caller: "rb.Principal | None") -> rb.Workspace:
    """The live workspace, or a 409 naming recover and purge when it is in the bin."""
    try:
        return rb.Workspace.get(name, subscription_id, resource_group,
                                principal=caller, engine=context.engine)
    except rb.WorkspaceNotFound:
        in_bin = True
        try:
            rb.Workspace.get_deleted(name, subscription_id, resource_group,
                                     principal=caller, engine=context.engine)
        except rb.RecycleBinError:
            in_bin = False
        if not in_bin:
            raise
    in_bin_path = DELETED_PATH.format(subscription_id=subscription_id,
                                      resource_group=resource_group, name=name)
    raise ApiError(
        409, "operation_not_allowed",
        f"workspace {name!r} is soft-deleted: only recover (POST {in_bin_path}/recover) "
        f"and purge (DELETE {in_bin_path}) work on it")


def next_link(request: Request, next_cursor: str | None, limit: int) -> str | None:
    """This request's URL for the page at ``next_cursor``; None on the last page."""
    if next_cursor is None:
        return None
    return str(request.url.include_query_params(cursor=next_cursor, limit=limit))


def pick(name: str, query_value: Any, body_value: Any, default: Any) -> Any:
    """An option given in the query or the body (they may not disagree), else ``default``."""
    if query_value is not None and body_value is not None and query_value != body_value:
        raise ApiError(400, "invalid_request",
                       f"{name} is given in both the query and the body, with different values")
    if query_value is not None:
        return query_value
    if body_value is not None:
        return body_value
    return default
