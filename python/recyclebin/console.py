"""The web console: the recycle bin as a platform's users see it, at ``/console/``.

    from fastapi import FastAPI
    from recyclebin.console import create_console_router
    from recyclebin.fastapi import create_router

    app = FastAPI()
    app.include_router(create_router(engine, authenticate), prefix="/recyclebin")
    app.include_router(create_console_router(), prefix="/recyclebin")   # /recyclebin/console/

The pages are Jinja2 templates (autoescaped) rendered without any data: they hold the
layout, the words and the forms. The data comes from the public REST API, called by the
page's plain JavaScript (``static/console.js``) with the bearer token the user signed in
with, which stays in the browser's ``sessionStorage`` (never in a URL, a cookie or a log).
So the console is one more client of the API, not a second implementation of its rules:
what a delete would do is the API's dry run, and every refusal is the API's message.

Every URL in the pages is relative, so the console works wherever it is mounted (a prefix,
``root_path`` behind a proxy, another FastAPI app). ``api_url`` is where the REST routes are
relative to the console's directory: ``"../"`` when both are included with one prefix.

Every page is sent with a Content-Security-Policy that allows only the console's own script
and style sheet (no inline script, no ``on*`` attributes, no ``innerHTML`` with strings:
Trusted Types are required), talks only to its own origin and cannot be framed.
"""

# No ``from __future__ import annotations``: FastAPI reads the endpoints' annotations.

import hashlib
from dataclasses import dataclass
from importlib import resources
from typing import Annotated
from urllib.parse import urlencode

import jinja2
from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

__all__ = ["CONTENT_SECURITY_POLICY", "DEFAULT_PAGE_SIZE", "SIGN_IN_REASONS",
           "create_console_router"]

#: Rows per page when the URL does not say (``?limit=``, 1..1000 as the API allows).
DEFAULT_PAGE_SIZE = 25
_MAX_PAGE_SIZE = 1000

CONTENT_SECURITY_POLICY = "; ".join([
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self'",
    "connect-src 'self'",
    "form-action 'self'",
    "base-uri 'none'",
    "frame-ancestors 'none'",
    "require-trusted-types-for 'script'",
    "trusted-types 'none'",
])

_PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

#: Why the sign-in page is shown (``?reason=``): a fixed text each, never the URL's words.
SIGN_IN_REASONS = {
    "missing": "Sign in to continue.",
    "invalid": "The token was not accepted: it is wrong or no longer valid. Sign in again.",
    "signed_out": "You are signed out.",
}

_STATIC_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
                 ".svg": "image/svg+xml"}


@dataclass(frozen=True)
class _StaticFile:
    body: bytes
    media_type: str
    etag: str


def _load_static() -> dict[str, _StaticFile]:
    """The console's script and style sheet, read once from the package."""
    files: dict[str, _StaticFile] = {}
    for entry in resources.files("recyclebin").joinpath("static").iterdir():
        suffix = "." + entry.name.rpartition(".")[2]
        if entry.is_file() and suffix in _STATIC_TYPES:
            body = entry.read_bytes()
            digest = hashlib.sha256(body).hexdigest()[:16]
            files[entry.name] = _StaticFile(body, _STATIC_TYPES[suffix], f'"{digest}"')
    if not {"console.js", "console.css"} <= set(files):
        raise RuntimeError("the recyclebin package is missing static/console.js or "
                           "static/console.css; reinstall it")
    return files


def _environment() -> jinja2.Environment:
    loader = jinja2.FileSystemLoader(str(resources.files("recyclebin").joinpath("templates")))
    return jinja2.Environment(loader=loader, autoescape=True, undefined=jinja2.StrictUndefined,
                              trim_blocks=True, lstrip_blocks=True)


def _page_size(text: str | None) -> int:
    if text is None or not text.isdigit():
        return DEFAULT_PAGE_SIZE
    value = int(text)
    return value if 1 <= value <= _MAX_PAGE_SIZE else DEFAULT_PAGE_SIZE


def create_console_router(*, api_url: str = "../", path: str = "/console",
                          title: str = "recyclebin") -> APIRouter:
    """The console's pages and static files under ``path`` (default ``/console``).

    ``api_url``: the REST routes' location relative to the console's directory (or an
    absolute path on the same origin), ``"../"`` when both routers share one prefix.
    The pages need no engine and no authenticator: they hold no data, and every call the
    page makes is an API call that authenticates itself.
    """
    if "://" in api_url or api_url.startswith("//"):
        raise ValueError(f"api_url must be a path on the console's own origin (the pages may "
                         f"only connect there), not {api_url!r}")
    if not path.startswith("/") or path.endswith("/"):
        raise ValueError(f"path must start with '/' and not end with one, not {path!r}")
    environment = _environment()
    static = _load_static()
    version = hashlib.sha256(b"".join(f.etag.encode() for f in static.values())).hexdigest()[:12]
    router = APIRouter(prefix=path, include_in_schema=False)

    def render(template: str, request: Request, page: str, heading: str,
               **context: object) -> HTMLResponse:
        subscription = request.query_params.get("subscription", "")
        resource_group = request.query_params.get("resource_group", "")
        limit = _page_size(request.query_params.get("limit"))
        keep = {k: v for k, v in (("subscription", subscription),
                                  ("resource_group", resource_group)) if v}
        if limit != DEFAULT_PAGE_SIZE:
            keep["limit"] = str(limit)
        html = environment.get_template(template).render(
            page=page, heading=heading, title=title, api_url=api_url, version=version,
            subscription=subscription, resource_group=resource_group, limit=limit,
            query=("?" + urlencode(keep)) if keep else "", **context)
        return HTMLResponse(html, headers=_PAGE_HEADERS)

    @router.get("", response_class=RedirectResponse)
    async def console_root() -> RedirectResponse:
        # Relative, so that it holds under any prefix or root_path.
        return RedirectResponse(path.rpartition("/")[2] + "/", status_code=308)

    @router.get("/", response_class=HTMLResponse)
    async def sign_in_page(request: Request, reason: Annotated[str | None, Query()] = None
                           ) -> HTMLResponse:
        return render("sign_in.html", request, "sign-in", "Sign in",
                      reason=SIGN_IN_REASONS.get(reason or "", ""))

    @router.get("/workspaces", response_class=HTMLResponse)
    async def workspaces_page(request: Request) -> HTMLResponse:
        return render("workspaces.html", request, "workspaces", "Workspaces")

    @router.get("/recycle-bin", response_class=HTMLResponse)
    async def recycle_bin_page(request: Request) -> HTMLResponse:
        return render("recycle_bin.html", request, "recycle-bin", "Recycle bin")

    @router.get("/admin", response_class=HTMLResponse)
    async def admin_page(request: Request) -> HTMLResponse:
        return render("admin.html", request, "admin", "Deletable workspaces")

    @router.get("/static/{name}")
    async def static_file(name: str, request: Request) -> Response:
        found = static.get(name)
        if found is None:
            return Response("not found", status_code=404, media_type="text/plain",
                            headers={"X-Content-Type-Options": "nosniff"})
        headers = {"ETag": found.etag, "Cache-Control": "no-cache",
                   "X-Content-Type-Options": "nosniff"}
        if request.headers.get("if-none-match") == found.etag:
            return Response(status_code=304, headers=headers)
        return Response(found.body, media_type=found.media_type, headers=headers)

    return router
