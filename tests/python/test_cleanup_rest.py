"""The cleanup workers' REST routes: POST /cleanupTasks/claim and /cleanupTasks/{id}/fail,
platform only, with their bad input refused."""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import pytest
from fastapi import FastAPI

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

import recyclebin as rb
from recyclebin.auth import BearerTokenAuth, grants_from_mapping
from recyclebin.fastapi import create_router
from rest_helpers import ALICE, PLATFORM, RG, START, SUB, TOKENS

POLICY = "version: 1\nname: t\ncomponents:\n  compute_instance: {on_delete: destroy}\n"


@pytest.fixture
def setup() -> Iterator[tuple[TestClient, rb.Engine, rb.ManualClock, list[int]]]:
    clock = rb.ManualClock(START)
    engine = rb.Engine.open(":memory:", policy=rb.Policy.from_yaml(POLICY), clock=clock)
    ws = rb.Workspace.create(SUB, RG, "ws", engine=engine, components=[
        rb.Component("compute_instance", f"ci-{i}") for i in range(3)])
    ids = [t.id for t in ws.delete().cleanup]
    app = FastAPI()
    app.include_router(create_router(engine, BearerTokenAuth(grants_from_mapping(TOKENS))))
    try:
        yield TestClient(app), engine, clock, ids
    finally:
        engine.close()


def test_claim_fail_and_complete_over_rest(setup) -> None:  # type: ignore[no-untyped-def]
    client, engine, clock, ids = setup
    claimed = client.post("/cleanupTasks/claim", headers=PLATFORM,
                          json={"worker": "w1", "limit": 2, "lease_seconds": 60})
    assert claimed.status_code == 200, claimed.text
    body = claimed.json()
    assert [t["id"] for t in body] == ids[:2]
    assert body[0]["leased_by"] == "w1" and body[0]["leased_until"] == "2026-01-01T00:01:00Z"
    assert body[0]["attempts"] == 0 and body[0]["last_error"] is None
    failed = client.post(f"/cleanupTasks/{ids[0]}/fail", headers=PLATFORM,
                         json={"error": "503 from compute", "retry_after_seconds": 30})
    assert failed.status_code == 204, failed.text
    listed = client.get("/cleanupTasks", headers=PLATFORM).json()
    assert listed[0]["attempts"] == 1 and listed[0]["last_error"] == "503 from compute"
    assert listed[0]["leased_by"] is None
    assert [t["id"] for t in client.post("/cleanupTasks/claim", headers=PLATFORM,
                                         json={"worker": "w2"}).json()] == [ids[2]]
    clock.advance(__import__("datetime").timedelta(seconds=30))
    again = client.post("/cleanupTasks/claim", headers=PLATFORM, json={"worker": "w3"}).json()
    assert [t["id"] for t in again] == [ids[0]]
    assert client.post(f"/cleanupTasks/{ids[0]}/complete", headers=PLATFORM).status_code == 204
    assert client.post(f"/cleanupTasks/{ids[0]}/fail", headers=PLATFORM,
                       json={"error": "late"}).status_code == 204  # completed: no-op
    assert engine.cleanup_tasks()[0].id == ids[1]


def test_the_routes_are_platform_only(setup) -> None:  # type: ignore[no-untyped-def]
    client, _engine, _clock, ids = setup
    claim = client.post("/cleanupTasks/claim", headers=ALICE, json={"worker": "w"})
    assert claim.status_code == 403 and claim.json()["error"]["code"] == "permission_denied"
    fail = client.post(f"/cleanupTasks/{ids[0]}/fail", headers=ALICE, json={"error": "x"})
    assert fail.status_code == 403
    assert client.post("/cleanupTasks/claim", json={"worker": "w"}).status_code == 401


@pytest.mark.parametrize("body", [
    {}, {"worker": ""}, {"worker": "w", "limit": 0}, {"worker": "w", "lease_seconds": 0},
    {"worker": "w", "lease_seconds": -5}, {"worker": "w", "unknown": 1},
])
def test_a_bad_claim_is_refused(setup, body) -> None:  # type: ignore[no-untyped-def]
    client = setup[0]
    response = client.post("/cleanupTasks/claim", headers=PLATFORM, json=body)
    assert response.status_code in (400, 422), response.text


def test_failing_an_unknown_task_is_404(setup) -> None:  # type: ignore[no-untyped-def]
    client = setup[0]
    response = client.post("/cleanupTasks/99999/fail", headers=PLATFORM, json={"error": "x"})
    assert response.status_code == 404 and response.json()["error"]["code"] == "cleanup_task_not_found"
    bad = client.post("/cleanupTasks/1/fail", headers=PLATFORM,
                      json={"error": "x", "retry_after_seconds": -1})
    assert bad.status_code in (400, 422)
