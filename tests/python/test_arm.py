"""The real ``azure-ai-ml`` SDK drives ``recyclebin serve`` over TLS through the ML-workspace
ARM routes (recyclebin/arm.py): get, list (group and subscription), soft and permanent
``begin_delete``, dependent resources, not-found and authentication errors; plus raw HTTP
checks of the same routes (error shapes, paging, api-version).

The server is a real process on a free 127.0.0.1 port, with a throwaway CA and server
certificate made here; the SDK trusts the CA through ``REQUESTS_CA_BUNDLE`` and finds the
server through cloud metadata whose ``resource_manager`` is the server. A guard fails any
test whose process tries to reach a host other than loopback. Every wait is bounded.
"""

from __future__ import annotations

import gc
import ipaddress
import json
import os
import signal
import socket
import ssl
import subprocess
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

import recyclebin as rb
from rest_helpers import (
    ALICE,
    BOB,
    EVE,
    PLATFORM,
    TOKENS,
    answers_health,
    cli_command,
    free_loopback_port,
    run_cli,
)

# azure-ai-ml's schemas use marshmallow APIs that marshmallow deprecates; those warnings
# are the SDK's, not ours (the suite turns warnings into errors).
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from azure.ai.ml import MLClient
    from azure.core.credentials import AccessToken
    from azure.core.exceptions import (
        ClientAuthenticationError,
        HttpResponseError,
        ResourceNotFoundError,
    )
    from marshmallow.warnings import Marshmallow4Warning

pytestmark = pytest.mark.filterwarnings(
    f"ignore::{Marshmallow4Warning.__module__}.{Marshmallow4Warning.__qualname__}")

SUB = "sub-arm"
RG = "rg-arm"
OTHER_RG = "rg-other"
MANY_RG = "rg-many"
API = "api-version=2025-12-01"
PROVIDER = "Microsoft.MachineLearningServices/workspaces"
# The shared tokens, acting in this file's subscription instead of rest_helpers' (eve, whose
# token names only another tenant, stays outside it).
ARM_TOKENS = {token: ({**grant, "subscriptions": [SUB]} if grant.get("subscriptions") == ["sub-1"] else grant)
              for token, grant in TOKENS.items()}
STARTUP_TIMEOUT = 30.0


def linked(provider_type: str, name: str, rg: str = RG) -> str:
    return f"/subscriptions/{SUB}/resourceGroups/{rg}/providers/{provider_type}/{name}"


def arm_ws(name: str = "", rg: str | None = RG) -> str:
    scope = f"/subscriptions/{SUB}" + (f"/resourceGroups/{rg}" if rg is not None else "")
    return f"{scope}/providers/{PROVIDER}" + (f"/{name}" if name else "")


# ------------------------------------------------------------------------------ TLS files

@dataclass(frozen=True)
class TlsFiles:
    ca: Path
    cert: Path
    key: Path


def make_tls_files(directory: Path) -> TlsFiles:
    """A throwaway CA and a server certificate for 127.0.0.1 signed by it (one day)."""
    now = datetime.now(timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "recyclebin test CA")])
    ca_cert = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
        .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                     key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, key_cert_sign=True, crl_sign=True,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()),
                       critical=False)
        .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
            critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                       critical=False)
        .sign(ca_key, hashes.SHA256()))
    files = TlsFiles(directory / "ca.pem", directory / "server.pem", directory / "server.key")
    files.ca.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    files.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files.key.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                            serialization.PrivateFormat.PKCS8,
                                            serialization.NoEncryption()))
    return files


# --------------------------------------------------------------------------------- server

@dataclass
class Server:
    process: subprocess.Popen[bytes]
    url: str
    port: int
    db: Path
    tls: TlsFiles
    log: Path

    def http(self, headers: dict[str, str] | None = ALICE) -> httpx.Client:
        # trust_env=False: never a proxy from the environment; the server is on loopback.
        return httpx.Client(base_url=self.url, headers=headers, timeout=10, trust_env=False,
                            verify=ssl.create_default_context(cafile=str(self.tls.ca)))


def start_server(directory: Path, tls: TlsFiles) -> Server:
    tokens = directory / "tokens.json"
    tokens.write_text(json.dumps(ARM_TOKENS))
    log = directory / "server.log"
    db = directory / "rb.db"
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECYCLEBIN_")}
    for _ in range(3):  # the free port may be taken between choosing and binding it
        port = free_loopback_port()
        with log.open("wb") as out:
            process = subprocess.Popen(
                [*cli_command(), "serve", "--host", "127.0.0.1", "--port", str(port),
                 "--db", str(db), "--policy", "azureml", "--tokens", str(tokens),
                 "--reaper-interval", "0", "--log-level", "info",
                 "--ssl-certfile", str(tls.cert), "--ssl-keyfile", str(tls.key)],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env)
        server = Server(process, f"https://127.0.0.1:{port}", port, db, tls, log)
        try:
            if answers_health(lambda: server.http(None), process, STARTUP_TIMEOUT):
                return server
        except BaseException:
            process.kill()
            process.wait(timeout=10)
            raise
        process.kill()  # it died (the port was taken?) or never answered: try another port
        process.wait(timeout=10)
    raise AssertionError("recyclebin serve did not start over TLS:\n" + log.read_text())


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    directory = tmp_path_factory.mktemp("arm")
    running = start_server(directory, make_tls_files(directory))
    try:
        yield running
    finally:
        # MLClient has no close(): its requests sessions keep idle TLS connections open, and
        # uvicorn waits for every connection before it stops. The tests' clients are gone,
        # so collecting them closes those connections.
        gc.collect()
        running.process.send_signal(signal.SIGTERM)
        try:
            running.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            running.process.kill()
            running.process.wait(timeout=10)


@pytest.fixture(scope="module")
def engine(server: Server) -> Iterator[rb.Engine]:
    """An engine of this process on the server's store (several engines may share one)."""
    local = rb.Engine.open(str(server.db), policy="azureml")
    try:
        yield local
    finally:
        local.close()


# ------------------------------------------------------------- only loopback, ever

_LOOPBACK_NAMES = {"127.0.0.1", "::1", "localhost"}


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fails the test at the first connection (or name lookup) for a non-loopback host, and
    keeps proxies and an outside CA bundle out of the SDK's way."""
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex
    real_getaddrinfo = socket.getaddrinfo

    def check(sock: socket.socket, address: Any) -> None:
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            host = str(address[0])
            if host not in _LOOPBACK_NAMES and not ipaddress.ip_address(host).is_loopback:
                raise AssertionError(f"the test tried to connect to {host}, not loopback")

    def connect(sock: socket.socket, address: Any) -> None:
        check(sock, address)
        real_connect(sock, address)

    def connect_ex(sock: socket.socket, address: Any) -> int:
        check(sock, address)
        return real_connect_ex(sock, address)

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host is not None:
            name = host.decode() if isinstance(host, bytes) else str(host)
            if name not in _LOOPBACK_NAMES:
                raise AssertionError(f"the test tried to look up {name}, not loopback")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    for proxy in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy",
                  "all_proxy", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(proxy, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    # MLClient sets these process-wide; put them back after each test.
    monkeypatch.delenv("AZUREML_CURRENT_CLOUD", raising=False)
    monkeypatch.delenv("ARM_CLOUD_METADATA_URL", raising=False)


def test_the_guard_refuses_other_hosts() -> None:
    """The guard above is in force: a connection to a documentation address (TEST-NET-1)
    fails before any packet leaves, as does a lookup of a public name."""
    with pytest.raises(AssertionError, match="192.0.2.1, not loopback"):
        socket.create_connection(("192.0.2.1", 443), timeout=1)
    with pytest.raises(AssertionError, match="management.azure.com, not loopback"):
        socket.getaddrinfo("management.azure.com", 443)


# ---------------------------------------------------------------------- the SDK client

class StaticTokenCredential:
    """A ``TokenCredential`` that hands out one configured token."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.scopes: list[tuple[str, ...]] = []

    def get_token(self, *scopes: str, claims: str | None = None, tenant_id: str | None = None,
                  enable_cae: bool = False, **kwargs: Any) -> AccessToken:
        self.scopes.append(scopes)
        return AccessToken(self.token, int(time.time()) + 3600)


def ml_client(server: Server, monkeypatch: pytest.MonkeyPatch, token: str = "tok-alice",
              resource_group: str = RG) -> MLClient:
    """MLClient pointed at the server: cloud metadata with ``resource_manager`` = server,
    the test CA trusted through REQUESTS_CA_BUNDLE, telemetry off."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(server.tls.ca))
    endpoint = server.url + "/"
    return MLClient(
        StaticTokenCredential(token), SUB, resource_group,
        cloud=f"recyclebin-{server.port}",  # one name per server: the SDK keeps clouds per process
        cloud_metadata={
            "azure_portal": endpoint, "resource_manager": endpoint,
            "active_directory": endpoint, "aml_resource_id": endpoint,
            "storage_endpoint": "127.0.0.1", "registry_discovery_endpoint": endpoint,
        },
        enable_telemetry=False, show_progress=False)


def create(server: Server, name: str, rg: str = RG,
           components: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A workspace created through the REST plugin by alice, who becomes its owner."""
    with server.http() as client:
        response = client.put(f"/subscriptions/{SUB}/resourceGroups/{rg}/workspaces/{name}",
                              json={"components": components or []})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def assert_refused_and_kept(server: Server, ml: MLClient, created: dict[str, Any],
                            says: str, **delete_options: bool) -> None:
    """begin_delete raises the server's 409 (its message naming ``says``); the workspace
    is still there and nothing went to the cleanup outbox."""
    with pytest.raises(HttpResponseError) as refused:
        ml.workspaces.begin_delete(created["name"], **delete_options)
    assert refused.value.status_code == 409
    assert says in str(refused.value)
    assert ml.workspaces.get(created["name"]).name == created["name"]
    assert cleanup_refs(server, created["id"]) == set()


def cleanup_refs(server: Server, workspace_id: str) -> set[tuple[str, str]]:
    with server.http(PLATFORM) as client:
        response = client.get("/cleanupTasks", params={"workspace_id": workspace_id})
    assert response.status_code == 200, response.text
    return {(t["kind"], t["ref"]) for t in response.json()}


# ---------------------------------------------------------------------------- the SDK

def test_get_reads_the_workspace_as_the_sdk_models_it(server: Server,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    storage = linked("Microsoft.Storage/storageAccounts", "getstore")
    vault = linked("Microsoft.KeyVault/vaults", "getvault")
    created = create(server, "ws-get", components=[
        {"kind": "dependent_resources", "ref": storage},
        {"kind": "dependent_resources", "ref": vault},
        {"kind": "run_history", "ref": "blob://runs/ws-get"}])
    credential_ml = ml_client(server, monkeypatch)
    ws = credential_ml.workspaces.get("ws-get")
    assert ws.name == "ws-get"
    assert ws.resource_group == RG
    assert ws.location == "local"
    assert ws.id == f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/{PROVIDER}/ws-get"
    assert ws.storage_account == storage
    assert ws.key_vault == vault
    assert ws.application_insights is None and ws.container_registry is None
    assert ws._workspace_id == created["id"]
    with pytest.raises(ResourceNotFoundError):
        credential_ml.workspaces.get("no-such-workspace")


def test_list_by_group_and_by_subscription(server: Server, engine: rb.Engine,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    create(server, "ws-list-b")
    create(server, "ws-list-a")
    create(server, "ws-list-other", rg=OTHER_RG)
    create(server, "ws-list-gone")
    rb.Workspace.get("ws-list-gone", SUB, RG, engine=engine).delete()  # soft: not listed
    # More than one default page (100), so the SDK follows nextLink.
    for i in range(105):
        rb.Workspace.create(SUB, MANY_RG, f"ws-{i:03d}", engine=engine)

    in_group = [ws.name for ws in ml_client(server, monkeypatch).workspaces.list()]
    assert [n for n in in_group if n.startswith("ws-list")] == ["ws-list-a", "ws-list-b"]
    assert "ws-list-gone" not in in_group and "ws-list-other" not in in_group
    assert in_group == sorted(in_group)

    many = [ws.name for ws in ml_client(server, monkeypatch, resource_group=MANY_RG)
            .workspaces.list()]
    assert many == [f"ws-{i:03d}" for i in range(105)]

    everywhere = list(ml_client(server, monkeypatch).workspaces.list(scope="subscription"))
    pairs = [(ws.resource_group, ws.name) for ws in everywhere]
    assert pairs == sorted(pairs)
    names = {name for _, name in pairs}
    assert {"ws-list-a", "ws-list-b", "ws-list-other", "ws-000", "ws-104"} <= names
    assert "ws-list-gone" not in names


def test_soft_delete_puts_it_in_the_bin_and_reserves_the_name(
        server: Server, engine: rb.Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    created = create(server, "ws-soft")
    ml = ml_client(server, monkeypatch)
    poller = ml.workspaces.begin_delete("ws-soft", delete_dependent_resources=False)
    assert poller.done()  # the engine decided synchronously: nothing to poll
    assert poller.result(timeout=10) is None

    with pytest.raises(ResourceNotFoundError):  # soft-deleted answers 404, as in Azure
        ml.workspaces.get("ws-soft")
    deleted = rb.Workspace.get_deleted("ws-soft", SUB, RG, engine=engine)
    assert deleted.id == created["id"]
    assert deleted.purge_at - deleted.deleted_at == timedelta(days=14)
    with server.http() as client:
        assert client.get(f"/subscriptions/{SUB}/resourceGroups/{RG}/deletedWorkspaces/"
                          "ws-soft").status_code == 200
        again = client.put(f"/subscriptions/{SUB}/resourceGroups/{RG}/workspaces/ws-soft")
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "name_reserved"


def test_permanent_delete_leaves_nothing(server: Server, engine: rb.Engine,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    create(server, "ws-perm")
    ml = ml_client(server, monkeypatch)
    ml.workspaces.begin_delete("ws-perm", delete_dependent_resources=False,
                               permanently_delete=True).result(timeout=10)
    with pytest.raises(ResourceNotFoundError):
        ml.workspaces.get("ws-perm")
    with pytest.raises(rb.WorkspaceNotFound):
        rb.Workspace.get_deleted("ws-perm", SUB, RG, engine=engine)
    create(server, "ws-perm")  # the name is free at once


def test_dependent_resources_go_to_the_cleanup_outbox(server: Server,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    refs = {
        linked("Microsoft.Storage/storageAccounts", "depstore"),
        linked("Microsoft.KeyVault/vaults", "depvault"),
        linked("Microsoft.Insights/components", "depinsights"),
        linked("Microsoft.ContainerRegistry/registries", "depacr", rg=OTHER_RG),
    }
    created = create(server, "ws-dep", components=[
        {"kind": "dependent_resources", "ref": ref} for ref in sorted(refs)])
    ml = ml_client(server, monkeypatch)

    # Without a permanent delete the policy refuses, and nothing is deleted.
    assert_refused_and_kept(server, ml, created, "permanently_delete",
                            delete_dependent_resources=True)

    ml.workspaces.begin_delete("ws-dep", delete_dependent_resources=True,
                               permanently_delete=True).result(timeout=10)
    with pytest.raises(ResourceNotFoundError):
        ml.workspaces.get("ws-dep")
    assert cleanup_refs(server, created["id"]) == {("dependent_resources", r) for r in refs}


def test_a_standalone_linked_resource_stops_the_delete(server: Server,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    shared = linked("Microsoft.Storage/storageAccounts", "sharedstore")
    created = create(server, "ws-shared", components=[
        {"kind": "dependent_resources", "ref": shared, "standalone": True}])
    ml = ml_client(server, monkeypatch)
    assert_refused_and_kept(server, ml, created, "standalone",
                            delete_dependent_resources=True, permanently_delete=True)
    # Without the dependent resources the same delete goes through, and keeps the account.
    ml.workspaces.begin_delete("ws-shared", delete_dependent_resources=False,
                               permanently_delete=True).result(timeout=10)
    assert (("dependent_resources", shared) not in cleanup_refs(server, created["id"]))


def test_a_wrong_token_is_an_authentication_error(server: Server,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    create(server, "ws-auth")
    intruder = ml_client(server, monkeypatch, token="tok-nobody-issued")
    with pytest.raises(ClientAuthenticationError):
        intruder.workspaces.get("ws-auth")
    with pytest.raises(ClientAuthenticationError):
        list(intruder.workspaces.list())
    with pytest.raises(ClientAuthenticationError):
        intruder.workspaces.begin_delete("ws-auth", delete_dependent_resources=False)
    assert ml_client(server, monkeypatch).workspaces.get("ws-auth").name == "ws-auth"


def test_a_token_of_another_tenant_is_refused_and_told_nothing(server: Server,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    create(server, "ws-tenant")
    outsider = ml_client(server, monkeypatch, token="tok-eve")  # an admin, of sub-2 only
    for attempt in (lambda: outsider.workspaces.get("ws-tenant"),
                    lambda: outsider.workspaces.get("never-existed"),
                    lambda: list(outsider.workspaces.list()),
                    lambda: outsider.workspaces.begin_delete("ws-tenant", delete_dependent_resources=False)):
        with pytest.raises(HttpResponseError) as refused:
            attempt()
        assert refused.value.status_code == 403
        assert "ws-tenant" not in str(refused.value)
    with server.http(EVE) as client:
        a = client.get(f"{arm_ws('ws-tenant')}?{API}")
        b = client.get(f"{arm_ws('never-existed')}?{API}")
    assert a.status_code == b.status_code == 403 and a.json() == b.json()
    assert ml_client(server, monkeypatch).workspaces.get("ws-tenant").name == "ws-tenant"


def test_the_policy_still_decides(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    """Bob is not the owner: the azureml policy lets only owners delete."""
    create(server, "ws-alices")
    with pytest.raises(HttpResponseError) as refused:
        ml_client(server, monkeypatch, token="tok-bob").workspaces.begin_delete(
            "ws-alices", delete_dependent_resources=False)
    assert refused.value.status_code == 403
    assert ml_client(server, monkeypatch).workspaces.get("ws-alices").name == "ws-alices"


# ------------------------------------------------------------------------- raw HTTP

def test_resource_body_and_error_shapes(server: Server) -> None:
    create(server, "ws-raw", components=[
        {"kind": "dependent_resources",
         "ref": linked("Microsoft.ContainerRegistry/registries", "rawacr")},
        {"kind": "compute_instance", "ref": "ci-1"}])
    with server.http() as client:
        body = client.get(f"{arm_ws('ws-raw')}?{API}").json()
        assert body["type"] == PROVIDER and body["name"] == "ws-raw"
        assert body["properties"]["provisioningState"] == "Succeeded"
        assert body["properties"]["softDeleteRetentionInDays"] == 14
        assert body["properties"]["containerRegistry"].endswith("/registries/rawacr")
        assert "ci-1" not in json.dumps(body)  # only ARM-linked resources are shown

        missing = client.get(f"{arm_ws('nope')}?{API}")
        assert missing.status_code == 404
        assert missing.json()["error"]["code"] == "workspace_not_found"
        assert "nope" in missing.json()["error"]["message"]

        for query, what in (("", "required"), ("?api-version=latest", "YYYY-MM-DD")):
            bad = client.get(arm_ws("ws-raw") + query)
            assert bad.status_code == 400
            assert bad.json()["error"]["code"] == "invalid_request"
            assert what in bad.json()["error"]["message"]
        assert client.get(f"{arm_ws('ws-raw')}?api-version=2024-10-01-preview"
                          ).status_code == 200

    with server.http(None) as anonymous:
        unauthenticated = anonymous.get(f"{arm_ws('ws-raw')}?{API}")
    assert unauthenticated.status_code == 401
    assert unauthenticated.headers["www-authenticate"] == "Bearer"
    assert unauthenticated.json()["error"]["code"] == "unauthenticated"
    with server.http({"Authorization": "Bearer wrong"}) as stranger:
        # Authentication comes first: no hint about the missing api-version.
        assert stranger.get(arm_ws("ws-raw")).status_code == 401


def test_paging_follows_next_link(server: Server) -> None:
    for name in ("pg-c", "pg-a", "pg-b"):
        create(server, name, rg="rg-paging")
    seen: list[str] = []
    with server.http() as client:
        url: str | None = f"{arm_ws(rg='rg-paging')}?{API}&$top=2"
        pages = 0
        while url is not None and pages < 5:
            response = client.get(url)
            assert response.status_code == 200, response.text
            seen += [item["name"] for item in response.json()["value"]]
            url = response.json().get("nextLink")
            pages += 1
        assert pages == 2 and seen == ["pg-a", "pg-b", "pg-c"]

        assert client.get(f"{arm_ws(rg='rg-paging')}?{API}&kind=project").json() == {"value": []}
        assert len(client.get(f"{arm_ws(rg='rg-paging')}?{API}&kind=Default,hub"
                              ).json()["value"]) == 3
        bad_cursor = client.get(f"{arm_ws(rg='rg-paging')}?{API}&$skip=not-a-cursor")
        assert bad_cursor.status_code == 400
        assert bad_cursor.json()["error"]["code"] == "invalid_argument"
        bad_top = client.get(f"{arm_ws(rg='rg-paging')}?{API}&$top=0")
        assert bad_top.status_code == 422
        assert bad_top.json()["error"]["fields"][0]["field"] == "query.$top"


def test_delete_answers(server: Server, engine: rb.Engine) -> None:
    create(server, "ws-del")
    with server.http() as client:
        assert client.delete(f"{arm_ws('never-was')}?{API}").status_code == 204
        soft = client.delete(f"{arm_ws('ws-del')}?{API}")
        assert soft.status_code == 200
        assert soft.json()["permanent"] is False and soft.json()["scheduledPurgeDate"]
        assert client.delete(f"{arm_ws('ws-del')}?{API}").status_code == 204  # already gone
        purged = client.delete(f"{arm_ws('ws-del')}?{API}&forceToPurge=true")  # from the bin
        assert purged.status_code == 200 and purged.json()["permanent"] is True
    with pytest.raises(rb.WorkspaceNotFound):
        rb.Workspace.get_deleted("ws-del", SUB, RG, engine=engine)


def test_linked_resources_answer_only_for_components(server: Server) -> None:
    store = linked("Microsoft.Storage/storageAccounts", "rawstore")
    create(server, "ws-link", components=[{"kind": "dependent_resources", "ref": store}])
    with server.http() as client:
        shown = client.get(f"{store}?api-version=2019-06-01")
        assert shown.status_code == 200
        assert shown.json()["id"] == store
        assert shown.json()["type"] == "Microsoft.Storage/storageAccounts"
        # ARM compares provider types and names without case.
        other_case = linked("microsoft.storage/STORAGEACCOUNTS", "RawStore")
        assert client.get(f"{other_case}?api-version=2019-06-01").json()["id"] == store
        for unknown in (linked("Microsoft.Storage/storageAccounts", "nobodys"),
                        linked("Microsoft.Network/virtualNetworks", "rawstore")):
            for method in ("GET", "DELETE"):
                response = client.request(method, f"{unknown}?api-version=2019-06-01")
                assert response.status_code == 404
                assert response.json()["error"]["code"] == "not_found"
    with server.http(BOB) as bob:
        assert bob.delete(f"{store}?api-version=2019-06-01").status_code == 202
    with server.http() as client:
        # Bob's linked delete never rides on Alice's delete of her workspace.
        gone = client.delete(f"{arm_ws('ws-link')}?{API}&forceToPurge=true")
        assert gone.status_code == 200
        assert gone.json()["preserved"] == ["dependent_resources"]
        assert gone.json()["cleanupTasks"] == []


# ----------------------------------------------------------------------- serve options

def test_serve_refuses_half_or_broken_tls_settings(tmp_path: Path) -> None:
    from recyclebin.server import check_tls_files

    tls = make_tls_files(tmp_path)
    half = run_cli(["serve", "--db", str(tmp_path / "x.db"), "--ssl-certfile", str(tls.cert)])
    assert half.returncode == 2
    assert "both --ssl-certfile and --ssl-keyfile" in half.stderr
    assert not (tmp_path / "x.db").exists()  # refused before anything was opened
    with pytest.raises(ValueError, match="do not load as a PEM certificate chain"):
        check_tls_files(tls.key, tls.cert)  # swapped
    with pytest.raises(ValueError, match="nope.pem: no such file"):
        check_tls_files(tmp_path / "nope.pem", tls.key)
    with pytest.raises(ValueError, match="both --ssl-certfile and --ssl-keyfile"):
        check_tls_files(None, tls.key)
    check_tls_files(tls.cert, tls.key)  # a good pair passes
    check_tls_files(None, None)  # plain HTTP


# ----------------------------------------------------------- the router, in process

def in_process(engine: rb.Engine, **options: Any) -> Any:
    """A TestClient on an app with only the ARM router (no network at all)."""
    from fastapi import FastAPI

    from recyclebin.arm import create_arm_router
    from recyclebin.auth import BearerTokenAuth, grants_from_mapping

    with warnings.catch_warnings():
        # Starlette warns (an error here) that it wants httpx2 for its TestClient.
        warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
        from fastapi.testclient import TestClient
    app = FastAPI()
    app.state.arm_router = create_arm_router(
        engine, BearerTokenAuth(grants_from_mapping(ARM_TOKENS)), **options)
    app.include_router(app.state.arm_router)
    return TestClient(app)


def arm_route_names(app: Any) -> set[str]:
    return {route.name for route in app.state.arm_router.routes}


def matched_routes(app: Any, requests: list[tuple[str, str]]) -> set[str]:
    """The names of the ARM routes that these requests reach (the first match each)."""
    from starlette.routing import Match
    names = set()
    for method, path in requests:
        scope = {"type": "http", "method": method, "path": path, "root_path": ""}
        names |= {next(r.name for r in app.state.arm_router.routes
                       if r.matches(scope)[0] == Match.FULL)}
    return names


def test_every_route_makes_the_one_subscription_check(tmp_path: Path) -> None:
    asked: list[tuple[str | None, str]] = []

    def only_sub_arm(caller: rb.Principal | None, subscription_id: str) -> None:
        asked.append((None if caller is None else caller.id, subscription_id))
        if subscription_id != SUB:
            raise rb.PermissionDenied(f"this token may not act in {subscription_id}")

    with rb.Engine.open(str(tmp_path / "rb.db"), policy="azureml") as local:
        store = linked("Microsoft.Storage/storageAccounts", "checked", rg=RG)
        rb.Workspace.create("sub-other", RG, "theirs", engine=local,
                            components=[rb.Component("dependent_resources",
                                                     store.replace(SUB, "sub-other"))])
        client = in_process(local, authorize_subscription=only_sub_arm)
        other = [arm_ws(rg=None), arm_ws(), arm_ws("theirs"), store]
        requests = [("GET", path.replace(SUB, "sub-other")) for path in other]
        requests += [("DELETE", arm_ws("theirs").replace(SUB, "sub-other")),
                     ("DELETE", store.replace(SUB, "sub-other"))]
        assert matched_routes(client.app, requests) == arm_route_names(client.app)  # all
        for method, path in requests:
            # No api-version either: the subscription check comes first.
            response = client.request(method, path, headers=ALICE)
            assert response.status_code == 403, (method, path, response.text)
            assert response.json()["error"]["code"] == "permission_denied"
        assert asked == [("alice", "sub-other")] * len(requests)
        assert rb.Workspace.get("theirs", "sub-other", RG, engine=local).name == "theirs"
        anonymous = client.get(arm_ws("theirs").replace(SUB, "sub-other"))
        assert anonymous.status_code == 401  # authentication before the subscription check
        assert len(asked) == len(requests)


def test_a_linked_delete_is_forgotten_after_its_time(tmp_path: Path) -> None:
    store = linked("Microsoft.Storage/storageAccounts", "forgotten")
    with rb.Engine.open(str(tmp_path / "rb.db"), policy="azureml") as local:
        ws = rb.Workspace.create(SUB, RG, "ws-ttl", engine=local,
                                 components=[rb.Component("dependent_resources", store)])
        client = in_process(local, dependent_delete_ttl=0.2)
        assert client.delete(f"{store}?api-version=2019-06-01",
                             headers=PLATFORM).status_code == 202
        time.sleep(0.3)
        gone = client.delete(f"{arm_ws('ws-ttl')}?{API}&forceToPurge=true", headers=PLATFORM)
        assert gone.status_code == 200
        assert gone.json()["preserved"] == ["dependent_resources"]
        assert [t for t in local.cleanup_tasks() if t.workspace_id == ws.id] == []
    with pytest.raises(ValueError, match="dependent_delete_ttl"):
        in_process(local, dependent_delete_ttl=0)
