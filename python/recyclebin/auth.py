"""Authentication for the REST plugin: who is calling, as an ``rb.Principal``.

An *authenticator* is a FastAPI dependency, ``authenticate(request) -> rb.Principal | None``:

- it returns an ``rb.Principal`` for a tenant user, whose roles the engine checks against the
  policy's ``permissions``;
- it returns ``None`` for the trusted platform caller, which passes every permission check
  (the engine's ``principal=None``) and may use the operator routes (audit log, cleanup
  tasks, deletable workspaces);
- it raises :class:`Unauthenticated` (401) when the request carries no valid credentials.

The default is :class:`BearerTokenAuth`: ``Authorization: Bearer <token>`` checked against a
token table, loaded from a YAML or JSON file or from the ``RECYCLEBIN_TOKENS`` environment
variable (the same mapping, inline)::

    # token -> who it is
    "7f3c...e1": {principal: alice, roles: [admin]}        # a tenant user with role admin
    "b91d...07": {principal: billing-service, platform: true}  # the trusted platform

``platform: true`` is the only way to act as the platform over HTTP; such an entry may not
list roles (they would be ignored). Tokens are compared by their SHA-256 digest, so a
lookup takes the same time whichever token is tried.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.requests import Request

import recyclebin as rb

__all__ = [
    "AuthError",
    "Authenticator",
    "BearerTokenAuth",
    "Forbidden",
    "RefuseAll",
    "TOKENS_ENV_VAR",
    "TokenConfigError",
    "TokenGrant",
    "Unauthenticated",
    "grants_from_mapping",
    "load_tokens",
    "parse_tokens",
]

TOKENS_ENV_VAR = "RECYCLEBIN_TOKENS"

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
    """An authenticated caller asked for something only the platform may do: 403."""

    http_status = 403
    code = "permission_denied"


class TokenConfigError(ValueError):
    """The token table is unreadable or malformed; the message names the source and entry."""


@dataclass(frozen=True)
class TokenGrant:
    """What one token stands for."""

    principal_id: str
    roles: frozenset[str] = frozenset()
    platform: bool = False

    def principal(self) -> rb.Principal | None:
        """The engine's view of this caller: ``None`` for the platform."""
        if self.platform:
            return None
        return rb.Principal(self.principal_id, roles=self.roles)


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
            f"{source}: expected a mapping of token -> {{principal, roles, platform}}, "
            f"got {type(document).__name__}"
        )
    grants: dict[str, TokenGrant] = {}
    for index, (token, entry) in enumerate(document.items(), start=1):
        where = f"{source}: entry {index}"
        if not isinstance(token, str) or not token.strip():
            raise TokenConfigError(f"{where}: a token must be a non-empty string (quote it)")
        if token != token.strip() or any(c.isspace() for c in token):
            raise TokenConfigError(f"{where}: a token may not contain whitespace")
        grants[token] = _parse_grant(entry, where)
    return grants


def _parse_grant(entry: object, where: str) -> TokenGrant:
    if not isinstance(entry, dict):
        raise TokenConfigError(f"{where}: expected {{principal: ID, roles: [...]}} or "
                               f"{{principal: ID, platform: true}}")
    unknown = sorted(set(map(str, entry)) - {"principal", "roles", "platform"})
    if unknown:
        raise TokenConfigError(
            f"{where}: unknown key {unknown[0]!r}; allowed: principal, roles, platform")
    principal_id = entry.get("principal")
    if not isinstance(principal_id, str) or not principal_id:
        raise TokenConfigError(f"{where}: 'principal' must be a non-empty string")
    platform = entry.get("platform", False)
    if not isinstance(platform, bool):
        raise TokenConfigError(f"{where}: 'platform' must be true or false")
    roles = entry.get("roles", [])
    if not isinstance(roles, list) or not all(isinstance(r, str) and r for r in roles):
        raise TokenConfigError(f"{where}: 'roles' must be a list of non-empty strings")
    if platform and roles:
        raise TokenConfigError(
            f"{where}: a platform token passes every check; remove its 'roles'")
    return TokenGrant(principal_id, frozenset(roles), platform)


def load_tokens(path: str | os.PathLike[str]) -> dict[str, TokenGrant]:
    """Read a token table from a YAML or JSON file."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise TokenConfigError(f"{path}: cannot read the token file: {exc.strerror}") from None
    return parse_tokens(text, str(path))


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


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
