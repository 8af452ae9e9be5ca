"""The ``recyclebin`` command line (also ``python -m recyclebin``).

    recyclebin serve --db recyclebin.db --policy azureml --tokens tokens.yaml
    recyclebin workspace create -s SUB -g RG -n NAME
    recyclebin workspace delete -s SUB -g RG -n NAME --confirm NAME
    recyclebin workspace list-deleted -s SUB --output json
    recyclebin admin list-deletable --organization ORG --db URL
    recyclebin admin delete-realm --organization ORG --db URL --realm ID --dump-blocks FILE --yes
    recyclebin purge-expired --db URL --yes
    recyclebin policy check policies/azureml.yaml

The CLI opens the database itself and acts as the trusted platform (``principal=None``):
whoever can run it against the database file is an operator. Errors print one line on
stderr and exit with a code per error class (see ``EXIT_CODES``); destructive commands
need ``--yes`` (or ``--confirm NAME``).
"""

from __future__ import annotations

import enum
import errno
import functools
import inspect
import json
import os
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

import recyclebin as rb
from recyclebin import codes, wire
from recyclebin.auth import TokenConfigError
from recyclebin.codes import EXIT_INTERRUPTED, EXIT_STORAGE, EXIT_UNEXPECTED, EXIT_USAGE
from recyclebin.policy import resolve_policy
from recyclebin.results import format_countdown, isoformat_z

__all__ = ["EXIT_CODES", "app", "main"]

#: Exit status per error code (``recyclebin.codes``: a class not listed there exits as its
#: nearest base); documented in ``--help``.
EXIT_CODES: dict[str, int] = {code: entry.exit_code
                              for code, entry in codes.error_codes().items()}

_EXIT_HELP = codes.exit_help()  # from the registry: every class, those added later too


def _console(stderr: bool = False) -> Console:
    stream = sys.stderr if stderr else sys.stdout
    # Not a terminal (a pipe, a test): wide enough that ids and dates are never folded.
    width = None if stream.isatty() else max(int(os.environ.get("COLUMNS", "0") or 0), 200)
    # markup=False: names and lists like "[a, b]" are data, never rich markup.
    return Console(file=stream, width=width, highlight=False, markup=False)


app = typer.Typer(
    name="recyclebin", no_args_is_help=True, add_completion=False,
    pretty_exceptions_enable=False,
    help="Deletion protection for workspaces: soft delete, retention, recover and purge.\n\n"
         + _EXIT_HELP,
)
workspace_app = typer.Typer(no_args_is_help=True, help="Workspaces: create, delete, recover, "
                                                       "purge, ...\n\n" + _EXIT_HELP)
admin_app = typer.Typer(no_args_is_help=True, help="Operator commands (realm deletion, "
                                                   "cleanup outbox).\n\n" + _EXIT_HELP)
policy_app = typer.Typer(no_args_is_help=True, help="Validate and show policies.")
app.add_typer(workspace_app, name="workspace")
app.add_typer(admin_app, name="admin")
app.add_typer(policy_app, name="policy")


class OutputFormat(str, enum.Enum):
    table = "table"
    json = "json"


class IfDeleted(str, enum.Enum):
    """What a create does when a soft-deleted workspace holds the name."""
    fail = "fail"
    recover = "recover"
    purge = "purge"


# ------------------------------------------------------------------ shared options

DbOption = Annotated[str, typer.Option(
    "--db", envvar="RECYCLEBIN_DB", show_envvar=True,
    help="Database: a file path, sqlite:///relative.db, sqlite:////abs/path.db or :memory: "
         "(SQLite), or postgresql://user:password@host:5432/db (PostgreSQL, shared by replicas).")]
PolicyOption = Annotated[str, typer.Option(
    "--policy", envvar="RECYCLEBIN_POLICY", show_envvar=True,
    help="A built-in policy name (default, azureml, dataworks, parsec, exostellar, "
         "cloud-workstation) or a YAML file.")]
SubscriptionOption = Annotated[str, typer.Option(
    "--subscription", "-s", help="Subscription (tenant) id.")]
GroupOption = Annotated[str, typer.Option("--resource-group", "-g", help="Resource group.")]
NameOption = Annotated[str, typer.Option("--name", "-n", help="Workspace name.")]
OutputOption = Annotated[OutputFormat, typer.Option(
    "--output", "-o", case_sensitive=False, help="table (for people) or json (for scripts).")]
YesOption = Annotated[bool, typer.Option("--yes", "-y", help="Consent to a destructive action.")]
ConfirmOption = Annotated[str | None, typer.Option(
    "--confirm", metavar="NAME", help="Type the workspace name to consent.")]
OrganizationOption = Annotated[str, typer.Option(
    "--organization", help="Organization (subscription) id.")]


# ------------------------------------------------------------------- error handling

def _one_line(message: str) -> str:
    return " ".join(part.strip() for part in message.splitlines() if part.strip())


def _fail(message: str, code: int) -> NoReturn:
    print(f"recyclebin: error: {_one_line(message)}", file=sys.stderr)
    raise typer.Exit(code)


@contextmanager
def _errors() -> Iterator[None]:
    """Domain errors -> one line on stderr and the exit code of their class."""
    try:
        yield
    except (typer.Exit, typer.Abort, BrokenPipeError):
        raise  # click ends a closed pipe (`| head`) quietly
    except rb.RecycleBinError as exc:
        _fail(str(exc), codes.exit_code(exc))
    except TokenConfigError as exc:
        _fail(str(exc), EXIT_USAGE)
    except KeyboardInterrupt:
        _fail("interrupted", EXIT_INTERRUPTED)
    except OSError as exc:
        _fail(f"{exc.filename + ': ' if exc.filename else ''}{exc.strerror or exc}",
              EXIT_STORAGE)
    except Exception as exc:  # no traceback for people; the class name helps a bug report
        _fail(f"unexpected {type(exc).__name__}: {exc}", EXIT_UNEXPECTED)


@dataclass(frozen=True)
class EngineOptions:
    """The ``--db`` and ``--policy`` every engine command takes; :meth:`open` is where each
    command gets its engine."""

    db: str
    policy: str

    @contextmanager
    def open(self) -> Iterator[rb.Engine]:
        """The engine on ``db`` deciding by ``policy``, closed on the way out; every error
        inside (opening included) ends the command as :func:`_errors` says."""
        with _errors():
            engine = rb.Engine.open(self.db, policy=self.policy)
            try:
                yield engine
            finally:
                engine.close()


def _with_engine_options(command: Callable[..., None]) -> Callable[..., None]:
    """Gives ``command`` the shared ``--db`` and ``--policy`` options where its keyword-only
    ``engine_options`` parameter stands, and calls it with them as one :class:`EngineOptions`
    (the engine is opened only when the command asks: a refused command creates no file)."""
    signature = inspect.signature(command, eval_str=True)
    parameters: list[inspect.Parameter] = []
    for parameter in signature.parameters.values():
        if parameter.name != "engine_options":
            parameters.append(parameter)
            continue
        parameters += [
            inspect.Parameter("db", inspect.Parameter.KEYWORD_ONLY, default="recyclebin.db",
                              annotation=DbOption),
            inspect.Parameter("policy", inspect.Parameter.KEYWORD_ONLY, default="default",
                              annotation=PolicyOption),
        ]

    @functools.wraps(command)
    def run(*args: Any, db: str, policy: str, **kwargs: Any) -> None:
        command(*args, engine_options=EngineOptions(db, policy), **kwargs)

    run.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
    return run


def _require_consent(yes: bool, confirm: str | None, name: str, what: str) -> None:
    if confirm is not None:
        if confirm != name:
            _fail(f"--confirm {confirm!r} does not match the workspace name {name!r}; "
                  f"nothing was {what}", EXIT_CODES["precondition_failed"])
        return
    if not yes:
        _fail(f"refusing: {name!r} would be {what}; pass --confirm {name} (or --yes) to go on",
              EXIT_USAGE)


# ------------------------------------------------------------------------ rendering

def _iso(value: datetime | None) -> str:
    return "-" if value is None else isoformat_z(value)


def _parse_time(text: str, option: str) -> datetime:
    """An ISO 8601 time with a UTC offset (``Z`` or ``+01:00``); anything else exits 2."""
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        _fail(f"{option} {text!r} is not an ISO 8601 time; e.g. 2026-03-01T00:00:00Z", EXIT_USAGE)
    if when.utcoffset() is None:
        _fail(f"{option} {text!r} has no UTC offset; add Z (UTC) or e.g. +01:00", EXIT_USAGE)
    return when


def _kinds(kinds: Sequence[str]) -> str:
    return ", ".join(kinds) if kinds else "-"


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, sort_keys=False))


def _details(title: str, rows: Sequence[tuple[str, str]]) -> None:
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column("field", style="bold", no_wrap=True)
    table.add_column("value", overflow="fold")
    for key, value in rows:
        table.add_row(key, value)
    _console().print(table)


def _show_workspace(ws: rb.Workspace, output: OutputFormat, title: str) -> None:
    model = wire.WorkspaceModel.model_validate(ws)
    if output is OutputFormat.json:
        _print_json(model.model_dump(mode="json"))
        return
    components = ", ".join(f"{c.kind}={c.ref}{' (standalone)' if c.standalone else ''}"
                           for c in model.components) or "-"
    _details(title, [("id", model.id), ("name", model.name),
                     ("subscription", model.subscription_id),
                     ("resource group", model.resource_group), ("state", model.state),
                     ("retention days", str(model.soft_delete_retention_days)),
                     ("purge protection", "on" if model.purge_protection else "off"),
                     ("auto-delete at", _iso(model.auto_delete_at)),
                     ("components", components)])


def _show_delete_result(result: rb.DeleteResult, output: OutputFormat, title: str) -> None:
    if output is OutputFormat.json:
        _print_json(wire.DeleteResultModel.model_validate(result).model_dump(mode="json"))
        return
    rows = [("permanent", "yes" if result.permanent else "no"),
            ("deleted at", _iso(result.deleted_at))]
    if result.purge_at is not None:
        countdown = format_countdown(result.purge_at - result.deleted_at)
        rows.append(("purge at", f"{_iso(result.purge_at)} (in {countdown})"))
    rows += [("retained", _kinds(result.retained)), ("destroyed", _kinds(result.destroyed)),
             ("preserved", _kinds(result.preserved)),
             ("cleanup tasks", str(len(result.cleanup)))]
    _details(title, rows)
    for warning in result.warnings:
        print(f"recyclebin: warning: {warning}", file=sys.stderr)


def _components(specs: Sequence[str], standalone: bool) -> list[rb.Component]:
    components = []
    for spec in specs:
        kind, sep, ref = spec.partition("=")
        if not sep or not kind:
            option = "--standalone-component" if standalone else "--component"
            _fail(f"{option} {spec!r}: expected KIND=REF, e.g. compute_instance=ci-1",
                  EXIT_USAGE)
        components.append(rb.Component(kind, ref, standalone=standalone))
    return components


# ------------------------------------------------------------------------- workspace

@workspace_app.command("create")
@_with_engine_options
def workspace_create(
    subscription: SubscriptionOption, resource_group: GroupOption, name: NameOption,
    retention_days: Annotated[int | None, typer.Option(
        "--retention-days", help="Days in the recycle bin (default: the policy's).")] = None,
    cmk: Annotated[bool, typer.Option(
        "--cmk", help="Customer-managed keys: always hard-deleted.")] = False,
    component: Annotated[list[str] | None, typer.Option(
        "--component", help="KIND=REF, repeatable.")] = None,
    standalone_component: Annotated[list[str] | None, typer.Option(
        "--standalone-component", help="KIND=REF created on its own (always preserved), "
                                       "repeatable.")] = None,
    purge_protection: Annotated[bool | None, typer.Option(
        "--purge-protection/--no-purge-protection",
        help="Turn purge protection on, for good (default: the policy's).")] = None,
    if_deleted: Annotated[IfDeleted, typer.Option(
        "--if-deleted", case_sensitive=False,
        help="When a soft-deleted workspace holds the name: fail, recover it, or purge it "
             "first (purge needs --yes).")] = IfDeleted.fail,
    auto_delete_at: Annotated[str | None, typer.Option(
        "--auto-delete-at", metavar="WHEN",
        help="ISO 8601 time with a UTC offset (e.g. 2026-03-01T00:00:00Z) when the reaper "
             "deletes it (default: the policy's auto_delete.after_days, or never).")] = None,
    yes: YesOption = False,
    *, engine_options: EngineOptions,
    output: OutputOption = OutputFormat.table,
) -> None:
    """Create a workspace."""
    components = (_components(component or [], False)
                  + _components(standalone_component or [], True))
    mode = if_deleted
    if mode is IfDeleted.purge and not yes:
        _fail(f"refusing: --if-deleted purge purges the soft-deleted {name!r} for good; pass "
              "--yes to go on", EXIT_USAGE)
    when = _parse_time(auto_delete_at, "--auto-delete-at") if auto_delete_at is not None else None
    with engine_options.open() as engine:
        ws = rb.Workspace.create(subscription, resource_group, name,
                                 soft_delete_retention_days=retention_days, cmk_encrypted=cmk,
                                 components=components, engine=engine,
                                 purge_protection=purge_protection, if_deleted=mode.value,
                                 auto_delete_at=when)
        _show_workspace(ws, output, f"Created workspace {name}")


@workspace_app.command("show")
@_with_engine_options
def workspace_show(
    subscription: SubscriptionOption, resource_group: GroupOption, name: NameOption,
    *, engine_options: EngineOptions,
    output: OutputOption = OutputFormat.table,
) -> None:
    """Show a live workspace (a soft-deleted one is not found: see show-deleted)."""
    with engine_options.open() as engine:
        ws = rb.Workspace.get(name, subscription, resource_group, engine=engine)
        _show_workspace(ws, output, f"Workspace {name}")


@workspace_app.command("stop")
@_with_engine_options
def workspace_stop(
    subscription: SubscriptionOption, resource_group: GroupOption, name: NameOption,
    *, engine_options: EngineOptions,
    output: OutputOption = OutputFormat.table,
) -> None:
    """Stop a workspace (idempotent)."""
    with engine_options.open() as engine:
        ws = rb.Workspace.get(name, subscription, resource_group, engine=engine)
        ws.stop()
        _show_workspace(ws, output, f"Stopped workspace {name}")


@workspace_app.command("start")
@_with_engine_options
def workspace_start(
    subscription: SubscriptionOption, resource_group: GroupOption, name: NameOption,
    *, engine_options: EngineOptions,
    output: OutputOption = OutputFormat.table,
) -> None:
    """Start a workspace (idempotent)."""
    with engine_options.open() as engine:
        ws = rb.Workspace.get(name, subscription, resource_group, engine=engine)
        ws.start()
        _show_workspace(ws, output, f"Started workspace {name}")


@workspace_app.command("delete")
@_with_engine_options
def workspace_delete(
    subscription: SubscriptionOption, resource_group: GroupOption, name: NameOption,
    permanently_delete: Annotated[bool, typer.Option(
        "--permanently-delete", help="Skip the recycle bin.")] = False,
    delete_dependent_resources: Annotated[bool, typer.Option(
        "--delete-dependent-resources",
        help="With --permanently-delete: also destroy preserved resources.")] = False,
    confirm: Annotated[str | None, typer.Option(
        "--confirm", metavar="NAME", help="Type the workspace name to consent (and to "
                                          "satisfy a policy that asks for it).")] = None,
    yes: YesOption = False,
    *, engine_options: EngineOptions,
    output: OutputOption = OutputFormat.table,
) -> None:
    """Delete a workspace: into the recycle bin unless --permanently-delete."""
    _require_consent(yes, confirm, name, "permanently deleted" if permanently_delete
                     else "deleted")
    with engine_options.open() as engine:
        ws = rb.Workspace.get(name, subscription, resource_group, engine=engine)
        result = ws.delete(delete_dependent_resources=delete_dependent_resources,
                           permanently_delete=permanently_delete, confirm_name=confirm)
        verb = "Permanently deleted" if result.permanent else "Soft-deleted"
        _show_delete_result(result, output, f"{verb} workspace {name}")


@workspace_app.command("list-deleted")
@_with_engine_options
def workspace_list_deleted(
    subscription: SubscriptionOption,
    resource_group: Annotated[str | None, typer.Option(
        "--resource-group", "-g", help="Only this resource group.")] = None,
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="Page size.")] = None,
    cursor: Annotated[str | None, typer.Option(
        "--cursor", help="The next-page cursor printed by the previous page.")] = None,
    *, engine_options: EngineOptions,
    output: OutputOption = OutputFormat.table,
) -> None:
    """List soft-deleted workspaces, newest deletion first."""
    with engine_options.open() as engine:
        page = rb.Workspace.list_deleted(subscription, resource_group, limit=limit,
                                         cursor=cursor, engine=engine)
        if output is OutputFormat.json:
            _print_json({"value": [wire.DeletedWorkspaceModel.model_validate(d).model_dump(
                                       mode="json") for d in page],
                         "next_cursor": page.next_cursor})
            return
        table = Table(title=f"Deleted workspaces in {subscription}"
                            + (f"/{resource_group}" if resource_group else ""),
                      title_justify="left")
        for column in ("name", "resource group", "deleted at", "purge at", "purge in", "hold", "id"):
            table.add_column(column, no_wrap=column != "id", overflow="fold")
        for item in page:
            table.add_row(item.name, item.resource_group, _iso(item.deleted_at),
                          _iso(item.purge_at), format_countdown(item.time_to_purge),
                          "held" if item.held else "-", item.id)
        console = _console()
        console.print(table)
        if not page:
            console.print("(the recycle bin is empty)")
        if page.next_cursor is not None:
            console.print(f"more: --cursor {page.next_cursor}")


@workspace_app.command("show-deleted")
@_with_engine_options
def workspace_show_deleted(
    subscription: SubscriptionOption, resource_group: GroupOption, name: NameOption,
    *, engine_options: EngineOptions,
    output: OutputOption = OutputFormat.table,
) -> None:
    """Show a soft-deleted workspace, with its purge date."""
    with engine_options.open() as engine:
        item = rb.Workspace.get_deleted(name, subscription, resource_group, engine=engine)
        if output is OutputFormat.json:
            _print_json(wire.DeletedWorkspaceModel.model_validate(item).model_dump(mode="json"))
            return
        _details(f"Deleted workspace {name}", [
            ("id", item.id), ("name", item.name), ("subscription", item.subscription_id),
            ("resource group", item.resource_group), ("deleted at", _iso(item.deleted_at)),
            ("purge at", f"{_iso(item.purge_at)} (in {format_countdown(item.time_to_purge)})"),
            ("retention days", str(item.retention_days)), ("retained", _kinds(item.retained)),
            ("legal hold", "held" if item.held else "none")])


@workspace_app.command("recover")
@_with_engine_options
def workspace_recover(
    subscription: SubscriptionOption, resource_group: GroupOption, name: NameOption,
    *, engine_options: EngineOptions,
    output: OutputOption = OutputFormat.table,
) -> None:
    """Recover a soft-deleted workspace."""
    with engine_options.open() as engine:
        result = rb.Workspace.recover(subscription, resource_group, name, engine=engine)
        if output is OutputFormat.json:
            _print_json(wire.RecoverResultModel.model_validate(result).model_dump(mode="json"))
            return
        _details(f"Recovered workspace {name}", [
            ("id", result.workspace.id), ("restored", _kinds(result.restored)),
            ("reattached", _kinds(result.reattached)),
            ("must recreate", _kinds(result.must_recreate))])


@workspace_app.command("purge")
@_with_engine_options
def workspace_purge(
    subscription: SubscriptionOption, resource_group: GroupOption, name: NameOption,
    confirm: ConfirmOption = None,
    yes: YesOption = False,
    *, engine_options: EngineOptions,
    output: OutputOption = OutputFormat.table,
) -> None:
    """Purge a soft-deleted workspace now (it can no longer be recovered)."""
    _require_consent(yes, confirm, name, "purged")
    with engine_options.open() as engine:
        result = rb.Workspace.purge(subscription, resource_group, name, engine=engine)
        _show_delete_result(result, output, f"Purged workspace {name}")


@workspace_app.command("grant")
@_with_engine_options
def workspace_grant(
    subscription: SubscriptionOption, resource_group: GroupOption, name: NameOption,
    member: Annotated[str, typer.Option("--member", help="The principal id to grant to.")],
    role: Annotated[str, typer.Option("--role", help="The role, e.g. owner.")],
    *, engine_options: EngineOptions,
) -> None:
    """Give a member a role on a workspace (replaces their role)."""
    with engine_options.open() as engine:
        rb.Workspace.get(name, subscription, resource_group, engine=engine).grant(member, role)
        _console().print(f"Granted {role} on {name} to {member}")


@workspace_app.command("revoke")
@_with_engine_options
def workspace_revoke(
    subscription: SubscriptionOption, resource_group: GroupOption, name: NameOption,
    member: Annotated[str, typer.Option("--member", help="The principal id to revoke.")],
    *, engine_options: EngineOptions,
) -> None:
    """Remove a member from a workspace (the last one leaves it orphaned)."""
    with engine_options.open() as engine:
        rb.Workspace.get(name, subscription, resource_group, engine=engine).revoke(member)
        _console().print(f"Revoked {member} on {name}")


# ---------------------------------------------------------------------- protections

DeletedFlag = Annotated[bool, typer.Option(
    "--deleted", help="The workspace is in the recycle bin (soft-deleted), not live.")]


def _workspace_id(engine: rb.Engine, subscription: str, resource_group: str, name: str,
                  deleted: bool) -> str:
    if deleted:
        return rb.Workspace.get_deleted(name, subscription, resource_group, engine=engine).id
    return rb.Workspace.get(name, subscription, resource_group, engine=engine).id


def _show_guards(guards: Sequence[rb.Hold | rb.Lien], output: OutputFormat, title: str) -> None:
    models = [wire.HoldModel.model_validate(g) if isinstance(g, rb.Hold)
              else wire.LienModel.model_validate(g) for g in guards]
    if output is OutputFormat.json:
        _print_json([m.model_dump(mode="json") for m in models])
        return
    table = Table(title=title, title_justify="left")
    for column in ("kind", "id", "origin", "reason", "by", "since"):
        table.add_column(column, overflow="fold")
    for g in guards:
        if isinstance(g, rb.Hold):
            table.add_row("hold", g.id, "-", g.reason, g.placed_by or "(platform)", _iso(g.placed_at))
        else:
            table.add_row("lien", g.id, g.origin, g.reason, "-", _iso(g.created_at))
    _console().print(table)
    if not guards:
        _console().print("(none)")


@workspace_app.command("hold")
@_with_engine_options
def workspace_hold(
    subscription: SubscriptionOption, resource_group: GroupOption, name: NameOption,
    reason: Annotated[str, typer.Option("--reason", help="Why it must be kept (shown in every "
                                                         "refusal it causes).")],
    deleted: DeletedFlag = False,
    *, engine_options: EngineOptions,
    output: OutputOption = OutputFormat.table,
) -> None:
    """Place a legal hold: nothing destroys the workspace (permanent delete, purge, expiry)
    until it is released; soft delete and recover still work."""
    with engine_options.open() as engine:
        hold = engine.place_hold(_workspace_id(engine, subscription, resource_group, name, deleted),
                                 reason)
        _show_guards([hold], output, f"Placed a legal hold on {name}")


@workspace_app.command("release-hold")
@_with_engine_options
def workspace_release_hold(
    hold_id: Annotated[str, typer.Option("--hold-id", help="The hold's id (see holds).")],
    *, engine_options: EngineOptions,
) -> None:
    """Release a legal hold. A workspace past its purge date whose last hold goes expires at
    once."""
    with engine_options.open() as engine:
        engine.release_hold(hold_id)
        _console().print(f"Released hold {hold_id}")


@workspace_app.command("protections")
@_with_engine_options
def workspace_protections(
    subscription: SubscriptionOption, resource_group: GroupOption, name: NameOption,
    deleted: DeletedFlag = False,
    *, engine_options: EngineOptions,
    output: OutputOption = OutputFormat.table,
) -> None:
    """List a workspace's legal holds and liens, oldest first."""
    with engine_options.open() as engine:
        workspace_id = _workspace_id(engine, subscription, resource_group, name, deleted)
        holds, liens = engine.holds(workspace_id), engine.liens(workspace_id)
        if output is OutputFormat.json:
            _print_json({"holds": [wire.HoldModel.model_validate(h).model_dump(mode="json") for h in holds],
                         "liens": [wire.LienModel.model_validate(lien).model_dump(mode="json")
                                   for lien in liens]})
            return
        _show_guards([*holds, *liens], output, f"Legal holds and liens of {name}")


@workspace_app.command("lien")
@_with_engine_options
def workspace_lien(
    subscription: SubscriptionOption, resource_group: GroupOption, name: NameOption,
    origin: Annotated[str, typer.Option("--origin", help="Who needs the workspace kept, "
                                                         "e.g. billing-service.")],
    reason: Annotated[str, typer.Option("--reason", help="Why.")],
    *, engine_options: EngineOptions,
    output: OutputOption = OutputFormat.table,
) -> None:
    """Add a lien: every delete of the workspace is refused until it is removed."""
    with engine_options.open() as engine:
        lien = engine.add_lien(_workspace_id(engine, subscription, resource_group, name, False),
                               origin, reason)
        _show_guards([lien], output, f"Added a lien to {name}")


@workspace_app.command("unlien")
@_with_engine_options
def workspace_unlien(
    lien_id: Annotated[str, typer.Option("--lien-id", help="The lien's id (see liens).")],
    *, engine_options: EngineOptions,
) -> None:
    """Remove a lien."""
    with engine_options.open() as engine:
        engine.remove_lien(lien_id)
        _console().print(f"Removed lien {lien_id}")


@workspace_app.command("protect")
@_with_engine_options
def workspace_protect(
    subscription: SubscriptionOption, resource_group: GroupOption, name: NameOption,
    confirm: ConfirmOption = None,
    yes: YesOption = False,
    *, engine_options: EngineOptions,
    output: OutputOption = OutputFormat.table,
) -> None:
    """Turn purge protection on, for good: every delete is soft, and nothing purges the
    workspace before its purge date. It cannot be turned off."""
    _require_consent(yes, confirm, name, "purge-protected for good")
    with engine_options.open() as engine:
        ws = rb.Workspace.get(name, subscription, resource_group, engine=engine)
        ws.enable_purge_protection()
        _show_workspace(ws, output, f"Purge protection is on for {name}")


@workspace_app.command("auto-delete")
@_with_engine_options
def workspace_auto_delete(
    subscription: SubscriptionOption, resource_group: GroupOption, name: NameOption,
    at: Annotated[str | None, typer.Option(
        "--at", metavar="WHEN", help="ISO 8601 time with a UTC offset, e.g. "
                                     "2026-03-01T00:00:00Z.")] = None,
    never: Annotated[bool, typer.Option("--never", help="Cancel the auto-deletion.")] = False,
    *, engine_options: EngineOptions,
    output: OutputOption = OutputFormat.table,
) -> None:
    """Set (--at) or cancel (--never) when the reaper deletes the workspace."""
    if (at is None) == (not never):
        _fail("give exactly one of --at WHEN or --never", EXIT_USAGE)
    when = None if never else _parse_time(at or "", "--at")
    with engine_options.open() as engine:
        ws = rb.Workspace.get(name, subscription, resource_group, engine=engine)
        ws.set_auto_delete(when)
        _show_workspace(ws, output, f"Auto-deletion of {name}")


# ----------------------------------------------------------------------------- admin

@admin_app.command("list-deletable")
@_with_engine_options
def admin_list_deletable(
    organization: OrganizationOption, *, engine_options: EngineOptions,
    output: OutputOption = OutputFormat.table,
) -> None:
    """List the realms (workspaces) an operator may delete: kind and date, never names.

    A realm both orphaned and past its deletion date is listed once under each kind."""
    with engine_options.open() as engine:
        candidates = engine.list_deletable(organization)
        models = [wire.DeletableWorkspaceModel.model_validate(c) for c in candidates]
        if output is OutputFormat.json:
            # The realm server's key for the date too, beside the REST shape's "since".
            _print_json([{**shown, _date_key(shown["kind"]): shown["since"]}
                         for shown in (m.model_dump(mode="json") for m in models)])
            return
        # The realm server's words, also for an empty listing ("Found 0 ...").
        print(f"Found {len(candidates)} deletion candidate(s):")
        for m in models:
            print(f"Realm {m.workspace_id}  kind={m.kind:<16}  {_date_key(m.kind)}={_iso(m.since)}")


def _date_key(kind: str) -> str:
    return "orphaned_since" if kind == "orphaned" else "deletion_date"


#: Exports tried before delete-realm gives up when the realm's blocks keep changing.
_EXPORT_ATTEMPTS = 3


def _realm_blocks(engine: rb.Engine, organization: str, realm: str) -> list[str]:
    """Every storage reference deleting the realm leaves to remove: its cleanup tasks already
    pending, then those the purge would write (a dry run: the same checks, nothing written).
    Refused (not deletable, or not in this organization): exit as OperationNotAllowed."""
    try:
        plan = engine.purge_by_id(realm, dry_run=True)
        if not any(c.workspace_id == realm for c in engine.list_deletable(organization)):
            raise rb.OperationNotAllowed(
                f"realm {realm} is not deletable in organization {organization!r}")
    except rb.OperationNotAllowed as exc:
        _fail(f"{exc}; see `recyclebin admin list-deletable --organization {organization}`",
              codes.exit_code(exc))
    pending = [t.ref for t in engine.cleanup_tasks() if t.workspace_id == realm]
    refs = pending + [t.ref for t in plan.cleanup]
    for ref in refs:
        if "\n" in ref or "\r" in ref:
            _fail(f"realm {realm} has a block reference with a line break ({ref!r}); the dump "
                  "file lists one reference per line, so nothing was exported or deleted",
                  EXIT_CODES["invalid_argument"])
    return refs


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_dump(path: Path, refs: Sequence[str], err: Console) -> None:
    """Writes ``refs`` one per line to the new file ``path``, durably and all at once: a
    temporary file in the same directory, flushed and fsynced, then put in place (never over
    an existing file) and the directory fsynced. A crash leaves ``path`` absent or complete,
    never partial (at worst a hidden ``.NAME.*.partial`` file beside it)."""
    directory = path.absolute().parent
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as dump:
            with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                          console=err) as progress:
                bar = progress.add_task("Exporting a list of all the realm's block that can "
                                        "be removed", total=len(refs))
                for ref in refs:
                    dump.write(ref + "\n")
                    progress.advance(bar)
            dump.flush()
            os.fsync(dump.fileno())
        _link_new(temporary, path)
        _fsync_directory(directory)
    finally:
        Path(temporary).unlink(missing_ok=True)


def _link_new(temporary: str, path: Path) -> None:
    """Puts the finished file at ``path`` unless something is there already (atomically, with
    a hard link; on a file system without hard links, by a rename after a check)."""
    try:
        os.link(temporary, path)
        return
    except FileExistsError:
        pass
    except OSError as exc:
        if exc.errno not in {errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK}:
            raise
        if not path.exists():
            os.rename(temporary, path)
            return
    _fail(f"{path} exists (it may list blocks still to remove); choose a new file for "
          "--dump-blocks", EXIT_USAGE)


@admin_app.command("delete-realm")
@_with_engine_options
def admin_delete_realm(
    organization: OrganizationOption,
    realm: Annotated[str, typer.Option("--realm", help="The realm (workspace) id, from "
                                                       "list-deletable.")],
    dump_blocks: Annotated[Path | None, typer.Option(
        "--dump-blocks", "--dump-realm-blocks", dir_okay=False,
        help="New file to write every storage reference to remove, one per line; written "
             "in full and made durable before the realm is deleted. Required unless "
             "--dry-run.")] = None,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Print the realm and the blocks it would export and delete; write "
                          "no file and change nothing (--dump-blocks and --yes are "
                          "ignored).")] = False,
    yes: YesOption = False,
    *, engine_options: EngineOptions,
) -> None:
    """Export the blocks to remove from storage, then delete one deletable realm's metadata."""
    if not dry_run:
        if not yes:
            _fail(f"refusing: realm {realm} would be deleted for good; pass --yes to go on "
                  "(or --dry-run to see what would be deleted)", EXIT_USAGE)
        if dump_blocks is None:
            _fail("--dump-blocks FILE is required: the realm's block list is written there "
                  "before the realm is deleted (or pass --dry-run)", EXIT_USAGE)
    err = _console(stderr=True)
    with engine_options.open() as engine:
        refs = _realm_blocks(engine, organization, realm)
        if dry_run or dump_blocks is None:
            print(f"Would export {len(refs)} block slug(s) (dry run: no file is written):")
            for ref in refs:
                print(f"  {ref}")
            print(f"Would delete metadata for realm {realm} (dry run: nothing was deleted)")
            return
        if dump_blocks.exists():
            _fail(f"{dump_blocks} exists (it may list blocks still to remove); choose a new "
                  "file for --dump-blocks", EXIT_USAGE)
        _write_dump(dump_blocks, refs, err)
        # From here on the dump is complete and durable: a crash leaves the realm in place
        # with its list, or deleted with its list.
        print(f"Exported {len(refs)} block slug(s) to {dump_blocks}")
        for attempt in range(1, _EXPORT_ATTEMPTS + 1):
            print(f"Deleting metadata for realm {realm}...", end="", flush=True)
            try:
                # One transaction, refused and rolled back if the purge would leave a block
                # that the dump does not list (the realm's blocks changed since the export).
                engine.purge_by_id(realm, expected_refs=refs)
                break
            except rb.RecycleBinError as exc:
                print(flush=True)
                # Nothing of a refused or failed purge is applied: the realm is in place, so
                # its list must not be left where an operator would act on it.
                dump_blocks.unlink(missing_ok=True)
                if not isinstance(exc, rb.OperationNotAllowed):
                    raise
                refs = _realm_blocks(engine, organization, realm)  # still deletable?
                if attempt == _EXPORT_ATTEMPTS:
                    _fail(f"realm {realm} was not deleted: its blocks changed during each of "
                          f"{attempt} exports; nothing was deleted, try again",
                          EXIT_CODES["operation_not_allowed"])
                print(f"The realm's blocks changed during the export; exporting them again "
                      f"(attempt {attempt + 1} of {_EXPORT_ATTEMPTS})")
                _write_dump(dump_blocks, refs, err)
                print(f"Exported {len(refs)} block slug(s) to {dump_blocks}")
        print(" ✔")
        print("⚠️ The realm has been deleted, however its blocks are still present in the "
              "object storage")
        print(f"⚠️ You should now manually clean the object storage by removing all the path "
              f"listed in {dump_blocks}")


@admin_app.command("cleanup-tasks")
@_with_engine_options
def admin_cleanup_tasks(
    workspace_id: Annotated[str | None, typer.Option(
        "--workspace-id", help="Only this workspace's tasks.")] = None,
    *, engine_options: EngineOptions,
    output: OutputOption = OutputFormat.table,
) -> None:
    """Pending cleanup tasks (external resources to destroy), oldest first."""
    with engine_options.open() as engine:
        tasks = [t for t in engine.cleanup_tasks()
                 if workspace_id is None or t.workspace_id == workspace_id]
        if output is OutputFormat.json:
            _print_json([wire.CleanupTaskModel.model_validate(t).model_dump(mode="json")
                         for t in tasks])
            return
        table = Table(title=f"{len(tasks)} pending cleanup task(s)", title_justify="left")
        for column in ("id", "kind", "ref", "workspace id", "created at"):
            table.add_column(column, overflow="fold")
        for t in tasks:
            table.add_row(str(t.id), t.kind, t.ref, t.workspace_id, _iso(t.created_at))
        _console().print(table)


@admin_app.command("complete-cleanup")
@_with_engine_options
def admin_complete_cleanup(
    task_id: Annotated[int, typer.Argument(min=1, help="The task id.")],
    *, engine_options: EngineOptions,
) -> None:
    """Mark a cleanup task done (a completed one stays done)."""
    with engine_options.open() as engine:
        try:
            engine.complete_cleanup(task_id)
        except KeyError:
            _fail(f"no cleanup task {task_id}; see `recyclebin admin cleanup-tasks`",
                  EXIT_CODES["workspace_not_found"])
        _console().print(f"Completed cleanup task {task_id}")


# ------------------------------------------------------------------- purge-expired

@app.command("purge-expired")
@_with_engine_options
def purge_expired(
    yes: YesOption = False,
    *, engine_options: EngineOptions,
    output: OutputOption = OutputFormat.table,
) -> None:
    """Purge every workspace whose retention has ended (and due orphans), and delete the
    live ones whose auto-deletion time has come."""
    if not yes:
        _fail("refusing: expired workspaces would be purged for good; pass --yes to go on",
              EXIT_USAGE)
    with engine_options.open() as engine:
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                      console=_console(stderr=True), transient=output is OutputFormat.json
                      ) as progress:
            bar = progress.add_task("Purging expired workspaces", total=None)
            report = engine.purge_expired()
            progress.update(bar, total=len(report.purged), completed=len(report.purged))
        if output is OutputFormat.json:
            _print_json(wire.PurgeReportModel.model_validate(report).model_dump(
                mode="json", exclude={"dry_run"}))  # this command never dry-runs
            return
        console = _console()
        if not report.purged:
            console.print("Purged 0 workspace(s): nothing has expired")
        else:
            table = Table(title=f"Purged {len(report.purged)} workspace(s)", title_justify="left")
            for column in ("subscription", "resource group", "name"):
                table.add_column(column, overflow="fold")
            for s, g, n in report.purged:
                table.add_row(s, g, n)
            console.print(table)
        if report.auto_deleted or report.auto_delete_refused:
            table = Table(title=f"Auto-deleted {len(report.auto_deleted)} workspace(s), "
                                f"{len(report.auto_delete_refused)} refused", title_justify="left")
            for column in ("subscription", "resource group", "name", "outcome"):
                table.add_column(column, overflow="fold")
            for s, g, n in report.auto_deleted:
                table.add_row(s, g, n, "deleted")
            for s, g, n, code in report.auto_delete_refused:
                table.add_row(s, g, n, f"refused: {code} (stays live)")
            console.print(table)
        console.print(f"{len(report.cleanup)} cleanup task(s) queued")


# --------------------------------------------------------------------------- policy

class PolicyOutput(str, enum.Enum):
    table = "table"
    json = "json"
    yaml = "yaml"


PolicyOutputOption = Annotated[PolicyOutput, typer.Option(
    "--output", "-o", case_sensitive=False,
    help="table (a column per tenant), json, or yaml (the effective rules, defaults "
         "spelled out).")]


@policy_app.command("check")
def policy_check(
    file: Annotated[Path, typer.Argument(help="The policy YAML file.", dir_okay=False)],
    output: PolicyOutputOption = PolicyOutput.table,
) -> None:
    """Validate a policy file and print the effective policy of each tenant.

    An invalid file prints its errors as FILE:LINE:COLUMN: message and exits 11."""
    with _errors():
        if not file.is_file():
            _fail(f"{file}: no such file", EXIT_USAGE)
        try:
            policy = rb.Policy.load(str(file))
        except rb.PolicyError as exc:
            for line in str(exc).splitlines():
                print(f"recyclebin: error: {line}", file=sys.stderr)
            raise typer.Exit(EXIT_CODES["policy_error"]) from None
        _show_policy(policy, output, f"{file}: valid")


@policy_app.command("show")
def policy_show(
    name: Annotated[str, typer.Argument(help="A built-in policy name (default, azureml, "
                                             "dataworks, parsec, exostellar, "
                                             "cloud-workstation) or a YAML file.")],
    output: PolicyOutputOption = PolicyOutput.table,
) -> None:
    """Print a policy's effective settings, for the base and each tenant."""
    with _errors():
        _show_policy(resolve_policy(name), output, f"policy {name}")


def _flat(settings: Any, prefix: str = "") -> dict[str, str]:
    """{"retention": {"default_days": 14}} -> {"retention.default_days": "14"}."""
    if isinstance(settings, dict):
        flat: dict[str, str] = {}
        for key, value in settings.items():
            flat.update(_flat(value, f"{prefix}{key}."))
        return flat
    if settings is None:
        text = "null"
    elif isinstance(settings, bool):
        text = "true" if settings else "false"
    elif isinstance(settings, list):
        text = "[" + ", ".join(map(str, settings)) + "]"
    else:
        text = str(settings)
    return {prefix.rstrip("."): text}


def _show_policy(policy: rb.Policy, output: PolicyOutput, title: str) -> None:
    tenants = list(policy.tenants)
    if output is PolicyOutput.json:
        _print_json({"name": policy.name, "base": policy.rules(),
                     "tenants": {t: policy.rules(t) for t in tenants}})
        return
    if output is PolicyOutput.yaml:
        print(f"# {title}: effective rules of the base policy")
        print(policy.to_yaml().rstrip("\n"))
        for tenant in tenants:
            print(f"---\n# effective rules of tenant {tenant}")
            print(policy.to_yaml(tenant).rstrip("\n"))
        return
    columns = [_flat(policy.rules()), *(_flat(policy.rules(t)) for t in tenants)]
    table = Table(title=f"{title} (name: {policy.name}, {len(tenants)} tenant override(s))",
                  title_justify="left")
    table.add_column("setting", no_wrap=True)
    table.add_column("base", overflow="fold")
    for tenant in tenants:
        table.add_column(f"tenant {tenant}", overflow="fold")
    for key in dict.fromkeys(key for column in columns for key in column):
        if key in {"version", "name"}:
            continue
        table.add_row(key, *(column.get(key, "-") for column in columns))
    _console().print(table)


# ---------------------------------------------------------------------------- serve

def _parse_instant(value: str) -> datetime:
    try:
        instant = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not an ISO 8601 time, e.g. "
                                 "2026-01-01T00:00:00Z") from None
    if instant.tzinfo is None:
        raise typer.BadParameter(f"{value!r} has no timezone; add Z for UTC")
    return instant.astimezone(timezone.utc)


@app.command("serve")
@_with_engine_options
def serve(
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="TCP port.")] = 8000,
    *, engine_options: EngineOptions,
    tokens: Annotated[Path | None, typer.Option(
        "--tokens", dir_okay=False, help="Bearer tokens, YAML or JSON: token -> "
        "{principal, subscriptions: [..] or \"*\", roles} or {principal, platform: true}. "
        "Default: $RECYCLEBIN_TOKENS.")
    ] = None,
    max_body_bytes: Annotated[int, typer.Option(
        "--max-body-bytes", min=1, help="Largest request body taken, in bytes; larger ones "
        "are refused with 413 before they are read.")] = 1 << 20,
    reaper_interval: Annotated[float, typer.Option(
        "--reaper-interval", min=0, help="Seconds between purge_expired runs; 0 = off.")
    ] = 60.0,
    manual_clock: Annotated[str | None, typer.Option(
        "--manual-clock", metavar="ISO8601",
        help="TESTS ONLY: run on a clock standing still at this time, moved through "
             "/_testing/clock (platform token). Loopback hosts only.")] = None,
    log_level: Annotated[str, typer.Option(
        "--log-level", help="critical, error, warning, info, debug.")] = "info",
    ssl_certfile: Annotated[Path | None, typer.Option(
        "--ssl-certfile", dir_okay=False, help="Serve HTTPS with this PEM certificate (chain); "
        "needs --ssl-keyfile. Bearer-token SDKs such as azure-ai-ml require HTTPS.")] = None,
    ssl_keyfile: Annotated[Path | None, typer.Option(
        "--ssl-keyfile", dir_okay=False, help="The certificate's PEM private key.")] = None,
) -> None:
    """Run the REST server (uvicorn) with the purge reaper."""
    from recyclebin.server import is_loopback
    from recyclebin.server import serve as run_server

    clock_start = _parse_instant(manual_clock) if manual_clock is not None else None
    if clock_start is not None and not is_loopback(host):
        _fail(f"--manual-clock is for tests and needs a loopback --host, not {host!r}",
              EXIT_USAGE)
    if log_level.lower() not in {"critical", "error", "warning", "info", "debug"}:
        _fail(f"--log-level {log_level!r}: use critical, error, warning, info or debug",
              EXIT_USAGE)
    from recyclebin.server import check_tls_files
    try:
        check_tls_files(ssl_certfile, ssl_keyfile)
    except ValueError as exc:
        _fail(str(exc), EXIT_USAGE)
    with _errors():
        run_server(engine_options.db, engine_options.policy, host=host, port=port, tokens=tokens,
                   reaper_interval=reaper_interval or None, manual_clock=clock_start,
                   log_level=log_level.lower(), ssl_certfile=ssl_certfile,
                   ssl_keyfile=ssl_keyfile, max_body_bytes=max_body_bytes)


def main() -> None:
    """Console-script entry point."""
    app(prog_name="recyclebin")
