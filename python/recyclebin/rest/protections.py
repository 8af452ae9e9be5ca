"""REST area: protections (legal holds, liens, purge protection, auto-deletion).

Holds are placed on a live workspace (``.../workspaces/{name}/holds``) or on one in the
recycle bin (``.../deletedWorkspaces/{name}/holds``); liens only on live ones. A hold or
lien is released through the workspace it guards, so a token acts only in the tenants it
names (the router's guard checks the path's subscription) and an id from another workspace
answers 404.
"""

# No ``from __future__ import annotations``: FastAPI reads the endpoints' annotations.

from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Response

import recyclebin as rb
from recyclebin.rest.common import (
    DELETED_PATH,
    WS_PATH,
    Group,
    Name,
    RouterContext,
    Subscription,
    live_workspace,
)
from recyclebin.rest.errors import E404_WS, E409, ApiError, responses
from recyclebin.wire import AutoDeleteBody, HoldBody, HoldModel, LienBody, LienModel, WorkspaceModel

__all__ = ["add_routes"]

GuardId = Annotated[str, Path(min_length=1, max_length=256, description="The hold's or lien's id.")]


def add_routes(routes: APIRouter, context: RouterContext) -> None:
    """Adds the protection routes over ``context.engine`` to ``routes``."""
    Caller = Annotated[rb.Principal | None, Depends(context.authenticate)]
    engine = context.engine

    def live_id(subscription_id: str, resource_group: str, name: str, caller: "rb.Principal | None") -> str:
        return live_workspace(context, subscription_id, resource_group, name, caller).id

    def deleted_id(subscription_id: str, resource_group: str, name: str, caller: "rb.Principal | None") -> str:
        return rb.Workspace.get_deleted(name, subscription_id, resource_group, principal=caller,
                                        engine=engine).id

    def add_hold_routes(path: str, where: str, workspace_id: Callable[..., str]) -> None:
        """Place, list and release the holds of the workspace at ``path``."""

        def list_holds(subscription_id: Subscription, resource_group: Group, name: Name,
                       caller: Caller) -> list[HoldModel]:
            """Oldest first."""
            ws_id = workspace_id(subscription_id, resource_group, name, caller)
            return [HoldModel.model_validate(h) for h in engine.holds(ws_id)]

        def place_hold(subscription_id: Subscription, resource_group: Group, name: Name,
                       body: HoldBody, caller: Caller) -> HoldModel:
            """A legal hold stops the workspace's destruction (permanent delete, purge,
            expiry) until released; soft delete and recover work as usual."""
            ws_id = workspace_id(subscription_id, resource_group, name, caller)
            return HoldModel.model_validate(engine.place_hold(ws_id, body.reason, principal=caller))

        def release_hold(subscription_id: Subscription, resource_group: Group, name: Name,
                         hold_id: GuardId, caller: Caller) -> None:
            """When the last hold of a workspace past its purge date goes, it expires at once."""
            ws_id = workspace_id(subscription_id, resource_group, name, caller)
            if all(h.id != hold_id for h in engine.holds(ws_id)):
                raise ApiError(404, "not_found", f"no hold with id {hold_id!r} on workspace {name!r}")
            engine.release_hold(hold_id, principal=caller)

        for endpoint in (list_holds, place_hold, release_hold):
            endpoint.__name__ = f"{endpoint.__name__}_{where}"  # unique OpenAPI operation ids
        tags = context.tagged("protections")
        routes.get(path + "/holds", response_model=list[HoldModel], tags=tags,
                   summary=f"List the legal holds of a {where.replace('_', ' ')} workspace",
                   responses=responses(E404_WS, E409))(list_holds)
        routes.post(path + "/holds", status_code=201, response_model=HoldModel, tags=tags,
                    summary=f"Place a legal hold on a {where.replace('_', ' ')} workspace",
                    responses=responses(E404_WS, E409))(place_hold)
        routes.delete(path + "/holds/{hold_id}", status_code=204, response_class=Response, tags=tags,
                      summary=f"Release a legal hold of a {where.replace('_', ' ')} workspace",
                      responses=responses(E404_WS, E409))(release_hold)

    add_hold_routes(WS_PATH, "live", live_id)
    add_hold_routes(DELETED_PATH, "soft_deleted", deleted_id)

    @routes.get(WS_PATH + "/liens", response_model=list[LienModel], tags=context.tagged("protections"),
                summary="List the liens of a workspace", responses=responses(E404_WS, E409))
    def list_liens(subscription_id: Subscription, resource_group: Group, name: Name,
                   caller: Caller) -> list[LienModel]:
        """Oldest first."""
        ws_id = live_id(subscription_id, resource_group, name, caller)
        return [LienModel.model_validate(lien) for lien in engine.liens(ws_id)]

    @routes.post(WS_PATH + "/liens", status_code=201, response_model=LienModel,
                 tags=context.tagged("protections"), summary="Add a lien to a workspace",
                 responses=responses(E404_WS, E409))
    def add_lien(subscription_id: Subscription, resource_group: Group, name: Name, body: LienBody,
                 caller: Caller) -> LienModel:
        """While a workspace has a lien, every delete of it answers 412 `precondition_failed`
        naming each lien's origin and reason."""
        ws_id = live_id(subscription_id, resource_group, name, caller)
        return LienModel.model_validate(engine.add_lien(ws_id, body.origin, body.reason, principal=caller))

    @routes.delete(WS_PATH + "/liens/{lien_id}", status_code=204, response_class=Response,
                   tags=context.tagged("protections"), summary="Remove a lien from a workspace",
                   responses=responses(E404_WS, E409))
    def remove_lien(subscription_id: Subscription, resource_group: Group, name: Name, lien_id: GuardId,
                    caller: Caller) -> None:
        ws_id = live_id(subscription_id, resource_group, name, caller)
        if all(lien.id != lien_id for lien in engine.liens(ws_id)):
            raise ApiError(404, "not_found", f"no lien with id {lien_id!r} on workspace {name!r}")
        engine.remove_lien(lien_id, principal=caller)

    @routes.post(WS_PATH + "/purgeProtection", response_model=WorkspaceModel,
                 tags=context.tagged("protections"),
                 summary="Turn purge protection on (irreversible)", responses=responses(E404_WS, E409))
    def enable_purge_protection(subscription_id: Subscription, resource_group: Group, name: Name,
                                caller: Caller) -> WorkspaceModel:
        """From now on every delete is soft and nothing purges the workspace before its purge
        date. There is no way to turn it off. 409 where the policy always deletes the
        workspace permanently (CMK with `hard_delete_if_cmk`, or soft delete disabled)."""
        ws = live_workspace(context, subscription_id, resource_group, name, caller)
        ws.enable_purge_protection(principal=caller)
        return WorkspaceModel.model_validate(ws)

    @routes.put(WS_PATH + "/autoDelete", response_model=WorkspaceModel, tags=context.tagged("protections"),
                summary="Set or cancel a workspace's auto-deletion time", responses=responses(E404_WS, E409))
    def set_auto_delete(subscription_id: Subscription, resource_group: Group, name: Name,
                        body: AutoDeleteBody, caller: Caller) -> WorkspaceModel:
        """`at: null` cancels. From `at` on, the reaper (purge expired) deletes the workspace as
        the platform would, with the policy's checks except the typed name."""
        ws = live_workspace(context, subscription_id, resource_group, name, caller)
        ws.set_auto_delete(body.at, principal=caller)
        return WorkspaceModel.model_validate(ws)
