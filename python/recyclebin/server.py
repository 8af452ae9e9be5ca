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
"""

# No ``from __future__ import annotations``: FastAPI reads the endpoints' annotations.

import ipaddress
import logging
import os
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from importlib import metadata
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

import recyclebin as rb
from recyclebin.arm import create_arm_router
from recyclebin.console import create_console_router
from recyclebin.auth import (
    Authenticator,
    BearerTokenAuth,
    RefuseAll,
    grants_from_mapping,
)
from recyclebin.fastapi import (
    RecycleBinRoute,
    UtcDatetime,
    create_router,
    error_response,
    validation_error_response,
    require_platform,
)
from recyclebin.reaper import PurgeReaper

__all__ = ["DEFAULT_REAPER_INTERVAL", "check_tls_files", "create_app", "create_clock_router",
           "is_loopback",
           "resolve_policy", "serve"]

DEFAULT_REAPER_INTERVAL = 60.0  # seconds between two purge_expired runs

_log = logging.getLogger("recyclebin.server")

TokensSource = str | os.PathLike[str] | Mapping[str, Any] | None


def resolve_policy(policy: "str | os.PathLike[str] | rb.Policy") -> rb.Policy:
    """As ``rb.Engine.open`` reads ``policy=``: a built-in name when it has no ``/`` and no
    ``.yaml``/``.yml`` suffix, otherwise a file."""
    if isinstance(policy, rb.Policy):
        return policy
    text = os.fspath(policy)
    if isinstance(policy, os.PathLike) or "/" in text or text.endswith((".yaml", ".yml")):
        return rb.Policy.load(text)
    return rb.Policy.builtin(text)


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


class _ClockNow(BaseModel):
    model_config = ConfigDict(extra="forbid")
    now: UtcDatetime


class _ClockAdvance(BaseModel):
    model_config = ConfigDict(extra="forbid")
    seconds: float = Field(gt=0, le=100 * 365 * 86400, description="How far to move forward.")


def create_clock_router(clock: rb.ManualClock, authenticate: Authenticator) -> APIRouter:
    """``/_testing/clock``: read, advance or set a manual clock (platform token only)."""
    router = APIRouter(prefix="/_testing/clock", route_class=RecycleBinRoute,
                       tags=["testing"])
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
    """
    if reaper_interval is not None and reaper_interval < 0:
        raise ValueError(f"reaper_interval must be >= 0 seconds (0: off), got {reaper_interval}")
    # Policy, then tokens, then the store: a configuration error creates no database file.
    resolved_policy = resolve_policy(policy)
    auth = _authenticator(tokens, authenticate)
    engine = rb.Engine.open(db, policy=resolved_policy, clock=clock)
    reaper = PurgeReaper(engine, reaper_interval) if reaper_interval else None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if clock is not None:
            _log.warning("manual clock at %s: time stands still unless moved through "
                         "/_testing/clock; for tests only", clock.now().isoformat())
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
        codes = {404: "not_found", 405: "method_not_allowed"}
        return error_response(exc.status_code, codes.get(exc.status_code, "http_error"),
                              str(exc.detail), headers=getattr(exc, "headers", None))

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
    app.include_router(create_arm_router(engine, auth), prefix=prefix)  # azure-ai-ml's routes
    app.include_router(create_console_router(), prefix=prefix)  # the web console, /console/
    if clock is not None:
        app.include_router(create_clock_router(clock, auth), prefix=prefix)
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
    app = create_app(db, policy, tokens=tokens, reaper_interval=reaper_interval, clock=clock)
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
