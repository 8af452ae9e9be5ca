"""The CLI's shared options: every engine command takes the same --db and --policy (one
declaration, cli._with_engine_options) and gets its engine from one place
(cli.EngineOptions.open), which closes it and turns its errors into the one-line exit."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from typer.main import get_command

import recyclebin as rb
from recyclebin import cli

ENGINE_COMMANDS = {
    ("workspace", name) for name in ("create", "show", "stop", "start", "delete",
                                     "list-deleted", "show-deleted", "recover", "purge",
                                     "grant", "revoke", "hold", "release-hold", "lien",
                                     "unlien", "protections", "protect", "auto-delete")
} | {("admin", name) for name in ("list-deletable", "delete-realm", "cleanup-tasks",
                                  "complete-cleanup")} | {("purge-expired",), ("serve",)}


def commands() -> dict[tuple[str, ...], object]:
    found: dict[tuple[str, ...], object] = {}

    def walk(command: object, path: tuple[str, ...]) -> None:
        subcommands = getattr(command, "commands", None)
        if subcommands is None:
            found[path] = command
            return
        for name, sub in subcommands.items():
            walk(sub, (*path, name))

    walk(get_command(cli.app), ())
    return found


def test_every_engine_command_takes_the_shared_db_and_policy() -> None:
    every = commands()
    assert ENGINE_COMMANDS <= set(every)
    for path, command in every.items():
        params = {p.name: p for p in command.params}  # type: ignore[attr-defined]
        if path not in ENGINE_COMMANDS:
            assert "db" not in params, path
            continue
        db, policy = params["db"], params["policy"]
        assert (db.opts, db.default, db.envvar) == (["--db"], "recyclebin.db", "RECYCLEBIN_DB")
        assert (policy.opts, policy.default, policy.envvar) == (
            ["--policy"], "default", "RECYCLEBIN_POLICY")


def test_engine_options_open_and_close_the_engine(tmp_path: Path) -> None:
    options = cli.EngineOptions(str(tmp_path / "rb.db"), "azureml")
    with options.open() as engine:
        assert engine.policy.name == rb.Policy.builtin("azureml").name
    with pytest.raises(rb.EngineClosed):
        engine.cleanup_tasks()


def test_engine_options_turn_an_open_error_into_the_exit_code(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    options = cli.EngineOptions(str(tmp_path / "rb.db"), "no-such-policy")
    with pytest.raises(typer.Exit) as ended:
        with options.open():
            pass
    assert ended.value.exit_code == cli.EXIT_CODES["policy_error"]
    assert capsys.readouterr().err.startswith("recyclebin: error: ")
    assert not (tmp_path / "rb.db").exists()
