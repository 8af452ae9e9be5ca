// One test per rule of API.md that the engine enforces, failure paths included.
#include <gtest/gtest.h>

#include "fixtures.hpp"

namespace recyclebin {
namespace {

using testing::EngineFixture;
using testing::expect_error;
using testing::kJan1;

const Principal kAlice{"alice", {}};
const Principal kBob{"bob", {}};

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

using EngineTest = EngineFixture;

TEST_F(EngineTest, CreateUsesThePolicyDefaultRetention) {
  const Workspace w = make("ws1");
  EXPECT_EQ(w.retention_days, 14);
  EXPECT_EQ(w.state, WorkspaceState::running);
  EXPECT_EQ(w.created_at, kJan1);
  EXPECT_EQ(w.id.size(), 32u);
  const Workspace got = engine->get("sub", "rg", "ws1", std::nullopt);
  EXPECT_EQ(got.id, w.id);
  EXPECT_EQ(engine->get_by_id(w.id, std::nullopt).name, "ws1");
  EXPECT_EQ(make("ws2", {}, 3).retention_days, 3);
}

TEST_F(EngineTest, RetentionOutsideTheRangeIsRefused) {
  for (int days : {0, 15, -1}) {
    const std::string m = expect_error(ErrorCode::invalid_retention, [&] { make("ws", {}, days); });
    EXPECT_TRUE(contains(m, "allows 1..14 days")) << m;
  }
  EXPECT_EQ(make("ws", {}, 1).retention_days, 1);
  EXPECT_EQ(make("ws14", {}, 14).retention_days, 14);
}

TEST_F(EngineTest, FixedRetentionAcceptsOnlyItsValue) {
  open_yaml("version: 1\nname: fixed\nretention: {per_workspace: false}\n");
  EXPECT_EQ(make("a", {}, 14).retention_days, 14);
  const std::string m = expect_error(ErrorCode::invalid_retention, [&] { make("b", {}, 7); });
  EXPECT_TRUE(contains(m, "fixed at 14 days")) << m;
}

TEST_F(EngineTest, EmptyNamesAreInvalidArguments) {
  expect_error(ErrorCode::invalid_argument, [&] { make(""); });
  expect_error(ErrorCode::invalid_argument, [&] { make("x", {}, std::nullopt, ""); });
  expect_error(ErrorCode::invalid_argument, [&] { make(std::string("a\x1f") + "b"); });
  // Every control character: the live listing's order is the name keys' byte order.
  for (const std::string& bad : {std::string("a\nb"), std::string("\x01"), std::string("tab\there")}) {
    const std::string m = expect_error(ErrorCode::invalid_argument, [&] { make(bad); });
    EXPECT_TRUE(contains(m, "contains the control character \\x")) << m;
    EXPECT_EQ(m.find('\n'), std::string::npos) << m;  // shown escaped
    expect_error(ErrorCode::invalid_argument, [&] { make("ok", {}, std::nullopt, bad); });
  }
}

TEST_F(EngineTest, LiveNamesAreUniqueInTheirGroup) {
  make("ws");
  const std::string m = expect_error(ErrorCode::workspace_exists, [&] { make("ws"); });
  EXPECT_TRUE(contains(m, "already exists")) << m;
  make("ws", {}, std::nullopt, "other-group");
  make("ws", {}, std::nullopt, "rg", "other-sub");
}

TEST_F(EngineTest, SoftDeleteIsTheDefault) {
  const Workspace w = make("ws", {{"notebooks", "nb-1", false}});
  clock->advance(5);
  const DeleteResult r = soft_delete(w);
  EXPECT_FALSE(r.permanent);
  EXPECT_EQ(r.deleted_at, kJan1 + 5);
  ASSERT_TRUE(r.purge_at.has_value());
  EXPECT_EQ(*r.purge_at, kJan1 + 5 + 14 * kMicrosPerDay);
  EXPECT_EQ(r.retained, std::vector<std::string>{"notebooks"});
  EXPECT_TRUE(r.cleanup.empty());
  const DeletedWorkspace d = engine->get_deleted("sub", "rg", "ws", std::nullopt);
  EXPECT_EQ(d.id, w.id);
  EXPECT_EQ(d.deleted_at, kJan1 + 5);
  EXPECT_EQ(d.purge_at, *r.purge_at);
  EXPECT_EQ(d.retention_days, 14);
  EXPECT_EQ(d.retained, std::vector<std::string>{"notebooks"});
}

TEST_F(EngineTest, SoftDeletedWorkspaceAllowsOnlyRecoverAndPurge) {
  const Workspace w = make("ws");
  soft_delete(w);
  std::string m = expect_error(ErrorCode::workspace_not_found, [&] { engine->get("sub", "rg", "ws", std::nullopt); });
  EXPECT_TRUE(contains(m, "get_deleted")) << m;
  expect_error(ErrorCode::workspace_not_found, [&] { engine->get_by_id(w.id, std::nullopt); });
  for (const auto& call : std::vector<std::function<void()>>{
           [&] { engine->stop(w.id, std::nullopt); }, [&] { engine->start(w.id, std::nullopt); },
           [&] { engine->grant(w.id, "bob", "reader", std::nullopt); },
           [&] { engine->revoke(w.id, "bob", std::nullopt); }, [&] { soft_delete(w); }}) {
    m = expect_error(ErrorCode::operation_not_allowed, call);
    EXPECT_TRUE(contains(m, "recover") && contains(m, "purge")) << m;
  }
}

TEST_F(EngineTest, NotInTheBinIsNotFound) {
  make("live");
  for (const char* name : {"live", "never"}) {
    expect_error(ErrorCode::workspace_not_found, [&] { engine->get_deleted("sub", "rg", name, std::nullopt); });
    expect_error(ErrorCode::workspace_not_found, [&] { engine->purge("sub", "rg", name, std::nullopt); });
    expect_error(ErrorCode::workspace_not_found, [&] { engine->recover("sub", "rg", name, std::nullopt); });
  }
  expect_error(ErrorCode::workspace_not_found, [&] { engine->stop("no-such-id", std::nullopt); });
}

TEST_F(EngineTest, NameIsReservedWhileInTheBin) {
  const Workspace w = make("ws");
  const DeleteResult r = soft_delete(w);
  try {
    make("ws");
    FAIL() << "expected name_reserved";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::name_reserved);
    EXPECT_EQ(e.reserved_until(), r.purge_at);
    EXPECT_TRUE(contains(e.what(), format_iso8601(*r.purge_at))) << e.what();
    EXPECT_TRUE(contains(e.what(), "recover it, or purge it")) << e.what();
  }
  make("ws", {}, std::nullopt, "other-group");  // scope: group
}

TEST_F(EngineTest, TenantScopeReservesTheNameAcrossGroups) {
  open_yaml("version: 1\nname: t\nname_reservation: {scope: tenant}\n");
  const Workspace w = make("ws", {}, std::nullopt, "g1");
  make("ws", {}, std::nullopt, "g2");  // live names are unique only within their group
  soft_delete(w);
  expect_error(ErrorCode::name_reserved, [&] { make("ws", {}, std::nullopt, "g3"); });
  expect_error(ErrorCode::name_reserved, [&] { make("ws", {}, std::nullopt, "g1"); });
  make("ws", {}, std::nullopt, "g1", "other-sub");
  // A second deletion of the same name elsewhere in the tenant still works.
  soft_delete(engine->get("sub", "g2", "ws", std::nullopt));
  expect_error(ErrorCode::name_reserved, [&] { make("ws", {}, std::nullopt, "g2"); });
}

TEST_F(EngineTest, ScopeNoneFreesTheNameAndRecoverThenConflicts) {
  open_yaml("version: 1\nname: n\nname_reservation: {scope: none}\n");
  const Workspace w = make("ws");
  soft_delete(w);
  const Workspace again = make("ws");
  const std::string m = expect_error(ErrorCode::workspace_exists, [&] { engine->recover("sub", "rg", "ws", std::nullopt); });
  EXPECT_TRUE(contains(m, "live workspace")) << m;
  soft_delete(again);
  // Two in the bin with one name: the newest deletion is the one addressed.
  EXPECT_EQ(engine->get_deleted("sub", "rg", "ws", std::nullopt).id, again.id);
  EXPECT_EQ(engine->recover("sub", "rg", "ws", std::nullopt).workspace.id, again.id);
}

TEST_F(EngineTest, PermanentDeleteSkipsTheBinAndHandsOverCleanup) {
  const Workspace w = make("ws", {{"notebooks", "nb", false}, {"compute", "vm-1", false}, {"vol", "v-1", true}});
  DeleteOptions options;
  options.permanently_delete = true;
  const DeleteResult r = soft_delete(w, options);
  EXPECT_TRUE(r.permanent);
  EXPECT_FALSE(r.purge_at.has_value());
  EXPECT_EQ(r.destroyed, (std::vector<std::string>{"notebooks", "compute"}));  // retain kinds too
  EXPECT_EQ(r.preserved, std::vector<std::string>{"vol"});                     // standalone
  ASSERT_EQ(r.cleanup.size(), 2u);
  EXPECT_EQ(r.cleanup[0].ref, "nb");
  EXPECT_EQ(r.cleanup[1].ref, "vm-1");
  EXPECT_EQ(engine->cleanup_tasks().size(), 2u);
  expect_error(ErrorCode::workspace_not_found, [&] { engine->get_deleted("sub", "rg", "ws", std::nullopt); });
  make("ws");  // the name is free at once
}

TEST_F(EngineTest, DependentResourcesOnlyWithPermanentDelete) {
  open(Policy::from_yaml("version: 1\nname: p\ncomponents:\n  volume: {on_delete: preserve}\n"));
  const Workspace w = make("ws", {{"volume", "v1", false}, {"volume", "v2", true}, {"nb", "n1", false}});
  DeleteOptions options;
  options.delete_dependent_resources = true;
  const std::string m = expect_error(ErrorCode::operation_not_allowed, [&] { soft_delete(w, options); });
  EXPECT_TRUE(contains(m, "permanently_delete")) << m;
  options.permanently_delete = true;
  const DeleteResult r = soft_delete(w, options);
  EXPECT_EQ(r.destroyed, (std::vector<std::string>{"volume", "nb"}));
  EXPECT_EQ(r.preserved, std::vector<std::string>{"volume"});  // the standalone one, never destroyed
  ASSERT_EQ(r.cleanup.size(), 2u);
  EXPECT_EQ(r.cleanup[0].ref, "v1");
  EXPECT_EQ(r.cleanup[1].ref, "n1");
}

TEST_F(EngineTest, PreserveKindsAreNeverCleanedUpWithoutDependentResources) {
  open(Policy::from_yaml("version: 1\nname: p\ncomponents:\n  volume: {on_delete: preserve}\n  vm: {on_delete: destroy}\n"));
  const Workspace w = make("ws", {{"volume", "v1", false}, {"vm", "c1", false}, {"nb", "n1", false}});
  const DeleteResult soft = soft_delete(w);
  EXPECT_EQ(soft.preserved, std::vector<std::string>{"volume"});
  EXPECT_EQ(soft.destroyed, std::vector<std::string>{"vm"});
  EXPECT_EQ(soft.retained, std::vector<std::string>{"nb"});
  ASSERT_EQ(soft.cleanup.size(), 1u);
  EXPECT_EQ(soft.cleanup[0].ref, "c1");
  const DeleteResult purged = engine->purge("sub", "rg", "ws", std::nullopt);
  ASSERT_EQ(purged.cleanup.size(), 1u);
  EXPECT_EQ(purged.cleanup[0].ref, "n1");  // retained ones go at purge; vm was handed over already
  EXPECT_EQ(purged.preserved, std::vector<std::string>{"volume"});
  std::vector<std::string> refs;
  for (const auto& t : engine->cleanup_tasks()) refs.push_back(t.ref);
  EXPECT_EQ(refs, (std::vector<std::string>{"c1", "n1"}));
}

TEST_F(EngineTest, PermanentDeleteAndPurgeWhereThePolicyForbidsThem) {
  open_yaml("version: 1\nname: p\npermanent_delete: {allowed: false}\n");
  const Workspace w = make("ws");
  DeleteOptions options;
  options.permanently_delete = true;
  expect_error(ErrorCode::operation_not_allowed, [&] { soft_delete(w, options); });
  soft_delete(w);
  const std::string m = expect_error(ErrorCode::operation_not_allowed, [&] { engine->purge("sub", "rg", "ws", std::nullopt); });
  EXPECT_TRUE(contains(m, "before its retention ends")) << m;
}

TEST_F(EngineTest, CmkEncryptedWorkspacesAreAlwaysHardDeleted) {
  CreateRequest request{"sub", "rg", "cmk", std::nullopt, true, {}};
  const Workspace w = engine->create(request, std::nullopt);
  EXPECT_TRUE(w.cmk_encrypted);
  EXPECT_TRUE(soft_delete(w).permanent);
  make("cmk");
}

TEST_F(EngineTest, SoftDeleteDisabledMakesEveryDeletePermanent) {
  open_yaml("version: 1\nname: p\nsoft_delete: {enabled: false}\n");
  EXPECT_TRUE(soft_delete(make("ws")).permanent);
}

TEST_F(EngineTest, DeleteManyIsAllOrNothing) {
  const Workspace a = make("a"), b = make("b"), c = make("c");
  soft_delete(b);
  const std::string m = expect_error(ErrorCode::operation_not_allowed,
                                     [&] { engine->remove_many({a.id, b.id, c.id}, {}, std::nullopt); });
  EXPECT_TRUE(contains(m, "'b'")) << m;
  engine->get("sub", "rg", "a", std::nullopt);  // untouched
  engine->get("sub", "rg", "c", std::nullopt);
  const auto results = engine->remove_many({a.id, c.id}, {}, std::nullopt);
  ASSERT_EQ(results.size(), 2u);
  EXPECT_EQ(engine->list_deleted("sub", std::nullopt, std::nullopt, std::nullopt, std::nullopt).items.size(), 3u);
  const Workspace d = make("d"), e = make("e");
  expect_error(ErrorCode::invalid_argument, [&] { engine->remove_many({d.id, e.id, d.id}, {}, std::nullopt); });
  engine->get("sub", "rg", "d", std::nullopt);
}

TEST_F(EngineTest, PermanentDeleteManyOneAtATime) {
  const Workspace a = make("a"), b = make("b");
  DeleteOptions options;
  options.permanently_delete = true;
  const std::string m = expect_error(ErrorCode::operation_not_allowed,
                                     [&] { engine->remove_many({a.id, b.id}, options, std::nullopt); });
  EXPECT_TRUE(contains(m, "one workspace at a time")) << m;
  EXPECT_EQ(engine->remove_many({a.id}, options, std::nullopt).size(), 1u);
  open_yaml("version: 1\nname: p\npermanent_delete: {batch: true}\n");
  EXPECT_EQ(engine->remove_many({make("x").id, make("y").id}, options, std::nullopt).size(), 2u);
}

TEST_F(EngineTest, RequireStoppedRefusesRunningWorkspaces) {
  open_yaml("version: 1\nname: p\npreconditions: {require_stopped: true}\n");
  const Workspace w = make("ws");
  const std::string m = expect_error(ErrorCode::workspace_not_stopped, [&] { soft_delete(w); });
  EXPECT_TRUE(contains(m, "stop it first")) << m;
  EXPECT_EQ(engine->stop(w.id, std::nullopt).state, WorkspaceState::stopped);
  EXPECT_EQ(engine->stop(w.id, std::nullopt).state, WorkspaceState::stopped);  // idempotent
  EXPECT_EQ(engine->start(w.id, std::nullopt).state, WorkspaceState::running);
  engine->stop(w.id, std::nullopt);
  soft_delete(w);
}

TEST_F(EngineTest, ConfirmNameMustMatch) {
  open_yaml("version: 1\nname: p\npreconditions: {require_confirm_name: true}\n");
  const Workspace w = make("ws");
  std::string m = expect_error(ErrorCode::precondition_failed, [&] { soft_delete(w); });
  EXPECT_TRUE(contains(m, "confirm_name='ws'")) << m;
  DeleteOptions options;
  options.confirm_name = "wrong";
  m = expect_error(ErrorCode::precondition_failed, [&] { soft_delete(w, options); });
  EXPECT_TRUE(contains(m, "does not match")) << m;
  options.confirm_name = "ws";
  soft_delete(w, options);
}

TEST_F(EngineTest, BlockerFactsRefuseAndWarningsReport) {
  open_yaml("version: 1\nname: p\npreconditions: {blockers: [running_jobs], warnings: [billable_tasks, linked]}\n");
  const Workspace w = make("ws");
  std::string m = expect_error(ErrorCode::precondition_failed, [&] { soft_delete(w); });
  EXPECT_TRUE(contains(m, "no facts provider")) << m;
  engine->set_facts_provider([](const Workspace&) -> Facts { throw std::runtime_error("platform down"); });
  m = expect_error(ErrorCode::precondition_failed, [&] { soft_delete(w); });
  EXPECT_TRUE(contains(m, "platform down")) << m;
  Facts facts{{"running_jobs", 2}, {"billable_tasks", 3}};
  engine->set_facts_provider([&](const Workspace& seen) {
    EXPECT_EQ(seen.id, w.id);
    return facts;
  });
  m = expect_error(ErrorCode::precondition_failed, [&] { soft_delete(w); });
  EXPECT_TRUE(contains(m, "running_jobs is 2")) << m;
  facts["running_jobs"] = 0;
  const DeleteResult r = soft_delete(w);
  ASSERT_EQ(r.warnings.size(), 2u);
  EXPECT_EQ(r.warnings[0], "billable_tasks: 3");
  EXPECT_TRUE(contains(r.warnings[1], "linked: could not be checked")) << r.warnings[1];
}

/// A policy under which each check of a delete can refuse, and alice's workspace under it.
struct CheckOrderTest : EngineTest {
  Workspace open_where_every_check_can_fail() {
    open_yaml(R"(version: 1
name: p
preconditions: {require_stopped: true, require_confirm_name: true, blockers: [jobs]}
permanent_delete: {allowed: false}
permissions: {delete: [owner]}
)");
    return engine->create({"sub", "rg", "ws", std::nullopt, false, {}}, kAlice);
  }
};

TEST_F(CheckOrderTest, ChecksRunInTheDocumentedOrder) {
  const Workspace w = open_where_every_check_can_fail();
  DeleteOptions options;
  options.permanently_delete = true;
  // permission, then state, then flags, then preconditions
  expect_error(ErrorCode::permission_denied, [&] { engine->remove(w.id, options, kBob); });
  expect_error(ErrorCode::workspace_not_stopped, [&] { engine->remove(w.id, options, kAlice); });
  engine->stop(w.id, std::nullopt);
  expect_error(ErrorCode::operation_not_allowed, [&] { engine->remove(w.id, options, kAlice); });
  expect_error(ErrorCode::precondition_failed, [&] { engine->remove(w.id, {}, kAlice); });
}

TEST_F(EngineTest, PermissionsByTenantRoleAndWorkspaceRole) {
  open_yaml("version: 1\nname: p\npermissions: {delete: [owner], recover: [owner], purge: [owner, admin], create: [creator]}\n");
  const Principal creator{"carol", {"creator"}};
  std::string m = expect_error(ErrorCode::permission_denied,
                               [&] { engine->create({"sub", "rg", "ws", std::nullopt, false, {}}, kAlice); });
  EXPECT_TRUE(contains(m, "[creator]")) << m;
  const Workspace w = engine->create({"sub", "rg", "ws", std::nullopt, false, {}}, creator);
  // stop is not listed: fail closed, the workspace owner's alone (API.md v2)
  m = expect_error(ErrorCode::permission_denied, [&] { engine->stop(w.id, kBob); });
  EXPECT_TRUE(contains(m, "[owner] (the default for an action it does not list)")) << m;
  engine->stop(w.id, creator);
  m = expect_error(ErrorCode::permission_denied, [&] { engine->remove(w.id, {}, kBob); });
  EXPECT_TRUE(contains(m, "principal 'bob' may not delete")) << m;
  engine->grant(w.id, "bob", "owner", creator);
  engine->remove(w.id, {}, kBob);
  expect_error(ErrorCode::permission_denied, [&] { engine->purge("sub", "rg", "ws", kAlice); });
  engine->purge("sub", "rg", "ws", Principal{"root", {"admin"}});
}

TEST_F(EngineTest, UnlistedActionsAreTheOwnersAloneAndCreateIsOpen) {
  open_yaml("version: 1\nname: p\n");  // no permissions section at all
  const Workspace w = engine->create({"sub", "rg", "ws", std::nullopt, false, {}}, kAlice);  // create: open
  const Principal admin{"root", {"admin"}};
  // The takeover that version 1 allowed: a stranger revokes the owner and grants itself owner.
  for (const Principal& stranger : {kBob, admin}) {
    expect_error(ErrorCode::permission_denied, [&] { engine->revoke(w.id, "alice", stranger); });
    expect_error(ErrorCode::permission_denied, [&] { engine->grant(w.id, stranger.id, "owner", stranger); });
    expect_error(ErrorCode::permission_denied, [&] { engine->stop(w.id, stranger); });
    expect_error(ErrorCode::permission_denied, [&] { engine->start(w.id, stranger); });
    expect_error(ErrorCode::permission_denied, [&] { engine->remove(w.id, {}, stranger); });
  }
  EXPECT_EQ(engine->get_by_id(w.id, std::nullopt).state, WorkspaceState::running);
  // A member with another role is not the owner either.
  engine->grant(w.id, "bob", "reader", kAlice);
  expect_error(ErrorCode::permission_denied, [&] { engine->grant(w.id, "bob", "owner", kBob); });
  engine->stop(w.id, kAlice);
  engine->start(w.id, std::nullopt);  // the platform passes every check
  engine->remove(w.id, {}, kAlice);
  expect_error(ErrorCode::permission_denied, [&] { engine->purge("sub", "rg", "ws", kBob); });
  expect_error(ErrorCode::permission_denied, [&] { engine->recover("sub", "rg", "ws", admin); });
  engine->recover("sub", "rg", "ws", kAlice);
  expect_error(ErrorCode::permission_denied, [&] { engine->purge_expired(kAlice); });  // no workspace owns it
  std::size_t refused = 0;
  for (const auto& r : engine->audit_log(std::nullopt)) refused += r.outcome == "refused:permission_denied";
  EXPECT_EQ(refused, 13u);  // purge_expired's refusal names no workspace: not audited
}

TEST_F(EngineTest, ADeleteWhosePurgeDateCannotBeRepresentedChangesNothing) {
  const Workspace w = make("ws", {{"compute_instance", "ci-1", false}});
  clock->set(kMaxTimestamp - 3 * kMicrosPerDay);  // 9999-12-28T23:59:59.999999Z
  const std::string m = expect_error(ErrorCode::invalid_argument, [&] { soft_delete(w); });
  EXPECT_TRUE(contains(m, "outside the times recyclebin can represent")) << m;
  EXPECT_EQ(engine->get_by_id(w.id, std::nullopt).components.size(), 1u);
  EXPECT_TRUE(engine->cleanup_tasks().empty());
  EXPECT_TRUE(engine->list_deleted("sub", std::nullopt, std::nullopt, std::nullopt, std::nullopt).items.empty());
  // A retention that still fits works at the very edge.
  const Workspace short_lived = make("edge", {}, 2);
  const DeleteResult result = soft_delete(short_lived);
  EXPECT_EQ(*result.purge_at, kMaxTimestamp - kMicrosPerDay);
  EXPECT_EQ(engine->list_deleted("sub", std::nullopt, std::nullopt, std::nullopt, std::nullopt).items.size(), 1u);
}

/// Everything a dry run must leave alone.
struct Snapshot {
  std::size_t audit = 0, cleanup = 0, deleted = 0;
  bool operator==(const Snapshot&) const = default;
};
Snapshot snapshot(Engine& e) {
  return {e.audit_log(std::nullopt).size(), e.cleanup_tasks().size(),
          e.list_deleted("sub", std::nullopt, std::nullopt, std::nullopt, std::nullopt).items.size()};
}

TEST_F(EngineTest, ADryRunAnswersWhatTheDeleteWouldDoAndChangesNothing) {
  open_yaml(R"(version: 1
name: p
preconditions: {warnings: [sessions]}
components:
  models: {on_delete: retain}
  compute: {on_delete: destroy}
  volume: {on_delete: preserve}
)");
  engine->set_facts_provider([](const Workspace&) { return Facts{{"sessions", 2}}; });
  const Workspace w = make("ws", {{"models", "m-1", false}, {"compute", "c-1", false}, {"volume", "v-1", false}}, 7);
  const Snapshot before = snapshot(*engine);
  for (bool permanent : {false, true}) {
    DeleteOptions options;
    options.permanently_delete = permanent;
    options.dry_run = true;
    const DeleteResult dry = engine->remove(w.id, options, std::nullopt);
    EXPECT_TRUE(dry.dry_run);
    EXPECT_EQ(dry.permanent, permanent);
    EXPECT_EQ(dry.deleted_at, kJan1);
    EXPECT_EQ(dry.purge_at, permanent ? std::nullopt : std::optional<Timestamp>(add_days(kJan1, 7)));
    EXPECT_EQ(dry.retained, permanent ? std::vector<std::string>{} : std::vector<std::string>{"models"});
    EXPECT_EQ(dry.destroyed, permanent ? (std::vector<std::string>{"models", "compute"}) : std::vector<std::string>{"compute"});
    EXPECT_EQ(dry.preserved, std::vector<std::string>{"volume"});
    EXPECT_EQ(dry.warnings, std::vector<std::string>{"sessions: 2"});
    ASSERT_EQ(dry.cleanup.size(), permanent ? 2u : 1u);
    for (const auto& task : dry.cleanup) {
      EXPECT_EQ(task.id, 0);
      EXPECT_EQ(task.workspace_id, w.id);
    }
    EXPECT_EQ(snapshot(*engine), before);
    EXPECT_EQ(engine->get_by_id(w.id, std::nullopt).components.size(), 3u);
  }
  // The real call answers the same, with real task ids.
  const DeleteResult real = soft_delete(w);
  EXPECT_FALSE(real.dry_run);
  EXPECT_EQ(real.retained, std::vector<std::string>{"models"});
  ASSERT_EQ(real.cleanup.size(), 1u);
  EXPECT_GT(real.cleanup[0].id, 0);
  EXPECT_EQ(real.cleanup[0].ref, "c-1");
}

TEST_F(CheckOrderTest, ADryRunRaisesWhatTheRealCallWouldInTheSameOrderUnaudited) {
  const Workspace w = open_where_every_check_can_fail();
  const Snapshot before = snapshot(*engine);
  DeleteOptions options;
  options.dry_run = true;
  options.permanently_delete = true;
  expect_error(ErrorCode::permission_denied, [&] { engine->remove(w.id, options, kBob); });
  expect_error(ErrorCode::workspace_not_stopped, [&] { engine->remove(w.id, options, kAlice); });
  engine->stop(w.id, std::nullopt);
  const Snapshot stopped = snapshot(*engine);
  EXPECT_EQ(stopped.audit, before.audit + 1);
  expect_error(ErrorCode::operation_not_allowed, [&] { engine->remove(w.id, options, kAlice); });
  options.permanently_delete = false;
  const std::string m = expect_error(ErrorCode::precondition_failed, [&] { engine->remove(w.id, options, kAlice); });
  EXPECT_TRUE(contains(m, "confirm_name")) << m;
  options.confirm_name = "ws";
  expect_error(ErrorCode::precondition_failed, [&] { engine->remove(w.id, options, kAlice); });  // no facts provider
  expect_error(ErrorCode::workspace_not_found, [&] { engine->remove("nope", options, kAlice); });
  EXPECT_EQ(snapshot(*engine), stopped);  // no refusal was audited
  engine->set_facts_provider([](const Workspace&) { return Facts{{"jobs", 0}}; });
  EXPECT_TRUE(engine->remove(w.id, options, kAlice).dry_run);
  EXPECT_EQ(snapshot(*engine), stopped);
}

TEST_F(EngineTest, PurgeExpiredDryRunReportsWhatTheSweepWouldRemove) {
  open_yaml("version: 1\nname: p\norphans: {purge_after_days: 3}\ncomponents:\n  blocks: {on_delete: retain}\n");
  const Workspace a = make("a", {{"blocks", "b-a", false}}, 3);
  const Workspace b = make("b", {{"blocks", "b-b", false}}, 5);
  const Workspace o = engine->create({"sub", "rg", "o", std::nullopt, false, {{"blocks", "b-o", false}}}, kAlice);
  engine->revoke(o.id, "alice", std::nullopt);  // orphaned now
  soft_delete(a);
  soft_delete(b);
  clock->advance(3 * kMicrosPerDay - 1);
  EXPECT_TRUE(engine->purge_expired(std::nullopt, true).purged.empty());
  clock->advance(1);  // a expires now; o has been orphaned 3 days
  const Snapshot before = snapshot(*engine);
  const PurgeReport dry = engine->purge_expired(std::nullopt, true);
  EXPECT_TRUE(dry.dry_run);
  ASSERT_EQ(dry.purged.size(), 2u);
  EXPECT_EQ(dry.purged[0].name, "a");
  EXPECT_EQ(dry.purged[1].name, "o");
  ASSERT_EQ(dry.cleanup.size(), 2u);
  EXPECT_EQ(dry.cleanup[0].id, 0);
  EXPECT_EQ(snapshot(*engine), before);
  EXPECT_EQ(engine->get_by_id(o.id, std::nullopt).name, "o");
  const PurgeReport real = engine->purge_expired(std::nullopt);
  EXPECT_FALSE(real.dry_run);
  ASSERT_EQ(real.purged.size(), 2u);
  ASSERT_EQ(real.cleanup.size(), 2u);
  EXPECT_EQ(real.cleanup[0].ref, dry.cleanup[0].ref);
  EXPECT_EQ(real.cleanup[1].ref, dry.cleanup[1].ref);
  EXPECT_GT(real.cleanup[0].id, 0);
  expect_error(ErrorCode::permission_denied, [&] { engine->purge_expired(kBob, true); });
}

TEST_F(EngineTest, RecoverRestoresReattachesAndReportsWhatMustBeRecreated) {
  open(Policy::from_yaml(R"(version: 1
name: p
components:
  role_assignments: {on_delete: destroy, on_recover: reattach}
  compute: {on_delete: destroy}
  volume: {on_delete: preserve}
)"));
  const Workspace w = make("ws", {{"models", "m1", false}, {"role_assignments", "ra1", false},
                                  {"compute", "c1", false}, {"volume", "v1", false}});
  engine->stop(w.id, std::nullopt);
  soft_delete(w);
  const RecoverResult r = engine->recover("sub", "rg", "ws", std::nullopt);
  EXPECT_EQ(r.restored, std::vector<std::string>{"models"});
  EXPECT_EQ(r.reattached, std::vector<std::string>{"role_assignments"});
  EXPECT_EQ(r.must_recreate, std::vector<std::string>{"compute"});
  EXPECT_EQ(r.workspace.state, WorkspaceState::stopped);
  std::vector<std::string> kinds;
  for (const auto& c : r.workspace.components) kinds.push_back(c.kind);
  EXPECT_EQ(kinds, (std::vector<std::string>{"models", "role_assignments", "volume"}));
  EXPECT_EQ(engine->get("sub", "rg", "ws", std::nullopt).components.size(), 3u);
  expect_error(ErrorCode::workspace_not_found, [&] { engine->get_deleted("sub", "rg", "ws", std::nullopt); });
  // Deleting again works, and the recovered workspace keeps its id.
  EXPECT_EQ(soft_delete(engine->get("sub", "rg", "ws", std::nullopt)).retained, std::vector<std::string>{"models"});
}

TEST_F(EngineTest, ListDeletedIsNewestFirstAndKeysetPaginated) {
  for (int i = 0; i < 7; ++i) {
    soft_delete(make("ws" + std::to_string(i), {}, std::nullopt, i % 2 ? "odd" : "even"));
    if (i != 3) clock->advance(1);  // ws3 and ws4 share a deletion time
  }
  const auto all = engine->list_deleted("sub", std::nullopt, std::nullopt, std::nullopt, std::nullopt);
  ASSERT_EQ(all.items.size(), 7u);
  EXPECT_FALSE(all.next_cursor.has_value());
  for (int i = 0; i < 7; ++i) EXPECT_EQ(all.items[static_cast<std::size_t>(i)].name, "ws" + std::to_string(6 - i));

  std::vector<std::string> paged;
  std::optional<std::string> cursor;
  int pages = 0;
  do {
    auto page = engine->list_deleted("sub", std::nullopt, 3, cursor, std::nullopt);
    for (const auto& d : page.items) paged.push_back(d.name);
    cursor = page.next_cursor;
    ++pages;
  } while (cursor);
  EXPECT_EQ(pages, 3);
  EXPECT_EQ(paged, (std::vector<std::string>{"ws6", "ws5", "ws4", "ws3", "ws2", "ws1", "ws0"}));

  const auto odd = engine->list_deleted("sub", std::string("odd"), std::nullopt, std::nullopt, std::nullopt);
  ASSERT_EQ(odd.items.size(), 3u);
  EXPECT_EQ(odd.items[0].name, "ws5");
  EXPECT_TRUE(engine->list_deleted("other", std::nullopt, std::nullopt, std::nullopt, std::nullopt).items.empty());
  EXPECT_EQ(engine->list_deleted("sub", std::nullopt, SIZE_MAX, std::nullopt, std::nullopt).items.size(), 7u);
  const auto exact = engine->list_deleted("sub", std::nullopt, 7, std::nullopt, std::nullopt);
  EXPECT_FALSE(exact.next_cursor.has_value());  // no empty trailing page
  expect_error(ErrorCode::invalid_argument, [&] { engine->list_deleted("sub", std::nullopt, 3, std::string("garbage"), std::nullopt); });
  expect_error(ErrorCode::invalid_argument, [&] { engine->list_deleted("sub", std::nullopt, 0, std::nullopt, std::nullopt); });
}

TEST_F(EngineTest, ListLiveIsOrderedByGroupAndNameAndKeysetPaginated) {
  // Names with the cursor's separator and bytes that need escaping survive a page boundary.
  make("b.ws", {{"storage", "/st/1", false}}, std::nullopt, "rg-2");
  make("a", {}, std::nullopt, "rg-2");
  make("z", {}, std::nullopt, "rg-1");
  make("m%20/\xc3\xa9", {}, std::nullopt, "rg-1");
  make("other-sub", {}, std::nullopt, "rg-1", "sub-2");
  soft_delete(make("gone", {}, std::nullopt, "rg-1"));
  const Workspace stopped = make("stopped", {}, std::nullopt, "rg-2");
  engine->stop(stopped.id, std::nullopt);

  const auto all = engine->list_live("sub", std::nullopt, std::nullopt, std::nullopt, std::nullopt);
  std::vector<std::string> names;
  for (const auto& w : all.items) names.push_back(w.resource_group + "/" + w.name);
  EXPECT_EQ(names, (std::vector<std::string>{"rg-1/m%20/\xc3\xa9", "rg-1/z", "rg-2/a", "rg-2/b.ws",
                                             "rg-2/stopped"}));
  EXPECT_FALSE(all.next_cursor.has_value());
  ASSERT_EQ(all.items[3].components.size(), 1u);  // components come with the listing
  EXPECT_EQ(all.items[3].components[0].ref, "/st/1");
  EXPECT_EQ(all.items[4].state, WorkspaceState::stopped);

  std::vector<std::string> paged;
  std::optional<std::string> cursor;
  int pages = 0;
  do {
    auto page = engine->list_live("sub", std::nullopt, 2, cursor, std::nullopt);
    for (const auto& w : page.items) paged.push_back(w.resource_group + "/" + w.name);
    cursor = page.next_cursor;
    ++pages;
  } while (cursor && pages < 10);
  EXPECT_EQ(pages, 3);
  EXPECT_EQ(paged, names);

  const auto group = engine->list_live("sub", std::string("rg-2"), 2, std::nullopt, std::nullopt);
  ASSERT_EQ(group.items.size(), 2u);
  EXPECT_EQ(group.items[0].name, "a");
  ASSERT_TRUE(group.next_cursor.has_value());
  const auto rest = engine->list_live("sub", std::string("rg-2"), 2, group.next_cursor, std::nullopt);
  ASSERT_EQ(rest.items.size(), 1u);
  EXPECT_EQ(rest.items[0].name, "stopped");
  EXPECT_FALSE(rest.next_cursor.has_value());  // no empty trailing page
  EXPECT_TRUE(engine->list_live("nobody", std::nullopt, std::nullopt, std::nullopt, std::nullopt).items.empty());
  EXPECT_EQ(engine->list_live("sub", std::nullopt, SIZE_MAX, std::nullopt, std::nullopt).items.size(), 5u);
  for (const char* bad : {"garbage", "zz.00", "0.", ".61", "616.62", "61.6g"}) {
    expect_error(ErrorCode::invalid_argument,
                 [&] { engine->list_live("sub", std::nullopt, 3, std::string(bad), std::nullopt); });
  }
  expect_error(ErrorCode::invalid_argument, [&] { engine->list_live("sub", std::nullopt, 0, std::nullopt, std::nullopt); });
  expect_error(ErrorCode::invalid_argument, [&] { engine->list_live("", std::nullopt, 1, std::nullopt, std::nullopt); });
}

TEST_F(EngineTest, AuditRecordsEveryChangeAndEveryRefusal) {
  const Workspace w = engine->create({"sub", "rg", "ws", std::nullopt, false, {}}, kAlice);
  engine->stop(w.id, std::nullopt);
  expect_error(ErrorCode::permission_denied, [&] { engine->remove(w.id, {}, kBob); });
  engine->remove(w.id, {}, kAlice);
  engine->recover("sub", "rg", "ws", std::nullopt);
  make("other", {}, std::nullopt, "rg", "sub2");
  const auto log = engine->audit_log(std::string("sub"));
  std::vector<std::string> lines;
  for (const auto& r : log) lines.push_back(r.action + " " + r.name + " " + r.outcome + " " + r.principal_id);
  EXPECT_EQ(lines, (std::vector<std::string>{"create ws ok alice", "stop ws ok ", "delete ws refused:permission_denied bob",
                                             "delete ws ok alice", "recover ws ok "}));
  for (std::size_t i = 1; i < log.size(); ++i) EXPECT_LT(log[i - 1].seq, log[i].seq);
  EXPECT_EQ(engine->audit_log(std::nullopt).size(), 6u);
  EXPECT_EQ(log[0].workspace_id, w.id);
}

TEST_F(EngineTest, CleanupOutboxCompletes) {
  DeleteOptions options;
  options.permanently_delete = true;
  soft_delete(make("ws", {{"a", "r1", false}, {"b", "r2", false}}), options);
  auto tasks = engine->cleanup_tasks();
  ASSERT_EQ(tasks.size(), 2u);
  EXPECT_LT(tasks[0].id, tasks[1].id);
  EXPECT_EQ(tasks[0].created_at, kJan1);
  engine->complete_cleanup(tasks[0].id);
  engine->complete_cleanup(tasks[0].id);  // no-op
  EXPECT_EQ(engine->cleanup_tasks().size(), 1u);
  const std::string m = expect_error(ErrorCode::not_found, [&] { engine->complete_cleanup(999); });
  EXPECT_TRUE(contains(m, "999")) << m;
}

TEST_F(EngineTest, ClosedEngineRefusesEveryCall) {
  make("ws");
  engine->close();
  engine->close();  // idempotent
  EXPECT_TRUE(engine->closed());
  const std::string m = expect_error(ErrorCode::engine_closed, [&] { engine->get("sub", "rg", "ws", std::nullopt); });
  EXPECT_TRUE(contains(m, "closed")) << m;
  expect_error(ErrorCode::engine_closed, [&] { make("other"); });
  expect_error(ErrorCode::engine_closed, [&] { engine->purge_expired(std::nullopt); });
  expect_error(ErrorCode::engine_closed, [&] { engine->cleanup_tasks(); });
  expect_error(ErrorCode::engine_closed, [&] { engine->set_facts_provider([](const Workspace&) { return Facts{}; }); });
}

TEST_F(EngineTest, HttpStatusPerCode) {
  EXPECT_EQ(http_status(ErrorCode::workspace_not_found), 404);
  EXPECT_EQ(http_status(ErrorCode::workspace_exists), 409);
  EXPECT_EQ(http_status(ErrorCode::name_reserved), 409);
  EXPECT_EQ(http_status(ErrorCode::invalid_retention), 400);
  EXPECT_EQ(http_status(ErrorCode::operation_not_allowed), 409);
  EXPECT_EQ(http_status(ErrorCode::workspace_not_stopped), 400);
  EXPECT_EQ(http_status(ErrorCode::precondition_failed), 412);
  EXPECT_EQ(http_status(ErrorCode::permission_denied), 403);
  EXPECT_EQ(http_status(ErrorCode::policy_error), 400);
  EXPECT_EQ(http_status(ErrorCode::engine_closed), 503);
  EXPECT_EQ(code_name(ErrorCode::name_reserved), "name_reserved");
}

}  // namespace
}  // namespace recyclebin
