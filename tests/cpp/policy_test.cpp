#include <gtest/gtest.h>

#include <fstream>

#include "fixtures.hpp"
#include "recyclebin/policy.hpp"

namespace recyclebin {
namespace {

using testing::expect_error;

std::string policy_error(const std::string& yaml) {
  return expect_error(ErrorCode::policy_error, [&] { Policy::from_yaml(yaml); });
}

TEST(Policy, DefaultsAreTheSafeChoices) {
  const Policy policy = Policy::from_yaml("version: 1\nname: minimal\n");
  const Rules& r = policy.base();
  EXPECT_EQ(r.retention.default_days, 14);
  EXPECT_EQ(r.retention.min_days, 1);
  EXPECT_EQ(r.retention.max_days, 14);
  EXPECT_TRUE(r.retention.per_workspace);
  EXPECT_EQ(r.retention.on_expiry, OnExpiry::purge);
  EXPECT_TRUE(r.soft_delete.enabled);
  EXPECT_TRUE(r.soft_delete.hard_delete_if_cmk);
  EXPECT_TRUE(r.permanent_delete.allowed);
  EXPECT_FALSE(r.permanent_delete.batch);
  EXPECT_TRUE(r.permanent_delete.dependent_resources_require_permanent);
  EXPECT_EQ(r.name_reservation.scope, ReservationScope::group);
  EXPECT_FALSE(r.orphans.purge_after_days.has_value());
  EXPECT_EQ(r.component_rule("anything").on_delete, OnDelete::retain);
  EXPECT_TRUE(r.permissions.empty());
}

TEST(Policy, EveryBuiltinParses) {
  const auto names = Policy::builtin_names();
  for (const char* expected : {"default", "azureml", "dataworks", "parsec", "exostellar", "cloud-workstation"}) {
    EXPECT_NE(std::find(names.begin(), names.end(), expected), names.end()) << expected;
  }
  for (const auto& name : names) {
    EXPECT_EQ(Policy::builtin(name).name(), name);
    EXPECT_EQ(Policy::load(testing::policy_path(name)).name(), name);
  }
}

TEST(Policy, UnknownBuiltinListsTheKnownOnes) {
  const std::string message = expect_error(ErrorCode::policy_error, [] { Policy::builtin("azure"); });
  EXPECT_NE(message.find("unknown built-in policy 'azure'"), std::string::npos) << message;
  EXPECT_NE(message.find("azureml"), std::string::npos) << message;
  EXPECT_NE(message.find("cloud-workstation"), std::string::npos) << message;
}

TEST(Policy, DecodesEveryKey) {
  const Policy policy = Policy::from_yaml(R"(
version: 1
name: full
retention: {default_days: 7, min_days: 2, max_days: 30, per_workspace: false, on_expiry: hold}
soft_delete: {enabled: false, hard_delete_if_cmk: false}
permanent_delete: {allowed: false, batch: true, dependent_resources_require_permanent: false}
name_reservation: {scope: tenant}
preconditions: {require_stopped: true, require_confirm_name: true, blockers: [running_jobs], warnings: [a, b]}
orphans: {purge_after_days: 5}
components:
  default: {on_delete: destroy}
  volume: {on_delete: preserve}
  roles: {on_delete: destroy, on_recover: reattach}
permissions:
  delete: [owner, admin]
  create: [creator]
)");
  const Rules& r = policy.base();
  EXPECT_EQ(r.retention.default_days, 7);
  EXPECT_EQ(r.retention.min_days, 2);
  EXPECT_EQ(r.retention.max_days, 30);
  EXPECT_FALSE(r.retention.per_workspace);
  EXPECT_EQ(r.retention.on_expiry, OnExpiry::hold);
  EXPECT_FALSE(r.soft_delete.enabled);
  EXPECT_FALSE(r.soft_delete.hard_delete_if_cmk);
  EXPECT_FALSE(r.permanent_delete.allowed);
  EXPECT_TRUE(r.permanent_delete.batch);
  EXPECT_FALSE(r.permanent_delete.dependent_resources_require_permanent);
  EXPECT_EQ(r.name_reservation.scope, ReservationScope::tenant);
  EXPECT_TRUE(r.preconditions.require_stopped);
  EXPECT_TRUE(r.preconditions.require_confirm_name);
  EXPECT_EQ(r.preconditions.blockers, std::vector<std::string>{"running_jobs"});
  EXPECT_EQ(r.preconditions.warnings, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(r.orphans.purge_after_days, 5);
  EXPECT_EQ(r.component_rule("unlisted").on_delete, OnDelete::destroy);
  EXPECT_EQ(r.component_rule("volume").on_delete, OnDelete::preserve);
  EXPECT_EQ(r.component_rule("roles").on_recover, OnRecover::reattach);
  EXPECT_EQ(r.permissions.at(Action::delete_), (std::vector<std::string>{"owner", "admin"}));
  EXPECT_EQ(r.permissions.at(Action::create), std::vector<std::string>{"creator"});
}

TEST(Policy, UnknownKeyPointsAtTheKey) {
  const std::string m = policy_error("version: 1\nname: x\nretention:\n  default_dayz: 3\n");
  EXPECT_EQ(m.rfind("4:3: unknown key 'default_dayz' in 'retention'", 0), 0u) << m;
  EXPECT_NE(m.find("allowed: default_days, min_days, max_days, per_workspace, on_expiry"), std::string::npos) << m;
  const std::string top = policy_error("version: 1\nname: x\nretension: {}\n");
  EXPECT_EQ(top.rfind("3:1: unknown key 'retension'", 0), 0u) << top;
}

TEST(Policy, WrongTypePointsAtTheValue) {
  std::string m = policy_error("version: 1\nname: x\nretention:\n  default_days: ten\n");
  EXPECT_EQ(m.rfind("4:17: 'retention.default_days' must be an integer, not 'ten'", 0), 0u) << m;
  m = policy_error("version: 1\nname: x\nsoft_delete: {enabled: maybe}\n");
  EXPECT_EQ(m.rfind("3:24: 'soft_delete.enabled' must be true or false", 0), 0u) << m;
  m = policy_error("version: 1\nname: x\npreconditions: {blockers: running_jobs}\n");
  EXPECT_EQ(m.rfind("3:27: 'preconditions.blockers' must be a list", 0), 0u) << m;
  m = policy_error("version: 1\nname: x\nretention: 14\n");
  EXPECT_EQ(m.rfind("3:12: 'retention' must be a mapping", 0), 0u) << m;
}

TEST(Policy, UnknownEnumValueListsTheAllowedOnes) {
  std::string m = policy_error("version: 1\nname: x\nretention: {on_expiry: delete}\n");
  EXPECT_EQ(m.rfind("3:24: 'retention.on_expiry' is 'delete'; allowed: purge, hold", 0), 0u) << m;
  m = policy_error("version: 1\nname: x\nname_reservation: {scope: world}\n");
  EXPECT_NE(m.find("allowed: group, tenant, none"), std::string::npos) << m;
  m = policy_error("version: 1\nname: x\ncomponents:\n  vm: {on_delete: shred}\n");
  EXPECT_EQ(m.rfind("4:19: 'components.vm.on_delete' is 'shred'; allowed: retain, destroy, preserve", 0), 0u) << m;
}

TEST(Policy, OutOfRangeNumbersAreErrors) {
  std::string m = policy_error("version: 1\nname: x\nretention: {default_days: 30}\n");
  EXPECT_EQ(m.rfind("3:27: 'retention.default_days' is 30; allowed: min_days..max_days (1..14)", 0), 0u) << m;
  m = policy_error("version: 1\nname: x\nretention: {min_days: 0}\n");
  EXPECT_EQ(m.rfind("3:23: 'retention.min_days' is 0; allowed: 1..36500 days", 0), 0u) << m;
  m = policy_error("version: 1\nname: x\nretention: {min_days: 10, max_days: 5, default_days: 7}\n");
  EXPECT_NE(m.find("'retention.min_days' (10) is greater than 'retention.max_days' (5)"), std::string::npos) << m;
  m = policy_error("version: 1\nname: x\norphans: {purge_after_days: -1}\n");
  EXPECT_NE(m.find("'orphans.purge_after_days' is -1"), std::string::npos) << m;
  m = policy_error("version: 2\nname: x\n");
  EXPECT_EQ(m.rfind("1:10: 'version' is 2; the only supported version is 1", 0), 0u) << m;
}

TEST(Policy, FixedRetentionMayLieOutsideTheRange) {
  const Policy p = Policy::from_yaml("version: 1\nname: x\nretention: {default_days: 30, per_workspace: false}\n");
  EXPECT_EQ(p.base().retention.default_days, 30);
}

TEST(Policy, PermissionsAreChecked) {
  std::string m = policy_error("version: 1\nname: x\npermissions:\n  delete: []\n");
  EXPECT_EQ(m.rfind("4:11: 'permissions.delete' lists no role", 0), 0u) << m;
  m = policy_error("version: 1\nname: x\npermissions:\n  erase: [owner]\n");
  EXPECT_EQ(m.rfind("4:3: unknown key 'erase' in 'permissions'", 0), 0u) << m;
  EXPECT_NE(m.find("'erase'"), std::string::npos) << m;
  EXPECT_NE(m.find("create, stop, start, grant, revoke, delete, recover, purge"), std::string::npos) << m;
}

TEST(Policy, ReattachOnlyForDestroyKinds) {
  const std::string m = policy_error("version: 1\nname: x\ncomponents:\n  notebooks: {on_recover: reattach}\n");
  EXPECT_EQ(m.rfind("4:27: 'components.notebooks.on_recover' is reattach", 0), 0u) << m;
}

TEST(Policy, RequiredKeysAndShape) {
  EXPECT_NE(policy_error("name: x\n").find("missing required key 'version'"), std::string::npos);
  EXPECT_NE(policy_error("version: 1\n").find("missing required key 'name'"), std::string::npos);
  EXPECT_NE(policy_error("- a\n- b\n").find("must be a mapping"), std::string::npos);
  const std::string m = policy_error("version: 1\nname: [unclosed\n");
  EXPECT_NE(m.find("not valid YAML"), std::string::npos) << m;
}

TEST(Policy, TenantOverridesMergeOverTheBase) {
  const Policy p = Policy::from_yaml(R"(
version: 1
name: base
retention: {default_days: 10, max_days: 14}
components:
  vm: {on_delete: destroy}
preconditions: {blockers: [running_jobs, active_sessions]}
tenants:
  contoso:
    retention: {default_days: 7}
    components:
      disk: {on_delete: preserve}
    preconditions: {blockers: [running_jobs]}
)");
  const Rules& c = p.rules_for("contoso");
  EXPECT_EQ(c.name, "base");
  EXPECT_EQ(c.retention.default_days, 7);
  EXPECT_EQ(c.retention.max_days, 14);                              // mappings merge
  EXPECT_EQ(c.component_rule("vm").on_delete, OnDelete::destroy);   // kept from the base
  EXPECT_EQ(c.component_rule("disk").on_delete, OnDelete::preserve);
  EXPECT_EQ(c.preconditions.blockers, std::vector<std::string>{"running_jobs"});  // lists replace
  EXPECT_EQ(p.rules_for("fabrikam").retention.default_days, 10);
  EXPECT_EQ(p.tenants(), std::vector<std::string>{"contoso"});
}

TEST(Policy, TenantOverridesAreValidatedOnTheMergedResult) {
  std::string m = policy_error(
      "version: 1\nname: x\ntenants:\n  contoso:\n    retention: {default_days: 20}\n");
  EXPECT_EQ(m.rfind("5:31: 'retention.default_days' is 20; allowed: min_days..max_days (1..14)", 0), 0u) << m;
  EXPECT_NE(m.find("(tenant 'contoso', merged over the base)"), std::string::npos) << m;
  m = policy_error("version: 1\nname: x\ntenants:\n  contoso:\n    retention: {bogus: 1}\n");
  EXPECT_EQ(m.rfind("5:17: unknown key 'bogus' in 'tenants.contoso.retention'", 0), 0u) << m;
  m = policy_error("version: 1\nname: x\ntenants:\n  contoso:\n    name: other\n");
  EXPECT_EQ(m.rfind("5:5: unknown key 'name' in 'tenants.contoso'", 0), 0u) << m;
  m = policy_error("version: 1\nname: x\ntenants: [a]\n");
  EXPECT_NE(m.find("'tenants' must be a mapping"), std::string::npos) << m;
}

TEST(Policy, LoadPrefixesThePath) {
  testing::TempDb file;  // a unique temporary path
  const std::string path = file.path() + ".yaml";
  std::ofstream(path) << "version: 1\nname: x\nretention: {max_days: 0}\n";
  const std::string m = expect_error(ErrorCode::policy_error, [&] { Policy::load(path); });
  EXPECT_EQ(m.rfind(path + ":3:23: 'retention.max_days' is 0", 0), 0u) << m;
  std::filesystem::remove(path);
  const std::string missing = expect_error(ErrorCode::policy_error, [&] { Policy::load(path); });
  EXPECT_NE(missing.find("cannot read the policy file"), std::string::npos) << missing;
}

TEST(Policy, ToYamlRoundTrips) {
  const Policy original = Policy::builtin("default");
  const std::string yaml = Policy::to_yaml(original.base());
  const Policy again = Policy::from_yaml(yaml);
  EXPECT_EQ(Policy::to_yaml(again.base()), yaml);
  EXPECT_NE(yaml.find("on_expiry: purge"), std::string::npos) << yaml;
  EXPECT_NE(yaml.find("delete: [owner]"), std::string::npos) << yaml;
}

}  // namespace
}  // namespace recyclebin
