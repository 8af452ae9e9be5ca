"""Values the caller hands to the engine: who is calling, and what a workspace is made of."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from . import _core
from ._core import InvalidArgument

__all__ = ["Component", "Principal"]

_set = object.__setattr__


@dataclass(frozen=True, init=False)
class Component:
    """A resource that belongs to a workspace: a compute instance, a volume, a block, ...

    ``kind`` is the policy's component kind (e.g. ``"compute_instance"``), which decides
    whether a delete retains, destroys or preserves it; ``ref`` is the platform's own
    reference (a resource id, a block path), handed back in cleanup tasks. A component
    created with ``standalone=True`` is always preserved.
    """

    kind: str
    ref: str
    standalone: bool = False

    def __init__(self, kind: str, ref: str, standalone: bool = False) -> None:
        # Hand-written (the generated one stores field by field through the frozen
        # __setattr__, then validates in __post_init__): a Component is made per create.
        if not (isinstance(kind, str) and isinstance(ref, str) and isinstance(standalone, bool)):
            _require_str(kind, "Component.kind")
            _require_str(ref, "Component.ref")
            raise TypeError(f"Component.standalone must be a bool, not {type(standalone).__name__}")
        _set(self, "__dict__", {"kind": kind, "ref": ref, "standalone": standalone})


@dataclass(frozen=True, init=False)
class Principal:
    """Who is calling: an id and its roles in the tenant (subscription).

    Pass ``principal=None`` (the default of every call) for the trusted platform itself, which
    passes every permission check. A principal's roles in the tenant plus its role on the
    workspace (``owner`` for its creator, or what :meth:`Workspace.grant` gave) are checked
    against the policy's ``permissions``.
    """

    id: str
    roles: frozenset[str]

    def __init__(self, id: str, roles: Iterable[str] = frozenset()) -> None:
        _require_text(id, "Principal.id")
        if not id:
            # '' is how the audit log names the platform: no principal may pass for it.
            raise InvalidArgument("Principal.id must be a non-empty str (the empty id is the "
                                  "platform's; pass principal=None to act as the platform)")
        if isinstance(roles, str):
            raise TypeError("Principal.roles must be a collection of role names, not a str")
        frozen = frozenset(roles)
        for role in frozen:
            _require_text(role, "a role in Principal.roles")
        object.__setattr__(self, "id", id)
        object.__setattr__(self, "roles", frozen)

    def __repr__(self) -> str:
        if not self.roles:
            return f"Principal({self.id!r})"
        roles = ", ".join(repr(role) for role in sorted(self.roles))
        return f"Principal({self.id!r}, roles={{{roles}}})"


def _require_str(value: object, what: str) -> None:
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, not {type(value).__name__}")


_SHOWN_CHARS = 200  # of a refused value in a message; longer ones are shortened, marked


def _text_problem(value: str) -> str | None:
    """What makes ``value`` unusable as a name, id, kind or principal, or None. (The
    binding refuses the same for every text argument; this is for values checked before
    they reach it, such as token files.)"""
    if "\0" in value:
        return "contains a NUL byte (\\x00), which is not allowed"
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            return (f"contains a lone surrogate ({value[exc.start]!r} at index {exc.start}), "
                    "which is not valid Unicode text")
    return None


def _shown(value: str) -> str:
    """``value`` for a message: escaped (repr), shortened when long, never cut silently."""
    if len(value) <= _SHOWN_CHARS:
        return repr(value)
    return f"{value[:_SHOWN_CHARS]!r}... ({len(value)} characters)"


def _require_text(value: object, what: str) -> None:
    """A str that is valid Unicode text without NUL bytes: else TypeError / InvalidArgument."""
    _require_str(value, what)
    assert isinstance(value, str)
    problem = _text_problem(value)
    if problem is not None:
        raise InvalidArgument(f"{what} {_shown(value)} {problem}; it must be Unicode "
                              "text without NUL bytes or lone surrogates")


def _core_principal(principal: Principal | None) -> _core.Principal | None:
    if principal is None:
        return None
    if not isinstance(principal, Principal):
        raise TypeError(
            f"principal must be an rb.Principal or None, not {type(principal).__name__}"
        )
    return _core.Principal(principal.id, sorted(principal.roles))
