// How long Policy::from_yaml takes for a policy with many tenants (issue 10, item 4: the
// decoder must be linear in the size of the text). Prints one line per tenant count:
//   tenants=1000 bytes=215777 seconds=0.114 cpu_seconds=0.060
// (cpu_seconds is this process's CPU time: on a shared machine, the steadier figure)
// Usage: recyclebin_bench_policy [--small] [TENANTS...]   (default: 1000 5000 10000)
// Each tenant overrides retention, components, permissions and preconditions; with --small
// it overrides only retention.default_days.

#include <chrono>
#include <ctime>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "recyclebin/policy.hpp"

namespace {

/// A base policy and `tenants` overrides, each touching a section of every kind: a struct
/// (retention), a map of structs (components), a map of lists (permissions) and a list.
std::string policy_text(long tenants, bool small) {
  std::string text =
      "version: 1\nname: bench\nretention: {default_days: 14, max_days: 30}\n"
      "components:\n  vm: {on_delete: destroy}\n  disk: {on_delete: preserve}\n"
      "permissions:\n  delete: [owner]\n  purge: [owner]\ntenants:\n";
  for (long i = 0; i < tenants; ++i) {
    const std::string id = "sub-" + std::to_string(i);
    text += "  " + id + ":\n";
    text += "    retention: {default_days: " + std::to_string(1 + i % 30) + "}\n";
    if (small) continue;
    text += "    components:\n      vm: {on_delete: retain}\n      logs: {on_delete: destroy}\n";
    text += "    permissions:\n      delete: [owner, admin]\n";
    text += "    preconditions: {blockers: [running_jobs]}\n";
  }
  return text;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<long> counts;
  bool small = false;
  for (int i = 1; i < argc; ++i) {
    if (std::string(argv[i]) == "--small") small = true;
    else counts.push_back(std::strtol(argv[i], nullptr, 10));
  }
  if (counts.empty()) counts = {1000, 5000, 10000};
  for (const long tenants : counts) {
    const std::string text = policy_text(tenants, small);
    const std::clock_t cpu_start = std::clock();
    const auto start = std::chrono::steady_clock::now();
    const recyclebin::Policy policy = recyclebin::Policy::from_yaml(text);
    const std::chrono::duration<double> took = std::chrono::steady_clock::now() - start;
    const double cpu = static_cast<double>(std::clock() - cpu_start) / CLOCKS_PER_SEC;
    if (policy.tenants().size() != static_cast<std::size_t>(tenants)) {
      std::fprintf(stderr, "bench_policy: decoded %zu tenants, expected %ld\n",
                   policy.tenants().size(), tenants);
      return 1;
    }
    std::printf("tenants=%ld bytes=%zu seconds=%.3f cpu_seconds=%.3f\n", tenants, text.size(),
                took.count(), cpu);
    std::fflush(stdout);
  }
  return 0;
}
