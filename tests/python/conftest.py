"""Fixtures for the API tests: a manual clock, policies built from a few YAML sections, and
engines on fresh SQLite files that are closed after each test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml

import recyclebin as rb

START = datetime(2026, 1, 1, tzinfo=timezone.utc)

PolicyYaml = Callable[..., str]
MakePolicy = Callable[..., rb.Policy]
MakeEngine = Callable[..., rb.Engine]


@pytest.fixture
def start() -> datetime:
    """Where every test's clock starts."""
    return START


@pytest.fixture
def clock() -> rb.ManualClock:
    return rb.ManualClock(START)


@pytest.fixture(autouse=True)
def _no_default_engine() -> Iterator[None]:
    rb.set_default_engine(None)
    yield
    rb.set_default_engine(None)


@pytest.fixture
def policy_yaml() -> PolicyYaml:
    """``policy_yaml(retention={"default_days": 7}, ...)``: a version-1 policy named "test"
    with these sections (everything else at its default)."""

    def build(**sections: Any) -> str:
        document: dict[str, Any] = {"version": 1, "name": "test"}
        document.update(sections)
        return yaml.safe_dump(document, sort_keys=False)

    return build


@pytest.fixture
def make_policy(policy_yaml: PolicyYaml) -> MakePolicy:
    def build(**sections: Any) -> rb.Policy:
        return rb.Policy.from_yaml(policy_yaml(**sections))

    return build


@pytest.fixture
def make_engine(tmp_path: Path, clock: rb.ManualClock, make_policy: MakePolicy) -> Iterator[MakeEngine]:
    """``make_engine()`` (default policy), ``make_engine(policy)`` (a name or rb.Policy) or
    ``make_engine(retention={...}, ...)`` (policy sections); each on a fresh file unless
    ``path=`` is given; all closed after the test."""
    engines: list[rb.Engine] = []

    def open_(policy: str | rb.Policy | None = None, *, path: Path | None = None,
              **sections: Any) -> rb.Engine:
        chosen: str | rb.Policy = policy if policy is not None else (
            make_policy(**sections) if sections else "default")
        location = path if path is not None else tmp_path / f"engine-{len(engines)}.db"
        engine = rb.Engine.open(location, policy=chosen, clock=clock)
        engines.append(engine)
        return engine

    yield open_
    for engine in engines:
        engine.close()


@pytest.fixture
def engine(make_engine: MakeEngine) -> rb.Engine:
    """An engine under the default policy on a fresh file."""
    return make_engine()


@pytest.fixture
def store_location(tmp_path: Path) -> str:
    """Where a store shared by several engines (and processes) lives: a SQLite file.

    The one place to add another store: parametrize this fixture (e.g. with a PostgreSQL URI
    for ``rb.Engine.open("postgresql://...")``) and every multi-process test runs on it."""
    return str(tmp_path / "shared.db")
