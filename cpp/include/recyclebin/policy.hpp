#pragma once
// A policy is data: YAML (version 1, see API.md) decoded into the described structs below.
// Every key, enum value and error message comes from these descriptions. A Policy is
// parsed and validated once and is immutable afterwards, so one Policy may be shared by
// any number of engines and threads.

#include <boost/describe/class.hpp>
#include <boost/describe/enum.hpp>
#include <boost/describe/enum_from_string.hpp>
#include <boost/describe/enum_to_string.hpp>
#include <boost/describe/enumerators.hpp>
#include <boost/mp11/algorithm.hpp>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace recyclebin {

/// What happens when a soft-deleted workspace's retention ends.
BOOST_DEFINE_ENUM_CLASS(OnExpiry,
                        purge,  // expiry is a fact of time: gone at once, purge_expired tidies storage
                        hold)   // stays in the bin (recoverable, name held), listed as deletable

/// Where a soft-deleted workspace holds its name.
BOOST_DEFINE_ENUM_CLASS(ReservationScope, group, tenant, none)

/// What a delete does to a component kind.
BOOST_DEFINE_ENUM_CLASS(OnDelete,
                        retain,    // kept in the bin, restored on recover, destroyed at purge
                        destroy,   // destroyed at delete time
                        preserve)  // never deleted with the workspace (unless dependent resources)

/// What a recover does for a `destroy` kind.
BOOST_DEFINE_ENUM_CLASS(OnRecover, none, reattach)

/// Operations that a policy can restrict to roles. `delete_` is spelled "delete". `hold`
/// places and releases legal holds, `lien` adds and removes liens, `protect` turns purge
/// protection on (`delete` also guards set_auto_delete).
BOOST_DEFINE_ENUM_CLASS(Action, create, stop, start, grant, revoke, delete_, recover, purge, hold, lien,
                        protect)

struct RetentionRules {
  int default_days = 14;            // retention when a workspace gives none
  int min_days = 1;                 // smallest per-workspace retention
  int max_days = 14;                // largest per-workspace retention
  bool per_workspace = true;        // false: every workspace gets default_days, nothing else
  OnExpiry on_expiry = OnExpiry::purge;
};
BOOST_DESCRIBE_STRUCT(RetentionRules, (), (default_days, min_days, max_days, per_workspace, on_expiry))

struct SoftDeleteRules {
  bool enabled = true;              // false: every delete is permanent
  bool hard_delete_if_cmk = true;   // customer-managed-key workspaces skip the bin
};
BOOST_DESCRIBE_STRUCT(SoftDeleteRules, (), (enabled, hard_delete_if_cmk))

struct PermanentDeleteRules {
  bool allowed = true;              // permanently_delete=True and purge of the bin
  bool batch = false;               // more than one permanent delete per delete_many
  bool dependent_resources_require_permanent = true;
};
BOOST_DESCRIBE_STRUCT(PermanentDeleteRules, (), (allowed, batch, dependent_resources_require_permanent))

struct NameReservationRules {
  ReservationScope scope = ReservationScope::group;
};
BOOST_DESCRIBE_STRUCT(NameReservationRules, (), (scope))

struct PreconditionRules {
  bool require_stopped = false;       // delete of a running workspace is refused
  bool require_confirm_name = false;  // delete needs confirm_name == the workspace name
  std::vector<std::string> blockers;  // facts that refuse a delete while above zero
  std::vector<std::string> warnings;  // facts only reported while above zero
};
BOOST_DESCRIBE_STRUCT(PreconditionRules, (), (require_stopped, require_confirm_name, blockers, warnings))

struct OrphanRules {
  std::optional<int> purge_after_days;  // null: orphans are never purged automatically
};
BOOST_DESCRIBE_STRUCT(OrphanRules, (), (purge_after_days))

/// Purge protection (as Key Vault's): once on, the recycle bin is the only way out.
struct PurgeProtectionRules {
  bool default_ = false;  // "default": on for workspaces created without purge_protection=
};
BOOST_DESCRIBE_STRUCT(PurgeProtectionRules, (), (default_))

/// Auto-deletion of temporary workspaces.
struct AutoDeleteRules {
  std::optional<int> after_days;  // null: never; N: created + N days, unless create gives a time
};
BOOST_DESCRIBE_STRUCT(AutoDeleteRules, (), (after_days))

struct ComponentRule {
  OnDelete on_delete = OnDelete::retain;
  OnRecover on_recover = OnRecover::none;  // only meaningful for destroy kinds
};
BOOST_DESCRIBE_STRUCT(ComponentRule, (), (on_delete, on_recover))

/// The rules in force for one tenant: the base policy with the tenant's overrides merged in.
struct Rules {
  int version = 1;
  std::string name;
  RetentionRules retention;
  SoftDeleteRules soft_delete;
  PermanentDeleteRules permanent_delete;
  NameReservationRules name_reservation;
  PreconditionRules preconditions;
  OrphanRules orphans;
  PurgeProtectionRules purge_protection;
  AutoDeleteRules auto_delete;
  std::map<std::string, ComponentRule> components;    // kind -> rule; "default" for the rest
  // Roles allowed each action. Fail closed (API.md, version 2): an absent action is allowed
  // only to the workspace's owner (and the platform); an absent `create`, to any principal.
  std::map<Action, std::vector<std::string>> permissions;

  /// The rule for a component kind ("default" entry, else retain).
  ComponentRule component_rule(std::string_view kind) const;
};
BOOST_DESCRIBE_STRUCT(Rules, (),
                      (version, name, retention, soft_delete, permanent_delete, name_reservation,
                       preconditions, orphans, purge_protection, auto_delete, components, permissions))

/// The spelling of a described member or enumerator: a trailing '_' (which keeps a name
/// such as `default` or `delete` clear of the C++ keyword) is not part of it.
constexpr std::string_view described_name(std::string_view name) {
  if (!name.empty() && name.back() == '_') name.remove_suffix(1);
  return name;
}

/// The snake_case spelling of a described enum value ("delete" for delete_).
template <class E>
std::string enum_to_string(E value) {
  std::string text = boost::describe::enum_to_string(value, "");
  if (!text.empty() && text.back() == '_') text.pop_back();
  return text;
}

/// The value spelled `text` (as enum_to_string writes it), or nullopt.
template <class E>
std::optional<E> enum_from_string(std::string_view text) {
  std::optional<E> found;
  boost::mp11::mp_for_each<boost::describe::describe_enumerators<E>>([&](auto d) {
    std::string_view name = d.name;
    if (!name.empty() && name.back() == '_') name.remove_suffix(1);
    if (name == text) found = d.value;
  });
  return found;
}

/// Every spelling of a described enum, comma-separated: "purge, hold".
template <class E>
std::string enum_names() {
  std::string names;
  boost::mp11::mp_for_each<boost::describe::describe_enumerators<E>>([&](auto d) {
    if (!names.empty()) names += ", ";
    names += enum_to_string(d.value);
  });
  return names;
}

class Policy {
 public:
  /// Parses and validates YAML text, in time linear in its size. `source` (a file path)
  /// prefixes error positions: "source:line:column: message"; without it,
  /// "line:column: message". Refused, at the offending place: NUL bytes and text that is not
  /// UTF-8 (also where escapes decode to them), a second document, duplicate keys, keys that
  /// are not text, tags, anchors and aliases, unterminated quotes, nesting deeper than 32, a
  /// quoted integer or boolean, more than 64 MiB. Messages are UTF-8 without NUL: input they
  /// quote is escaped. Throws Error(policy_error).
  static Policy from_yaml(std::string_view text, std::string_view source = {});
  /// Reads and parses a file; errors start with "path:line:column:". A path with a NUL
  /// byte, a directory or a device is refused.
  static Policy load(const std::string& path);
  /// A policy compiled into the library (policies/*.yaml); unknown names list the known ones.
  static Policy builtin(std::string_view name);
  static std::vector<std::string> builtin_names();

  const std::string& name() const { return base_->name; }
  const Rules& base() const { return *base_; }
  /// The rules for a tenant (subscription id): its override, or the base.
  const Rules& rules_for(std::string_view subscription_id) const;
  /// Tenants with overrides, sorted.
  std::vector<std::string> tenants() const;
  /// The effective rules as YAML (for `policy show` and `policy check`).
  static std::string to_yaml(const Rules& rules);
  /// The original YAML text.
  const std::string& source_text() const { return *text_; }

 private:
  std::shared_ptr<const Rules> base_;
  std::shared_ptr<const std::map<std::string, Rules, std::less<>>> tenants_;
  std::shared_ptr<const std::string> text_;
};

}  // namespace recyclebin
