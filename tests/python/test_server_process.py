"""``recyclebin serve`` as a real process on a free loopback port, driven with httpx through
a whole lifecycle, including the reaper purging a workspace whose retention ran out on the
server's manual test clock. Only 127.0.0.1 is contacted; every wait is bounded."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from rest_helpers import (
    ALICE,
    EVE,
    PLATFORM,
    RG,
    SUB,
    TOKENS,
    answers_health,
    cli_command,
    deleted_path,
    free_loopback_port,
    ws_path,
)

STARTUP_TIMEOUT = 30.0
SHUTDOWN_TIMEOUT = 20.0


def clean_env() -> dict[str, str]:
    """This process's environment without recyclebin settings (tokens come from --tokens)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("RECYCLEBIN_")}


class Server:
    def __init__(self, process: subprocess.Popen[bytes], base_url: str, log: Path) -> None:
        self.process = process
        self.base_url = base_url
        self.log = log

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def client(self, headers: dict[str, str] | None = PLATFORM) -> httpx.Client:
        # trust_env=False: no proxy from the environment, ever; the server is on loopback.
        return httpx.Client(base_url=self.base_url, headers=headers, timeout=10,
                            trust_env=False)

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=SHUTDOWN_TIMEOUT)


# After a graceful shutdown uvicorn re-raises the signal it got, so the process ends "killed
# by SIGTERM" (as a service manager expects); older uvicorn versions exit 0.
STOPPED_BY_SIGTERM = (0, -signal.SIGTERM)


def start_server(tmp_path: Path, *extra: str) -> Server:
    tokens = tmp_path / "tokens.json"
    tokens.write_text(json.dumps(TOKENS))
    log = tmp_path / "server.log"
    for _ in range(3):  # the free port may be taken between choosing and binding it
        port = free_loopback_port()
        with log.open("wb") as out:
            process = subprocess.Popen(
                [*cli_command(), "serve", "--host", "127.0.0.1", "--port", str(port),
                 "--db", str(tmp_path / "rb.db"), "--tokens", str(tokens), *extra],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=clean_env())
        server = Server(process, f"http://127.0.0.1:{port}", log)
        if answers_health(lambda: server.client(None), process, STARTUP_TIMEOUT):
            return server
        if process.poll() is None:
            process.kill()
            process.wait(timeout=SHUTDOWN_TIMEOUT)
            pytest.fail(f"the server did not answer within {STARTUP_TIMEOUT}s:\n"
                        f"{server.log_text()}")
        if "address already in use" not in server.log_text().lower():
            pytest.fail(f"the server exited with {process.returncode}:\n{server.log_text()}")
    pytest.fail("no free loopback port after 3 tries")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    running = start_server(tmp_path, "--reaper-interval", "0.2",
                           "--manual-clock", "2026-01-01T00:00:00Z")
    try:
        yield running
    finally:
        if running.process.poll() is None:
            running.process.kill()
            running.process.wait(timeout=SHUTDOWN_TIMEOUT)


def wait_for(predicate: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    pytest.fail(f"timed out after {timeout}s waiting for {what}")


def test_serve_full_lifecycle_with_the_reaper(server: Server) -> None:
    with server.client() as platform, server.client(ALICE) as alice, \
            server.client(None) as anonymous:
        assert anonymous.get(ws_path("ws1")).status_code == 401
        assert anonymous.get("/auditLog").status_code == 401

        created = alice.put(ws_path("ws1"), json={
            "soft_delete_retention_days": 1,
            "components": [{"kind": "notebooks", "ref": "nb-1"}]})
        assert created.status_code == 201, created.text
        assert alice.get(ws_path("ws1")).json()["state"] == "running"
        assert alice.post(ws_path("ws1") + "/stop").json()["state"] == "stopped"

        deleted = alice.delete(ws_path("ws1"))
        assert deleted.status_code == 200, deleted.text
        assert deleted.json()["purge_at"] == "2026-01-02T00:00:00Z"
        listed = alice.get(f"/subscriptions/{SUB}/deletedWorkspaces").json()
        assert [d["name"] for d in listed["value"]] == ["ws1"]
        assert alice.get(ws_path("ws1")).status_code == 404

        recovered = alice.post(deleted_path("ws1") + "/recover")
        assert recovered.status_code == 200, recovered.text
        assert alice.delete(ws_path("ws1"), params={"no_wait": "true"}).status_code == 202
        assert alice.get(deleted_path("ws1")).json()["deleted_at"] == "2026-01-01T00:00:00Z"

        # The cloud-workstation route over real HTTP: 204 carries no body.
        workstation = alice.put(ws_path("ws2")).json()
        alice.post(ws_path("ws2") + "/stop")
        gone = alice.get(f"/workstations/{workstation['id']}/delete")
        assert gone.status_code == 204 and gone.content == b""
        workstation = alice.put(ws_path("ws3")).json()
        alice.post(ws_path("ws3") + "/stop")
        described = alice.get(f"/workstations/{workstation['id']}/delete",
                              headers={"Prefer": "return=representation"})
        assert described.status_code == 200
        assert described.json() == {"id": workstation["id"], "status": "deleted"}

        # Nothing has expired yet: the reaper runs but purges nothing.
        assert platform.get("/cleanupTasks").json() == []
        moved = platform.post("/_testing/clock/advance", json={"seconds": 2 * 86400})
        assert moved.json() == {"now": "2026-01-03T00:00:00Z"}

        tasks = wait_for(lambda: platform.get("/cleanupTasks").json(), 20,
                         "the reaper to purge ws1")
        assert [t["ref"] for t in tasks] == ["nb-1"]
        assert alice.get(deleted_path("ws1")).status_code == 404
        assert alice.put(ws_path("ws1")).status_code == 201  # the name is free again
        wait_for(lambda: f"purge reaper: purged {SUB}/{RG}/ws1" in server.log_text(), 10,
                 "the reaper's log line")
        actions = [r["action"] for r in platform.get("/auditLog").json()]
        assert actions[:4] == ["create", "stop", "delete", "recover"]
        assert "purge" in actions or "expire" in actions

    assert server.stop() in STOPPED_BY_SIGTERM
    log = server.log_text()
    assert "manual clock" in log
    assert "purge reaper stopped" in log
    assert "engine closed" in log
    assert "Traceback" not in log


def test_serve_without_tokens_refuses_every_request(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    port = free_loopback_port()
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*cli_command(), "serve", "--host", "127.0.0.1", "--port", str(port),
             "--db", str(tmp_path / "rb.db"), "--reaper-interval", "0"],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            env=clean_env())
    try:
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5, trust_env=False)
        with client:
            def answered() -> bool:
                try:
                    return client.get("/healthz", timeout=1).status_code == 200
                except httpx.TransportError:
                    return process.poll() is not None
            wait_for(answered, STARTUP_TIMEOUT, "the server to start")
            assert process.poll() is None, log.read_text()
            response = client.get(ws_path("ws1"), headers=PLATFORM)
            assert response.status_code == 401
            assert response.json()["error"]["code"] == "unauthenticated"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=SHUTDOWN_TIMEOUT) in STOPPED_BY_SIGTERM
        assert "every request will be refused with 401" in log.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=SHUTDOWN_TIMEOUT)


# ------------------------------------------------------------- hostile requests, for real

def _raw_exchange(port: int, head: str, body: bytes, *, timeout: float = 10) -> tuple[int, bytes]:
    """Send a request head and only part of its body, then read the answer: it must come
    without the rest of the body ever being sent. (status, response bytes)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(head.replace("\n", "\r\n").encode() + b"\r\n" + body)
        data = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except (ConnectionResetError, socket.timeout):
                break
            if not chunk:
                break
            data += chunk
            head_end = data.find(b"\r\n\r\n")
            if head_end >= 0:
                length = [line.split(b":", 1)[1] for line in data[:head_end].split(b"\r\n")
                          if line.lower().startswith(b"content-length:")]
                if length and len(data) >= head_end + 4 + int(length[0]):
                    break
    assert data.startswith(b"HTTP/1.1 "), data[:200]
    return int(data.split(b" ", 2)[1]), data


def test_serve_refuses_big_and_unauthenticated_bodies_before_reading_them(
        tmp_path: Path) -> None:
    server = start_server(tmp_path, "--reaper-interval", "0", "--max-body-bytes", "2048")
    port = int(server.base_url.rsplit(":", 1)[1])
    path = ws_path("ws1")
    announced = 100 * 1024 * 1024  # 100 MB announced, 1 KB sent
    try:
        started = time.monotonic()
        status, data = _raw_exchange(
            port, f"PUT {path} HTTP/1.1\nHost: x\nContent-Type: application/json\n"
                  f"Content-Length: {announced}\n", b" " * 1024)
        assert status == 401 and b'"unauthenticated"' in data, data
        status, data = _raw_exchange(
            port, f"PUT {path} HTTP/1.1\nHost: x\nContent-Type: application/json\n"
                  f"Authorization: {PLATFORM['Authorization']}\n"
                  f"Content-Length: {announced}\n", b" " * 1024)
        assert status == 413 and b'"payload_too_large"' in data, data
        # Chunked, no Content-Length: refused once past the limit, never terminated.
        chunk = b"400\r\n" + b" " * 1024 + b"\r\n"
        status, data = _raw_exchange(
            port, f"PUT {path} HTTP/1.1\nHost: x\nContent-Type: application/json\n"
                  f"Authorization: {PLATFORM['Authorization']}\n"
                  "Transfer-Encoding: chunked\n", b"1\r\n{\r\n" + chunk * 4)
        assert status == 413 and b'"payload_too_large"' in data, data
        assert time.monotonic() - started < 30
        # The server is fine, and a tenant token still stays in its own subscriptions.
        with server.client(ALICE) as alice, server.client(EVE) as eve:
            assert alice.put(path, json={"components": []}).status_code == 201
            assert eve.get(path).status_code == 403
            assert alice.options(path).headers["allow"] == "DELETE, GET, PUT, OPTIONS"
        assert server.stop() in STOPPED_BY_SIGTERM
        assert "Traceback" not in server.log_text()
    finally:
        if server.process.poll() is None:
            server.process.kill()
            server.process.wait(timeout=SHUTDOWN_TIMEOUT)
