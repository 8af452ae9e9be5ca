"""A complete recyclebin server: engine + REST routes + bearer tokens + purge reaper.

    from recyclebin.server import create_app
    app = create_app("recyclebin.db", "azureml", tokens="tokens.yaml", reaper_interval=300)
    # uvicorn module:app, or `recyclebin serve --db recyclebin.db --policy azureml ...`

The engine is opened when the app is created (a bad policy or database fails at once) and
closed at lifespan shutdown, after the reaper has stopped.

Test clock: ``create_app(..., clock=rb.ManualClock(start))`` (``recyclebin serve
--manual-clock 2026-01-01T00:00:00Z``) runs the engine on a clock that stands still until
moved, and adds ``/_testing/clock`` routes (platform token only) to read, advance and set
it. It exists so that tests can watch retention expire; ``serve`` refuses it unless the
server listens on a loopback address, and logs a warning at startup.

In front of the routes, :class:`RequestGuard` (an ASGI middleware) makes the order of
refusals safe for hostile requests:

1. a request that carries a body is authenticated from its headers first: without valid
   credentials it is answered 401 before a byte of the body is read;
2. a body above ``max_body_bytes`` (default 1 MiB, ``serve --max-body-bytes``) is refused
   with 413 ``payload_too_large``: at once when ``Content-Length`` says so, and as soon as
   the limit is passed when it is streamed (chunked, no ``Content-Length``), by Starlette's
   ``RequestBodyLimitMiddleware``;
3. ``OPTIONS`` answers 204 with ``Allow`` listing every method of the path (and a 405 lists
   them all too).
"""

# No ``from __future__ import annotations``: FastAPI reads the endpoints' annotations.

import functools
import inspect
import ipaddress
import re
import logging
import os
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from importlib import metadata
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.body_limit import RequestBodyLimitMiddleware
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

import recyclebin as rb
from recyclebin.arm import create_arm_router
from recyclebin.console import create_console_router
from recyclebin.auth import (
    AuthError,
    Authenticator,
    BearerTokenAuth,
    RefuseAll,
    grants_from_mapping,
    require_platform,
    require_subscription,
)
from recyclebin.fastapi import create_router
from recyclebin.policy import resolve_policy
from recyclebin.reaper import PurgeReaper
from recyclebin.rest.errors import (
    ERROR_RESPONSES,
    RecycleBinRoute,
    error_response,
    validation_error_response,
)
from recyclebin.wire import UtcDatetime, format_datetime

__all__ = ["DEFAULT_MAX_BODY_BYTES", "DEFAULT_REAPER_INTERVAL", "RequestGuard", "check_tls_files",
           "create_app", "create_clock_router", "is_loopback", "resolve_policy", "serve"]

DEFAULT_REAPER_INTERVAL = 60.0  # seconds between two purge_expired runs
DEFAULT_MAX_BODY_BYTES = 1 << 20  # 1 MiB: far above any request this API takes

_log = logging.getLogger("recyclebin.server")

TokensSource = str | os.PathLike[str] | Mapping[str, Any] | None


def _version() -> str:
    try:
        return metadata.version("recyclebin")
    except metadata.PackageNotFoundError:
        return "0+unknown"


def _authenticator(tokens: TokensSource, authenticate: Authenticator | None) -> Authenticator:
    if authenticate is not None:
        if tokens is not None:
            raise ValueError("give either tokens= or authenticate=, not both")
        return authenticate
    if tokens is None:
        from_env = BearerTokenAuth.from_env()
        if from_env is not None:
            return from_env
        _log.warning("no tokens configured (--tokens FILE or $RECYCLEBIN_TOKENS): "
                     "every request will be refused with 401")
        return RefuseAll()
    if isinstance(tokens, Mapping):
        return BearerTokenAuth(grants_from_mapping(tokens))
    auth = BearerTokenAuth.from_file(tokens)
    if len(auth) == 0:
        _log.warning("the token file %s is empty: every request will be refused with 401",
                     os.fspath(tokens))
    return auth


_HTTP_METHODS = frozenset({"get", "put", "post", "delete", "patch", "head", "options", "trace"})


@functools.lru_cache(maxsize=512)
def _path_pattern(template: str) -> re.Pattern[str]:
    """An OpenAPI path template as a regex: each ``{param}`` one path segment (Starlette's)."""
    parts = re.split(r"\{[^}/]+\}", template)
    return re.compile("[^/]+".join(re.escape(part) for part in parts))


def allowed_methods(app: FastAPI, scope: Scope) -> list[str]:
    """Every method the app's documented routes take at the scope's path, sorted."""
    path = scope["path"]
    root = scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root):]
    methods: set[str] = set()
    for template, operations in app.openapi().get("paths", {}).items():
        if _path_pattern(template).fullmatch(path):
            methods.update(m.upper() for m in operations if m in _HTTP_METHODS)
    return sorted(methods)


def _has_body(headers: Headers) -> bool:
    length = headers.get("content-length")
    return "transfer-encoding" in headers or (length is not None and length.strip() != "0")


class RequestGuard:
    """ASGI middleware in front of the app: authenticates a request that carries a body
    before its body is read, refuses bodies above ``max_body_bytes`` with 413, and answers
    ``OPTIONS`` with the path's methods. See the module docstring.

    ``authenticator()`` answers the authenticator in force (a test's
    ``dependency_overrides`` included); it is called with the request, whose body it must
    not read (``BearerTokenAuth`` reads one header).
    """

    def __init__(self, app: ASGIApp, *, authenticator: Callable[[], Authenticator],
                 documented: FastAPI, max_body_bytes: int) -> None:
        self.app = app
        self.authenticator = authenticator
        self.documented = documented  # the app whose OpenAPI paths say which methods exist
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        if scope["method"] == "OPTIONS":
            methods = allowed_methods(self.documented, scope)
            if methods:
                allow = ", ".join([*methods, "OPTIONS"])
                await Response(status_code=204, headers={"Allow": allow})(scope, receive, send)
                return
        if _has_body(headers):
            refusal = await self._authenticate(scope)
            if refusal is not None:
                await refusal(scope, receive, send)
                return
            length = headers.get("content-length")
            if length is not None:
                declared = int(length) if length.strip().isdigit() else None
                if declared is None:
                    await error_response(400, "invalid_request",
                                         f"Content-Length {length[:40]!r} is not a number of "
                                         "bytes")(scope, receive, send)
                    return
                if declared > self.max_body_bytes:
                    await self._too_large(declared)(scope, receive, send)
                    return
        await self.app(scope, receive, send)

    def _too_large(self, declared: int | None) -> Response:
        size = f"{declared} bytes" if declared is not None else "the body"
        return error_response(413, "payload_too_large",
                              f"request body too large: {size}; this server takes at most "
                              f"{self.max_body_bytes} bytes (serve --max-body-bytes)")

    async def _authenticate(self, scope: Scope) -> Response | None:
        """None when the authenticator accepts the request's headers, else the refusal."""
        authenticate = self.authenticator()

        async def no_body() -> Any:
            raise RuntimeError("the authenticator may not read the request body")

        request = Request(scope, no_body)
        try:
            if inspect.signature(authenticate).parameters:
                answer = authenticate(request)
            else:
                answer = authenticate()
            if inspect.isawaitable(answer):
                await answer
        except AuthError as exc:
            return error_response(exc.http_status, exc.code, str(exc), headers=exc.headers)
        return None


class _ClockNow(BaseModel):
    model_config = ConfigDict(extra="forbid")
    now: UtcDatetime = Field(description="ISO 8601 with a timezone.")

    @field_validator("now", mode="before")
    @classmethod
    def _iso_text(cls, value: Any) -> Any:
        # JSON has no datetime: only its ISO 8601 text, not a number of seconds.
        if not isinstance(value, (str, datetime)):
            raise ValueError("must be an ISO 8601 time as text, e.g. 2026-01-01T00:00:00Z")
        return value


class _ClockAdvance(BaseModel):
    model_config = ConfigDict(extra="forbid")
    seconds: float = Field(gt=0, le=100 * 365 * 86400, strict=True,
                           description="How far to move forward.")


def create_clock_router(clock: rb.ManualClock, authenticate: Authenticator) -> APIRouter:
    """``/_testing/clock``: read, advance or set a manual clock (platform token only)."""
    router = APIRouter(prefix="/_testing/clock", route_class=RecycleBinRoute,
                       tags=["testing"], responses=ERROR_RESPONSES)
    Caller = Annotated[rb.Principal | None, Depends(authenticate)]

    @router.get("", response_model=_ClockNow, summary="The manual clock's time (tests only)")
    def read_clock(caller: Caller) -> _ClockNow:
        require_platform(caller, "the test clock")
        return _ClockNow(now=clock.now())

    @router.post("/advance", response_model=_ClockNow,
                 summary="Move the manual clock forward (tests only)")
    def advance_clock(body: _ClockAdvance, caller: Caller) -> _ClockNow:
        require_platform(caller, "the test clock")
        clock.advance(timedelta(seconds=body.seconds))
        return _ClockNow(now=clock.now())

    @router.put("", response_model=_ClockNow, summary="Set the manual clock (tests only)")
    def set_clock(body: _ClockNow, caller: Caller) -> _ClockNow:
        require_platform(caller, "the test clock")
        clock.set(body.now)
        return _ClockNow(now=clock.now())

    return router


def create_app(
    db: str | os.PathLike[str] = "recyclebin.db",
    policy: "str | os.PathLike[str] | rb.Policy" = "default",
    *,
    tokens: TokensSource = None,
    authenticate: Authenticator | None = None,
    reaper_interval: float | None = DEFAULT_REAPER_INTERVAL,
    clock: rb.ManualClock | None = None,
    prefix: str = "",
    title: str = "recyclebin",
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> FastAPI:
    """The complete server app.

    - ``db``, ``policy``, ``clock``: as for ``rb.Engine.open``. The app owns the engine
      (``app.state.engine``) and closes it at shutdown.
    - ``tokens``: a YAML/JSON token file, or the same table as a mapping; None reads
      ``$RECYCLEBIN_TOKENS``, and with neither every request is refused (401).
      ``authenticate``: any authenticator dependency instead (see ``recyclebin.auth``).
    - ``reaper_interval``: seconds between ``purge_expired`` runs; ``None`` or ``0`` turns
      the reaper off.
    - ``clock``: a ``rb.ManualClock`` also adds the ``/_testing/clock`` routes.
    - ``prefix``: where the routes are mounted, e.g. ``"/v1"``; the web console is at
      ``{prefix}/console/``.
    - ``max_body_bytes``: the largest request body taken; above it, 413 (see RequestGuard).
    """
    if reaper_interval is not None and reaper_interval < 0:
        raise ValueError(f"reaper_interval must be >= 0 seconds (0: off), got {reaper_interval}")
    if isinstance(max_body_bytes, bool) or not isinstance(max_body_bytes, int) \
            or max_body_bytes < 1:
        raise ValueError(f"max_body_bytes must be a positive number of bytes, "
                         f"got {max_body_bytes!r}")
    # Policy, then tokens, then the store: a configuration error creates no database file.
    resolved_policy = resolve_policy(policy)
    auth = _authenticator(tokens, authenticate)
    engine = rb.Engine.open(db, policy=resolved_policy, clock=clock)
    reaper = PurgeReaper(engine, reaper_interval) if reaper_interval else None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if clock is not None:
            _log.warning("manual clock at %s: time stands still unless moved through "
                         "/_testing/clock; for tests only", format_datetime(clock.now()))
        if reaper is not None:
            reaper.start()
        try:
            yield
        finally:
            if reaper is not None:
                await reaper.stop()
            await run_in_threadpool(engine.close)
            _log.info("engine closed")

    app = FastAPI(title=title, version=_version(), lifespan=lifespan,
                  description="Deletion protection for workspaces: soft delete, retention, "
                              "name reservation, recover and purge.")
    app.state.engine = engine
    app.state.reaper = reaper
    app.state.clock = clock

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        headers = dict(getattr(exc, "headers", None) or {})
        if exc.status_code == 405:
            # Starlette names the methods of the first route matching the path; name all.
            methods = allowed_methods(app, request.scope)
            if methods:
                headers["Allow"] = ", ".join([*methods, "OPTIONS"])
            return error_response(405, "method_not_allowed",
                                  f"{request.method} is not allowed here; allowed: "
                                  f"{headers.get('Allow', 'see the API documentation')}",
                                  headers=headers)
        if exc.status_code == 413:  # streamed past the limit (RequestBodyLimitMiddleware)
            return error_response(413, "payload_too_large",
                                  f"request body too large: this server takes at most "
                                  f"{max_body_bytes} bytes (serve --max-body-bytes)")
        codes = {404: "not_found"}
        return error_response(exc.status_code, codes.get(exc.status_code, "http_error"),
                              str(exc.detail), headers=headers or None)

    @app.exception_handler(RequestValidationError)
    async def request_invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return validation_error_response(exc)

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        # Starlette logs the traceback; the caller gets the error body without details.
        return error_response(500, "internal_error", "internal server error; see the server log")

    @app.get("/healthz", tags=["operations"], summary="Liveness (no token needed)")
    def healthz() -> dict[str, str]:
        """Says only that the server answers; reveals nothing else."""
        return {"status": "ok"}

    app.include_router(create_router(engine, auth), prefix=prefix)
    app.include_router(create_arm_router(engine, auth, authorize_subscription=require_subscription),
                       prefix=prefix)  # azure-ai-ml's routes
    app.include_router(create_console_router(), prefix=prefix)  # the web console, /console/
    if clock is not None:
        app.include_router(create_clock_router(clock, auth), prefix=prefix)
    # The last added runs first: the guard, then the limiter of streamed bodies.
    app.add_middleware(RequestBodyLimitMiddleware, max_body_size=max_body_bytes)
    app.add_middleware(RequestGuard,
                       authenticator=lambda: app.dependency_overrides.get(auth, auth),
                       documented=app, max_body_bytes=max_body_bytes)
    return app


def is_loopback(host: str) -> bool:
    """True for localhost and 127.0.0.0/8, ::1."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _configure_logging(level: str) -> None:
    logger = logging.getLogger("recyclebin")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s:     %(name)s: %(message)s"))
        logger.addHandler(handler)
    logger.setLevel(level.upper())


def serve(
    db: str = "recyclebin.db",
    policy: str = "default",
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    tokens: str | os.PathLike[str] | None = None,
    reaper_interval: float | None = DEFAULT_REAPER_INTERVAL,
    manual_clock: datetime | None = None,
    log_level: str = "info",
    ssl_certfile: str | os.PathLike[str] | None = None,
    ssl_keyfile: str | os.PathLike[str] | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> None:
    """Build the app and run it with uvicorn until SIGINT/SIGTERM (then shut down cleanly).

    ``ssl_certfile`` and ``ssl_keyfile`` (PEM; both or neither) serve HTTPS, which clients
    that send bearer tokens, such as azure-ai-ml, require."""
    import uvicorn  # only the server needs it at import time

    if manual_clock is not None and not is_loopback(host):
        raise ValueError("--manual-clock is for tests: the server must listen on a loopback "
                         f"address (127.0.0.1, ::1, localhost), not {host!r}")
    check_tls_files(ssl_certfile, ssl_keyfile)
    _configure_logging(log_level)
    clock = rb.ManualClock(manual_clock) if manual_clock is not None else None
    app = create_app(db, policy, tokens=tokens, reaper_interval=reaper_interval, clock=clock,
                     max_body_bytes=max_body_bytes)
    uvicorn.run(app, host=host, port=port, log_level=log_level,
                ssl_certfile=ssl_certfile, ssl_keyfile=ssl_keyfile)


def check_tls_files(certfile: str | os.PathLike[str] | None,
                    keyfile: str | os.PathLike[str] | None) -> None:
    """Refuses, with a ``ValueError`` saying what is wrong, a certificate without its key (or
    the reverse), and files that do not load as a PEM certificate chain and its private key
    (so that ``serve`` fails before it starts, not at the first connection)."""
    import ssl

    if certfile is None and keyfile is None:
        return
    if certfile is None or keyfile is None:
        raise ValueError("give both --ssl-certfile and --ssl-keyfile (PEM files), or neither")
    for path in (certfile, keyfile):
        if not os.path.isfile(path):
            raise ValueError(f"cannot read {os.fspath(path)}: no such file")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(os.fspath(certfile), os.fspath(keyfile))
    except (ssl.SSLError, OSError) as exc:
        raise ValueError(
            f"--ssl-certfile {os.fspath(certfile)} and --ssl-keyfile {os.fspath(keyfile)} do not "
            f"load as a PEM certificate chain and its private key: {exc}") from None
