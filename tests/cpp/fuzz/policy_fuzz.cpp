// libFuzzer target for the policy decoder (Policy::from_yaml). Any input must either decode
// or raise Error(policy_error) with a clean message (UTF-8, no NUL); anything else (another
// exception, a crash, a sanitizer report, a hang) is a bug. A decoded policy must also be
// readable back: its strings are clean, and its effective rules written as YAML (what
// `policy show` prints) decode again to the same rules.
//
// Built with -DRECYCLEBIN_FUZZ=ON and clang (scripts/fuzz.sh). The same function is linked
// into recyclebin_policy_fuzz_replay, which the regular ctest run uses to replay
// tests/cpp/fuzz/policy_regressions/ and policies/ without clang.

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "../clean_text.hpp"
#include "recyclebin/error.hpp"
#include "recyclebin/policy.hpp"

namespace {

using recyclebin::testing::is_clean_text;

[[noreturn]] void broken(const char* what, std::string_view detail) {
  std::fprintf(stderr, "policy_fuzz: %s: %.*s\n", what, static_cast<int>(detail.size()), detail.data());
  std::abort();
}

void check_rules(const recyclebin::Rules& rules) {
  using recyclebin::Policy;
  if (!is_clean_text(rules.name)) broken("a decoded name is not clean text", rules.name);
  for (const auto& [kind, rule] : rules.components) {
    if (!is_clean_text(kind)) broken("a decoded component kind is not clean text", kind);
  }
  const std::string yaml = Policy::to_yaml(rules);
  try {
    const Policy again = Policy::from_yaml(yaml);
    if (Policy::to_yaml(again.base()) != yaml) broken("to_yaml does not round-trip", yaml);
  } catch (const recyclebin::Error& e) {
    broken(e.what(), yaml);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    const recyclebin::Policy policy = recyclebin::Policy::from_yaml(text);
    check_rules(policy.base());
    for (const std::string& tenant : policy.tenants()) {
      if (!is_clean_text(tenant)) broken("a tenant id is not clean text", tenant);
      check_rules(policy.rules_for(tenant));
    }
  } catch (const recyclebin::Error& e) {
    if (e.code() != recyclebin::ErrorCode::policy_error) broken("not a policy_error", e.what());
    if (!is_clean_text(e.what())) broken("a message that is not clean text", e.what());
  }
  return 0;
}
