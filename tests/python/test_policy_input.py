"""Hostile policy text through the public package (issue 10, items 3, 4, 11 and 12; API.md,
"Hostile input"): every refusal is a PolicyError at line:column whose message is a whole str
(never cut at a NUL, never a UnicodeDecodeError), and what is accepted can be read back."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import recyclebin as rb

POLICY_DIR = Path(__file__).resolve().parents[2] / "policies"


def refusal(text: str) -> str:
    with pytest.raises(rb.PolicyError) as refused:
        rb.Policy.from_yaml(text)
    message = str(refused.value)
    assert "\0" not in message
    message.encode("utf-8")  # a str from valid UTF-8: no lone surrogates
    return message


def test_the_fuzzer_input_is_a_policy_error_not_a_unicode_error() -> None:
    # yaml-cpp read the leading NULs as UTF-32, and the message was not UTF-8.
    message = refusal("\0" * 6 + 'version: "\\N"\n\n')
    assert message.startswith("1:1: the policy contains a NUL byte; a policy is UTF-8 text"), message


def test_a_message_is_not_cut_at_a_nul() -> None:
    message = refusal('version: "\\N"' + "\0" * 6 + "\n\n")
    assert message.startswith("1:14: the policy contains a NUL byte; a policy is UTF-8 text without NUL bytes"), message


@pytest.mark.parametrize(("text", "position", "words"), [
    ('version: 1\nname: "\\N"\n', "2:7:", "not UTF-8 (\\x85)"),
    ('version: 1\nname: "a\\_b"\n', "2:7:", "not UTF-8 (\\xa0)"),
    ('version: 1\nname: "a\\0b"\n', "2:7:", "a value contains a NUL character"),
    ("version: 1\nname: a\0b\n", "2:8:", "the policy contains a NUL byte"),
    ('version: 1\nname: x\ntenants:\n  "s\\N": {}\n', "4:3:", "not UTF-8"),
], ids=["N-escape", "underscore-escape", "nul-escape", "nul-byte", "tenant-key"])
def test_text_that_decodes_to_nul_or_not_utf8_is_refused(text: str, position: str, words: str) -> None:
    # `name: "\N"` used to be accepted, and then policy.name raised UnicodeDecodeError.
    message = refusal(text)
    assert message.startswith(position), message
    assert words in message, message


def test_accepted_text_reads_back() -> None:
    policy = rb.Policy.from_yaml('version: 1\nname: "caf\\u00e9 \\u0085"\ntenants: {"süd": {}}\n')
    assert policy.name == "café \u0085"
    assert policy.tenants == ["süd"]
    assert "süd" in policy.source_text
    assert policy.rules("süd")["name"] == "café \u0085"


@pytest.mark.parametrize(("text", "start"), [
    ("version: '1'\nname: x\n", "1:10: 'version' must be an integer, not the string '1' (remove the quotes)"),
    ("version: 1\nname: x\nretention: {default_days: \"3\"}\n",
     "3:27: 'retention.default_days' must be an integer, not the string '3'"),
    ("version: 1\nname: x\nsoft_delete: {enabled: 'true'}\n",
     "3:24: 'soft_delete.enabled' must be true or false, not the string 'true'"),
    ("version: 1\nname: x\nname: y\n", "3:1: duplicate key 'name' (first at line 2, column 1)"),
    ("version: 1\nname: x\n---\nname: y\n", "3:1: a second YAML document; a policy is one document"),
    ("version: 1\nname: !foo x\n", "2:7: unknown tag '!foo'; a policy uses no tags"),
    ('version: 1\nname: "abc\n', '2:7: a quoted string that is never closed; end it with "'),
    ("version: 1\nname: 'abc\n", "2:7: a quoted string that is never closed; end it with '"),
], ids=["version-string", "integer-string", "boolean-string", "duplicate-key", "second-document",
        "unknown-tag", "unterminated-double-quote", "unterminated-single-quote"])
def test_what_the_decoder_used_to_accept_silently(text: str, start: str) -> None:
    message = refusal(text)
    assert message.startswith(start), message


def test_deep_nesting_says_so() -> None:
    message = refusal("[" * 100_000)
    assert "nested deeper than 32 levels of mappings and lists" in message, message


def test_a_huge_number_is_out_of_range() -> None:
    message = refusal("version: 1\nname: x\nretention: {max_days: 99999999999999999999}\n")
    assert message.startswith(
        "3:23: 'retention.max_days' is '99999999999999999999', out of range; allowed: 1..36500 days"), message


def test_load_of_a_directory_says_it_is_a_directory(tmp_path: Path) -> None:
    with pytest.raises(rb.PolicyError) as refused:
        rb.Policy.load(tmp_path)
    assert str(refused.value) == f"{tmp_path}: is a directory, not a policy file; give the path of a policy YAML file"


def test_load_refuses_a_path_with_a_nul(tmp_path: Path) -> None:
    # The path used to be cut at the NUL, loading policies/default.yaml.
    path = str(POLICY_DIR / "default.yaml") + "\0.txt"
    # The binding refuses it before the decoder sees it (tests/cpp/policy_test.cpp covers
    # Policy::load's own refusal).
    with pytest.raises(rb.InvalidArgument) as refused:
        rb.Policy.load(path)
    message = str(refused.value)
    assert "default.yaml\\x00.txt' contains a NUL byte" in message, message
    with pytest.raises(rb.InvalidArgument, match="NUL byte"):
        rb.Engine.open(os.fspath(tmp_path / "bin.db"), policy=path)


def test_ten_thousand_tenants_load() -> None:
    # Decoding was cubic in the number of tenants: 2,000 took 34 s, 10,000 would take hours.
    lines = ["version: 1", "name: many", "retention: {max_days: 30}", "tenants:"]
    for i in range(10_000):
        lines.append(f"  sub-{i}: {{retention: {{default_days: {1 + i % 30}}}}}")
    policy = rb.Policy.from_yaml("\n".join(lines) + "\n")
    assert len(policy.tenants) == 10_000
    assert policy.rules("sub-9999")["retention"]["default_days"] == 1 + 9999 % 30
    assert policy.rules("sub-9999")["retention"]["max_days"] == 30


def test_the_empty_role_list_message_describes_fail_closed() -> None:
    message = refusal("version: 1\nname: x\npermissions: {grant: []}\n")
    assert message.startswith("3:22: 'permissions.grant' lists no role"), message
    assert "allowed only to the workspace's owner (and the platform)" in message, message
