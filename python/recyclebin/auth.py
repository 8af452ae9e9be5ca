"""Authentication for the REST plugin: who is calling, as an ``rb.Principal``, and in which
tenants (subscriptions) it may act.

An *authenticator* is a FastAPI dependency, ``authenticate(request) -> rb.Principal | None``:

- it returns a :class:`TenantPrincipal` (an ``rb.Principal`` that also names the
  subscriptions it may act in) for a tenant user, whose roles the engine checks against the
  policy's ``permissions``; a request on any other subscription answers 403;
- it returns ``None`` for the trusted platform caller, which passes every permission check
  (the engine's ``principal=None``), acts in every subscription, and may use the operator
  routes (audit log, cleanup tasks, deletable workspaces, purge expired);
- it raises :class:`Unauthenticated` (401) when the request carries no valid credentials.

It reads only the request's headers: the server calls it before the request body is read
(``recyclebin.server``), so that a request without valid credentials is refused before a
byte of its body is parsed.

The default is :class:`BearerTokenAuth`: ``Authorization: Bearer <token>`` checked against a
token table, loaded from a YAML or JSON file or from the ``RECYCLEBIN_TOKENS`` environment
variable (the same mapping, inline)::

    # token -> who it is, where it may act, with which tenant roles
    "7f3c...e1": {principal: alice, subscriptions: [sub-1, sub-2], roles: [admin]}
    "a5e0...42": {principal: ops, subscriptions: "*", roles: [admin]}   # every tenant
    "b91d...07": {principal: billing-service, platform: true}           # the trusted platform

Every non-platform token must name its ``subscriptions`` (a list, or ``"*"`` for every
tenant); a table where one does not is refused at start-up, naming the token's principal
(never the token). ``platform: true`` is the only way to act as the platform over HTTP; such
an entry lists neither roles nor subscriptions. Tokens are compared by their SHA-256 digest,
so a lookup takes the same time whichever token is tried.

The tenant check, for every router built on an authenticator (``recyclebin.fastapi``, the
ARM-protocol routes of ``recyclebin.arm``):

- :func:`require_subscription` ``(caller, subscription_id)`` raises :class:`Forbidden`
  (403 ``permission_denied``) unless the caller is the platform (``None``) or a
  :class:`TenantPrincipal` whose token names ``subscription_id`` (or ``"*"``). Call it
  before anything of the tenant is read. It is a ``recyclebin.arm.SubscriptionCheck``.
- :func:`subscription_caller` ``(authenticate, param="subscription_id")`` is the same check
  as a FastAPI dependency: it authenticates, checks the path parameter ``param`` and
  answers the caller (``rb.Principal | None``), for ``Annotated[..., Depends(...)]``; with
  ``required=False`` it guards a whole router (``recyclebin.fastapi`` uses it so).
- :func:`require_workspace_subscription` ``(caller, engine, workspace_id)`` is the check for
  routes that name a workspace by id: it looks the workspace up as the platform and
  refuses, with the same 403 whether the workspace exists elsewhere or not at all, unless
  it is a live workspace of a subscription the caller may act in.
- :func:`require_platform` ``(caller, what)``: 403 unless the caller is the platform.

A plain ``rb.Principal`` (from a custom authenticator that does not say where its caller may
act) may act in no subscription: the check fails closed.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from fastapi import Depends
from starlette.requests import Request

import recyclebin as rb
from recyclebin.models import _text_problem

if TYPE_CHECKING:
    from recyclebin.engine import Engine

__all__ = [
    "ALL_SUBSCRIPTIONS",
    "AuthError",
    "Authenticator",
    "BearerTokenAuth",
    "Forbidden",
    "RefuseAll",
    "Subscriptions",
    "TOKENS_ENV_VAR",
    "TenantPrincipal",
    "TokenConfigError",
    "TokenGrant",
    "Unauthenticated",
    "grants_from_mapping",
    "load_tokens",
    "parse_tokens",
    "require_platform",
    "require_subscription",
    "require_workspace_subscription",
    "subscription_caller",
]

TOKENS_ENV_VAR = "RECYCLEBIN_TOKENS"

#: A token's ``subscriptions: "*"``: it may act in every tenant.
ALL_SUBSCRIPTIONS: Literal["*"] = "*"

#: Where a caller may act: the subscriptions its token names, or ``"*"`` for all.
Subscriptions = frozenset[str] | Literal["*"]

#: A FastAPI dependency that names the caller; ``None`` is the trusted platform.
Authenticator = Callable[..., "rb.Principal | None"]



class AuthError(Exception):
    """A refusal decided by the REST layer itself (not by the engine's policy)."""

    http_status = 401
    code = "unauthenticated"

    def __init__(self, message: str, *, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.headers: dict[str, str] = dict(headers or {})


class Unauthenticated(AuthError):
    """No credentials, or credentials nobody issued: 401 with ``WWW-Authenticate: Bearer``."""

    http_status = 401
    code = "unauthenticated"

    def __init__(self, message: str) -> None:
        super().__init__(message, headers={"WWW-Authenticate": "Bearer"})


class Forbidden(AuthError):
    """An authenticated caller asked for something it may not: a subscription its token does
    not name, or a route only the platform may use. 403 ``permission_denied``."""

    http_status = 403
    code = "permission_denied"


class TenantPrincipal(rb.Principal):
    """An ``rb.Principal`` that also says where it may act: ``subscriptions``, the
    subscriptions its token names, or ``"*"`` for every tenant. The engine sees a plain
    principal (id and roles); the REST layer checks the subscription first."""

    subscriptions: Subscriptions

    def __init__(self, id: str, roles: Iterable[str] = frozenset(), *,
                 subscriptions: Iterable[str] | Literal["*"]) -> None:
        super().__init__(id, roles)
        if subscriptions == ALL_SUBSCRIPTIONS:
            scope: Subscriptions = ALL_SUBSCRIPTIONS
        elif isinstance(subscriptions, str):
            raise TypeError('subscriptions must be a collection of subscription ids or "*", '
                            "not a str")
        else:
            scope = frozenset(subscriptions)
        object.__setattr__(self, "subscriptions", scope)

    def may_act_in(self, subscription_id: str) -> bool:
        return self.subscriptions == ALL_SUBSCRIPTIONS or subscription_id in self.subscriptions

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TenantPrincipal):
            return NotImplemented
        return (self.id, self.roles, self.subscriptions) == \
            (other.id, other.roles, other.subscriptions)

    def __hash__(self) -> int:
        return hash((self.id, self.roles))

    def __repr__(self) -> str:
        roles = ", ".join(repr(role) for role in sorted(self.roles))
        scope = (repr(ALL_SUBSCRIPTIONS) if self.subscriptions == ALL_SUBSCRIPTIONS
                 else "{" + ", ".join(repr(s) for s in sorted(self.subscriptions)) + "}")
        return f"TenantPrincipal({self.id!r}, roles={{{roles}}}, subscriptions={scope})"


class TokenConfigError(ValueError):
    """The token table is unreadable or malformed; the message names the source and entry
    (and the entry's principal), never a token."""


@dataclass(frozen=True)
class TokenGrant:
    """What one token stands for."""

    principal_id: str
    roles: frozenset[str] = frozenset()
    platform: bool = False
    #: Where the token may act: the subscriptions it names, or ``"*"``. A platform token
    #: acts everywhere whatever this says.
    subscriptions: Subscriptions = frozenset()

    def principal(self) -> TenantPrincipal | None:
        """This caller: ``None`` for the platform, else a TenantPrincipal."""
        if self.platform:
            return None
        return TenantPrincipal(self.principal_id, self.roles, subscriptions=self.subscriptions)

    def may_act_in(self, subscription_id: str) -> bool:
        """True when this token may act in ``subscription_id``."""
        return (self.platform or self.subscriptions == ALL_SUBSCRIPTIONS
                or subscription_id in self.subscriptions)


def _yaml() -> Any:
    # PyYAML is a runtime dependency; imported by name so that its (optional) type stubs
    # are not needed to type-check the package.
    return importlib.import_module("yaml")


def parse_tokens(text: str, source: str = "<tokens>") -> dict[str, TokenGrant]:
    """Parse a token table (YAML, or JSON which is valid YAML) into token -> grant."""
    yaml = _yaml()
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark is not None else source
        problem = getattr(exc, "problem", None) or str(exc)
        raise TokenConfigError(f"{where}: not valid YAML or JSON: {problem}") from None
    if document is None:
        document = {}
    if not isinstance(document, dict):
        raise TokenConfigError(
            f"{source}: expected a mapping of token -> "
            f"{{principal, subscriptions, roles}} or {{principal, platform: true}}, "
            f"got {type(document).__name__}"
        )
    grants: dict[str, TokenGrant] = {}
    for index, (token, entry) in enumerate(document.items(), start=1):
        where = f"{source}: entry {index}"
        if not isinstance(token, str) or not token.strip():
            raise TokenConfigError(f"{where}: a token must be a non-empty string (quote it)")
        if token != token.strip() or any(c.isspace() for c in token):
            raise TokenConfigError(f"{where}: a token may not contain whitespace")
        if _text_problem(token) is not None:
            raise TokenConfigError(f"{where}: a token must be printable text "
                                   "(no NUL bytes, no lone surrogates)")
        grants[token] = _parse_grant(entry, where)
    return grants


_GRANT_KEYS = ("principal", "subscriptions", "roles", "platform")


def _parse_grant(entry: object, where: str) -> TokenGrant:
    if not isinstance(entry, dict):
        raise TokenConfigError(f"{where}: expected {{principal: ID, subscriptions: [...], "
                               f"roles: [...]}} or {{principal: ID, platform: true}}")
    principal_id = entry.get("principal")
    if not isinstance(principal_id, str) or not principal_id.strip():
        raise TokenConfigError(f"{where}: 'principal' must be a non-empty string")
    problem = _text_problem(principal_id)
    if problem is not None:
        raise TokenConfigError(f"{where}: 'principal' {problem}")
    where = f"{where} (principal {principal_id!r})"
    unknown = sorted(set(map(str, entry)) - set(_GRANT_KEYS))
    if unknown:
        raise TokenConfigError(
            f"{where}: unknown key {unknown[0]!r}; allowed: {', '.join(_GRANT_KEYS)}")
    platform = entry.get("platform", False)
    if not isinstance(platform, bool):
        raise TokenConfigError(f"{where}: 'platform' must be true or false")
    roles = entry.get("roles", [])
    if not isinstance(roles, list) or not all(isinstance(r, str) and r for r in roles):
        raise TokenConfigError(f"{where}: 'roles' must be a list of non-empty strings")
    for role in roles:
        problem = _text_problem(role)
        if problem is not None:
            raise TokenConfigError(f"{where}: role {role!r} {problem}")
    if platform:
        if roles:
            raise TokenConfigError(
                f"{where}: a platform token passes every check; remove its 'roles'")
        if "subscriptions" in entry:
            raise TokenConfigError(
                f"{where}: a platform token acts in every subscription; remove its "
                "'subscriptions'")
        return TokenGrant(principal_id, frozenset(), True, ALL_SUBSCRIPTIONS)
    return TokenGrant(principal_id, frozenset(roles), False,
                      _parse_subscriptions(entry.get("subscriptions"), where))


def _parse_subscriptions(value: object, where: str) -> Subscriptions:
    allowed = ("list the subscriptions the token may act in, e.g. subscriptions: "
               "[sub-1, sub-2], or subscriptions: \"*\" for every tenant")
    if value is None:
        raise TokenConfigError(f"{where}: a tenant token must name its 'subscriptions': "
                               f"{allowed}")
    if value == ALL_SUBSCRIPTIONS:
        return ALL_SUBSCRIPTIONS
    if not isinstance(value, list) or not value:
        raise TokenConfigError(f"{where}: 'subscriptions' must be a non-empty list or \"*\": "
                               f"{allowed}")
    for item in value:
        if not isinstance(item, str) or not item:
            raise TokenConfigError(
                f"{where}: 'subscriptions' must list non-empty strings, not {item!r}")
        problem = _text_problem(item)
        if problem is not None:
            raise TokenConfigError(f"{where}: subscription {item!r} {problem}")
        if item == ALL_SUBSCRIPTIONS:
            raise TokenConfigError(f"{where}: write subscriptions: \"*\" (not in a list) "
                                   "for every tenant")
    return frozenset(value)


def load_tokens(path: str | os.PathLike[str]) -> dict[str, TokenGrant]:
    """Read a token table from a YAML or JSON file."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise TokenConfigError(f"{path}: the token file is not UTF-8 text "
                               f"(byte {exc.start})") from None
    except OSError as exc:
        raise TokenConfigError(f"{path}: cannot read the token file: {exc.strerror}") from None
    return parse_tokens(text, str(path))


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


# ------------------------------------------------------------------------- tenant scope

def require_subscription(caller: rb.Principal | None, subscription_id: str) -> None:
    """403 ``permission_denied`` unless the caller may act in ``subscription_id``.

    The platform (``caller is None``) acts everywhere; a :class:`TenantPrincipal` where its
    ``subscriptions`` say; any other principal nowhere (fail closed). Call it before
    reading anything of the subscription: the answer is the same whatever it holds.
    """
    if caller is None or (isinstance(caller, TenantPrincipal)
                          and caller.may_act_in(subscription_id)):
        return
    raise Forbidden(f"the caller may not act in subscription {subscription_id!r}: its token "
                    "does not name it (a token's 'subscriptions' lists where it may act)")


def require_workspace_subscription(caller: rb.Principal | None, engine: Engine,
                                   workspace_id: str) -> None:
    """For a route that names a workspace by id: 403 ``permission_denied`` unless it is a
    live workspace in a subscription the caller may act in.

    The workspace is looked up as the platform, and an id that does not exist answers the
    same 403 as one in another tenant, so the answer reveals nothing of other tenants.
    A caller that may act everywhere gets the engine's own answers (404 for an unknown id).
    """
    if caller is None or (isinstance(caller, TenantPrincipal)
                          and caller.subscriptions == ALL_SUBSCRIPTIONS):
        return
    try:
        subscription_id = rb.Workspace.get_by_id(workspace_id, engine=engine).subscription_id
    except rb.WorkspaceNotFound:
        subscription_id = None
    if (subscription_id is not None and isinstance(caller, TenantPrincipal)
            and caller.may_act_in(subscription_id)):
        return
    raise Forbidden(f"the caller may not act on workspace {workspace_id!r}: it is not a live "
                    "workspace of a subscription its token names")


def require_platform(caller: rb.Principal | None, what: str) -> None:
    """403 ``permission_denied`` unless the caller is the platform."""
    if caller is not None:
        raise Forbidden(f"{what} is for the platform only (a token with platform: true)")


def subscription_caller(authenticate: Authenticator, param: str = "subscription_id", *,
                        required: bool = True) -> Callable[..., rb.Principal | None]:
    """A FastAPI dependency: authenticates with ``authenticate``, then
    :func:`require_subscription` on the path parameter ``param``; answers the caller.

    ``required=False`` makes it a router-wide guard (``APIRouter(dependencies=[...])``):
    routes without the parameter pass (they must check otherwise, e.g. platform only), and
    every route with it, including routes added later, is checked.
    """

    def caller_in_subscription(request: Request,
                               caller: rb.Principal | None = Depends(authenticate)
                               ) -> rb.Principal | None:
        subscription_id = request.path_params.get(param)
        if subscription_id is None and not required:
            return caller
        if not isinstance(subscription_id, str):
            raise Forbidden(f"this route has no path parameter {param!r} to check the "
                            "caller's subscription against")  # a wiring bug: fail closed
        require_subscription(caller, subscription_id)
        return caller

    return caller_in_subscription


# ----------------------------------------------------------------------- authenticators

class BearerTokenAuth:
    """``Authorization: Bearer <token>`` against a fixed token table. Thread-safe (read-only)."""

    def __init__(self, grants: Mapping[str, TokenGrant]) -> None:
        self._by_digest = {_digest(token): grant for token, grant in grants.items()}

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> BearerTokenAuth:
        return cls(load_tokens(path))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> BearerTokenAuth | None:
        """The table in ``$RECYCLEBIN_TOKENS`` (inline YAML/JSON), or None when unset."""
        text = (os.environ if environ is None else environ).get(TOKENS_ENV_VAR)
        if text is None or not text.strip():
            return None
        return cls(parse_tokens(text, f"${TOKENS_ENV_VAR}"))

    def __len__(self) -> int:
        return len(self._by_digest)

    def __call__(self, request: Request) -> rb.Principal | None:
        header = request.headers.get("authorization")
        if not header:
            raise Unauthenticated("missing credentials: send 'Authorization: Bearer <token>'")
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Unauthenticated("unsupported credentials: send 'Authorization: Bearer <token>'")
        grant = self._by_digest.get(_digest(token))
        if grant is None:
            raise Unauthenticated("invalid bearer token")
        request.state.principal_id = grant.principal_id  # for access logs and audit context
        return grant.principal()


class RefuseAll:
    """The authenticator of a server with no tokens configured: every request gets 401."""

    def __call__(self, request: Request) -> rb.Principal | None:
        raise Unauthenticated(
            "this server has no tokens configured; start it with --tokens FILE "
            f"or ${TOKENS_ENV_VAR}")


def grants_from_mapping(table: Mapping[str, Any],
                        source: str = "<tokens>") -> dict[str, TokenGrant]:
    """Validate an in-memory token table (the same shape as the file)."""
    return parse_tokens(json.dumps(dict(table)), source)
