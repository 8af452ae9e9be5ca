"""Shared pieces of the REST, CLI and server-process tests (no fixtures: plain helpers)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path

import httpx

with warnings.catch_warnings():
    # Starlette 1.x wants httpx2 for its TestClient and warns (an error here) when it falls
    # back on httpx; both work.
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient



START = datetime(2026, 1, 1, tzinfo=timezone.utc)
SUB = "sub-1"
RG = "rg-1"

SUB2 = "sub-2"

# token -> grant, as in a token file. alice, bob and root act in sub-1 only; eve is an admin
# of sub-2 only; ops may act in every tenant.
TOKENS = {
    "tok-platform": {"principal": "platform-service", "platform": True},
    "tok-alice": {"principal": "alice", "subscriptions": [SUB]},
    "tok-bob": {"principal": "bob", "subscriptions": [SUB]},
    "tok-admin": {"principal": "root", "subscriptions": [SUB], "roles": ["admin"]},
    "tok-eve": {"principal": "eve", "subscriptions": [SUB2], "roles": ["admin"]},
    "tok-ops": {"principal": "ops", "subscriptions": "*", "roles": ["admin"]},
}
PLATFORM = {"Authorization": "Bearer tok-platform"}
ALICE = {"Authorization": "Bearer tok-alice"}
BOB = {"Authorization": "Bearer tok-bob"}
ADMIN = {"Authorization": "Bearer tok-admin"}
EVE = {"Authorization": "Bearer tok-eve"}
OPS = {"Authorization": "Bearer tok-ops"}


def ws_path(name: str, sub: str = SUB, rg: str = RG, prefix: str = "") -> str:
    return f"{prefix}/subscriptions/{sub}/resourceGroups/{rg}/workspaces/{name}"


def deleted_path(name: str, sub: str = SUB, rg: str = RG, prefix: str = "") -> str:
    return f"{prefix}/subscriptions/{sub}/resourceGroups/{rg}/deletedWorkspaces/{name}"


def iso_z(value: datetime) -> str:
    return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def free_loopback_port() -> int:
    """A TCP port free on 127.0.0.1 right now (the server binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cli_command() -> list[str]:
    """The installed console script next to this interpreter, else ``python -m recyclebin``."""
    script = Path(sys.executable).parent / "recyclebin"
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    return [sys.executable, "-m", "recyclebin"]


def run_cli(args: Sequence[str], *, cwd: Path | None = None, timeout: float = 60,
            env: dict[str, str] | None = None,
            module: bool = False) -> subprocess.CompletedProcess[str]:
    """Run the real command line, no stdin, bounded in time."""
    command = [sys.executable, "-m", "recyclebin"] if module else cli_command()
    full_env = {k: v for k, v in os.environ.items()
                if not k.startswith("RECYCLEBIN_") and k != "COLUMNS"}
    full_env["PYTHONWARNINGS"] = "error"
    if env:
        full_env.update(env)
    return subprocess.run([*command, *args], cwd=cwd, env=full_env, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=timeout, check=False)


def answers_health(client: Callable[[], httpx.Client], process: subprocess.Popen[bytes],
                   timeout: float) -> bool:
    """Polls ``GET /healthz`` on new clients until it answers 200 (True), or the process
    ends or ``timeout`` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with client() as http:
                if http.get("/healthz", timeout=1).status_code == 200:
                    return True
        except httpx.TransportError:
            time.sleep(0.1)
    return False
