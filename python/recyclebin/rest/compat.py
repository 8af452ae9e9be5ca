"""REST area: the cloud-workstation API's delete, for the clients written against it."""

# No ``from __future__ import annotations``: FastAPI reads the endpoints' annotations.

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Path, Response
from fastapi.responses import JSONResponse

import recyclebin as rb
from recyclebin.auth import require_workspace_subscription
from recyclebin.rest.common import RouterContext
from recyclebin.rest.errors import E404_WS, E409, E412, e400, responses
from recyclebin.wire import WorkstationDeleted

__all__ = ["add_routes"]


def add_routes(routes: APIRouter, context: RouterContext) -> None:
    """Adds the cloud-workstation routes over ``context.engine`` to ``routes``."""
    Caller = Annotated[rb.Principal | None, Depends(context.authenticate)]

    @routes.get(
        "/workstations/{workstation_id}/delete", status_code=204,
        tags=context.tagged("compatibility"),
        summary="Delete a workstation (cloud-workstation API)",
        response_model=None,
        responses=responses(
            {204: {"description": "Deleted. HTTP forbids a body on 204, so the documented "
                                  "`{\"id\", \"status\": \"deleted\"}` object is sent only "
                                  "with `Prefer: return=representation` (answered 200)."},
             200: {"model": WorkstationDeleted,
                   "description": "Deleted, with `Prefer: return=representation`."}},
            e400("workspace_not_stopped"), E404_WS, E409, E412))
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
        require_workspace_subscription(caller, context.engine, workstation_id)
        ws = rb.Workspace.get_by_id(workstation_id, principal=caller, engine=context.engine)
        ws.delete(principal=caller)
        if prefer is not None and "return=representation" in prefer.replace(" ", "").lower():
            return JSONResponse({"id": workstation_id, "status": "deleted"},
                                headers={"Preference-Applied": "return=representation"})
        return Response(status_code=204)

