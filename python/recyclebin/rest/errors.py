"""The REST error plumbing: one error body for every refusal, and its OpenAPI documentation.

Every error, from the engine, the authenticator or request validation, has the body
``{"error": {"code": ..., "message": ...}}``; an engine error answers the status and code of
its class (``recyclebin.codes``), validation errors are 422 and name the fields.
"""

# No ``from __future__ import annotations``: the route class is read by FastAPI.

from collections.abc import Awaitable, Callable, Coroutine
from datetime import datetime
from typing import Any

from fastapi import Request, Response, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import ValidationError as PydanticValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

import recyclebin as rb
from recyclebin import codes
from recyclebin.auth import AuthError
from recyclebin.wire import ErrorDetail, ErrorResponse, FieldErrorModel

__all__ = [
    "E400",
    "E403",
    "E404",
    "E404_WS",
    "E409",
    "E412",
    "ERROR_RESPONSES",
    "ApiError",
    "RecycleBinRoute",
    "ResponseDocs",
    "e400",
    "e404",
    "engine_error_response",
    "error_doc",
    "error_response",
    "responses",
    "validation_error_response",
]

#: OpenAPI ``responses=`` of a route: status -> {"model": ..., "description": ...}.
ResponseDocs = dict[int | str, dict[str, Any]]


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


def engine_error_response(exc: rb.RecycleBinError) -> JSONResponse:
    """An engine error with its class's status and code (and ``reserved_until`` when the
    error has one)."""
    reserved_until = getattr(exc, "reserved_until", None)
    if isinstance(reserved_until, datetime):
        return error_response(codes.http_status(exc), str(exc.code), str(exc),
                              reserved_until=reserved_until)
    return error_response(codes.http_status(exc), str(exc.code), str(exc))


async def _map_errors(call: Callable[[], Awaitable[Response]]) -> Response:
    try:
        return await call()
    except rb.RecycleBinError as exc:
        return engine_error_response(exc)
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
        raise  # a bug in this package's own models, not the caller's fault
    except ValueError as exc:  # e.g. a cursor the engine cannot read
        return error_response(status.HTTP_400_BAD_REQUEST, "invalid_request", str(exc))


class RecycleBinRoute(APIRoute):
    """Turns every error of this router into the error body, wherever it is mounted."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            return await _map_errors(lambda: handler(request))

        return handle


# ---------------------------------------------------------------- OpenAPI error docs

def error_doc(status_code: int, description: str) -> ResponseDocs:
    """One documented error status, with the error body as its model."""
    return {status_code: {"model": ErrorResponse, "description": description}}


def _codes(*names: str) -> str:
    return ", ".join(f"`{name}`" for name in names)


def e400(*names: str) -> ResponseDocs:
    """400: the route's own codes, and `invalid_argument`, which any text can bring."""
    return error_doc(400, f"{_codes(*names, 'invalid_argument')}. `invalid_argument`: a name, "
                          "id or other text with a NUL byte or a lone surrogate, or a value out "
                          "of range.")


def e404(*names: str) -> ResponseDocs:
    """404: the route's own codes, and `not_found` (no route at the path)."""
    return error_doc(404, f"{_codes(*names, 'not_found')}. `not_found`: no route at this path "
                          "(e.g. a path parameter holding `/`).")


E400 = e400()
E403 = error_doc(403, "`permission_denied`: the token does not name the subscription, the "
                      "caller lacks a role the policy requires, or the route is for the "
                      "platform only.")
E404 = e404()
E404_WS = e404("workspace_not_found")
# What an error body carries besides code and message, for the docs.
_EXTRA_FIELDS = {"name_reserved": " (with `reserved_until`)"}


def _conflict_codes() -> str:
    """The codes answered 409, from the registry: a class added later is documented too."""
    names = [f"`{entry.code}`{_EXTRA_FIELDS.get(entry.code, '')}"
             for entry in codes.error_codes().values() if entry.http_status == 409]
    return ", ".join(names[:-1]) + " or " + names[-1] if len(names) > 1 else "".join(names)


E409 = error_doc(409, _conflict_codes() + ".")
E412 = error_doc(412, "`precondition_failed`: the workspace has a lien, confirm_name is "
                      "missing or different, or a blocker fact is above zero.")
#: The errors any route of this package can answer, for ``APIRouter(responses=...)``.
ERROR_RESPONSES: ResponseDocs = {
    **E400,
    **error_doc(401, "`unauthenticated`: no bearer token, or an unknown one."),
    **E403,
    **E404,
    **error_doc(405, "`method_not_allowed`: the path does not take this method; `Allow` "
                     "lists those it takes."),
    **error_doc(413, "`payload_too_large`: the request body is above the server's limit "
                     "(`serve --max-body-bytes`, default 1 MiB)."),
    **error_doc(422, "`validation_error`: a path, query or body field is malformed, or the "
                     "body is not UTF-8 JSON; `fields` names each one."),
    **error_doc(503, "`engine_closed`: the server is shutting down; `storage_error`: the "
                     "store failed or cannot be reached (nothing was applied; safe to retry)."),
}


def responses(*docs: ResponseDocs) -> ResponseDocs:
    """The documented errors of one route: ``docs`` merged, a later one winning."""
    merged: ResponseDocs = {}
    for doc in docs:
        merged.update(doc)
    return merged
