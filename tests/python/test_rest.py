"""The REST plugin (recyclebin.fastapi) and the server app (recyclebin.server) through
FastAPI's TestClient: every route, every error, auth, OpenAPI, lifespan and reaper."""

from __future__ import annotations

import asyncio
import inspect
import logging
import re
import time
import warnings
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute

with warnings.catch_warnings():
    # Starlette 1.x wants httpx2 for its TestClient and warns (an error here) when it falls
    # back on httpx; both work. The test extra should list httpx2.
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

import recyclebin as rb
from recyclebin.auth import (
    BearerTokenAuth,
    RefuseAll,
    TokenConfigError,
    grants_from_mapping,
    load_tokens,
    parse_tokens,
    TenantPrincipal,
)
from recyclebin.fastapi import create_router
from recyclebin.reaper import PurgeReaper
from recyclebin.server import create_app
from rest_helpers import (
    ADMIN,
    ALICE,
    BOB,
    PLATFORM,
    RG,
    START,
    SUB,
    TOKENS,
    deleted_path,
    iso_z,
    ws_path,
)

PREFIX = "/v1"
ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?Z$")


# ------------------------------------------------------------------------------ fixtures

@pytest.fixture
def clock() -> rb.ManualClock:
    return rb.ManualClock(START)


@pytest.fixture
def auth() -> BearerTokenAuth:
    return BearerTokenAuth(grants_from_mapping(TOKENS))


@pytest.fixture
def open_engine(clock: rb.ManualClock) -> Iterator[Callable[[str], rb.Engine]]:
    """engine(policy) on an in-memory store and the test's manual clock."""
    engines: list[rb.Engine] = []

    def open_(policy: str = "default") -> rb.Engine:
        engine = rb.Engine.open(":memory:", policy=policy, clock=clock)
        engines.append(engine)
        return engine

    yield open_
    for engine in engines:
        engine.close()


class Api:
    """A TestClient on an app that mounts the router under /v1, plus shortcuts."""

    def __init__(self, engine: rb.Engine, auth: BearerTokenAuth) -> None:
        self.engine = engine
        self.auth = auth
        self.router = create_router(engine, auth)
        self.app = FastAPI()
        self.app.include_router(self.router, prefix=PREFIX)
        self.client = TestClient(self.app)

    def request(self, method: str, path: str, headers: dict[str, str] | None = PLATFORM,
                **kwargs: Any) -> Any:
        return self.client.request(method, PREFIX + path, headers=headers, **kwargs)

    def create(self, name: str, headers: dict[str, str] = PLATFORM, **body: Any) -> Any:
        response = self.request("PUT", ws_path(name), headers, json=body or None)
        assert response.status_code == 201, response.text
        return response.json()

    def delete(self, name: str, headers: dict[str, str] = PLATFORM, **params: Any) -> Any:
        return self.request("DELETE", ws_path(name), headers, params=params)


@pytest.fixture
def make_api(open_engine: Callable[[str], rb.Engine],
             auth: BearerTokenAuth) -> Callable[[str], Api]:
    return lambda policy="default": Api(open_engine(policy), auth)


@pytest.fixture
def api(make_api: Callable[[str], Api]) -> Api:
    return make_api("default")


def assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert body["error"]["message"]
    return dict(body["error"])


# ------------------------------------------------------------------- live workspaces

def test_create_workspace_returns_201_with_the_workspace(api: Api) -> None:
    body = api.create("ws1", ALICE, soft_delete_retention_days=7,
                      components=[{"kind": "compute_instance", "ref": "ci-1"},
                                  {"kind": "volume", "ref": "vol-1", "standalone": True}])
    assert body["name"] == "ws1"
    assert body["subscription_id"] == SUB and body["resource_group"] == RG
    assert body["soft_delete_retention_days"] == 7
    assert body["state"] == "running"
    assert body["id"]
    assert body["components"] == [
        {"kind": "compute_instance", "ref": "ci-1", "standalone": False},
        {"kind": "volume", "ref": "vol-1", "standalone": True}]


def test_create_without_body_uses_the_policy_default(api: Api) -> None:
    response = api.request("PUT", ws_path("ws1"))
    assert response.status_code == 201
    assert response.json()["soft_delete_retention_days"] == 14


def test_create_makes_the_caller_owner(api: Api) -> None:
    api.create("ws1", ALICE)
    assert_error(api.delete("ws1", BOB), 403, "permission_denied")
    assert api.delete("ws1", ALICE).status_code == 200


@pytest.mark.parametrize(("body", "field"), [
    ({"soft_delete_retention_days": "many"}, "body.soft_delete_retention_days"),
    ({"soft_delete_retention_days": 2.5}, "body.soft_delete_retention_days"),
    ({"components": [{"ref": "x"}]}, "body.components.0.kind"),
    ({"components": [{"kind": "", "ref": "x"}]}, "body.components.0.kind"),
    ({"cmk_encrypted": "perhaps"}, "body.cmk_encrypted"),
    ({"colour": "blue"}, "body.colour"),
])
def test_create_validation_errors_are_422_naming_the_field(api: Api, body: dict[str, Any],
                                                          field: str) -> None:
    error = assert_error(api.request("PUT", ws_path("ws1"), json=body), 422,
                         "validation_error")
    assert field in [f["field"] for f in error["fields"]]
    assert field in error["message"]


def test_malformed_json_is_422_not_500(api: Api) -> None:
    response = api.request("PUT", ws_path("ws1"), content=b"{not json",
                           headers={**PLATFORM, "Content-Type": "application/json"})
    assert_error(response, 422, "validation_error")


def test_create_with_retention_outside_the_policy_is_400(api: Api) -> None:
    response = api.request("PUT", ws_path("ws1"), json={"soft_delete_retention_days": 30})
    error = assert_error(response, 400, "invalid_retention")
    assert "14" in error["message"]


def test_create_over_a_live_workspace_is_409_workspace_exists(api: Api) -> None:
    api.create("ws1")
    assert_error(api.request("PUT", ws_path("ws1")), 409, "workspace_exists")


def test_create_over_a_soft_deleted_name_is_409_name_reserved_with_release_time(api: Api) -> None:
    api.create("ws1")
    deleted = api.delete("ws1").json()
    error = assert_error(api.request("PUT", ws_path("ws1")), 409, "name_reserved")
    assert error["reserved_until"] == deleted["purge_at"]
    assert ISO_Z.match(error["reserved_until"])


def test_show_workspace(api: Api) -> None:
    created = api.create("ws1")
    response = api.request("GET", ws_path("ws1"), ALICE)
    assert response.status_code == 200
    assert response.json() == created


def test_show_unknown_workspace_is_404(api: Api) -> None:
    assert_error(api.request("GET", ws_path("nope")), 404, "workspace_not_found")


def test_show_soft_deleted_workspace_is_404(api: Api) -> None:
    api.create("ws1")
    api.delete("ws1")
    assert_error(api.request("GET", ws_path("ws1")), 404, "workspace_not_found")


def test_stop_and_start_are_idempotent(api: Api) -> None:
    api.create("ws1")
    for _ in range(2):
        response = api.request("POST", ws_path("ws1") + "/stop")
        assert response.status_code == 200 and response.json()["state"] == "stopped"
    assert api.request("GET", ws_path("ws1")).json()["state"] == "stopped"
    for _ in range(2):
        response = api.request("POST", ws_path("ws1") + "/start")
        assert response.status_code == 200 and response.json()["state"] == "running"


def test_stop_unknown_is_404(api: Api) -> None:
    assert_error(api.request("POST", ws_path("nope") + "/stop"), 404, "workspace_not_found")
    assert_error(api.request("POST", ws_path("nope") + "/start"), 404, "workspace_not_found")


@pytest.mark.parametrize(("method", "suffix", "body"), [
    ("POST", "/stop", None), ("POST", "/start", None), ("DELETE", "", None),
    ("PUT", "/members/bob", {"role": "owner"}), ("DELETE", "/members/bob", None)])
def test_operations_on_a_soft_deleted_workspace_are_409_naming_recover_and_purge(
        api: Api, method: str, suffix: str, body: Any) -> None:
    api.create("ws1")
    api.delete("ws1")
    error = assert_error(api.request(method, ws_path("ws1") + suffix, json=body), 409,
                         "operation_not_allowed")
    assert "recover" in error["message"] and "purge" in error["message"]


# ----------------------------------------------------------------------------- delete

def test_delete_is_soft_by_default(api: Api, clock: rb.ManualClock) -> None:
    api.create("ws1", components=[{"kind": "notebooks", "ref": "nb-1"}])
    response = api.delete("ws1")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["permanent"] is False
    assert body["deleted_at"] == iso_z(START)
    assert body["purge_at"] == iso_z(START + timedelta(days=14))
    assert body["retained"] == ["notebooks"]
    assert body["cleanup"] == [] and body["warnings"] == []


def test_delete_no_wait_answers_202(api: Api) -> None:
    api.create("ws1")
    response = api.delete("ws1", no_wait="true")
    assert response.status_code == 202
    assert response.json()["permanent"] is False


def test_delete_permanently_with_options_in_the_body(api: Api) -> None:
    api.create("ws1", components=[{"kind": "notebooks", "ref": "nb-1"}])
    response = api.request("DELETE", ws_path("ws1"),
                           json={"permanently_delete": True, "delete_dependent_resources": True})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["permanent"] is True and body["purge_at"] is None
    assert [t["ref"] for t in body["cleanup"]] == ["nb-1"]
    assert all(ISO_Z.match(t["created_at"]) for t in body["cleanup"])
    # Permanent: the name is free at once.
    api.create("ws1")


def test_delete_options_in_query_and_body_may_not_disagree(api: Api) -> None:
    api.create("ws1")
    response = api.request("DELETE", ws_path("ws1"), params={"permanently_delete": "false"},
                           json={"permanently_delete": True})
    error = assert_error(response, 400, "invalid_request")
    assert "permanently_delete" in error["message"]


def test_delete_dependent_resources_without_permanent_is_409(api: Api) -> None:
    api.create("ws1")
    assert_error(api.delete("ws1", delete_dependent_resources="true"), 409,
                 "operation_not_allowed")


def test_delete_with_a_bad_flag_value_is_422(api: Api) -> None:
    api.create("ws1")
    error = assert_error(api.delete("ws1", permanently_delete="sure"), 422, "validation_error")
    assert error["fields"][0]["field"] == "query.permanently_delete"


def test_delete_without_permission_is_403(api: Api) -> None:
    api.create("ws1", ALICE)
    assert_error(api.delete("ws1", BOB), 403, "permission_denied")
    assert api.request("GET", ws_path("ws1")).status_code == 200


def test_delete_needs_confirm_name_where_the_policy_asks(make_api: Callable[[str], Api]) -> None:
    api = make_api("dataworks")
    api.create("ws1")
    assert_error(api.delete("ws1"), 412, "precondition_failed")
    assert_error(api.delete("ws1", confirm_name="ws2"), 412, "precondition_failed")
    response = api.delete("ws1", confirm_name="ws1")
    assert response.status_code == 200, response.text
    assert response.json()["purge_at"] == iso_z(START + timedelta(days=14))


def test_delete_running_is_400_where_the_policy_requires_stopped(
        make_api: Callable[[str], Api]) -> None:
    api = make_api("cloud-workstation")
    api.create("ws1")
    assert_error(api.delete("ws1"), 400, "workspace_not_stopped")
    api.request("POST", ws_path("ws1") + "/stop")
    assert api.delete("ws1").json()["permanent"] is True


def test_delete_unknown_is_404(api: Api) -> None:
    assert_error(api.delete("nope"), 404, "workspace_not_found")


# ------------------------------------------------------------------------- dry runs (v2)

def _audit_count(api: Api) -> int:
    return len(api.request("GET", "/auditLog").json())


def test_delete_dry_run_answers_the_plan_and_changes_nothing(
        make_api: Callable[[str], Api]) -> None:
    api = make_api("azureml")
    api.create("ws1", components=[{"kind": "notebooks", "ref": "nb-1"},
                                  {"kind": "compute_instance", "ref": "ci-1"}])
    audited = _audit_count(api)
    response = api.delete("ws1", dry_run="true")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["dry_run"] is True and body["permanent"] is False
    assert body["deleted_at"] == iso_z(START)
    assert body["purge_at"] == iso_z(START + timedelta(days=14))
    assert body["retained"] == ["notebooks"]
    assert body["destroyed"] == ["compute_instance"]
    assert [(t["id"], t["ref"]) for t in body["cleanup"]] == [(0, "ci-1")]
    # Nothing happened: still live, nothing audited, no cleanup task, the name still taken.
    assert api.request("GET", ws_path("ws1")).status_code == 200
    assert _audit_count(api) == audited
    assert api.request("GET", "/cleanupTasks").json() == []
    assert_error(api.request("PUT", ws_path("ws1")), 409, "workspace_exists")
    real = api.delete("ws1").json()
    assert real["dry_run"] is False
    assert {k: v for k, v in real.items() if k not in ("dry_run", "cleanup")} == {
        k: v for k, v in body.items() if k not in ("dry_run", "cleanup")}
    assert [t["ref"] for t in real["cleanup"]] == ["ci-1"] and real["cleanup"][0]["id"] > 0


def test_delete_dry_run_permanent_with_the_options_in_the_body(api: Api) -> None:
    created = api.create("ws1", components=[{"kind": "notebooks", "ref": "nb-1"}])
    plan = api.request("DELETE", ws_path("ws1"), json={"permanently_delete": True,
                                                      "dry_run": True})
    assert plan.json() == {
        "dry_run": True, "permanent": True, "deleted_at": iso_z(START), "purge_at": None,
        "retained": [], "destroyed": ["notebooks"], "preserved": [], "warnings": [],
        "cleanup": [{"id": 0, "kind": "notebooks", "ref": "nb-1",
                     "workspace_id": created["id"], "created_at": iso_z(START),
                     "attempts": 0, "last_error": None, "leased_by": None, "leased_until": None}]}
    assert api.request("GET", ws_path("ws1")).status_code == 200
    assert api.request("GET", "/cleanupTasks").json() == []


def test_delete_dry_run_with_no_wait_answers_200_as_nothing_was_accepted(api: Api) -> None:
    api.create("ws1")
    response = api.delete("ws1", dry_run="true", no_wait="true")
    assert response.status_code == 200 and response.json()["dry_run"] is True
    assert api.request("GET", ws_path("ws1")).status_code == 200


def test_delete_dry_run_refuses_as_the_real_call_and_audits_nothing(
        make_api: Callable[[str], Api]) -> None:
    api = make_api("dataworks")
    api.create("ws1", ALICE)
    audited = _audit_count(api)
    assert_error(api.delete("ws1", BOB, dry_run="true"), 403, "permission_denied")
    assert_error(api.delete("ws1", dry_run="true"), 412, "precondition_failed")
    assert_error(api.delete("ws1", dry_run="true", confirm_name="ws2"), 412,
                 "precondition_failed")
    assert _audit_count(api) == audited
    ok = api.delete("ws1", dry_run="true", confirm_name="ws1")
    assert ok.status_code == 200 and ok.json()["dry_run"] is True
    assert _audit_count(api) == audited
    workstations = make_api("cloud-workstation")
    workstations.create("wk1")
    assert_error(workstations.delete("wk1", dry_run="true"), 400, "workspace_not_stopped")
    assert_error(api.delete("nope", dry_run="true"), 404, "workspace_not_found")


def test_delete_dry_run_flag_errors(api: Api) -> None:
    api.create("ws1")
    error = assert_error(api.delete("ws1", dry_run="maybe"), 422, "validation_error")
    assert error["fields"][0]["field"] == "query.dry_run"
    response = api.request("DELETE", ws_path("ws1"), params={"dry_run": "true"},
                           json={"dry_run": False})
    assert "dry_run" in assert_error(response, 400, "invalid_request")["message"]
    assert api.request("GET", ws_path("ws1")).status_code == 200
    # A dry run of a soft-deleted workspace answers what the real call would: 409.
    api.delete("ws1")
    assert_error(api.delete("ws1", dry_run="true"), 409, "operation_not_allowed")


# ----------------------------------------------------------------------- recycle bin

def _fill_bin(api: Api, clock: rb.ManualClock, names: list[str], rg: str = RG) -> None:
    for name in names:
        assert api.request("PUT", ws_path(name, rg=rg)).status_code == 201
        assert api.request("DELETE", ws_path(name, rg=rg)).status_code == 200
        clock.advance(timedelta(minutes=1))


def test_list_live_pages_by_group_then_name(api: Api) -> None:
    for rg, name in (("rg-b", "a"), ("rg-a", "z"), ("rg-a", "b"), ("rg-a", "gone")):
        assert api.request("PUT", ws_path(name, rg=rg)).status_code == 201
    assert api.request("DELETE", ws_path("gone", rg="rg-a")).status_code == 200
    page = api.request("GET", f"/subscriptions/{SUB}/workspaces", ALICE,
                       params={"limit": 2}).json()
    seen = [(w["resource_group"], w["name"]) for w in page["value"]]
    for _ in range(3):  # bounded: 3 items, pages of 2
        if page["next_cursor"] is None:
            break
        assert page["next_link"].startswith("http://testserver/v1/subscriptions/")
        page = api.client.get(page["next_link"], headers=ALICE).json()
        seen += [(w["resource_group"], w["name"]) for w in page["value"]]
    assert seen == [("rg-a", "b"), ("rg-a", "z"), ("rg-b", "a")]  # never the soft-deleted one
    assert page["next_cursor"] is None and page["next_link"] is None
    assert set(page["value"][0]) == {"id", "name", "subscription_id", "resource_group",
                                     "soft_delete_retention_days", "state", "components",
                                     "purge_protection", "auto_delete_at"}  # v2: protections
    group = api.request("GET", f"/subscriptions/{SUB}/resourceGroups/rg-b/workspaces").json()
    assert [w["name"] for w in group["value"]] == ["a"]
    other = api.request("GET", "/subscriptions/other/workspaces").json()
    assert other == {"value": [], "next_cursor": None, "next_link": None}


@pytest.mark.parametrize("params, status, code", [
    ({"limit": 0}, 422, "validation_error"), ({"cursor": ""}, 422, "validation_error"),
    ({"cursor": "not-a-cursor"}, 400, "invalid_argument")])
def test_list_live_bad_paging_parameters(api: Api, params: dict[str, Any], status: int,
                                         code: str) -> None:
    assert_error(api.request("GET", f"/subscriptions/{SUB}/workspaces", params=params),
                 status, code)


def test_list_deleted_by_subscription_pages_newest_first(api: Api,
                                                         clock: rb.ManualClock) -> None:
    _fill_bin(api, clock, ["a", "b", "c", "d", "e"])
    response = api.request("GET", f"/subscriptions/{SUB}/deletedWorkspaces", ALICE,
                           params={"limit": 2})
    assert response.status_code == 200
    page = response.json()
    assert [d["name"] for d in page["value"]] == ["e", "d"]
    seen = [d["name"] for d in page["value"]]
    for _ in range(5):  # bounded: 5 items, pages of 2
        if page["next_cursor"] is None:
            break
        assert page["next_link"].startswith("http://testserver/v1/subscriptions/")
        page = api.client.get(page["next_link"], headers=ALICE).json()
        seen += [d["name"] for d in page["value"]]
    assert seen == ["e", "d", "c", "b", "a"]
    assert page["next_cursor"] is None and page["next_link"] is None
    item = page["value"][-1]
    assert set(item) == {"id", "name", "subscription_id", "resource_group", "deleted_at",
                         "purge_at", "retention_days", "retained", "held"}  # v2: legal holds
    assert ISO_Z.match(item["deleted_at"]) and ISO_Z.match(item["purge_at"])


def test_list_deleted_filters_by_group(api: Api, clock: rb.ManualClock) -> None:
    _fill_bin(api, clock, ["a"], rg="rg-a")
    _fill_bin(api, clock, ["b"], rg="rg-b")
    everything = api.request("GET", f"/subscriptions/{SUB}/deletedWorkspaces").json()
    assert [d["name"] for d in everything["value"]] == ["b", "a"]
    by_query = api.request("GET", f"/subscriptions/{SUB}/deletedWorkspaces",
                           params={"resource_group": "rg-a"}).json()
    assert [d["name"] for d in by_query["value"]] == ["a"]
    by_path = api.request("GET", f"/subscriptions/{SUB}/resourceGroups/rg-b/deletedWorkspaces")
    assert by_path.status_code == 200
    assert [d["name"] for d in by_path.json()["value"]] == ["b"]
    other = api.request("GET", "/subscriptions/other/deletedWorkspaces").json()
    assert other == {"value": [], "next_cursor": None, "next_link": None}


@pytest.mark.parametrize("params", [{"limit": 0}, {"limit": 5000}, {"limit": "ten"},
                                    {"cursor": ""}])
def test_list_deleted_bad_paging_parameters_are_422(api: Api, params: dict[str, Any]) -> None:
    response = api.request("GET", f"/subscriptions/{SUB}/deletedWorkspaces", params=params)
    error = assert_error(response, 422, "validation_error")
    assert error["fields"][0]["field"] == f"query.{next(iter(params))}"


def test_list_deleted_with_a_cursor_the_engine_cannot_read_is_400(api: Api) -> None:
    response = api.request("GET", f"/subscriptions/{SUB}/deletedWorkspaces",
                           params={"cursor": "not-a-cursor", "limit": 1})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] in {"invalid_argument", "invalid_request"}


def test_show_deleted(api: Api) -> None:
    created = api.create("ws1", soft_delete_retention_days=3)
    api.delete("ws1")
    response = api.request("GET", deleted_path("ws1"))
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == created["id"] and body["retention_days"] == 3
    assert body["purge_at"] == iso_z(START + timedelta(days=3))


def test_show_deleted_of_a_live_or_unknown_workspace_is_404(api: Api) -> None:
    api.create("ws1")
    assert_error(api.request("GET", deleted_path("ws1")), 404, "workspace_not_found")
    assert_error(api.request("GET", deleted_path("nope")), 404, "workspace_not_found")


def test_recover(api: Api) -> None:
    created = api.create("ws1", ALICE, components=[{"kind": "notebooks", "ref": "nb-1"}])
    api.delete("ws1", ALICE)
    response = api.request("POST", deleted_path("ws1") + "/recover", ALICE)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["workspace"]["id"] == created["id"]
    assert body["restored"] == ["notebooks"]
    assert body["reattached"] == [] and body["must_recreate"] == []
    assert api.request("GET", ws_path("ws1")).status_code == 200
    assert_error(api.request("POST", deleted_path("ws1") + "/recover"), 404,
                 "workspace_not_found")


def test_recover_needs_permission(api: Api) -> None:
    api.create("ws1", ALICE)
    api.delete("ws1", ALICE)
    assert_error(api.request("POST", deleted_path("ws1") + "/recover", BOB), 403,
                 "permission_denied")


def test_recover_after_expiry_is_404(api: Api, clock: rb.ManualClock) -> None:
    api.create("ws1", soft_delete_retention_days=1)
    api.delete("ws1")
    clock.advance(timedelta(days=1))
    assert_error(api.request("POST", deleted_path("ws1") + "/recover"), 404,
                 "workspace_not_found")
    api.create("ws1")  # expiry is a fact of time: the name is free


def test_purge_one(api: Api) -> None:
    api.create("ws1", ALICE, components=[{"kind": "notebooks", "ref": "nb-1"}])
    api.delete("ws1", ALICE)
    assert_error(api.request("DELETE", deleted_path("ws1"), BOB), 403, "permission_denied")
    response = api.request("DELETE", deleted_path("ws1"), ADMIN)
    assert response.status_code == 200, response.text
    assert response.json()["permanent"] is True
    assert [t["ref"] for t in response.json()["cleanup"]] == ["nb-1"]
    assert_error(api.request("GET", deleted_path("ws1")), 404, "workspace_not_found")
    assert_error(api.request("DELETE", deleted_path("ws1")), 404, "workspace_not_found")
    api.create("ws1")


def test_purge_where_the_policy_forbids_permanent_delete_is_409(
        make_api: Callable[[str], Api]) -> None:
    api = make_api("exostellar")
    api.engine.set_facts_provider(lambda ws: {"running_jobs": 0, "active_sessions": 0})
    api.create("ws1")
    assert api.delete("ws1", confirm_name="ws1").status_code == 200
    assert_error(api.request("DELETE", deleted_path("ws1")), 409, "operation_not_allowed")


# --------------------------------------------------------------------- members, orphans

def test_grant_and_revoke_members(api: Api) -> None:
    api.create("ws1", ALICE)
    response = api.request("PUT", ws_path("ws1") + "/members/bob", ALICE,
                           json={"role": "owner"})
    assert response.status_code == 204 and response.content == b""
    assert api.delete("ws1", BOB).status_code == 200  # bob is an owner now
    api.request("POST", deleted_path("ws1") + "/recover")
    response = api.request("DELETE", ws_path("ws1") + "/members/bob", ALICE)
    assert response.status_code == 204
    assert_error(api.delete("ws1", BOB), 403, "permission_denied")


def test_grant_without_a_role_is_422(api: Api) -> None:
    api.create("ws1")
    error = assert_error(api.request("PUT", ws_path("ws1") + "/members/bob", json={}), 422,
                         "validation_error")
    assert error["fields"][0]["field"] == "body.role"
    assert_error(api.request("PUT", ws_path("nope") + "/members/bob", json={"role": "owner"}),
                 404, "workspace_not_found")


# ------------------------------------------------------------------- operator routes

def test_list_deletable_is_for_the_platform_and_shows_no_names(
        make_api: Callable[[str], Api], clock: rb.ManualClock) -> None:
    api = make_api("parsec")
    planned = api.create("planned", ALICE)
    api.delete("planned", ALICE)
    orphan = api.create("orphan", ALICE)
    api.request("DELETE", ws_path("orphan") + "/members/alice")
    path = f"/subscriptions/{SUB}/deletableWorkspaces"
    listed = api.request("GET", path).json()
    assert listed == [{"kind": "orphaned", "workspace_id": orphan["id"],
                       "since": iso_z(START)}]
    clock.advance(timedelta(days=31))
    listed = api.request("GET", path).json()
    assert {d["kind"]: d["workspace_id"] for d in listed} == {
        "orphaned": orphan["id"], "deletion_planned": planned["id"]}
    assert all(set(d) == {"kind", "workspace_id", "since"} for d in listed)
    assert_error(api.request("GET", path, ALICE), 403, "permission_denied")


def test_purge_deletable_by_id(make_api: Callable[[str], Api], clock: rb.ManualClock) -> None:
    api = make_api("parsec")
    realm = api.create("realm", ALICE, components=[{"kind": "block", "ref": "blocks/1"},
                                                   {"kind": "block", "ref": "blocks/2"}])
    api.delete("realm", ALICE)
    path = f"/subscriptions/{SUB}/deletableWorkspaces/{realm['id']}"
    assert_error(api.request("DELETE", path), 404, "workspace_not_found")  # not yet due
    clock.advance(timedelta(days=31))
    assert_error(api.request("DELETE", path, ADMIN), 403, "permission_denied")
    assert_error(api.request("DELETE", f"/subscriptions/other/deletableWorkspaces/{realm['id']}"),
                 404, "workspace_not_found")
    response = api.request("DELETE", path)
    assert response.status_code == 200, response.text
    assert sorted(t["ref"] for t in response.json()["cleanup"]) == ["blocks/1", "blocks/2"]
    assert api.request("GET", f"/subscriptions/{SUB}/deletableWorkspaces").json() == []


def test_purge_expired_route(api: Api, clock: rb.ManualClock) -> None:
    api.create("ws1", soft_delete_retention_days=1,
               components=[{"kind": "notebooks", "ref": "nb-1"}])
    api.delete("ws1")
    assert api.request("POST", "/purgeExpired").json() == {"purged": [], "cleanup": [],
                                                            "dry_run": False, "auto_deleted": [],
                                                            "auto_delete_refused": []}
    clock.advance(timedelta(days=2))
    assert_error(api.request("POST", "/purgeExpired", ADMIN), 403, "permission_denied")
    report = api.request("POST", "/purgeExpired").json()
    assert report["purged"] == [{"subscription_id": SUB, "resource_group": RG, "name": "ws1"}]
    assert [t["ref"] for t in report["cleanup"]] == ["nb-1"]


def test_purge_expired_dry_run_route(api: Api, clock: rb.ManualClock) -> None:
    api.create("ws1", soft_delete_retention_days=1,
               components=[{"kind": "notebooks", "ref": "nb-1"}])
    api.delete("ws1")
    clock.advance(timedelta(days=2))
    assert_error(api.request("POST", "/purgeExpired", ADMIN, params={"dry_run": "true"}),
                 403, "permission_denied")
    audited = _audit_count(api)
    plan = api.request("POST", "/purgeExpired", params={"dry_run": "true"}).json()
    assert plan["dry_run"] is True
    assert plan["purged"] == [{"subscription_id": SUB, "resource_group": RG, "name": "ws1"}]
    assert [(t["id"], t["ref"]) for t in plan["cleanup"]] == [(0, "nb-1")]
    assert _audit_count(api) == audited
    assert api.request("GET", "/cleanupTasks").json() == []
    assert_error(api.request("POST", "/purgeExpired", params={"dry_run": "soon"}), 422,
                 "validation_error")
    report = api.request("POST", "/purgeExpired").json()
    assert report["dry_run"] is False and report["purged"] == plan["purged"]
    assert [t["ref"] for t in report["cleanup"]] == ["nb-1"]
    assert api.request("POST", "/purgeExpired", params={"dry_run": "true"}).json() == {
        "purged": [], "cleanup": [], "dry_run": True, "auto_deleted": [], "auto_delete_refused": []}


# ------------------------------------------------------------- rules and caller (v2)

def test_policy_route_answers_the_effective_rules(make_api: Callable[[str], Api]) -> None:
    rules = make_api("dataworks").request("GET", f"/subscriptions/{SUB}/policy", ALICE)
    assert rules.status_code == 200, rules.text
    body = rules.json()
    assert body["name"] == "dataworks" and body["subscription_id"] == SUB
    assert body["preconditions"]["require_confirm_name"] is True
    assert body["retention"]["per_workspace"] is False
    assert body["retention"]["default_days"] == 14
    assert set(body) == {"name", "subscription_id", "retention", "soft_delete",
                         "permanent_delete", "preconditions", "name_reservation_scope"}
    workstation = make_api("cloud-workstation").request(
        "GET", f"/subscriptions/{SUB}/policy").json()
    assert workstation["preconditions"]["require_stopped"] is True
    assert workstation["soft_delete"]["enabled"] is False
    assert make_api("exostellar").request(
        "GET", f"/subscriptions/{SUB}/policy").json()["permanent_delete"]["allowed"] is False


def test_policy_route_merges_the_tenant_overrides(open_engine: Callable[[Any], rb.Engine],
                                                  auth: BearerTokenAuth) -> None:
    policy = rb.Policy.from_yaml(
        "version: 1\nname: mixed\n"
        "tenants:\n  strict:\n    permanent_delete: {allowed: false}\n"
        "    preconditions: {require_confirm_name: true}\n    retention: {default_days: 7}\n")
    api = Api(open_engine(policy), auth)
    base = api.request("GET", f"/subscriptions/{SUB}/policy").json()
    strict = api.request("GET", "/subscriptions/strict/policy").json()
    assert base["permanent_delete"]["allowed"] is True
    assert base["preconditions"]["require_confirm_name"] is False
    assert strict["permanent_delete"]["allowed"] is False
    assert strict["preconditions"]["require_confirm_name"] is True
    assert (base["retention"]["default_days"], strict["retention"]["default_days"]) == (14, 7)


def test_me_names_the_caller(api: Api) -> None:
    assert api.request("GET", "/me").json() == {"principal_id": None, "platform": True,
                                                "roles": []}
    assert api.request("GET", "/me", ALICE).json() == {"principal_id": "alice",
                                                       "platform": False, "roles": []}
    assert api.request("GET", "/me", ADMIN).json()["roles"] == ["admin"]
    assert_error(api.request("GET", "/me", {"Authorization": "Bearer nope"}), 401,
                 "unauthenticated")


def test_cleanup_tasks_list_and_complete(api: Api) -> None:
    api.create("ws1", components=[{"kind": "notebooks", "ref": "nb-1"}])
    ws2 = api.create("ws2", components=[{"kind": "notebooks", "ref": "nb-2"}])
    api.delete("ws1", permanently_delete="true")
    api.delete("ws2", permanently_delete="true")
    tasks = api.request("GET", "/cleanupTasks").json()
    assert [t["ref"] for t in tasks] == ["nb-1", "nb-2"]
    only = api.request("GET", "/cleanupTasks", params={"workspace_id": ws2["id"]}).json()
    assert [t["ref"] for t in only] == ["nb-2"]
    task_id = tasks[0]["id"]
    for _ in range(2):  # completing twice is a no-op
        response = api.request("POST", f"/cleanupTasks/{task_id}/complete")
        assert response.status_code == 204 and response.content == b""
    assert [t["ref"] for t in api.request("GET", "/cleanupTasks").json()] == ["nb-2"]


def test_cleanup_task_errors(api: Api) -> None:
    assert_error(api.request("POST", "/cleanupTasks/999/complete"), 404,
                 "cleanup_task_not_found")
    assert_error(api.request("POST", "/cleanupTasks/x/complete"), 422, "validation_error")
    assert_error(api.request("POST", "/cleanupTasks/0/complete"), 422, "validation_error")
    assert_error(api.request("GET", "/cleanupTasks", ADMIN), 403, "permission_denied")
    assert_error(api.request("POST", "/cleanupTasks/1/complete", ALICE), 403,
                 "permission_denied")


def test_audit_log(api: Api) -> None:
    api.create("ws1", ALICE)
    api.delete("ws1", BOB)  # refused, and audited
    api.request("PUT", ws_path("other", sub="sub-2"))
    records = api.request("GET", "/auditLog", params={"subscription_id": SUB}).json()
    assert [(r["action"], r["outcome"]) for r in records] == [
        ("create", "ok"), ("delete", "refused:permission_denied")]
    assert records[0]["seq"] < records[1]["seq"]
    assert records[0]["principal_id"] == "alice"
    assert ISO_Z.match(records[0]["at"])
    everything = api.request("GET", "/auditLog").json()
    assert len(everything) == 3
    assert_error(api.request("GET", "/auditLog", ALICE), 403, "permission_denied")


def test_audit_feed_pages_by_after_seq(api: Api) -> None:
    """Version 2: after_seq and limit; principal_id is null for the platform."""
    api.create("ws1", ALICE)
    for name in ("ws2", "ws3", "ws4"):
        api.create(name)
    seen: list[dict[str, Any]] = []
    last = 0
    for _ in range(10):
        page = api.request("GET", "/auditLog", params={"after_seq": last, "limit": 3}).json()
        assert len(page) <= 3
        if not page:
            break
        seen += page
        last = page[-1]["seq"]
    assert [r["name"] for r in seen] == ["ws1", "ws2", "ws3", "ws4"]
    assert seen == api.request("GET", "/auditLog").json()
    assert seen[0]["principal_id"] == "alice" and seen[1]["principal_id"] is None
    assert all(r["workspace_id"] for r in seen)
    api.create("ws5")
    assert [r["name"] for r in api.request("GET", "/auditLog",
                                           params={"after_seq": last}).json()] == ["ws5"]
    by_sub = api.request("GET", "/auditLog",
                         params={"subscription_id": SUB, "after_seq": seen[0]["seq"], "limit": 1})
    assert [r["name"] for r in by_sub.json()] == ["ws2"]


@pytest.mark.parametrize("params", [{"after_seq": -1}, {"limit": 0}, {"limit": 1001},
                                    {"after_seq": "x"}])
def test_audit_feed_bad_parameters_are_422(api: Api, params: dict[str, Any]) -> None:
    response = api.request("GET", "/auditLog", params=params)
    error = assert_error(response, 422, "validation_error")
    assert error["fields"][0]["field"] == f"query.{next(iter(params))}"


def test_list_deleted_purge_before(api: Api, clock: rb.ManualClock) -> None:
    purge_at = []
    for index, name in enumerate(["a", "b", "c"]):
        api.create(name, soft_delete_retention_days=7 + index)
        response = api.delete(name)
        assert response.status_code == 200, response.text
        purge_at.append(api.request("GET", deleted_path(name)).json()["purge_at"])
        clock.advance(timedelta(minutes=1))
    path = f"/subscriptions/{SUB}/deletedWorkspaces"
    before = api.request("GET", path, params={"purge_before": purge_at[2]}).json()
    assert [d["name"] for d in before["value"]] == ["b", "a"]  # c's purge_at is not earlier
    first = api.request("GET", path, params={"purge_before": purge_at[2], "limit": 1}).json()
    assert [d["name"] for d in first["value"]] == ["b"]
    assert "purge_before" in first["next_link"]
    second = api.request("GET", first["next_link"].split("/v1", 1)[1]).json()
    assert [d["name"] for d in second["value"]] == ["a"]
    by_group = api.request("GET", f"/subscriptions/{SUB}/resourceGroups/{RG}/deletedWorkspaces",
                           params={"purge_before": purge_at[1]}).json()
    assert [d["name"] for d in by_group["value"]] == ["a"]
    naive = api.request("GET", path, params={"purge_before": "2030-01-01T00:00:00"})
    error = assert_error(naive, 422, "validation_error")
    assert error["fields"][0]["field"] == "query.purge_before"
    assert_error(api.request("GET", path, params={"purge_before": "soon"}), 422, "validation_error")


# --------------------------------------------------------------------- authentication

def _example_request(route: APIRoute) -> tuple[str, str]:
    path = re.sub(r"\{(\w+)\}", lambda m: "1" if m.group(1) == "task_id" else "x", route.path)
    return sorted(route.methods)[0], PREFIX + path


def _all_routes(api: Api) -> list[APIRoute]:
    return [r for r in api.router.routes if isinstance(r, APIRoute)]


def test_every_route_refuses_a_missing_or_wrong_token(api: Api) -> None:
    api.create("x")  # something to read, were the auth check missing
    routes = _all_routes(api)
    # 19 + the live listings, cleanup claim and fail, policy and me (v2), and the
    # protections' 11 (holds live and in the bin, liens, purge protection, auto-delete)
    assert len(routes) == 36
    for route in routes:
        method, path = _example_request(route)
        for headers in ({}, {"Authorization": "Bearer nope"},
                        {"Authorization": "Basic dG9rLWFsaWNlOg=="}):
            response = api.client.request(method, path, headers=headers)
            assert_error(response, 401, "unauthenticated")
            assert response.headers["WWW-Authenticate"] == "Bearer", (method, path)


def test_a_server_without_tokens_refuses_everyone(open_engine: Callable[[str], rb.Engine]) -> None:
    app = FastAPI()
    app.include_router(create_router(open_engine("default"), RefuseAll()))
    client = TestClient(app)
    error = assert_error(client.get(ws_path("x"), headers=PLATFORM), 401, "unauthenticated")
    assert "--tokens" in error["message"]


def test_authentication_is_a_dependency_tests_can_override(api: Api) -> None:
    api.create("ws1", ALICE)

    api.app.dependency_overrides[api.auth] = lambda: TenantPrincipal("alice",
                                                                     subscriptions=[SUB])
    try:
        # No Authorization header at all: the override decides who calls.
        assert api.client.delete(PREFIX + ws_path("ws1")).status_code == 200
    finally:
        api.app.dependency_overrides.clear()
    assert api.client.get(PREFIX + ws_path("ws1")).status_code == 401


def test_an_authenticator_that_names_no_subscriptions_fails_closed(api: Api) -> None:
    api.create("ws1", ALICE)
    api.app.dependency_overrides[api.auth] = lambda: rb.Principal("alice")
    try:
        error = assert_error(api.client.get(PREFIX + ws_path("ws1")), 403, "permission_denied")
        assert "subscription 'sub-1'" in error["message"]
        assert_error(api.client.delete(PREFIX + ws_path("ws1")), 403, "permission_denied")
    finally:
        api.app.dependency_overrides.clear()
    assert api.request("GET", ws_path("ws1")).status_code == 200


def test_tenant_roles_come_from_the_token(api: Api) -> None:
    api.create("ws1", ALICE)
    api.delete("ws1", ALICE)
    # root has the tenant role admin, which the default policy lets purge.
    assert api.request("DELETE", deleted_path("ws1"), ADMIN).status_code == 200


def test_endpoints_run_in_the_threadpool(api: Api) -> None:
    for route in _all_routes(api):
        assert not inspect.iscoroutinefunction(route.endpoint), route.path


def test_engine_closed_is_503(api: Api) -> None:
    api.engine.close()
    assert_error(api.request("GET", ws_path("ws1")), 503, "engine_closed")


# -------------------------------------------------------------------- token tables

def test_token_file_yaml_and_json(tmp_path: Path) -> None:
    yaml_file = tmp_path / "tokens.yaml"
    yaml_file.write_text('"t1": {principal: alice, subscriptions: [sub-1, sub-2], '
                         'roles: [admin]}\n'
                         '"t2": {principal: svc, platform: true}\n'
                         '"t4": {principal: ops, subscriptions: "*"}\n')
    grants = load_tokens(yaml_file)
    assert grants["t1"].principal() == TenantPrincipal("alice", roles={"admin"},
                                                       subscriptions={"sub-1", "sub-2"})
    assert grants["t1"].principal() != rb.Principal("alice", roles={"admin"})
    assert grants["t1"].subscriptions == frozenset({"sub-1", "sub-2"})
    assert grants["t1"].may_act_in("sub-2") and not grants["t1"].may_act_in("sub-3")
    assert grants["t2"].principal() is None and grants["t2"].may_act_in("anything")
    assert grants["t4"].subscriptions == "*" and grants["t4"].may_act_in("sub-9")
    json_file = tmp_path / "tokens.json"
    json_file.write_text('{"t3": {"principal": "bob", "subscriptions": ["sub-1"]}}')
    bob = load_tokens(json_file)["t3"].principal()
    assert isinstance(bob, rb.Principal) and bob.id == "bob" and bob.subscriptions == {"sub-1"}
    assert repr(bob) == "TenantPrincipal('bob', roles={}, subscriptions={'sub-1'})"


@pytest.mark.parametrize(("text", "message"), [
    ("[1, 2]", "expected a mapping"),
    ('"t": {roles: [a]}', "'principal' must be a non-empty string"),
    ('"t": {principal: a, roles: admin}', "'roles' must be a list"),
    ('"t": {principal: a, platform: yes-please}', "'platform' must be true or false"),
    ('"t": {principal: a, platform: true, roles: [x]}', "remove its 'roles'"),
    ('"t": {principal: a, colour: red}', "unknown key 'colour'"),
    ("123: {principal: a}", "a token must be a non-empty string"),
    ('"a b": {principal: a}', "whitespace"),
    ('"t": {principal: a', "tokens.yaml:1:"),
])
def test_bad_token_tables_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(TokenConfigError, match=re.escape(message)):
        parse_tokens(text, "tokens.yaml")


def test_unreadable_token_file(tmp_path: Path) -> None:
    with pytest.raises(TokenConfigError, match="cannot read the token file"):
        load_tokens(tmp_path / "missing.yaml")


def test_tokens_from_the_environment() -> None:
    auth = BearerTokenAuth.from_env(
        {"RECYCLEBIN_TOKENS": '{"t": {"principal": "a", "subscriptions": "*"}}'})
    assert auth is not None and len(auth) == 1
    assert BearerTokenAuth.from_env({}) is None


# ------------------------------------------------------------ cloud-workstation route

def test_workstation_delete_answers_204(make_api: Callable[[str], Api]) -> None:
    api = make_api("cloud-workstation")
    ws = api.create("ws1", components=[{"kind": "persistent_volumes", "ref": "vol-1"},
                                       {"kind": "persistent_volumes", "ref": "vol-2",
                                        "standalone": True}])
    api.request("POST", ws_path("ws1") + "/stop")
    response = api.request("GET", f"/workstations/{ws['id']}/delete")
    assert response.status_code == 204 and response.content == b""
    assert_error(api.request("GET", ws_path("ws1")), 404, "workspace_not_found")
    # Persistent volumes are deleted unless standalone.
    assert [t["ref"] for t in api.request("GET", "/cleanupTasks").json()] == ["vol-1"]


def test_workstation_delete_with_prefer_returns_the_delete_object(
        make_api: Callable[[str], Api]) -> None:
    api = make_api("cloud-workstation")
    ws = api.create("ws1")
    api.request("POST", ws_path("ws1") + "/stop")
    response = api.request("GET", f"/workstations/{ws['id']}/delete",
                           {**PLATFORM, "Prefer": "return=representation"})
    assert response.status_code == 200
    assert response.json() == {"id": ws["id"], "status": "deleted"}
    assert response.headers["Preference-Applied"] == "return=representation"


def test_workstation_delete_errors(make_api: Callable[[str], Api]) -> None:
    api = make_api("cloud-workstation")
    ws = api.create("ws1", ALICE)
    path = f"/workstations/{ws['id']}/delete"
    assert_error(api.request("GET", path), 400, "workspace_not_stopped")
    assert_error(api.request("GET", path, {}), 401, "unauthenticated")
    assert_error(api.request("GET", "/workstations/ws-12345/delete"), 404, "workspace_not_found")
    api.request("POST", ws_path("ws1") + "/stop")
    assert_error(api.request("GET", path, BOB), 403, "permission_denied")
    assert api.request("GET", path, ALICE).status_code == 204
    assert_error(api.request("GET", path), 404, "workspace_not_found")


# --------------------------------------------------------------------------- OpenAPI

def test_openapi_describes_every_route_parameter_and_error(api: Api) -> None:
    schema = api.client.get("/openapi.json").json()
    operations = [(path, method, op) for path, ops in schema["paths"].items()
                  for method, op in ops.items()]
    # 19 + the live listings, cleanup claim and fail, policy and me (v2), and the protections
    assert len(operations) == len(_all_routes(api)) == 36
    assert "ErrorResponse" in schema["components"]["schemas"]
    assert schema["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    for path, method, op in operations:
        assert op.get("summary"), (path, method)
        for status in ("401", "422", "503"):
            ref = op["responses"][status]["content"]["application/json"]["schema"]["$ref"]
            assert ref.endswith("/ErrorResponse"), (path, method, status)
        declared = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
        assert declared == set(re.findall(r"\{(\w+)\}", path)), (path, method)
    delete = schema["paths"][f"{PREFIX}/subscriptions/{{subscription_id}}/resourceGroups/"
                             f"{{resource_group}}/workspaces/{{name}}"]["delete"]
    assert {p["name"] for p in delete["parameters"] if p["in"] == "query"} == {
        "permanently_delete", "delete_dependent_resources", "confirm_name", "no_wait",
        "dry_run"}
    assert {"200", "202", "400", "403", "404", "409", "412"} <= set(delete["responses"])
    compat = schema["paths"][f"{PREFIX}/workstations/{{workstation_id}}/delete"]["get"]
    assert {"204", "200", "400", "401", "404"} <= set(compat["responses"])


# ------------------------------------------------------------------- the server app

def test_create_app_serves_under_a_prefix_with_its_lifespan(tmp_path: Path) -> None:
    app = create_app(tmp_path / "rb.db", "default", tokens=TOKENS, reaper_interval=None,
                     prefix="/api")
    with TestClient(app) as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        assert client.put("/api" + ws_path("ws1"), headers=ALICE).status_code == 201
        assert client.get("/api" + ws_path("ws1"), headers=ALICE).status_code == 200
        error = assert_error(client.get("/nowhere", headers=ALICE), 404, "not_found")
        assert error["message"]
        assert_error(client.post("/healthz"), 405, "method_not_allowed")
        assert app.state.engine.closed is False
        assert client.get("/docs").status_code == 200
        assert client.get("/api/_testing/clock", headers=PLATFORM).status_code == 404
    assert app.state.engine.closed is True


def test_create_app_reads_a_token_file(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens.yaml"
    tokens.write_text('"secret-1": {principal: alice, subscriptions: [sub-1]}\n')
    with TestClient(create_app(":memory:", tokens=tokens, reaper_interval=None)) as client:
        assert client.put(ws_path("ws1"), headers={"Authorization": "Bearer secret-1"}
                          ).status_code == 201
        assert client.get(ws_path("ws1"), headers=ALICE).status_code == 401


def test_create_app_tokens_from_environment_or_refuse_all(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("RECYCLEBIN_TOKENS",
                       '{"env-tok": {"principal": "alice", "subscriptions": ["sub-1"]}}')
    with TestClient(create_app(":memory:", reaper_interval=None)) as client:
        assert client.put(ws_path("ws1"), headers={"Authorization": "Bearer env-tok"}
                          ).status_code == 201
    monkeypatch.delenv("RECYCLEBIN_TOKENS")
    with caplog.at_level(logging.WARNING, logger="recyclebin.server"):
        app = create_app(":memory:", reaper_interval=None)
    assert "every request will be refused" in caplog.text
    with TestClient(app) as client:
        assert_error(client.get(ws_path("ws1"), headers=PLATFORM), 401, "unauthenticated")


def test_create_app_takes_any_authenticator_and_hides_unexpected_errors(
        auth: BearerTokenAuth) -> None:
    app = create_app(":memory:", authenticate=auth, reaper_interval=None)

    def broken() -> rb.Principal | None:
        raise RuntimeError("a bug")

    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.put(ws_path("ws1"), headers=ALICE).status_code == 201
        app.dependency_overrides[auth] = broken
        error = assert_error(client.get(ws_path("ws1"), headers=ALICE), 500, "internal_error")
        assert "a bug" not in error["message"]
        app.dependency_overrides.clear()
    with pytest.raises(ValueError, match="not both"):
        create_app(":memory:", tokens=TOKENS, authenticate=auth)


def test_create_app_fails_at_once_on_a_bad_policy() -> None:
    with pytest.raises(rb.PolicyError):
        create_app(":memory:", "no-such-policy", tokens=TOKENS)
    with pytest.raises(ValueError, match="reaper_interval"):
        create_app(":memory:", tokens=TOKENS, reaper_interval=-1)


def test_manual_clock_routes_and_reaper_in_the_lifespan(caplog: pytest.LogCaptureFixture) -> None:
    clock = rb.ManualClock(START)
    app = create_app(":memory:", tokens=TOKENS, reaper_interval=0.05, clock=clock)
    with caplog.at_level(logging.INFO, logger="recyclebin"), TestClient(app) as client:
        assert client.get("/_testing/clock", headers=PLATFORM).json() == {"now": iso_z(START)}
        assert_error(client.get("/_testing/clock", headers=ALICE), 403, "permission_denied")
        assert_error(client.post("/_testing/clock/advance", headers=PLATFORM,
                                 json={"seconds": -1}), 422, "validation_error")
        client.put(ws_path("ws1"), headers=PLATFORM,
                   json={"soft_delete_retention_days": 1,
                         "components": [{"kind": "notebooks", "ref": "nb-1"}]})
        client.delete(ws_path("ws1"), headers=PLATFORM)
        moved = client.post("/_testing/clock/advance", headers=PLATFORM,
                            json={"seconds": 2 * 86400}).json()
        assert moved == {"now": iso_z(START + timedelta(days=2))}
        tasks: list[Any] = []
        for _ in range(200):  # bounded: the reaper runs every 50 ms
            tasks = client.get("/cleanupTasks", headers=PLATFORM).json()
            if tasks:
                break
            time.sleep(0.05)
        assert [t["ref"] for t in tasks] == ["nb-1"]
        reaper = app.state.reaper
        assert reaper.running and reaper.purged_total == 1
        back = client.put("/_testing/clock", headers=PLATFORM,
                          json={"now": "2026-01-01T00:00:00Z"}).json()
        assert back == {"now": iso_z(START)}
    assert not reaper.running
    assert f"purge reaper: purged {SUB}/{RG}/ws1" in caplog.text
    assert "purge reaper stopped" in caplog.text


# ------------------------------------------------------------------------ the reaper

def test_reaper_runs_logs_and_stops(open_engine: Callable[[str], rb.Engine],
                                    clock: rb.ManualClock,
                                    caplog: pytest.LogCaptureFixture) -> None:
    engine = open_engine("default")
    rb.Workspace.create(SUB, RG, "ws1", soft_delete_retention_days=1, engine=engine).delete()
    clock.advance(timedelta(days=1))

    async def scenario() -> PurgeReaper:
        reaper = PurgeReaper(engine, 3600)
        reaper.start()
        with pytest.raises(RuntimeError, match="already running"):
            reaper.start()
        for _ in range(100):  # the first run is immediate
            if reaper.runs:
                break
            await asyncio.sleep(0.01)
        await asyncio.wait_for(reaper.stop(), timeout=5)  # does not wait for the hour
        return reaper

    with caplog.at_level(logging.INFO, logger="recyclebin.reaper"):
        reaper = asyncio.run(scenario())
    assert reaper.runs == 1 and reaper.purged_total == 1 and not reaper.running
    assert reaper.last_report is not None and reaper.last_report.purged == [(SUB, RG, "ws1")]
    assert "purge reaper: purged sub-1/rg-1/ws1" in caplog.text


def test_reaper_survives_errors_and_stops_on_a_closed_engine(
        open_engine: Callable[[str], rb.Engine], caplog: pytest.LogCaptureFixture) -> None:
    engine = open_engine("default")
    engine.close()

    async def scenario() -> PurgeReaper:
        reaper = PurgeReaper(engine, 0.01)
        reaper.start()
        for _ in range(100):
            if not reaper.running:
                break
            await asyncio.sleep(0.01)
        await reaper.stop()
        return reaper

    reaper = asyncio.run(scenario())
    assert reaper.last_error == "engine closed" and reaper.runs == 1
    with pytest.raises(ValueError, match="interval"):
        PurgeReaper(engine, 0)
