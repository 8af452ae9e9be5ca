// What every store shares: the name reservation keys and the choice of backend.

#include "recyclebin/store.hpp"

#include <algorithm>
#include <limits>

#include "recyclebin/postgres_store.hpp"
#include "recyclebin/sqlite_store.hpp"
#include "store_rows.hpp"

namespace recyclebin {

rows::DeletedBounds rows::deleted_bounds(const DeletedQuery& q) {
  constexpr std::int64_t kMin = std::numeric_limits<std::int64_t>::min();
  constexpr std::int64_t kMax = std::numeric_limits<std::int64_t>::max();
  return {q.after ? q.after->deleted_at : kMax, q.after ? q.after->deleted_seq : kMax,
          q.purge_after.value_or(kMin), q.purge_before.value_or(kMax)};
}

std::vector<std::string> rows::split_lines(const std::string& text) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start < text.size()) {
    const std::size_t end = std::min(text.find('\n', start), text.size());
    out.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

std::string rows::join_lines(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& item : items) out += (out.empty() ? "" : "\n") + item;
  return out;
}

std::string group_name_key(const std::string& subscription_id, const std::string& resource_group,
                           const std::string& name) {
  // \x1f (unit separator) cannot be confused with characters of real names (the engine
  // refuses it in identifiers).
  return subscription_id + '\x1f' + resource_group + '\x1f' + name;
}

std::string tenant_name_key(const std::string& subscription_id, const std::string& name) {
  return subscription_id + '\x1f' + name;
}

void StoreTransaction::insert_new_workspace(const WorkspaceRecord& record, const std::string&, bool,
                                            const std::optional<std::string>& owner, const AuditRecord& audit) {
  insert_workspace(record);
  insert_components(record.workspace.id, record.workspace.components);
  if (owner) put_member(record.workspace.id, *owner, "owner");
  add_audit(audit);
}

bool is_postgres_location(const std::string& location) {
  return location.rfind("postgresql://", 0) == 0 || location.rfind("postgres://", 0) == 0;
}

std::unique_ptr<Store> open_store(const std::string& location) {
  if (is_postgres_location(location)) return open_postgres_store(location);
  return open_sqlite_store(location);
}

}  // namespace recyclebin
