"""Encrypted file-sharing server, realm deletion (policies/parsec.yaml), through the public API.

A workspace is a realm, a subscription is an organization. Each test quotes the behaviour of
the product document it shows.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

import recyclebin as rb

from .support import OpenEngine, ONE_MICROSECOND, START, cleanup_refs

ORG = "CoolOrg"
LONG_ARCHIVE_ORG = "longarchive-org"  # the example tenant override: 90 days
RG = "realms"

ALICE = rb.Principal("alice")
BOB = rb.Principal("bob")
OPERATOR = rb.Principal("server-operator", roles=frozenset({"admin"}))


def blocks(realm: str, count: int = 3) -> list[rb.Component]:
    return [rb.Component("block", f"{realm}/blocks/{n:04d}") for n in range(count)]


@pytest.fixture
def engine(open_engine: OpenEngine) -> rb.Engine:
    return open_engine("parsec")


def create(engine: rb.Engine, name: str, org: str = ORG, **options: object) -> rb.Workspace:
    options.setdefault("principal", ALICE)
    options.setdefault("components", blocks(name))
    return rb.Workspace.create(org, RG, name, engine=engine, **options)


# --- "The workspace is marked as scheduled for deletion in the Server (the delay depends on the
# Organization configuration)"


def test_deletion_is_planned_by_the_organization_configuration(engine: rb.Engine) -> None:
    realm = create(engine, "photos")
    assert realm.soft_delete_retention_days == 30
    result = realm.delete(principal=ALICE)
    assert result.permanent is False
    assert result.purge_at == START + timedelta(days=30)
    assert result.retained == ["block"]
    assert result.cleanup == []  # nothing leaves the object storage yet

    archived = create(engine, "ledger", org=LONG_ARCHIVE_ORG)
    assert archived.soft_delete_retention_days == 90
    assert archived.delete(principal=ALICE).purge_at == START + timedelta(days=90)


def test_users_do_not_choose_the_delay(engine: rb.Engine) -> None:
    with pytest.raises(rb.InvalidRetention):
        create(engine, "impatient", soft_delete_retention_days=7)
    with pytest.raises(rb.InvalidRetention):
        create(engine, "impatient", org=LONG_ARCHIVE_ORG, soft_delete_retention_days=30)
    assert create(engine, "explicit", soft_delete_retention_days=30).soft_delete_retention_days == 30


# --- "If the delay has not elapsed, the workspace will not appear here." The listing shows kind
# and date, and "The workspace name does not appear here".


def test_realm_is_deletable_only_once_its_deletion_date_has_passed(
        engine: rb.Engine, clock: rb.ManualClock) -> None:
    realm = create(engine, "reports")
    deletion_date = realm.delete(principal=ALICE).purge_at
    assert deletion_date is not None

    clock.set(deletion_date - ONE_MICROSECOND)
    assert engine.list_deletable(ORG) == []
    with pytest.raises(rb.OperationNotAllowed):
        engine.purge_by_id(realm.id, principal=OPERATOR)

    clock.set(deletion_date)
    [candidate] = engine.list_deletable(ORG)
    assert candidate.kind == "deletion_planned"
    assert candidate.workspace_id == realm.id
    assert candidate.since == deletion_date
    assert not hasattr(candidate, "name")
    assert engine.list_deletable(LONG_ARCHIVE_ORG) == []


def test_past_its_date_a_realm_waits_for_the_operator(engine: rb.Engine, clock: rb.ManualClock) -> None:
    # "When the deletion date has passed, the effective removal can be triggered": held, not
    # removed by time alone.
    realm = create(engine, "minutes")
    deletion_date = realm.delete(principal=ALICE).purge_at
    assert deletion_date is not None
    clock.set(deletion_date + timedelta(days=400))

    report = engine.purge_expired()
    assert report.purged == []
    assert report.cleanup == []
    assert [c.workspace_id for c in engine.list_deletable(ORG)] == [realm.id]
    held = rb.Workspace.get_deleted("minutes", ORG, RG, engine=engine)
    assert held.id == realm.id and held.purge_at == deletion_date
    assert engine.cleanup_tasks() == []

    # Until the operator acts it can still be brought back by its owner.
    recovered = rb.Workspace.recover(ORG, RG, "minutes", principal=ALICE, engine=engine)
    assert recovered.restored == ["block"]
    assert engine.list_deletable(ORG) == []


# --- "delete_realm ... export the paths to the blocks as they are referenced in the object
# storage; delete the workspace from the postgresql database. This command does not remove the
# blocks from your object storage."


def test_delete_realm_removes_metadata_and_hands_over_the_block_list(
        engine: rb.Engine, clock: rb.ManualClock) -> None:
    realm = create(engine, "archive", components=blocks("archive", 5))
    deletion_date = realm.delete(principal=ALICE).purge_at
    assert deletion_date is not None
    clock.set(deletion_date + timedelta(hours=1))

    result = engine.purge_by_id(realm.id, principal=OPERATOR)
    expected = {("block", f"archive/blocks/{n:04d}") for n in range(5)}
    assert result.permanent is True
    assert result.deleted_at == deletion_date + timedelta(hours=1)
    assert "block" in result.destroyed
    assert cleanup_refs(result.cleanup) == expected
    assert all(task.workspace_id == realm.id for task in result.cleanup)

    # The metadata is gone; the paths wait in the outbox until the operator has removed them.
    assert engine.list_deletable(ORG) == []
    with pytest.raises(rb.WorkspaceNotFound):
        rb.Workspace.get_deleted("archive", ORG, RG, engine=engine)
    with pytest.raises(rb.OperationNotAllowed):
        engine.purge_by_id(realm.id, principal=OPERATOR)
    pending = engine.cleanup_tasks()
    assert cleanup_refs(pending) == expected
    assert [task.id for task in pending] == sorted(task.id for task in pending)

    for task in pending:
        engine.complete_cleanup(task.id)
    engine.complete_cleanup(pending[0].id)  # completing twice is a no-op
    assert engine.cleanup_tasks() == []
    with pytest.raises(KeyError):
        engine.complete_cleanup(max(task.id for task in pending) + 1000)


def test_only_the_operator_deletes_realms(engine: rb.Engine, clock: rb.ManualClock) -> None:
    realm = create(engine, "shared")
    realm.grant("bob", "owner", principal=ALICE)
    realm.delete(principal=BOB)
    clock.advance(timedelta(days=31))
    for user in (ALICE, BOB):
        with pytest.raises(rb.PermissionDenied):
            engine.purge_by_id(realm.id, principal=user)
    assert engine.purge_by_id(realm.id, principal=OPERATOR).permanent is True


def test_no_realm_is_removed_before_its_date(engine: rb.Engine) -> None:
    realm = create(engine, "early")
    with pytest.raises(rb.OperationNotAllowed):
        realm.delete(permanently_delete=True, principal=ALICE)
    realm.delete(principal=ALICE)
    with pytest.raises(rb.OperationNotAllowed):
        rb.Workspace.purge(ORG, RG, "early", principal=OPERATOR, engine=engine)
    with pytest.raises(rb.OperationNotAllowed):
        engine.purge_by_id(realm.id, principal=OPERATOR)
    live = create(engine, "alive")
    with pytest.raises(rb.OperationNotAllowed):
        engine.purge_by_id(live.id, principal=OPERATOR)  # neither planned nor orphaned
    assert rb.Workspace.get_deleted("early", ORG, RG, engine=engine).id == realm.id


# --- "A workspace is orphaned when no one has access to it. This can happen when all the users
# with access to it have been revoked ... so it can be deleted."


def test_orphaned_realm_is_listed_at_once_and_never_purged_automatically(
        engine: rb.Engine, clock: rb.ManualClock) -> None:
    realm = create(engine, "abandoned", components=blocks("abandoned", 2))
    realm.grant("bob", "contributor", principal=ALICE)
    clock.advance(timedelta(days=2))
    realm.revoke("bob", principal=ALICE)
    assert engine.list_deletable(ORG) == []  # alice still has access

    clock.advance(timedelta(hours=3, microseconds=11))
    orphaned_since = clock.now()
    realm.revoke("alice")  # the last member
    [candidate] = engine.list_deletable(ORG)
    assert (candidate.kind, candidate.workspace_id, candidate.since) == ("orphaned", realm.id, orphaned_since)

    # purge_after_days: null, never purged by time.
    clock.advance(timedelta(days=3650))
    assert engine.purge_expired().purged == []
    assert [c.kind for c in engine.list_deletable(ORG)] == ["orphaned"]

    result = engine.purge_by_id(realm.id, principal=OPERATOR)
    assert result.permanent is True
    assert cleanup_refs(result.cleanup) == {
        ("block", "abandoned/blocks/0000"), ("block", "abandoned/blocks/0001")}
    assert engine.list_deletable(ORG) == []
    with pytest.raises(rb.WorkspaceNotFound):
        rb.Workspace.get("abandoned", ORG, RG, engine=engine)


def test_a_realm_that_never_had_members_is_not_orphaned(engine: rb.Engine) -> None:
    realm = create(engine, "platform-made", principal=None)
    assert engine.list_deletable(ORG) == []
    with pytest.raises(rb.OperationNotAllowed):
        engine.purge_by_id(realm.id, principal=OPERATOR)


# --- "only the workspace users can know their name": the server holds no name.


def test_names_are_not_reserved_by_planned_deletions(engine: rb.Engine) -> None:
    realm = create(engine, "budget")
    realm.delete(principal=ALICE)
    again = create(engine, "budget")
    assert again.id != realm.id
    with pytest.raises(rb.WorkspaceExists):
        rb.Workspace.recover(ORG, RG, "budget", principal=ALICE, engine=engine)
    again.delete(principal=ALICE)
    deleted = rb.Workspace.list_deleted(ORG, engine=engine)
    assert sorted(d.id for d in deleted) == sorted([realm.id, again.id])
