"""The REST plugin's protection routes: legal holds (live and in the bin), liens, purge
protection, auto-deletion, and the create modes, with the engine's error mapping."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import recyclebin as rb
from rest_helpers import ALICE, BOB, PLATFORM, START, SUB, deleted_path, iso_z, ws_path
from test_rest import Api, api, assert_error, auth, clock, make_api, open_engine  # noqa: F401 (fixtures)


def holds_of(api: Api, path: str, headers: dict[str, str] = PLATFORM) -> list[dict[str, Any]]:
    response = api.request("GET", path + "/holds", headers)
    assert response.status_code == 200, response.text
    return list(response.json())


def test_holds_on_a_live_and_a_soft_deleted_workspace(api: Api) -> None:
    created = api.create("ws1", ALICE)
    placed = api.request("POST", ws_path("ws1") + "/holds", ALICE, json={"reason": "case 17"})
    assert placed.status_code == 201, placed.text
    hold = placed.json()
    assert set(hold) == {"id", "workspace_id", "reason", "placed_by", "placed_at"}
    assert (hold["workspace_id"], hold["reason"], hold["placed_by"]) == (created["id"], "case 17", "alice")
    assert hold["placed_at"] == iso_z(START)
    assert holds_of(api, ws_path("ws1")) == [hold]
    error = assert_error(api.delete("ws1", permanently_delete="true"), 409, "workspace_held")
    assert "case 17" in error["message"]
    assert api.delete("ws1").status_code == 200  # soft delete works as usual
    assert holds_of(api, deleted_path("ws1")) == [hold]
    listed = api.request("GET", f"/subscriptions/{SUB}/deletedWorkspaces").json()["value"]
    assert listed[0]["held"] is True
    assert_error(api.request("DELETE", deleted_path("ws1")), 409, "workspace_held")
    second = api.request("POST", deleted_path("ws1") + "/holds", json={"reason": "audit"}).json()
    assert second["placed_by"] is None  # the platform
    assert api.request("DELETE", deleted_path("ws1") + f"/holds/{hold['id']}").status_code == 204
    assert api.request("DELETE", deleted_path("ws1") + f"/holds/{second['id']}").status_code == 204
    assert api.request("GET", deleted_path("ws1")).json()["held"] is False
    assert api.request("DELETE", deleted_path("ws1")).status_code == 200  # purged now


def test_hold_errors(api: Api) -> None:
    api.create("ws1", ALICE)
    api.create("ws2", ALICE)
    other = api.request("POST", ws_path("ws2") + "/holds", json={"reason": "ws2's"}).json()
    # A hold of another workspace is not this one's to release.
    assert_error(api.request("DELETE", ws_path("ws1") + f"/holds/{other['id']}"), 404, "not_found")
    assert_error(api.request("DELETE", ws_path("ws1") + "/holds/no-such-hold"), 404, "not_found")
    assert_error(api.request("POST", ws_path("nope") + "/holds", json={"reason": "r"}), 404,
                 "workspace_not_found")
    assert_error(api.request("POST", ws_path("ws1") + "/holds", json={"reason": ""}), 422,
                 "validation_error")
    assert_error(api.request("POST", ws_path("ws1") + "/holds", json={}), 422, "validation_error")
    assert_error(api.request("POST", ws_path("ws1") + "/holds", json={"reason": "a\u0000b"}), 400,
                 "invalid_argument")
    assert_error(api.request("GET", deleted_path("ws1") + "/holds"), 404, "workspace_not_found")
    # bob is not a member: holds are the owner's (fail closed).
    assert_error(api.request("POST", ws_path("ws1") + "/holds", BOB, json={"reason": "mine"}), 403,
                 "permission_denied")


def test_liens(api: Api) -> None:
    api.create("ws1", ALICE)
    added = api.request("POST", ws_path("ws1") + "/liens", ALICE,
                        json={"origin": "billing-service", "reason": "open invoice"})
    assert added.status_code == 201, added.text
    lien = added.json()
    assert set(lien) == {"id", "workspace_id", "origin", "reason", "created_at"}
    assert api.request("GET", ws_path("ws1") + "/liens").json() == [lien]
    for params in ({}, {"permanently_delete": "true"}, {"dry_run": "true"}):
        error = assert_error(api.delete("ws1", **params), 412, "precondition_failed")
        assert "billing-service" in error["message"] and "open invoice" in error["message"]
    assert_error(api.request("POST", ws_path("ws1") + "/liens", json={"origin": "o"}), 422,
                 "validation_error")
    assert_error(api.request("DELETE", ws_path("ws1") + "/liens/no-such-lien"), 404, "not_found")
    assert api.request("DELETE", ws_path("ws1") + f"/liens/{lien['id']}", ALICE).status_code == 204
    assert api.request("GET", ws_path("ws1") + "/liens").json() == []
    assert api.delete("ws1").status_code == 200
    # A soft-deleted workspace takes no lien (the live route says recover or purge).
    assert_error(api.request("POST", ws_path("ws1") + "/liens", json={"origin": "o", "reason": "r"}),
                 409, "operation_not_allowed")


def test_purge_protection(api: Api, clock: rb.ManualClock) -> None:
    api.create("ws1", ALICE, soft_delete_retention_days=3)
    on = api.request("POST", ws_path("ws1") + "/purgeProtection", ALICE)
    assert on.status_code == 200, on.text
    assert on.json()["purge_protection"] is True
    error = assert_error(api.delete("ws1", permanently_delete="true"), 409, "operation_not_allowed")
    assert "purge protection" in error["message"]
    purge_at = api.delete("ws1").json()["purge_at"]
    error = assert_error(api.request("DELETE", deleted_path("ws1")), 409, "operation_not_allowed")
    assert purge_at in error["message"]
    born = api.create("born", purge_protection=True)
    assert born["purge_protection"] is True
    error = assert_error(api.request("PUT", ws_path("cmk"), json={"cmk_encrypted": True,
                                                                  "purge_protection": True}),
                         409, "operation_not_allowed")
    assert "customer-managed key" in error["message"]
    assert_error(api.request("PUT", ws_path("x"), json={"purge_protection": "yes"}), 422,
                 "validation_error")
    clock.advance(timedelta(days=3))
    assert api.request("POST", "/purgeExpired").json()["purged"] == [
        {"subscription_id": SUB, "resource_group": "rg-1", "name": "ws1"}]


def test_auto_delete(api: Api, clock: rb.ManualClock) -> None:
    at = START + timedelta(hours=2)
    created = api.create("tmp", auto_delete_at=iso_z(at))
    assert created["auto_delete_at"] == iso_z(at)
    api.create("keep", ALICE)
    later = api.request("PUT", ws_path("keep") + "/autoDelete", ALICE, json={"at": iso_z(at)})
    assert later.status_code == 200 and later.json()["auto_delete_at"] == iso_z(at)
    cancel = api.request("PUT", ws_path("keep") + "/autoDelete", ALICE, json={"at": None})
    assert cancel.json()["auto_delete_at"] is None
    assert_error(api.request("PUT", ws_path("keep") + "/autoDelete", json={"at": "2026-01-02T00:00:00"}),
                 422, "validation_error")  # no UTC offset
    assert_error(api.request("PUT", ws_path("keep") + "/autoDelete", json={}), 422, "validation_error")
    assert_error(api.request("PUT", ws_path("keep") + "/autoDelete", json={"at": "0001-01-01T00:00:00+14:00"}),
                 400, "invalid_argument")  # before 0001-01-01 in UTC: refused, never a 500
    clock.set(at - timedelta(microseconds=1))
    assert api.request("POST", "/purgeExpired").json()["auto_deleted"] == []
    clock.set(at)
    report = api.request("POST", "/purgeExpired").json()
    assert report["auto_deleted"] == [{"subscription_id": SUB, "resource_group": "rg-1", "name": "tmp"}]
    assert report["auto_delete_refused"] == []
    assert api.request("GET", deleted_path("tmp")).status_code == 200


def test_auto_delete_refusals_are_reported(make_api: Any) -> None:
    api = make_api("cloud-workstation")
    rules = api.engine.policy.rules()
    assert rules["preconditions"]["require_stopped"] is True  # the workstation policy
    api.create("running", auto_delete_at=iso_z(START))
    report = api.request("POST", "/purgeExpired").json()
    assert report["auto_delete_refused"] == [{"subscription_id": SUB, "resource_group": "rg-1",
                                              "name": "running", "code": "workspace_not_stopped"}]
    assert api.request("GET", ws_path("running")).status_code == 200


def test_create_modes(api: Api) -> None:
    first = api.create("ws1", soft_delete_retention_days=3)
    api.delete("ws1")
    assert_error(api.request("PUT", ws_path("ws1"), json={}), 409, "name_reserved")
    back = api.request("PUT", ws_path("ws1"), json={"if_deleted": "recover",
                                                    "soft_delete_retention_days": 9})
    assert back.status_code == 201, back.text
    assert back.json()["id"] == first["id"] and back.json()["soft_delete_retention_days"] == 3
    api.delete("ws1")
    fresh = api.request("PUT", ws_path("ws1"), json={"if_deleted": "purge"})
    assert fresh.status_code == 201 and fresh.json()["id"] != first["id"]
    assert_error(api.request("GET", deleted_path("ws1")), 404, "workspace_not_found")
    assert_error(api.request("PUT", ws_path("ws2"), json={"if_deleted": "replace"}), 422,
                 "validation_error")
    openapi = api.client.get("/openapi.json").json()
    create_body = openapi["components"]["schemas"]["WorkspaceCreate"]["properties"]
    assert set(create_body["if_deleted"]["enum"]) == {"fail", "recover", "purge"}
