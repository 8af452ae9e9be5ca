"""Fixtures for the API tests: a manual clock, policies built from a few YAML sections, and
engines on fresh stores that are closed after each test.

One suite, two stores: the engine tests (STORE_MODULES) run once per store, SQLite and
PostgreSQL (``--store sqlite|postgres|both`` when tests/python is on the command line, or
RECYCLEBIN_TEST_STORES; default both). The PostgreSQL runs use the
server named by RECYCLEBIN_TEST_PG_URL (./scripts/test.sh starts a throwaway one); each
engine gets a schema of its own. Without the variable those tests fail, saying so."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml

import recyclebin as rb

START = datetime(2026, 1, 1, tzinfo=timezone.utc)

# The modules whose tests run on both stores (every test there that opens an engine through
# make_engine / engine / store_location).
STORE_MODULES = {"test_engine", "test_workspace", "test_threads", "test_races", "test_races_rounds",
                 "test_cleanup_workers", "test_stores", "test_protections"}
PG_URL_VARIABLE = "RECYCLEBIN_TEST_PG_URL"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--store", choices=("sqlite", "postgres", "both"),
                     default=os.environ.get("RECYCLEBIN_TEST_STORES", "both"),
                     help="the store(s) the engine tests run on (default: $RECYCLEBIN_TEST_STORES, "
                          "else both)")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "store" not in metafunc.fixturenames:
        return
    module = metafunc.module.__name__.rsplit(".", 1)[-1]
    chosen = metafunc.config.getoption("--store")
    stores = ["sqlite", "postgres"] if chosen == "both" else [chosen]
    if module not in STORE_MODULES:
        stores = ["sqlite"]
    metafunc.parametrize("store", stores)


def pg_test_url() -> str:
    """The test server's URL; fails the test (never skips) when it is not set."""
    url = os.environ.get(PG_URL_VARIABLE, "")
    if not url:
        pytest.fail(f"{PG_URL_VARIABLE} is not set: the PostgreSQL store tests need a server; run "
                    "./scripts/test.sh (it starts a throwaway PostgreSQL 15 with "
                    "scripts/pg-test-server.sh), or pass --store sqlite", pytrace=False)
    return url


def pg_location(key: str) -> str:
    """A PostgreSQL location whose schema is named after ``key`` (the same key, the same store)."""
    schema = "t_" + hashlib.sha256(key.encode()).hexdigest()[:20]
    url = pg_test_url()
    return f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{schema}"


StoreLocation = Callable[[str], str]


@pytest.fixture
def store_location(store: str, tmp_path: Path) -> StoreLocation:
    """``store_location("name")``: where a store called "name" of this test lives, on the
    store under test (a file in tmp_path, or a schema of the test database)."""

    def locate(name: str) -> str:
        if store == "postgres":
            return pg_location(str(tmp_path / name))
        return str(tmp_path / f"{name}.db")

    return locate


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
def make_engine(tmp_path: Path, clock: rb.ManualClock, make_policy: MakePolicy,
                store: str) -> Iterator[MakeEngine]:
    """``make_engine()`` (default policy), ``make_engine(policy)`` (a name or rb.Policy) or
    ``make_engine(retention={...}, ...)`` (policy sections); each on a fresh store unless
    ``path=`` is given (on PostgreSQL, a path names a schema: the same path, the same
    store); all closed after the test."""
    engines: list[rb.Engine] = []

    def open_(policy: str | rb.Policy | None = None, *, path: Path | None = None,
              **sections: Any) -> rb.Engine:
        chosen: str | rb.Policy = policy if policy is not None else (
            make_policy(**sections) if sections else "default")
        location: str | Path = path if path is not None else tmp_path / f"engine-{len(engines)}.db"
        if store == "postgres":
            location = pg_location(str(location))
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
def shared_store(store_location: StoreLocation) -> str:
    """Where a store shared by several engines (and processes) lives, on the store under test."""
    return store_location("shared")
