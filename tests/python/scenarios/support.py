"""Helpers shared by the per-system scenarios (fixtures live in conftest.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timedelta, timezone
from pathlib import Path

import recyclebin as rb

# The open_engine fixture: a built-in policy name -> an engine on a fresh SQLite file.
OpenEngine = Callable[[str], rb.Engine]

# Every scenario starts here; time only moves when a test moves the clock.
START = datetime(2026, 3, 2, 9, 30, tzinfo=timezone.utc)
ONE_MICROSECOND = timedelta(microseconds=1)
POLICY_DIR = Path(__file__).resolve().parents[3] / "policies"
BUILTIN_NAMES = ("default", "azureml", "dataworks", "parsec", "exostellar", "cloud-workstation")


def kinds(components: Iterable[rb.Component]) -> set[str]:
    return {component.kind for component in components}


def cleanup_refs(tasks: Iterable[rb.CleanupTask]) -> set[tuple[str, str]]:
    return {(task.kind, task.ref) for task in tasks}


def facts(**values: int) -> Callable[[rb.Workspace], dict[str, int]]:
    """A facts provider that answers the same numbers for every workspace."""

    def provider(workspace: rb.Workspace) -> dict[str, int]:
        return dict(values)

    return provider


def failing_provider(workspace: rb.Workspace) -> dict[str, int]:
    raise ConnectionError("job scheduler unreachable")


def iso_seconds(moment: datetime) -> str:
    """The ISO 8601 text of `moment` down to the second, as error messages spell it."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
