"""Policies: what a delete, recover and purge may do, as data (YAML, version 1; see API.md).

A :class:`Policy` is parsed and validated once, by the C++ core, and is immutable: share one
between engines and threads freely. Parse errors raise :class:`~recyclebin.PolicyError`
whose message starts with ``path:line:column:`` (:meth:`Policy.load`) or ``line:column:``
(:meth:`Policy.from_yaml`).
"""

from __future__ import annotations

import os
from typing import Any

from . import _core

__all__ = ["Policy", "is_builtin_name", "resolve_policy"]

_POLICY_SUFFIXES = (".yaml", ".yml")


def _require_text(value: object, what: str) -> None:
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, not {type(value).__name__}")


class Policy:
    """A parsed, validated, immutable policy."""

    __slots__ = ("_core",)

    def __init__(self, core: _core.Policy) -> None:
        # Not for users: use Policy.builtin, Policy.load or Policy.from_yaml.
        self._core = core

    @classmethod
    def builtin(cls, name: str) -> Policy:
        """A policy shipped with recyclebin: ``default``, ``azureml``, ``dataworks``,
        ``parsec``, ``exostellar``, ``cloud-workstation``. An unknown name raises
        ``PolicyError`` listing the built-in names."""
        _require_text(name, "name")
        return cls(_core.Policy.builtin(name))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Policy:
        """Reads and validates a policy file."""
        return cls(_core.Policy.load(os.fspath(path)))

    @classmethod
    def from_yaml(cls, text: str) -> Policy:
        """Parses and validates policy YAML text."""
        _require_text(text, "text")
        return cls(_core.Policy.from_yaml(text))

    @staticmethod
    def builtin_names() -> list[str]:
        """The names :meth:`builtin` accepts."""
        return _core.Policy.builtin_names()

    @property
    def name(self) -> str:
        """The policy's ``name`` key."""
        return self._core.name

    @property
    def tenants(self) -> list[str]:
        """Subscription ids with overrides, sorted."""
        return self._core.tenants()

    @property
    def source_text(self) -> str:
        """The YAML text the policy was parsed from."""
        return self._core.source_text

    def to_yaml(self, subscription_id: str | None = None) -> str:
        """The effective rules as YAML: the base policy, or for ``subscription_id`` the base
        with that tenant's overrides merged in (every key, defaults spelled out)."""
        return self._core.to_yaml(subscription_id)

    def rules(self, subscription_id: str | None = None) -> dict[str, Any]:
        """The effective rules (as :meth:`to_yaml`) as a dict of plain values, keyed as in
        the policy file, e.g. ``policy.rules()["retention"]["default_days"]``."""
        return self._core.rules(subscription_id)

    def __repr__(self) -> str:
        return f"Policy(name={self.name!r}, tenants={self.tenants!r})"


def is_builtin_name(source: str) -> bool:
    """The ``policy=`` rule (API.md): a string with no ``/`` and no ``.yaml``/``.yml`` suffix
    names a built-in policy; any other string is a path to a policy file."""
    return "/" not in source and not source.endswith(_POLICY_SUFFIXES)


def resolve_policy(policy: str | os.PathLike[str] | Policy) -> Policy:
    """What a ``policy=`` argument stands for: an :class:`Policy` as it is, a path object's
    file, or a string read by :func:`is_builtin_name` (a built-in name, else a file)."""
    if isinstance(policy, Policy):
        return policy
    if isinstance(policy, os.PathLike):
        return Policy.load(policy)
    if isinstance(policy, str):
        return Policy.builtin(policy) if is_builtin_name(policy) else Policy.load(policy)
    raise TypeError(
        "policy must be a built-in policy name, a path to a YAML file or an rb.Policy, "
        f"not {type(policy).__name__}"
    )
