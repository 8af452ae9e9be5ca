"""Every shipped policy validates; broken policies fail with the position of what is wrong."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import yaml

import recyclebin as rb

from .support import BUILTIN_NAMES, POLICY_DIR, START


def policy_files() -> list[Path]:
    return sorted(POLICY_DIR.glob("*.yaml"))


def test_there_is_one_policy_file_per_builtin_name() -> None:
    assert sorted(path.stem for path in policy_files()) == sorted(BUILTIN_NAMES)


@pytest.mark.parametrize("path", policy_files(), ids=lambda path: path.stem)
def test_policy_file_validates_and_names_itself_after_its_file(path: Path) -> None:
    rb.Policy.load(str(path))
    rb.Policy.from_yaml(path.read_text(encoding="utf-8"))
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert document["version"] == 1
    assert document["name"] == path.stem


@pytest.mark.parametrize("name", BUILTIN_NAMES)
def test_builtin_policy_opens_an_engine(tmp_path: Path, name: str) -> None:
    clock = rb.ManualClock(START)
    for policy in (name, rb.Policy.builtin(name), str(POLICY_DIR / f"{name}.yaml")):
        with rb.Engine.open(str(tmp_path / "bin.db"), policy=policy, clock=clock) as engine:
            ws = rb.Workspace.create("sub", "rg", f"probe-{len(engine.audit_log())}", engine=engine)
            assert ws.soft_delete_retention_days >= 1


def test_unknown_builtin_name_lists_the_builtin_names() -> None:
    with pytest.raises(rb.PolicyError) as refused:
        rb.Policy.builtin("azure-ml")
    assert refused.value.code == "policy_error"
    assert refused.value.http_status == 400
    for name in BUILTIN_NAMES:
        assert name in str(refused.value)


HEADER = "version: 1\nname: broken\n"

# (what is wrong, YAML after the two header lines, "line:column:" of the offending value or
# unknown key, words the message must contain)
BROKEN = [
    ("unknown key", """
        retention:
          default_days: 14
          max_dayz: 14
        """, "5:3:", ["max_dayz"]),
    ("unknown section", """
        recycle_bin:
          enabled: true
        """, "3:1:", ["recycle_bin"]),
    ("wrong type: text for a number", """
        retention:
          default_days: fourteen
        """, "4:17:", ["default_days"]),
    ("wrong type: text for a boolean", """
        soft_delete:
          enabled: sometimes
        """, "4:12:", ["enabled"]),
    ("wrong type: a scalar for a list", """
        preconditions:
          blockers: running_jobs
        """, "4:13:", ["blockers"]),
    ("wrong type: a list for a mapping", """
        components:
          models: [retain]
        """, "4:11:", ["models"]),
    ("out of range: version", "", "1:10:", ["version"]),
    ("out of range: negative orphan delay", """
        orphans:
          purge_after_days: -1
        """, "4:21:", ["purge_after_days"]),
    ("out of range: default above max", """
        retention:
          default_days: 30
          min_days: 1
          max_days: 14
        """, "4:17:", ["default_days"]),
    ("unknown enum value: on_expiry", """
        retention:
          on_expiry: archive
        """, "4:14:", ["archive", "purge", "hold"]),
    ("unknown enum value: reservation scope", """
        name_reservation:
          scope: region
        """, "4:10:", ["region", "group", "tenant", "none"]),
    ("unknown enum value: on_delete", """
        components:
          models: {on_delete: keep}
        """, "4:23:", ["keep", "retain", "destroy", "preserve"]),
    ("unknown enum value: on_recover", """
        components:
          compute_instance:
            on_delete: destroy
            on_recover: rebuild
        """, "6:17:", ["rebuild", "none", "reattach"]),
    ("empty role list", """
        permissions:
          delete: []
        """, "4:11:", ["delete"]),
    ("unknown permission action", """
        permissions:
          destroy: [owner]
        """, "4:3:", ["destroy", "delete", "recover", "purge"]),
    ("tenant override out of range", """
        tenants:
          contoso:
            retention:
              default_days: 99
        """, "6:21:", ["default_days"]),
    ("tenant override unknown key", """
        tenants:
          contoso:
            soft_delete:
              enable: false
        """, "6:7:", ["enable"]),
]


def broken_text(body: str) -> str:
    return HEADER + textwrap.dedent(body).lstrip("\n")


@pytest.mark.parametrize(("body", "position", "words"), [case[1:] for case in BROKEN],
                         ids=[case[0] for case in BROKEN])
def test_invalid_policy_is_refused_at_the_offending_value(body: str, position: str, words: list[str]) -> None:
    text = broken_text(body)
    if not body:
        text = text.replace("version: 1", "version: 2")
    with pytest.raises(rb.PolicyError) as refused:
        rb.Policy.from_yaml(text)
    message = str(refused.value)
    assert message.startswith(position), message
    for word in words:
        assert word in message, message
    assert refused.value.code == "policy_error"


def test_broken_policy_file_is_refused_with_its_path(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(broken_text("""
        retention:
          default_days: fourteen
        """), encoding="utf-8")
    with pytest.raises(rb.PolicyError) as refused:
        rb.Policy.load(str(path))
    assert str(refused.value).startswith(f"{path}:4:17:")
    with pytest.raises(rb.PolicyError) as refused_by_engine:
        rb.Engine.open(str(tmp_path / "bin.db"), policy=str(path))
    assert str(refused_by_engine.value).startswith(f"{path}:4:17:")


def test_positions_in_this_file_match_the_yaml_parser() -> None:
    # Guards the expected positions above against typos: each one must be where a YAML parser
    # puts a key or a value of the document.
    for what, body, position, _ in BROKEN:
        text = broken_text(body)
        if not body:
            text = text.replace("version: 1", "version: 2")
        marks = set()
        for event in yaml.parse(text):
            if isinstance(event, (yaml.ScalarEvent, yaml.SequenceStartEvent, yaml.MappingStartEvent)):
                marks.add(f"{event.start_mark.line + 1}:{event.start_mark.column + 1}:")
        assert position in marks, what
