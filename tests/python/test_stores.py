"""The PostgreSQL store from Python: StorageError (503) for every way a database can be out of
reach, without the password; engines in one process and other processes sharing it; the CLI
and `recyclebin serve` on `--db postgresql://...`."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

import recyclebin as rb
from conftest import StoreLocation, pg_location, pg_test_url
from rest_helpers import RG, SUB, run_cli
from test_server_process import SHUTDOWN_TIMEOUT, start_server


def _parts() -> tuple[str, str, str, str, str]:
    """user, password, host, port, database of the test URL."""
    rest = pg_test_url().split("://", 1)[1]
    credentials, address = rest.split("@", 1)
    user, password = credentials.split(":", 1)
    hostport, database = address.split("/", 1)
    host, port = hostport.rsplit(":", 1)
    return user, password, host, port, database.split("?", 1)[0]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _bad_locations() -> dict[str, tuple[str, str, list[str]]]:
    """kind -> (location, its secret, fragments the message must contain)."""
    user, password, host, port, database = _parts()
    closed = _closed_port()
    return {
        "unreachable": (f"postgresql://{user}:unreach-secret@127.0.0.1:{closed}/{database}",
                        "unreach-secret", [f"127.0.0.1:{closed}", database, "cannot connect"]),
        "wrong password": (f"postgresql://{user}:wrong-secret@{host}:{port}/{database}",
                           "wrong-secret", [f"{host}:{port}", "password authentication failed"]),
        "missing database": (f"postgresql://{user}:{password}@{host}:{port}/not_a_database",
                             password, ["not_a_database", "does not exist"]),
        "malformed": (f"postgresql://{user}:bad%zzsecret@{host}/{database}", "bad%zzsecret",
                      ["malformed PostgreSQL URL"]),
    }


@pytest.mark.parametrize("kind", ["unreachable", "wrong password", "missing database", "malformed"])
def test_an_unusable_database_is_a_storage_error_without_the_password(kind: str) -> None:
    location, secret, fragments = _bad_locations()[kind]
    with pytest.raises(rb.StorageError) as caught:
        rb.Engine.open(location)
    message = str(caught.value)
    assert caught.value.code == "storage_error" and caught.value.http_status == 503
    assert secret not in message and "secret" not in message, message
    for fragment in fragments:
        assert fragment in message, message


def test_the_repr_never_shows_the_password(tmp_path: Path) -> None:
    location = pg_location(str(tmp_path / "repr"))
    _user, password, *_ = _parts()
    with rb.Engine.open(location) as engine:
        assert password not in repr(engine) and "***@" in repr(engine), repr(engine)


def test_engines_share_one_database(store_location: StoreLocation, clock: rb.ManualClock) -> None:
    location = store_location("shared")
    with rb.Engine.open(location, clock=clock) as first, rb.Engine.open(location, clock=clock) as second:
        ws = rb.Workspace.create(SUB, RG, "shared", engine=first)
        assert rb.Workspace.get("shared", SUB, RG, engine=second).id == ws.id
        ws.delete()
        with pytest.raises(rb.NameReserved):
            rb.Workspace.create(SUB, RG, "shared", engine=second)
        assert rb.Workspace.recover(SUB, RG, "shared", engine=second).workspace.id == ws.id
        with pytest.raises(rb.WorkspaceNotFound):
            rb.Workspace.recover(SUB, RG, "shared", engine=first)


def test_postgres_scheme_alias_and_schemas_apart(tmp_path: Path, clock: rb.ManualClock) -> None:
    a, b = pg_location(str(tmp_path / "a")), pg_location(str(tmp_path / "b"))
    with rb.Engine.open(a, clock=clock) as first, rb.Engine.open(b, clock=clock) as second, \
            rb.Engine.open("postgres://" + a.split("://", 1)[1], clock=clock) as alias:
        ws = rb.Workspace.create(SUB, RG, "ws", engine=first)
        with pytest.raises(rb.WorkspaceNotFound):
            rb.Workspace.get("ws", SUB, RG, engine=second)
        assert rb.Workspace.get("ws", SUB, RG, engine=alias).id == ws.id


def test_the_cli_works_on_postgres(tmp_path: Path) -> None:
    db = pg_location(str(tmp_path / "cli"))
    args = ["-s", SUB, "-g", RG, "-n", "ws1", "--db", db]
    created = run_cli(["workspace", "create", *args, "-o", "json"])
    assert created.returncode == 0, created.stderr
    workspace_id = json.loads(created.stdout)["id"]
    assert run_cli(["workspace", "delete", *args, "--confirm", "ws1"]).returncode == 0
    listed = run_cli(["workspace", "list-deleted", "-s", SUB, "--db", db])
    assert listed.returncode == 0 and "ws1" in listed.stdout, listed.stderr
    recovered = run_cli(["workspace", "recover", *args])
    assert recovered.returncode == 0, recovered.stderr
    with rb.Engine.open(db) as engine:  # the same database, seen from here
        assert rb.Workspace.get("ws1", SUB, RG, engine=engine).id == workspace_id


def test_the_cli_reports_an_unreachable_database_in_one_line_without_the_password() -> None:
    location, secret, fragments = _bad_locations()["unreachable"]
    result = run_cli(["workspace", "show", "-s", SUB, "-g", RG, "-n", "x", "--db", location])
    assert result.returncode == 12, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr and secret not in result.stderr
    assert fragments[0] in result.stderr


def test_serve_on_postgres(tmp_path: Path) -> None:
    db = pg_location(str(tmp_path / "served"))
    server = start_server(tmp_path, "--db", db, "--reaper-interval", "0")
    try:
        with server.client() as client:
            path = f"/subscriptions/{SUB}/resourceGroups/{RG}/workspaces/served"
            created = client.put(path)
            assert created.status_code == 201, created.text
        with rb.Engine.open(db) as engine:
            assert rb.Workspace.get("served", SUB, RG, engine=engine).id == created.json()["id"]
    finally:
        server.process.kill()
        server.process.wait(timeout=SHUTDOWN_TIMEOUT)
