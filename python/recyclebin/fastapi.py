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

The parts (``recyclebin.rest``): the error plumbing in ``rest.errors``, one router per area
(``rest.workspaces``, ``rest.recycle_bin``, ``rest.operations``, ``rest.rules``,
``rest.compat``), the bodies in ``recyclebin.wire`` (shared with the CLI's JSON output).
"""

from collections.abc import Callable, Sequence

from fastapi import APIRouter, Depends, Security
from fastapi.security import HTTPBearer

import recyclebin as rb
from recyclebin.auth import Authenticator, require_platform, subscription_caller
from recyclebin.rest import compat, operations, protections, recycle_bin, rules, workspaces
from recyclebin.rest.common import RouterContext
from recyclebin.rest.errors import (
    ERROR_RESPONSES,
    ApiError,
    RecycleBinRoute,
    error_response,
    validation_error_response,
)
from recyclebin.wire import ErrorResponse, UtcDatetime, format_datetime

__all__ = [
    "AREAS",
    "ERROR_RESPONSES",
    "ApiError",
    "create_router",
    "error_response",
    "format_datetime",
    "validation_error_response",
    "ErrorResponse",
    "RecycleBinRoute",
    "UtcDatetime",
    "require_platform",
]

#: Each area's ``add_routes(router, context)``, in the order their routes are matched and
#: documented.
AREAS: tuple[Callable[[APIRouter, RouterContext], None], ...] = (
    workspaces.add_routes,
    rules.add_routes,
    recycle_bin.add_routes,
    protections.add_routes,
    operations.add_routes,
    compat.add_routes,
)


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
    context = RouterContext(engine=engine, authenticate=authenticate, tags=tuple(tags))
    for add_routes in AREAS:
        add_routes(router, context)
    return router
