// Expiry is a fact of time: exact to the microsecond, across day and month ends.
#include <gtest/gtest.h>

#include <algorithm>

#include "fixtures.hpp"

namespace recyclebin {
namespace {

using testing::EngineFixture;
using testing::expect_error;
using testing::kJan1;

using ExpiryTest = EngineFixture;

TEST_F(ExpiryTest, OneMicrosecondBeforeAndAtPurgeAt) {
  const Workspace w = make("ws", {{"models", "m1", false}}, 3);
  const Timestamp purge_at = *soft_delete(w).purge_at;
  EXPECT_EQ(purge_at, kJan1 + 3 * kMicrosPerDay);

  clock->set(purge_at - 1);
  EXPECT_EQ(engine->get_deleted("sub", "rg", "ws", std::nullopt).id, w.id);
  EXPECT_EQ(engine->list_deleted("sub", std::nullopt, std::nullopt, std::nullopt, std::nullopt).items.size(), 1u);
  expect_error(ErrorCode::name_reserved, [&] { make("ws"); });
  EXPECT_TRUE(engine->purge_expired(std::nullopt).purged.empty());

  clock->set(purge_at);  // expired from this instant, whether or not purge_expired ran
  expect_error(ErrorCode::workspace_not_found, [&] { engine->get_deleted("sub", "rg", "ws", std::nullopt); });
  expect_error(ErrorCode::workspace_not_found, [&] { engine->recover("sub", "rg", "ws", std::nullopt); });
  expect_error(ErrorCode::workspace_not_found, [&] { engine->purge("sub", "rg", "ws", std::nullopt); });
  EXPECT_TRUE(engine->list_deleted("sub", std::nullopt, std::nullopt, std::nullopt, std::nullopt).items.empty());
}

TEST_F(ExpiryTest, CreateMeetingAnExpiredRowPurgesItInTheSameTransaction) {
  const Workspace w = make("ws", {{"models", "m1", false}}, 1);
  const Timestamp purge_at = *soft_delete(w).purge_at;
  clock->set(purge_at);
  const Workspace fresh = make("ws");
  EXPECT_NE(fresh.id, w.id);
  const auto tasks = engine->cleanup_tasks();
  ASSERT_EQ(tasks.size(), 1u);
  EXPECT_EQ(tasks[0].ref, "m1");
  EXPECT_EQ(tasks[0].workspace_id, w.id);
  const auto log = engine->audit_log(std::nullopt);
  ASSERT_GE(log.size(), 2u);
  EXPECT_EQ(log[log.size() - 2].action, "expire");
  EXPECT_EQ(log[log.size() - 2].workspace_id, w.id);
  EXPECT_EQ(log.back().action, "create");
  EXPECT_TRUE(engine->purge_expired(std::nullopt).purged.empty());  // nothing left to do
}

TEST_F(ExpiryTest, PurgeExpiredRemovesAndHandsOverRetainedComponents) {
  open(Policy::from_yaml("version: 1\nname: p\ncomponents:\n  vm: {on_delete: destroy}\n  disk: {on_delete: preserve}\n"));
  const Workspace a = make("a", {{"models", "m-a", false}, {"vm", "vm-a", false}, {"disk", "d-a", false}, {"models", "m-s", true}}, 1);
  const Workspace b = make("b", {{"models", "m-b", false}}, 2);
  soft_delete(a);
  soft_delete(b);
  EXPECT_EQ(engine->cleanup_tasks().size(), 1u);  // vm-a at delete time
  clock->advance(kMicrosPerDay);
  const PurgeReport report = engine->purge_expired(std::nullopt);
  ASSERT_EQ(report.purged.size(), 1u);
  EXPECT_EQ(report.purged[0].name, "a");
  ASSERT_EQ(report.cleanup.size(), 1u);
  EXPECT_EQ(report.cleanup[0].ref, "m-a");  // not the preserved disk, not the standalone model
  EXPECT_EQ(engine->audit_log(std::nullopt).back().action, "expire");
  clock->advance(kMicrosPerDay);
  EXPECT_EQ(engine->purge_expired(std::nullopt).purged.size(), 1u);
  EXPECT_TRUE(engine->purge_expired(std::nullopt).purged.empty());
}

TEST_F(ExpiryTest, RetentionAcrossMonthEndAndLeapDay) {
  clock->set(parse_iso8601("2028-02-28T23:59:59.999999Z"));
  const DeleteResult r = soft_delete(make("ws", {}, 2));
  EXPECT_EQ(format_iso8601(*r.purge_at), "2028-03-01T23:59:59.999999Z");  // through Feb 29
  clock->set(parse_iso8601("2026-12-31T23:59:59.999999Z"));
  const DeleteResult y = soft_delete(make("year", {}, 1));
  EXPECT_EQ(format_iso8601(*y.purge_at), "2027-01-01T23:59:59.999999Z");
  clock->set(*y.purge_at - 1);
  engine->get_deleted("sub", "rg", "year", std::nullopt);
  clock->set(*y.purge_at);
  expect_error(ErrorCode::workspace_not_found, [&] { engine->get_deleted("sub", "rg", "year", std::nullopt); });
}

TEST_F(ExpiryTest, TenantOverrideRetentionApplies) {
  open_yaml("version: 1\nname: p\ntenants:\n  contoso:\n    retention: {default_days: 7}\n");
  EXPECT_EQ(make("ws", {}, std::nullopt, "rg", "contoso").retention_days, 7);
  EXPECT_EQ(make("ws", {}, std::nullopt, "rg", "fabrikam").retention_days, 14);
}

const char* kHoldPolicy = R"(version: 1
name: realm
retention: {default_days: 30, per_workspace: false, on_expiry: hold}
components:
  block: {on_delete: retain}
)";

TEST_F(ExpiryTest, HoldKeepsTheWorkspaceUntilAnAdminPurgesIt) {
  open_yaml(kHoldPolicy);
  const Workspace w = make("realm", {{"block", "blocks/1", false}, {"block", "blocks/2", false}});
  const Timestamp purge_at = *soft_delete(w).purge_at;
  clock->set(purge_at - 1);
  EXPECT_TRUE(engine->list_deletable("sub").empty());  // the delay has not elapsed
  expect_error(ErrorCode::operation_not_allowed, [&] { engine->purge_by_id(w.id, std::nullopt); });
  clock->set(purge_at);
  const auto deletable = engine->list_deletable("sub");
  ASSERT_EQ(deletable.size(), 1u);
  EXPECT_EQ(deletable[0].kind, DeletableKind::deletion_planned);
  EXPECT_EQ(deletable[0].workspace_id, w.id);
  EXPECT_EQ(deletable[0].since, purge_at);
  clock->advance(10 * kMicrosPerDay);
  EXPECT_TRUE(engine->purge_expired(std::nullopt).purged.empty());   // held
  EXPECT_EQ(engine->get_deleted("sub", "rg", "realm", std::nullopt).id, w.id);
  expect_error(ErrorCode::name_reserved, [&] { make("realm"); });
  const DeleteResult r = engine->purge_by_id(w.id, std::nullopt);
  ASSERT_EQ(r.cleanup.size(), 2u);
  EXPECT_EQ(r.cleanup[0].ref, "blocks/1");
  EXPECT_EQ(r.cleanup[1].ref, "blocks/2");
  EXPECT_TRUE(engine->list_deletable("sub").empty());
  expect_error(ErrorCode::operation_not_allowed, [&] { engine->purge_by_id(w.id, std::nullopt); });
  make("realm");
}

TEST_F(ExpiryTest, HeldWorkspaceStaysRecoverablePastItsDate) {
  open_yaml(kHoldPolicy);
  const Workspace w = make("realm");
  clock->set(*soft_delete(w).purge_at + kMicrosPerDay);
  EXPECT_EQ(engine->recover("sub", "rg", "realm", std::nullopt).workspace.id, w.id);
  EXPECT_TRUE(engine->list_deletable("sub").empty());
}

TEST_F(ExpiryTest, OrphanedFromTheRevokeOfTheLastMember) {
  open_yaml(kHoldPolicy);
  const Workspace never = make("never-had-members");
  const Workspace w = engine->create({"sub", "rg", "shared", std::nullopt, false, {}}, Principal{"alice", {}});
  engine->grant(w.id, "bob", "reader", std::nullopt);
  engine->revoke(w.id, "alice", std::nullopt);
  EXPECT_TRUE(engine->list_deletable("sub").empty());
  clock->advance(42);
  engine->revoke(w.id, "bob", std::nullopt);
  const auto deletable = engine->list_deletable("sub");
  ASSERT_EQ(deletable.size(), 1u);
  EXPECT_EQ(deletable[0].kind, DeletableKind::orphaned);
  EXPECT_EQ(deletable[0].workspace_id, w.id);
  EXPECT_EQ(deletable[0].since, kJan1 + 42);
  clock->advance(365 * kMicrosPerDay);
  EXPECT_TRUE(engine->purge_expired(std::nullopt).purged.empty());  // purge_after_days: null
  engine->grant(w.id, "carol", "owner", std::nullopt);                  // adopted again
  EXPECT_TRUE(engine->list_deletable("sub").empty());
  engine->revoke(w.id, "carol", std::nullopt);
  EXPECT_EQ(engine->purge_by_id(w.id, std::nullopt).permanent, true);
  expect_error(ErrorCode::operation_not_allowed, [&] { engine->purge_by_id(never.id, std::nullopt); });
  expect_error(ErrorCode::operation_not_allowed, [&] { engine->purge_by_id("unknown", std::nullopt); });
}

TEST_F(ExpiryTest, PurgeByIdChecksPermissionFirst) {
  open_yaml(std::string(kHoldPolicy) + "permissions: {purge: [admin]}\n");
  const Workspace w = engine->create({"sub", "rg", "realm", std::nullopt, false, {}}, Principal{"alice", {}});
  expect_error(ErrorCode::permission_denied, [&] { engine->purge_by_id(w.id, Principal{"mallory", {}}); });
  expect_error(ErrorCode::operation_not_allowed, [&] { engine->purge_by_id(w.id, Principal{"ops", {"admin"}}); });
  engine->revoke(w.id, "alice", std::nullopt);
  expect_error(ErrorCode::permission_denied, [&] { engine->purge_by_id(w.id, Principal{"mallory", {}}); });
  EXPECT_TRUE(engine->purge_by_id(w.id, Principal{"ops", {"admin"}}).permanent);
  const auto log = engine->audit_log(std::nullopt);
  EXPECT_EQ(log.back().action, "purge");
  EXPECT_EQ(log.back().principal_id, "ops");
}

TEST_F(ExpiryTest, OrphansPurgedAfterTheirDays) {
  open_yaml("version: 1\nname: p\norphans: {purge_after_days: 3}\n");
  const Workspace w = engine->create({"sub", "rg", "ws", std::nullopt, false, {{"models", "m", false}}}, Principal{"alice", {}});
  engine->revoke(w.id, "alice", std::nullopt);
  clock->advance(3 * kMicrosPerDay - 1);
  EXPECT_TRUE(engine->purge_expired(std::nullopt).purged.empty());
  clock->advance(1);
  const PurgeReport report = engine->purge_expired(std::nullopt);
  ASSERT_EQ(report.purged.size(), 1u);
  EXPECT_EQ(report.purged[0].name, "ws");
  ASSERT_EQ(report.cleanup.size(), 1u);
  EXPECT_EQ(report.cleanup[0].ref, "m");
}

TEST_F(ExpiryTest, PurgeExpiredSweepsManyInChunks) {
  for (int i = 0; i < 4500; ++i) soft_delete(make("ws" + std::to_string(i), {{"models", "m" + std::to_string(i), false}}, 1));
  clock->advance(kMicrosPerDay);
  const PurgeReport report = engine->purge_expired(std::nullopt);
  EXPECT_EQ(report.purged.size(), 4500u);
  EXPECT_EQ(report.cleanup.size(), 4500u);
  EXPECT_TRUE(engine->list_deleted("sub", std::nullopt, std::nullopt, std::nullopt, std::nullopt).items.empty());
}

TEST_F(ExpiryTest, SweepSkipsHeldTenantsAndAuditsInPurgeOrder) {
  // Chunks of 2,000 mixing a tenant that holds expired workspaces with ones that purge.
  open_yaml("version: 1\nname: p\npermissions: {purge: [admin]}\ncomponents:\n  disk: {on_delete: preserve}\n"
            "tenants:\n  held:\n    retention: {on_expiry: hold}\n");
  std::vector<Workspace> purged;
  std::vector<Workspace> held;
  const Principal alice{"alice", {}};
  for (int i = 0; i < 2'600; ++i) {
    const bool hold = i % 7 == 0;
    const std::string name = "ws" + std::to_string(i);
    CreateRequest request{hold ? "held" : "sub", "rg", name, 1 + i % 2, false,
                          {{"models", "m" + std::to_string(i), false}, {"disk", "d" + std::to_string(i), false},
                           {"models", "shared", true}}};
    const Workspace w = engine->create(request, i % 3 == 0 ? std::optional<Principal>(alice) : std::nullopt);
    engine->remove(w.id, {}, std::nullopt);
    (hold ? held : purged).push_back(w);
    if (i % 500 == 0) clock->advance(1);
  }
  clock->advance(2 * kMicrosPerDay);
  const std::size_t audit_before = engine->audit_log(std::nullopt).size();
  const PurgeReport report = engine->purge_expired(Principal{"reaper", {"admin"}});
  ASSERT_EQ(report.purged.size(), purged.size());
  ASSERT_EQ(report.cleanup.size(), purged.size());  // one model each; not the disk, not the standalone
  // Workspaces go in (purge_at, id) order; each audit record follows the report's order.
  auto order = purged;
  std::sort(order.begin(), order.end(), [](const Workspace& a, const Workspace& b) {
    return std::make_pair(a.created_at + a.retention_days * kMicrosPerDay, a.id) <
           std::make_pair(b.created_at + b.retention_days * kMicrosPerDay, b.id);
  });
  const auto log = engine->audit_log(std::nullopt);
  ASSERT_EQ(log.size(), audit_before + purged.size());
  for (std::size_t i = 0; i < order.size(); ++i) {
    EXPECT_EQ(report.purged[i].name, order[i].name) << i;
    const AuditRecord& a = log[audit_before + i];
    EXPECT_EQ(a.action, "expire");
    EXPECT_EQ(a.outcome, "ok");
    EXPECT_EQ(a.workspace_id, order[i].id);
    EXPECT_EQ(a.name, order[i].name);
    EXPECT_EQ(a.principal_id, "reaper");
    EXPECT_EQ(report.cleanup[i].ref, "m" + order[i].name.substr(2));
    EXPECT_EQ(report.cleanup[i].workspace_id, order[i].id);
  }
  for (const auto& w : purged) {
    expect_error(ErrorCode::workspace_not_found, [&] { engine->get_by_id(w.id, std::nullopt); });
  }
  // Held ones stay, listed for the operator, recoverable.
  EXPECT_EQ(engine->list_deletable("held").size(), held.size());
  EXPECT_EQ(engine->recover("held", "rg", held.front().name, std::nullopt).workspace.id, held.front().id);
  EXPECT_TRUE(engine->purge_expired(std::nullopt).purged.empty());
}


// ---- the realm admin's delete (issue 16): both kinds listed, a dry run, the export fence ----

std::vector<std::string> refs_of(const std::vector<CleanupTask>& tasks) {
  std::vector<std::string> refs;
  for (const auto& t : tasks) refs.push_back(t.ref);
  return refs;
}

TEST_F(ExpiryTest, OrphanedAndPastItsDateIsListedOnceUnderEachKind) {
  open_yaml(kHoldPolicy);
  const Workspace w = engine->create({"sub", "rg", "realm", std::nullopt, false, {{"block", "blocks/1", false}}},
                                     Principal{"alice", {}});
  clock->advance(7);
  engine->revoke(w.id, "alice", std::nullopt);  // orphaned at kJan1 + 7
  const Timestamp purge_at = *soft_delete(w).purge_at;
  clock->set(purge_at - 1);
  auto deletable = engine->list_deletable("sub");
  ASSERT_EQ(deletable.size(), 1u);  // orphaned only: the delay has not elapsed
  EXPECT_EQ(deletable[0].kind, DeletableKind::orphaned);
  clock->set(purge_at);
  deletable = engine->list_deletable("sub");
  ASSERT_EQ(deletable.size(), 2u);
  EXPECT_EQ(deletable[0].kind, DeletableKind::orphaned);  // oldest date first
  EXPECT_EQ(deletable[0].workspace_id, w.id);
  EXPECT_EQ(deletable[0].since, kJan1 + 7);
  EXPECT_EQ(deletable[1].kind, DeletableKind::deletion_planned);
  EXPECT_EQ(deletable[1].workspace_id, w.id);
  EXPECT_EQ(deletable[1].since, purge_at);
  const DeleteResult r = engine->purge_by_id(w.id, std::nullopt);
  EXPECT_EQ(refs_of(r.cleanup), std::vector<std::string>{"blocks/1"});
  EXPECT_TRUE(engine->list_deletable("sub").empty());  // gone from both kinds at once
}

TEST_F(ExpiryTest, PurgeByIdDryRunAnswersTheRealCallAndWritesNothing) {
  open_yaml(std::string(kHoldPolicy) + "  vm: {on_delete: destroy}\n  disk: {on_delete: preserve}\n");
  const Workspace w = make("realm", {{"block", "blocks/1", false}, {"vm", "vm-1", false},
                                     {"disk", "disk-1", false}, {"block", "blocks/2", false}});
  const Timestamp purge_at = *soft_delete(w).purge_at;  // vm-1's task is written now
  clock->set(purge_at + 5);
  const auto tasks_before = engine->cleanup_tasks();
  ASSERT_EQ(refs_of(tasks_before), std::vector<std::string>{"vm-1"});
  const std::size_t audit_before = engine->audit_log(std::nullopt).size();

  PurgeByIdOptions dry;
  dry.dry_run = true;
  const DeleteResult planned = engine->purge_by_id(w.id, std::nullopt, dry);
  EXPECT_TRUE(planned.dry_run);
  EXPECT_TRUE(planned.permanent);
  EXPECT_EQ(planned.deleted_at, purge_at + 5);
  EXPECT_FALSE(planned.purge_at.has_value());
  EXPECT_EQ(refs_of(planned.cleanup), (std::vector<std::string>{"blocks/1", "blocks/2"}));
  for (const auto& task : planned.cleanup) {
    EXPECT_EQ(task.id, 0);
    EXPECT_EQ(task.kind, "block");
    EXPECT_EQ(task.workspace_id, w.id);
    EXPECT_EQ(task.created_at, purge_at + 5);
  }
  // Nothing written: no audit record, no cleanup task, still deletable, still in the bin.
  EXPECT_EQ(engine->audit_log(std::nullopt).size(), audit_before);
  EXPECT_EQ(refs_of(engine->cleanup_tasks()), refs_of(tasks_before));
  EXPECT_EQ(engine->list_deletable("sub").size(), 1u);
  EXPECT_EQ(engine->get_deleted("sub", "rg", "realm", std::nullopt).id, w.id);
  EXPECT_EQ(engine->purge_by_id(w.id, std::nullopt, dry).cleanup.size(), 2u);  // and again

  const DeleteResult real = engine->purge_by_id(w.id, std::nullopt);
  EXPECT_FALSE(real.dry_run);
  EXPECT_EQ(refs_of(real.cleanup), refs_of(planned.cleanup));
  EXPECT_EQ(real.destroyed, planned.destroyed);
  EXPECT_EQ(real.preserved, planned.preserved);
  EXPECT_EQ(real.preserved, std::vector<std::string>{"disk"});
  for (const auto& task : real.cleanup) EXPECT_GT(task.id, 0);
  // After the purge, the dry run answers what the real call now answers.
  expect_error(ErrorCode::operation_not_allowed, [&] { engine->purge_by_id(w.id, std::nullopt, dry); });
}

TEST_F(ExpiryTest, PurgeByIdDryRunRaisesWhatTheRealCallWouldWithoutAuditing) {
  open_yaml(std::string(kHoldPolicy) + "permissions: {purge: [admin]}\n");
  const Workspace w = engine->create({"sub", "rg", "realm", std::nullopt, false, {}}, Principal{"alice", {}});
  PurgeByIdOptions dry;
  dry.dry_run = true;
  const std::size_t audit_before = engine->audit_log(std::nullopt).size();
  expect_error(ErrorCode::permission_denied, [&] { engine->purge_by_id(w.id, Principal{"mallory", {}}, dry); });
  expect_error(ErrorCode::operation_not_allowed, [&] { engine->purge_by_id(w.id, Principal{"ops", {"admin"}}, dry); });
  expect_error(ErrorCode::operation_not_allowed, [&] { engine->purge_by_id("unknown", std::nullopt, dry); });
  expect_error(ErrorCode::invalid_argument, [&] { engine->purge_by_id(std::string("a\0b", 3), std::nullopt, dry); });
  EXPECT_EQ(engine->audit_log(std::nullopt).size(), audit_before);  // dry runs are not audited
  expect_error(ErrorCode::operation_not_allowed, [&] { engine->purge_by_id(w.id, Principal{"ops", {"admin"}}); });
  EXPECT_EQ(engine->audit_log(std::nullopt).back().outcome, "refused:operation_not_allowed");
  engine->revoke(w.id, "alice", std::nullopt);
  EXPECT_TRUE(engine->purge_by_id(w.id, Principal{"ops", {"admin"}}, dry).dry_run);
}

TEST_F(ExpiryTest, PurgeByIdWithExpectedRefsRemovesNothingWhenATaskWasNotExported) {
  open_yaml(kHoldPolicy);
  const Workspace w = make("realm", {{"block", "blocks/1", false}, {"block", "blocks/2", false}});
  clock->set(*soft_delete(w).purge_at);
  PurgeByIdOptions fenced;
  fenced.expected_refs = std::vector<std::string>{"blocks/1"};  // blocks/2 was not exported
  const std::string message =
      expect_error(ErrorCode::operation_not_allowed, [&] { engine->purge_by_id(w.id, std::nullopt, fenced); });
  EXPECT_NE(message.find("blocks/2"), std::string::npos) << message;
  EXPECT_EQ(message.find("blocks/1"), std::string::npos) << message;
  EXPECT_TRUE(engine->cleanup_tasks().empty());  // rolled back with the purge
  ASSERT_EQ(engine->list_deletable("sub").size(), 1u);
  EXPECT_EQ(engine->audit_log(std::nullopt).back().outcome, "refused:operation_not_allowed");
  fenced.expected_refs = std::vector<std::string>{};
  expect_error(ErrorCode::operation_not_allowed, [&] { engine->purge_by_id(w.id, std::nullopt, fenced); });
  fenced.expected_refs = std::vector<std::string>{"blocks/2", "other", "blocks/1"};  // a superset is fine
  const DeleteResult r = engine->purge_by_id(w.id, std::nullopt, fenced);
  EXPECT_EQ(refs_of(r.cleanup), (std::vector<std::string>{"blocks/1", "blocks/2"}));
  EXPECT_EQ(refs_of(engine->cleanup_tasks()), refs_of(r.cleanup));
  EXPECT_TRUE(engine->list_deletable("sub").empty());
}

TEST_F(ExpiryTest, ExpectedRefsOfAPurgeWithoutBlocks) {
  open_yaml(kHoldPolicy);
  const Workspace w = engine->create({"sub", "rg", "realm", std::nullopt, false, {}}, Principal{"alice", {}});
  engine->revoke(w.id, "alice", std::nullopt);
  PurgeByIdOptions fenced;
  fenced.expected_refs = std::vector<std::string>{};
  EXPECT_TRUE(engine->purge_by_id(w.id, std::nullopt, fenced).cleanup.empty());
}

}  // namespace
}  // namespace recyclebin
