"""The error-code registry (recyclebin.codes): every exception class in it, read off the
hierarchy as it is, with the HTTP status of its class and the CLI exit code the CLI uses; a
class added later is picked up with no list to edit, and exits as its nearest base."""

from __future__ import annotations

import pytest
import typer

import recyclebin as rb
from recyclebin import cli, codes
from recyclebin.errors import __all__ as ERROR_NAMES

#: Today's exit codes, as documented in `recyclebin --help` (they must not change).
DOCUMENTED_EXIT_CODES = {
    "workspace_not_found": 3, "workspace_exists": 4, "name_reserved": 5,
    "invalid_retention": 6, "operation_not_allowed": 7, "workspace_not_stopped": 8,
    "precondition_failed": 9, "permission_denied": 10, "policy_error": 11,
    "engine_closed": 12, "storage_error": 12, "invalid_argument": 2, "not_found": 3,
}


def exported_error_classes() -> list[type[rb.RecycleBinError]]:
    classes = [getattr(rb.errors, name) for name in ERROR_NAMES if name != "error_class"]
    return [cls for cls in classes if cls is not rb.RecycleBinError]


@pytest.fixture
def held_class() -> type[rb.RecycleBinError]:
    """A class added below OperationNotAllowed, as the bindings will add WorkspaceHeld."""
    return type("WorkspaceHeldForTest", (rb.OperationNotAllowed,),
                {"code": "workspace_held_for_test", "http_status": 409})


def test_the_registry_holds_every_exported_error_class() -> None:
    registry = codes.error_codes()
    for cls in exported_error_classes():
        entry = registry[cls.code]
        assert entry.error_class is cls
        assert entry.http_status == cls.http_status
        assert entry.exit_code == codes.exit_code(cls)
    assert {cls.code for cls in exported_error_classes()} <= set(registry)
    assert "recyclebin_error" not in registry  # the base is no code of its own


def test_bases_come_before_their_subclasses() -> None:
    classes = codes.error_classes()
    assert classes[0] is rb.RecycleBinError
    for index, cls in enumerate(classes):
        for base in cls.__mro__[1:]:
            if base in classes:
                assert classes.index(base) < index, (base, cls)


def test_the_exit_codes_are_todays() -> None:
    for code, status in DOCUMENTED_EXIT_CODES.items():
        assert codes.error_codes()[code].exit_code == status, code
        assert cli.EXIT_CODES[code] == status, code
    assert set(cli.EXIT_CODES) == {cls.code for cls in exported_error_classes()}


def test_an_instance_and_its_class_read_the_same() -> None:
    error = rb.NameReserved("held")
    assert codes.exit_code(error) == codes.exit_code(rb.NameReserved) == 5
    assert codes.http_status(error) == codes.http_status(rb.NameReserved) == 409
    assert codes.exit_code(rb.RecycleBinError("a bug")) == codes.EXIT_UNEXPECTED


def test_a_new_subclass_is_picked_up_with_its_parents_exit_code(
        held_class: type[rb.RecycleBinError]) -> None:
    assert held_class in codes.error_classes()
    entry = codes.error_codes()["workspace_held_for_test"]
    assert entry.error_class is held_class and entry.http_status == 409
    assert entry.exit_code == codes.exit_code(rb.OperationNotAllowed) == 7
    assert codes.exit_code(held_class("held")) == 7


def test_a_subclass_keeping_its_parents_code_is_that_code() -> None:
    cls = type("NotFoundAgain", (rb.WorkspaceNotFound,), {})
    entry = codes.error_codes()["workspace_not_found"]
    assert entry.error_class is rb.WorkspaceNotFound  # the base, not the later subclass
    assert codes.exit_code(cls) == 3


def test_the_cli_exits_with_the_registrys_code_for_a_new_subclass(
        held_class: type[rb.RecycleBinError], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(typer.Exit) as ended:
        with cli._errors():
            raise held_class("the workspace is held; release the hold first")
    assert ended.value.exit_code == 7
    assert capsys.readouterr().err == (
        "recyclebin: error: the workspace is held; release the hold first\n")


def test_the_rest_layer_answers_the_registrys_status_for_a_new_subclass(
        held_class: type[rb.RecycleBinError]) -> None:
    from recyclebin.rest.errors import engine_error_response

    response = engine_error_response(held_class("held"))
    assert response.status_code == 409
    assert response.body == (b'{"error":{"code":"workspace_held_for_test",'
                             b'"message":"held"}}')


def test_the_409_docs_list_the_registrys_conflict_codes(
        held_class: type[rb.RecycleBinError]) -> None:
    from recyclebin.rest.errors import E409, _conflict_codes

    assert E409[409]["description"].startswith(
        "`workspace_exists`, `name_reserved` (with `reserved_until`)")
    listed = _conflict_codes()
    assert "`operation_not_allowed`" in listed
    assert listed.endswith(" or `workspace_held_for_test`")  # the newest class comes last


def test_the_exit_help_lists_every_code_under_its_status() -> None:
    text = codes.exit_help()
    assert text.startswith("Exit codes: 0 ok; 1 unexpected error; 2 bad command line")
    for code, entry in codes.error_codes().items():
        assert code in text, code
    assert "7 operation_not_allowed, workspace_held" in text  # a subclass under its base's status
    assert text.endswith("130 interrupted.")
