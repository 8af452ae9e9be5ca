"""Fixtures for the per-system scenarios: a manual clock and engines opened on it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import recyclebin as rb

from .support import START, OpenEngine


@pytest.fixture
def clock() -> rb.ManualClock:
    return rb.ManualClock(START)


@pytest.fixture
def open_engine(tmp_path: Path, clock: rb.ManualClock) -> Iterator[OpenEngine]:
    """Opens engines, each on a fresh SQLite file, under a built-in policy."""
    engines: list[rb.Engine] = []

    def open_(policy: str) -> rb.Engine:
        path = tmp_path / f"{policy}-{len(engines)}.db"
        engine = rb.Engine.open(str(path), policy=policy, clock=clock)
        engines.append(engine)
        return engine

    yield open_
    for engine in engines:
        engine.close()
