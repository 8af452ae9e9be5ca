"""Issue 10 over REST, on the whole server app (recyclebin.server.create_app): tenant-scoped
tokens (403 on every route of a subscription the token does not name, reads included, and
nothing of that tenant revealed), platform-only operator routes, strangers who cannot take a
workspace over, integers beyond 64 bits, request bodies (authentication before the body,
413 above the limit, streamed or not, non-UTF-8), hostile text, strict body types, OPTIONS
and 405, and an OpenAPI document that lists every status and code."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI

import recyclebin as rb
from recyclebin.auth import TokenConfigError, load_tokens, parse_tokens
from recyclebin.server import create_app
from rest_helpers import (
    ADMIN,
    ALICE,
    BOB,
    EVE,
    OPS,
    PLATFORM,
    RG,
    START,
    SUB,
    SUB2,
    TOKENS,
    TestClient,
    deleted_path,
    ws_path,
)

LIMIT = 4096  # the test apps' max_body_bytes


@pytest.fixture
def clock() -> rb.ManualClock:
    return rb.ManualClock(START)


def _app(policy: str, clock: rb.ManualClock) -> FastAPI:
    return create_app(":memory:", policy, tokens=TOKENS, reaper_interval=None, clock=clock,
                      max_body_bytes=LIMIT)


@pytest.fixture
def app(clock: rb.ManualClock) -> Iterator[FastAPI]:
    application = _app("default", clock)
    yield application
    application.state.engine.close()


@pytest.fixture
def client(app: FastAPI) -> TestClient:
    return TestClient(app)


def assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and body["error"]["code"] == code, body
    assert body["error"]["message"]
    return dict(body["error"])


def _create(client: TestClient, name: str, headers: dict[str, str] = ALICE,
            sub: str = SUB, **body: Any) -> dict[str, Any]:
    response = client.put(ws_path(name, sub=sub), headers=headers, json=body or None)
    assert response.status_code == 201, response.text
    return dict(response.json())


def _audit(client: TestClient) -> list[dict[str, Any]]:
    return list(client.get("/auditLog", headers=PLATFORM).json())


# ------------------------------------------------------------------ token files

@pytest.mark.parametrize(("text", "message"), [
    ('"s3cr3t-token": {principal: alice, roles: [admin]}',
     "(principal 'alice'): a tenant token must name its 'subscriptions'"),
    ('"s3cr3t-token": {principal: alice, subscriptions: []}', "non-empty list"),
    ('"s3cr3t-token": {principal: alice, subscriptions: sub-1}', "non-empty list"),
    ('"s3cr3t-token": {principal: alice, subscriptions: ["*"]}', 'subscriptions: "*" (not in'),
    ('"s3cr3t-token": {principal: alice, subscriptions: [sub-1, ""]}', "non-empty strings"),
    ('"s3cr3t-token": {principal: alice, subscriptions: ["a\\0b"]}', "NUL byte"),
    ('"s3cr3t-token": {principal: svc, platform: true, subscriptions: "*"}',
     "remove its 'subscriptions'"),
    ('"s3cr3t-token": {principal: "", subscriptions: "*"}', "'principal' must be a non-empty"),
    ('"s3cr3t-token": {principal: "  ", subscriptions: "*"}', "'principal' must be a non-empty"),
    ('"s3cr3t-token": {principal: "a\\0b", subscriptions: "*"}', "NUL byte"),
    ('"s3cr3t-token": {principal: a, subscriptions: "*", roles: ["r\\0"]}', "NUL byte"),
])
def test_a_bad_tenant_entry_names_the_principal_never_the_token(text: str, message: str) -> None:
    with pytest.raises(TokenConfigError, match=re.escape(message)) as caught:
        parse_tokens(text, "tokens.yaml")
    assert "s3cr3t-token" not in str(caught.value)


def test_a_token_file_that_is_not_utf8_is_a_configuration_error(tmp_path: Path) -> None:
    path = tmp_path / "tokens.yaml"
    path.write_bytes(b'"t": {principal: \xff, subscriptions: "*"}\n')
    with pytest.raises(TokenConfigError, match="not UTF-8"):
        load_tokens(path)


def test_create_app_refuses_a_tenant_token_without_subscriptions(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens.yaml"
    tokens.write_text('"very-secret": {principal: carol, roles: [admin]}\n')
    with pytest.raises(TokenConfigError, match="principal 'carol'") as caught:
        create_app(tmp_path / "rb.db", tokens=tokens, reaper_interval=None)
    assert "very-secret" not in str(caught.value)
    assert not (tmp_path / "rb.db").exists()  # refused before the store is opened


# ------------------------------------------------------------------- tenants apart

def _subscription_routes(app: FastAPI) -> list[tuple[str, str]]:
    """(method, path template) of every documented route under /subscriptions/{...}."""
    routes = []
    for path, operations in app.openapi()["paths"].items():
        if path.startswith("/subscriptions/{subscription_id}"):
            routes.extend((method.upper(), path) for method in operations)
    return routes


def _fill(template: str, name: str, workspace_id: str) -> str:
    values = {"subscription_id": SUB, "resource_group": RG, "name": name,
              "principal_id": "eve", "workspace_id": workspace_id,
              "hold_id": "hold-0", "lien_id": "lien-0",  # version 2: protections
              # the ARM routes' linked resources (a workspace's storage account, ...)
              "namespace": "Microsoft.Storage", "resource_type": "storageAccounts",
              "resource_name": name}
    return re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], template)


def _body(method: str, template: str) -> Any:
    if template.endswith("/members/{principal_id}") and method == "PUT":
        return {"role": "owner"}
    bodies = {"/holds": {"reason": "eve's"}, "/liens": {"origin": "eve", "reason": "eve's"},
              "/autoDelete": {"at": None}}
    for suffix, body in bodies.items():
        if template.endswith(suffix) and method in ("POST", "PUT"):
            return body
    return None


def test_every_subscription_route_refuses_a_token_of_another_tenant_revealing_nothing(
        app: FastAPI, client: TestClient) -> None:
    live = _create(client, "live", components=[{"kind": "notebooks", "ref": "nb-1"}])
    gone = _create(client, "gone")
    client.delete(ws_path("gone"), headers=ALICE)
    # eve is an admin, and even an owner of both workspaces, but only in sub-2.
    client.put(ws_path("live") + "/members/eve", headers=PLATFORM, json={"role": "owner"})
    routes = _subscription_routes(app)
    assert len(routes) >= 14, routes  # every one, whenever it was added
    before = _audit(client)
    for method, template in routes:
        answers = []
        for name, workspace_id in (("live", live["id"]), ("gone", gone["id"]),
                                   ("never-was", "ws-0000")):
            response = client.request(method, _fill(template, name, workspace_id),
                                      headers=EVE, json=_body(method, template))
            error = assert_error(response, 403, "permission_denied")
            assert "subscription 'sub-1'" in error["message"], (method, template)
            answers.append(response.json())
        # The same answer whether the workspace is live, in the bin, or never existed.
        assert answers[0] == answers[1] == answers[2], (method, template, answers)
    # Nothing was done, nothing was even looked at: no audit record, both still there.
    assert _audit(client) == before
    assert client.get(ws_path("live"), headers=ALICE).status_code == 200
    assert client.get(deleted_path("gone"), headers=ALICE).status_code == 200


def test_a_foreign_owner_cannot_delete_or_purge_another_tenants_workspace(
        client: TestClient) -> None:
    _create(client, "ws1")
    client.put(ws_path("ws1") + "/members/eve", headers=PLATFORM, json={"role": "owner"})
    assert_error(client.delete(ws_path("ws1"), headers=EVE,
                               params={"permanently_delete": "true"}), 403, "permission_denied")
    client.delete(ws_path("ws1"), headers=ALICE)
    assert_error(client.delete(deleted_path("ws1"), headers=EVE), 403, "permission_denied")
    assert_error(client.get(f"/subscriptions/{SUB}/deletedWorkspaces", headers=EVE), 403,
                 "permission_denied")
    listed = client.get(f"/subscriptions/{SUB}/deletedWorkspaces", headers=ALICE).json()
    assert [d["name"] for d in listed["value"]] == ["ws1"]


def test_a_token_acts_in_the_subscriptions_it_names(client: TestClient) -> None:
    _create(client, "mine", EVE, sub=SUB2)
    assert client.get(ws_path("mine", sub=SUB2), headers=EVE).status_code == 200
    assert_error(client.get(ws_path("mine", sub=SUB2), headers=ALICE), 403, "permission_denied")
    # A "*" token acts in every tenant, with its roles there.
    for sub in (SUB, SUB2, "sub-3"):
        _create(client, "ops-ws", OPS, sub=sub)
        assert client.get(f"/subscriptions/{sub}/deletedWorkspaces",
                          headers=OPS).status_code == 200
    assert client.delete(ws_path("mine", sub=SUB2), headers=OPS).status_code == 403  # no role
    assert client.delete(deleted_path("nope", sub=SUB2), headers=OPS).status_code == 404


def test_the_workstation_route_checks_the_workspaces_subscription_first(
        app: FastAPI, clock: rb.ManualClock) -> None:
    workstation_app = _app("cloud-workstation", clock)
    try:
        client = TestClient(workstation_app)
        ws = _create(client, "ws1")
        client.post(ws_path("ws1") + "/stop", headers=ALICE)
        foreign = client.get(f"/workstations/{ws['id']}/delete", headers=EVE)
        unknown = client.get("/workstations/ws-does-not-exist/delete", headers=EVE)
        assert_error(foreign, 403, "permission_denied")
        assert foreign.json()["error"]["message"].replace(ws["id"], "ID") == \
            unknown.json()["error"]["message"].replace("ws-does-not-exist", "ID")
        assert "sub-1" not in foreign.text and "ws1" not in foreign.text
        assert client.get(ws_path("ws1"), headers=ALICE).status_code == 200
        # A "*" token and the platform get the engine's answers; alice deletes her own.
        assert_error(client.get("/workstations/ws-does-not-exist/delete", headers=OPS), 404,
                     "workspace_not_found")
        assert client.get(f"/workstations/{ws['id']}/delete", headers=ALICE).status_code == 204
    finally:
        workstation_app.state.engine.close()


@pytest.mark.parametrize(("method", "path"), [
    ("POST", "/purgeExpired"), ("GET", "/cleanupTasks"), ("POST", "/cleanupTasks/1/complete"),
    ("GET", "/auditLog"), ("GET", f"/subscriptions/{SUB}/deletableWorkspaces"),
    ("DELETE", f"/subscriptions/{SUB}/deletableWorkspaces/ws-1")])
def test_operator_routes_are_for_the_platform_only(client: TestClient, method: str,
                                                   path: str) -> None:
    for headers in (OPS, ADMIN):  # an admin of every tenant, an admin of this one
        error = assert_error(client.request(method, path, headers=headers), 403,
                             "permission_denied")
        assert "platform" in error["message"]
    assert client.request(method, path, headers=PLATFORM).status_code != 403


# ------------------------------------------------ strangers cannot take a workspace over

def test_a_stranger_cannot_grant_revoke_delete_or_purge(client: TestClient) -> None:
    """Issue 10, item 1. Needs the engine's fail-closed permissions (grant and revoke
    owner-only unless the policy lists them): bob has no role on alice's workspace."""
    _create(client, "ws1")
    for method, path, body in [
            ("PUT", ws_path("ws1") + "/members/bob", {"role": "owner"}),
            ("PUT", ws_path("ws1") + "/members/mallory", {"role": "owner"}),
            ("DELETE", ws_path("ws1") + "/members/alice", None),
            ("DELETE", ws_path("ws1"), None)]:
        assert_error(client.request(method, path, headers=BOB, json=body), 403,
                     "permission_denied")
    assert client.delete(ws_path("ws1"), headers=ALICE).status_code == 200
    assert_error(client.delete(deleted_path("ws1"), headers=BOB), 403, "permission_denied")
    assert client.get(deleted_path("ws1"), headers=ALICE).status_code == 200
    outcomes = [(r["action"], r["outcome"], r["principal_id"]) for r in _audit(client)
                if r["principal_id"] == "bob"]
    assert outcomes and all(outcome == "refused:permission_denied"
                            for _, outcome, _ in outcomes), outcomes


# ------------------------------------------------------------ integers beyond 64 bits

@pytest.mark.parametrize("task_id", ["9223372036854775807", "9223372036854775808", str(2**70)])
def test_a_task_id_beyond_64_bits_is_not_found(client: TestClient, task_id: str) -> None:
    assert_error(client.post(f"/cleanupTasks/{task_id}/complete", headers=PLATFORM), 404,
                 "cleanup_task_not_found")
    assert client.get("/healthz").status_code == 200


def test_a_retention_beyond_64_bits_is_invalid_retention(client: TestClient) -> None:
    for days in (2**63, 2**70, -(2**70)):
        error = assert_error(client.put(ws_path("ws1"), headers=ALICE,
                                        json={"soft_delete_retention_days": days}),
                             400, "invalid_retention")
        assert "1..14" in error["message"]
    assert_error(client.get(f"/subscriptions/{SUB}/deletedWorkspaces", headers=ALICE,
                            params={"limit": str(2**70)}), 422, "validation_error")


# ---------------------------------------------------------------- request bodies

def _asgi_call(app: FastAPI, method: str, path: str, headers: dict[str, str],
               chunks: list[bytes]) -> tuple[int, dict[str, str], bytes, int]:
    """Calls the app as a server would: (status, headers, body, body chunks it read)."""
    read = 0

    async def receive() -> dict[str, Any]:
        nonlocal read
        if read < len(chunks):
            read += 1
            return {"type": "http.request", "body": chunks[read - 1],
                    "more_body": read < len(chunks)}
        await asyncio.sleep(3600)  # a client that stopped sending: never reached here
        return {"type": "http.disconnect"}

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": method, "scheme": "http", "path": path, "raw_path": path.encode(),
             "root_path": "", "query_string": b"", "server": ("testserver", 80),
             "client": ("127.0.0.1", 1234),
             "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()]}
    asyncio.run(asyncio.wait_for(app(scope, receive, send), timeout=10))
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    response_headers = {k.decode(): v.decode() for k, v in start["headers"]}
    return start["status"], response_headers, body, read


HUGE = str(100 * 1024 * 1024)  # 100 MB announced; only one small chunk is ever there


def test_a_body_without_a_token_is_refused_before_a_byte_is_read(app: FastAPI) -> None:
    for headers in ({"content-length": HUGE}, {"transfer-encoding": "chunked"},
                    {"content-length": "10", "authorization": "Bearer nope"}):
        status, response_headers, body, read = _asgi_call(
            app, "PUT", ws_path("ws1"), {"content-type": "application/json", **headers},
            [b'{"x": 1}  '])
        assert status == 401, body
        assert b'"unauthenticated"' in body and response_headers["www-authenticate"] == "Bearer"
        assert read == 0


def test_a_body_above_the_limit_is_refused_with_413_before_it_is_read(app: FastAPI) -> None:
    status, _, body, read = _asgi_call(
        app, "PUT", ws_path("ws1"),
        {"content-type": "application/json", "content-length": HUGE, **PLATFORM}, [b"{}"])
    assert status == 413 and b'"payload_too_large"' in body and read == 0
    assert str(LIMIT).encode() in body


def test_a_streamed_body_is_refused_as_soon_as_it_passes_the_limit(app: FastAPI) -> None:
    chunk = b" " * 1024
    chunks = [b'{"components": [' ] + [chunk] * 100 + [b"]}"]
    status, _, body, read = _asgi_call(
        app, "PUT", ws_path("ws1"),
        {"content-type": "application/json", "transfer-encoding": "chunked", **PLATFORM},
        chunks)
    assert status == 413 and b'"payload_too_large"' in body, body
    assert read <= LIMIT // len(chunk) + 2  # stopped at the limit, not at the end
    assert TestClient(app).get(ws_path("ws1"), headers=PLATFORM).status_code == 404


def test_bodies_within_the_limit_work_and_a_bad_length_is_400(app: FastAPI,
                                                              client: TestClient) -> None:
    ref = "r" * (LIMIT - 200)
    created = client.put(ws_path("ws1"), headers=PLATFORM,
                         json={"components": [{"kind": "notebooks", "ref": ref}]})
    assert created.status_code == 201, created.text
    too_big = client.put(ws_path("ws2"), headers=PLATFORM,
                         json={"components": [{"kind": "notebooks", "ref": ref * 2}]})
    assert_error(too_big, 413, "payload_too_large")
    status, _, body, _ = _asgi_call(app, "PUT", ws_path("ws3"),
                                    {"content-length": "ten", **PLATFORM}, [b"{}"])
    assert status == 400 and b'"invalid_request"' in body


def test_max_body_bytes_must_be_positive() -> None:
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="max_body_bytes"):
            create_app(":memory:", tokens=TOKENS, reaper_interval=None,
                       max_body_bytes=bad)  # type: ignore[arg-type]


def test_a_body_that_is_not_utf8_is_a_documented_422(client: TestClient) -> None:
    response = client.put(ws_path("ws1"), headers={**PLATFORM,
                                                   "Content-Type": "application/json"},
                          content=b'{"components": [{"kind": "\xff\xfe", "ref": "x"}]}')
    error = assert_error(response, 422, "validation_error")
    assert "UTF-8" in error["message"] and error["fields"][0]["field"] == "body"


# -------------------------------------------------------------- hostile text over REST

@pytest.mark.parametrize(("path", "shown"), [
    (ws_path("a%00b"), "name 'a\\x00b'"),
    (ws_path("ws", rg="g%00h"), "resource_group 'g\\x00h'"),
    (ws_path("ws", sub="s%00t"), "subscription_id 's\\x00t'"),
])
def test_a_nul_in_a_path_is_400_invalid_argument_shown_whole(client: TestClient, path: str,
                                                              shown: str) -> None:
    headers = OPS if "s%00t" in path else PLATFORM
    error = assert_error(client.put(path, headers=headers), 400, "invalid_argument")
    assert shown in error["message"] and "NUL" in error["message"]
    assert_error(client.get(path, headers=headers), 400, "invalid_argument")


@pytest.mark.parametrize(("component", "shown"), [
    ({"kind": "note\u0000books", "ref": "x"}, "Component.kind 'note\\x00books'"),
    ({"kind": "notebooks", "ref": "a\u0000b"}, "Component.ref 'a\\x00b'"),
    ({"kind": "notebooks", "ref": "a\ud800b"}, "Component.ref 'a\\ud800b'"),
])
def test_hostile_text_in_a_body_is_400_invalid_argument(client: TestClient,
                                                        component: dict[str, str],
                                                        shown: str) -> None:
    # json= cannot carry a lone surrogate; the JSON text escapes it as \ud800.
    text = '{"components": [{"kind": %s, "ref": %s}]}' % (
        _json_str(component["kind"]), _json_str(component["ref"]))
    response = client.put(ws_path("ws1"), headers={**PLATFORM,
                                                   "Content-Type": "application/json"},
                          content=text.encode())
    error = assert_error(response, 400, "invalid_argument")
    assert shown in error["message"]
    assert_error(client.get(ws_path("ws1"), headers=PLATFORM), 404, "workspace_not_found")


def _json_str(value: str) -> str:
    return '"' + "".join(c if 32 <= ord(c) < 127 and c not in '"\\' else f"\\u{ord(c):04x}"
                         for c in value) + '"'


def test_a_nul_in_confirm_name_or_a_query_is_400(client: TestClient) -> None:
    _create(client, "ws1")
    assert_error(client.delete(ws_path("ws1"), headers=ALICE, params={"confirm_name": "w\0"}),
                 400, "invalid_argument")
    assert_error(client.get(f"/subscriptions/{SUB}/deletedWorkspaces", headers=ALICE,
                            params={"cursor": "1.\0"}), 400, "invalid_argument")
    assert client.get(ws_path("ws1"), headers=ALICE).status_code == 200


# ------------------------------------------------------------------- strict bodies

@pytest.mark.parametrize(("body", "field"), [
    ({"soft_delete_retention_days": "3"}, "body.soft_delete_retention_days"),
    ({"soft_delete_retention_days": 3.0}, "body.soft_delete_retention_days"),
    ({"soft_delete_retention_days": True}, "body.soft_delete_retention_days"),
    ({"cmk_encrypted": "true"}, "body.cmk_encrypted"),
    ({"cmk_encrypted": 1}, "body.cmk_encrypted"),
    ({"components": [{"kind": "notebooks", "ref": 7}]}, "body.components.0.ref"),
    ({"components": [{"kind": "notebooks", "ref": "x", "standalone": "yes"}]},
     "body.components.0.standalone"),
])
def test_body_fields_are_strictly_typed_as_in_the_python_api(client: TestClient,
                                                             body: dict[str, Any],
                                                             field: str) -> None:
    error = assert_error(client.put(ws_path("ws1"), headers=PLATFORM, json=body), 422,
                         "validation_error")
    assert field in [f["field"] for f in error["fields"]]


def test_delete_options_and_grant_bodies_are_strict(client: TestClient) -> None:
    _create(client, "ws1")
    assert_error(client.request("DELETE", ws_path("ws1"), headers=ALICE,
                                json={"permanently_delete": "true"}), 422, "validation_error")
    assert_error(client.put(ws_path("ws1") + "/members/bob", headers=ALICE,
                            json={"role": 1}), 422, "validation_error")
    assert client.get(ws_path("ws1"), headers=ALICE).status_code == 200


# --------------------------------------------------------------- OPTIONS and 405

def test_options_answers_every_method_of_the_path(client: TestClient) -> None:
    for path, methods in [(ws_path("ws1"), "DELETE, GET, PUT, OPTIONS"),
                          (ws_path("ws1") + "/members/bob", "DELETE, PUT, OPTIONS"),
                          (deleted_path("ws1"), "DELETE, GET, OPTIONS"),
                          ("/cleanupTasks", "GET, OPTIONS")]:
        response = client.options(path)
        assert response.status_code == 204 and response.headers["allow"] == methods, path
    assert_error(client.options("/nowhere"), 404, "not_found")


def test_a_method_the_path_does_not_take_is_405_listing_all_it_takes(
        client: TestClient) -> None:
    error = assert_error(client.patch(ws_path("ws1"), headers=PLATFORM, json={}), 405,
                         "method_not_allowed")
    assert "DELETE, GET, PUT" in error["message"]
    assert client.patch(ws_path("ws1")).headers["allow"] == "DELETE, GET, PUT, OPTIONS"


# ---------------------------------------------------------------------- OpenAPI

def test_openapi_lists_every_error_status_and_invalid_argument(app: FastAPI) -> None:
    schema = TestClient(app).get("/openapi.json").json()
    operations = [(path, method, op) for path, ops in schema["paths"].items()
                  for method, op in ops.items() if path != "/healthz"]
    # the plugin's routes, the clock's 3 and the ARM protocol's: every one, whenever added
    assert len(operations) >= 22
    for path, method, op in operations:
        responses = op["responses"]
        for status in ("400", "401", "403", "404", "405", "413", "422", "503"):
            assert status in responses, (path, method, status)
            ref = responses[status]["content"]["application/json"]["schema"]["$ref"]
            assert ref.endswith("/ErrorResponse"), (path, method, status)
        assert "`invalid_argument`" in responses["400"]["description"], (path, method)
        assert "`payload_too_large`" in responses["413"]["description"]
    create = schema["paths"]["/subscriptions/{subscription_id}/resourceGroups/"
                             "{resource_group}/workspaces/{name}"]["put"]
    assert "`invalid_retention`" in create["responses"]["400"]["description"]
