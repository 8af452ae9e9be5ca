#include "recyclebin/engine.hpp"

#include <boost/uuid/random_generator.hpp>
#include <boost/uuid/uuid.hpp>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <exception>
#include <limits>
#include <mutex>
#include <string_view>
#include <unordered_set>

namespace recyclebin {
namespace {

constexpr std::size_t kPurgeChunk = 2'000;  // rows per purge_expired transaction

/// The latest time the engine writes (Python's datetime ends with year 9999).
constexpr Timestamp kLatestTime = 253'402'300'799'999'999;  // 9999-12-31T23:59:59.999999Z

/// 32 hex digits: the engine's time in microseconds, then random bits. Ids created close in
/// time sort close together, so inserts touch few B-tree pages (unlike fully random ids);
/// the random tail keeps them unique across threads, processes and machines.
std::string new_id(Timestamp now) {
  thread_local boost::uuids::random_generator generator;
  const boost::uuids::uuid random = generator();
  char text[33];
  const auto micros = static_cast<unsigned long long>(now) & 0xFFFFFFFFFFFFFull;  // 13 hex digits
  std::snprintf(text, sizeof text, "%013llx", micros);
  static constexpr char kHex[] = "0123456789abcdef";
  for (std::size_t i = 0; i < 19; ++i) {
    const auto byte = random.data[i / 2];
    text[13 + i] = kHex[(i % 2 == 0 ? byte >> 4 : byte) & 0xF];
  }
  text[32] = '\0';
  return text;
}

CleanupTask new_cleanup_task(const Component& c, const std::string& workspace_id, Timestamp now) {
  CleanupTask task;
  task.kind = c.kind;
  task.ref = c.ref;
  task.workspace_id = workspace_id;
  task.created_at = now;
  return task;
}

std::string principal_id(const MaybePrincipal& principal) { return principal ? principal->id : ""; }

std::string describe(const Workspace& w) {
  return "workspace '" + w.name + "' in resource group '" + w.resource_group + "' of subscription '" +
         w.subscription_id + "'";
}

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& item : items) out += (out.empty() ? "" : ", ") + item;
  return out.empty() ? "(none)" : out;
}

void add_kind(std::vector<std::string>& kinds, const std::string& kind) {
  if (std::find(kinds.begin(), kinds.end(), kind) == kinds.end()) kinds.push_back(kind);
}

void check_identifier(const std::string& value, const char* what) {
  if (value.empty()) {
    throw Error(ErrorCode::invalid_argument, std::string(what) + " must not be empty");
  }
  // No control characters (below U+0020): besides being unprintable, they would sort before
  // the name keys' separator (\x1f), and the live listing walks the name-key index in order.
  const auto control = std::find_if(value.begin(), value.end(),
                                    [](char c) { return static_cast<unsigned char>(c) < 0x20; });
  if (control != value.end()) {
    char code[8];
    std::snprintf(code, sizeof code, "\\x%02x", static_cast<unsigned>(static_cast<unsigned char>(*control)));
    std::string shown;
    for (const char c : value) {
      if (static_cast<unsigned char>(c) < 0x20) {
        char escaped[8];
        std::snprintf(escaped, sizeof escaped, "\\x%02x", static_cast<unsigned>(static_cast<unsigned char>(c)));
        shown += escaped;
      } else {
        shown += c;
      }
    }
    throw Error(ErrorCode::invalid_argument, std::string(what) + " '" + shown + "' contains the control character " +
                                                 code + "; use printable text");
  }
}

bool is_refusal(ErrorCode code) {
  return code != ErrorCode::storage_error && code != ErrorCode::engine_closed;
}

/// Whether a soft-deleted row has passed its purge time.
bool expired(const WorkspaceRecord& r, Timestamp now) { return r.purge_at && now >= *r.purge_at; }

/// Whether the row counts as gone: expired under on_expiry: purge, and not held (a legal
/// hold keeps it in the bin; once the last hold is released, it is gone at once).
bool gone(const WorkspaceRecord& r, const Rules& rules, Timestamp now) {
  return expired(r, now) && rules.retention.on_expiry == OnExpiry::purge && !r.held;
}

/// Whether purge protection still stops the row's destruction: until its purge_at (a live
/// workspace has none, so for good while it is live).
bool protected_now(const WorkspaceRecord& r, Timestamp now) {
  return r.workspace.purge_protection && (!r.purge_at || now < *r.purge_at);
}

/// Whether a hard delete may remove the row now as far as its protections go.
bool destructible(const WorkspaceRecord& r, Timestamp now) { return !r.held && !protected_now(r, now); }

/// Whether the policy deletes such a workspace permanently whatever the caller asks.
bool always_hard_deleted(const Rules& r, bool cmk_encrypted) {
  return !r.soft_delete.enabled || (cmk_encrypted && r.soft_delete.hard_delete_if_cmk);
}

/// Refuses purge protection for a workspace the policy always deletes permanently.
void check_protectable(const Rules& r, bool cmk_encrypted, const std::string& what) {
  if (!always_hard_deleted(r, cmk_encrypted)) return;
  throw Error(ErrorCode::operation_not_allowed,
              "purge protection cannot be turned on for " + what + ": policy '" + r.name +
                  "' always deletes it permanently (" +
                  (r.soft_delete.enabled ? "customer-managed key with soft_delete.hard_delete_if_cmk"
                                         : "soft_delete.enabled is false") +
                  "), and purge protection allows only soft deletes");
}

/// The principal that due auto-deletions are audited under.
const Principal kAutoDelete{"auto-delete", {}};

/// What sets a hold and a lien apart, for the code they share.
struct GuardSpec {
  GuardKind kind;
  Action action;            // the permission action that places and removes it
  const char* placed;       // audit actions
  const char* removed;
  bool live_only;           // a lien guards a live workspace; a hold a soft-deleted one too
  bool WorkspaceRecord::*flag;  // set on the row while it has one
};
constexpr GuardSpec kHoldGuard{GuardKind::hold, Action::hold, "place_hold", "release_hold", false,
                               &WorkspaceRecord::held};
constexpr GuardSpec kLienGuard{GuardKind::lien, Action::lien, "add_lien", "remove_lien", true,
                               &WorkspaceRecord::has_liens};

Hold to_hold(GuardRow g) { return {std::move(g.id), std::move(g.workspace_id), std::move(g.reason), std::move(g.placed_by), g.at}; }
Lien to_lien(GuardRow g) { return {std::move(g.id), std::move(g.workspace_id), std::move(g.origin), std::move(g.reason), g.at}; }

template <class T>
std::vector<T> converted(std::vector<GuardRow> rows, T (*convert)(GuardRow)) {
  std::vector<T> out;
  out.reserve(rows.size());
  for (auto& row : rows) out.push_back(convert(std::move(row)));
  return out;
}

constexpr std::size_t kMaxNoteBytes = 4096;  // of a hold's reason, a lien's origin or reason

/// A reason or origin: not empty, no NUL, at most kMaxNoteBytes.
void check_note(const std::string& value, const char* what) {
  if (value.empty()) throw Error(ErrorCode::invalid_argument, std::string(what) + " must not be empty: say why");
  if (value.find('\0') != std::string::npos) {
    throw Error(ErrorCode::invalid_argument, std::string(what) + " contains a NUL character; give printable text");
  }
  if (value.size() > kMaxNoteBytes) {
    throw Error(ErrorCode::invalid_argument, std::string(what) + " is " + std::to_string(value.size()) +
                                                 " bytes; at most " + std::to_string(kMaxNoteBytes) + " are allowed");
  }
}

std::string encode_cursor(const DeletedCursor& position) {
  return std::to_string(position.deleted_at) + "." + std::to_string(position.deleted_seq);
}

DeletedCursor decode_cursor(const std::string& text) {
  DeletedCursor cursor;
  const auto dot = text.find('.');
  const char* begin = text.data();
  const char* end = text.data() + text.size();
  bool ok = dot != std::string::npos;
  if (ok) {
    auto [p1, e1] = std::from_chars(begin, begin + dot, cursor.deleted_at);
    auto [p2, e2] = std::from_chars(begin + dot + 1, end, cursor.deleted_seq);
    ok = e1 == std::errc() && p1 == begin + dot && e2 == std::errc() && p2 == end;
  }
  if (!ok) {
    throw Error(ErrorCode::invalid_argument,
                "cursor '" + text + "' is not a list_deleted cursor; pass back next_cursor unchanged");
  }
  return cursor;
}

// A live cursor is "<hex of resource_group>.<hex of name>": any text survives, and the
// cursor needs no escaping in a URL.
std::string to_hex(const std::string& text) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(2 * text.size());
  for (const char ch : text) {
    const auto byte = static_cast<unsigned char>(ch);
    out += kDigits[byte >> 4];
    out += kDigits[byte & 0x0f];
  }
  return out;
}

std::optional<std::string> from_hex(std::string_view hex) {
  if (hex.empty() || hex.size() % 2 != 0) return std::nullopt;
  std::string out;
  out.reserve(hex.size() / 2);
  for (std::size_t i = 0; i < hex.size(); i += 2) {
    unsigned value = 0;
    const auto [end, error] = std::from_chars(hex.data() + i, hex.data() + i + 2, value, 16);
    if (error != std::errc() || end != hex.data() + i + 2) return std::nullopt;
    out += static_cast<char>(value);
  }
  return out;
}

std::string encode_live_cursor(const Workspace& last) {
  return to_hex(last.resource_group) + "." + to_hex(last.name);
}

LiveCursor decode_live_cursor(const std::string& text) {
  const auto dot = text.find('.');
  std::optional<std::string> group;
  std::optional<std::string> name;
  if (dot != std::string::npos) {
    const std::string_view view(text);
    group = from_hex(view.substr(0, dot));
    name = from_hex(view.substr(dot + 1));
  }
  if (!group || !name) {
    throw Error(ErrorCode::invalid_argument,
                "cursor '" + text + "' is not a list cursor; pass back next_cursor unchanged");
  }
  return LiveCursor{std::move(*group), std::move(*name)};
}

/// Checks a listing's scope and limit; the row count to ask the store for: one more than
/// the limit, which tells whether another page exists (everything when nullopt).
std::size_t listing_rows(const std::string& subscription_id,
                         const std::optional<std::string>& resource_group,
                         std::optional<std::size_t> limit) {
  check_identifier(subscription_id, "subscription_id");
  if (resource_group) check_identifier(*resource_group, "resource_group");
  if (limit && *limit == 0) {
    throw Error(ErrorCode::invalid_argument, "limit must be at least 1 (or None for everything)");
  }
  constexpr std::size_t kUnlimited = static_cast<std::size_t>(std::numeric_limits<std::int64_t>::max());
  return limit ? std::min(*limit, kUnlimited - 1) + 1 : kUnlimited;
}

/// `w`'s components as the caller sees them: those a soft delete has not destroyed.
void set_components(Workspace& w, const std::vector<StoredComponent>& stored) {
  w.components.clear();
  for (const auto& c : stored) {
    if (!c.destroyed) w.components.push_back(c.component);
  }
}

DeletedWorkspace to_deleted(const WorkspaceRecord& r) {
  const Workspace& w = r.workspace;
  return {w.id, w.name, w.subscription_id, w.resource_group, r.deleted_at.value_or(0),
          r.purge_at.value_or(0), w.retention_days, r.retained_kinds, r.held};
}

/// Who a refusal is audited against.
struct AuditTarget {
  std::string action;
  std::string subscription_id;
  std::string resource_group;
  std::string name;
  std::string workspace_id;

  void set(const Workspace& w) {
    subscription_id = w.subscription_id;
    resource_group = w.resource_group;
    name = w.name;
    workspace_id = w.id;
  }
};

/// What a delete will do, decided before anything is written.
struct DeletePlan {
  WorkspaceRecord record;
  bool permanent = false;
  int retention_days = 0;
  std::vector<std::int64_t> destroyed_now;   // soft delete: positions of the kinds it destroys
  DeleteResult outcome;                      // the answer; cleanup tasks have id 0 until applied
};

/// The facts a delete needs, fetched before the transaction (the provider may be slow).
struct FactsSnapshot {
  std::optional<Facts> facts;
  std::string unavailable;  // why facts are missing
};

}  // namespace

struct Engine::Impl {
  Engine& engine;
  std::mutex facts_mutex;
  std::shared_ptr<const FactsProvider> facts_provider;

  bool needs_facts = false;  // some tenant's rules list blockers or warnings

  explicit Impl(Engine& owner) : engine(owner) {
    auto uses_facts = [](const Rules& r) {
      return !r.preconditions.blockers.empty() || !r.preconditions.warnings.empty();
    };
    needs_facts = uses_facts(owner.policy_.base());
    for (const auto& tenant : owner.policy_.tenants()) {
      needs_facts = needs_facts || uses_facts(owner.policy_.rules_for(tenant));
    }
  }

  const Rules& rules(const std::string& subscription_id) const {
    return engine.policy_.rules_for(subscription_id);
  }

  // ---- the one shape of every write ----
  // Each write is a body run by the store in one write transaction (Store::write): the
  // store retries conflicts by running the body again (so the body reads `now` afresh and
  // keeps its answer from its last run only); a refusal rolls the body back and is audited.
  template <class Body>
  auto write(AuditTarget& target, const MaybePrincipal& principal, Body&& body) {
    using Result = std::invoke_result_t<Body&, StoreTransaction&, Timestamp>;
    std::optional<Result> result;
    Timestamp now = 0;
    engine.store_->write(
        [&](StoreTransaction& tx) {
          now = engine.clock_->now();
          result.reset();
          result.emplace(body(tx, now));
        },
        [&](StoreTransaction& tx, const std::exception_ptr& error) {
          audit_refusal(tx, target, principal, error, now);
        });
    return std::move(*result);
  }

  static void audit_refusal(StoreTransaction& tx, const AuditTarget& target, const MaybePrincipal& principal,
                            const std::exception_ptr& error, Timestamp now) {
    if (target.action.empty()) return;
    try {
      std::rethrow_exception(error);
    } catch (const Error& e) {
      if (is_refusal(e.code())) audit(tx, target, principal, now, "refused:" + code_name(e.code()));
    } catch (...) {
    }
  }

  static void audit(StoreTransaction& tx, const AuditTarget& target, const MaybePrincipal& principal,
                    Timestamp now, const std::string& outcome) {
    tx.add_audit({0, now, target.action, target.subscription_id, target.resource_group,
                            target.name, outcome, target.workspace_id, principal_id(principal)});
  }

  static AuditRecord ok_record(const std::string& action, const Workspace& w, const MaybePrincipal& principal,
                               Timestamp now) {
    return {0, now, action, w.subscription_id, w.resource_group, w.name, "ok", w.id, principal_id(principal)};
  }

  /// A store need not wait for an audit record whose seq nobody reads (add_audit).
  static void audit_ok(StoreTransaction& tx, const std::string& action, const Workspace& w,
                       const MaybePrincipal& principal, Timestamp now) {
    tx.add_audit(ok_record(action, w, principal, now));
  }

  // ---- checks ----
  /// `assumed_role`: a workspace role the principal will have (the creator's "owner", for
  /// what a create turns on).
  static void check_permission(StoreTransaction& tx, const Rules& rules, Action action,
                               const MaybePrincipal& principal, const std::string& workspace_id,
                               const std::string& target, const char* assumed_role = nullptr) {
    if (!principal) return;  // the trusted platform itself
    // Fail closed: an action the policy does not list is the workspace owner's alone, except
    // create, which any principal may do (the creator becomes the owner).
    static const std::vector<std::string> kOwnerOnly{"owner"};
    const auto listed = rules.permissions.find(action);
    if (listed == rules.permissions.end() && action == Action::create) return;
    const bool by_default = listed == rules.permissions.end();
    const std::vector<std::string>& allowed = by_default ? kOwnerOnly : listed->second;
    std::vector<std::string> held = principal->roles;
    if (!workspace_id.empty()) {
      if (auto role = tx.member_role(workspace_id, principal->id)) held.push_back(*role);
    }
    if (assumed_role != nullptr) held.emplace_back(assumed_role);
    for (const auto& role : allowed) {
      if (std::find(held.begin(), held.end(), role) != held.end()) return;
    }
    throw Error(ErrorCode::permission_denied,
                "principal '" + principal->id + "' may not " + enum_to_string(action) + " " + target +
                    ": the policy allows the roles [" + join(allowed) + "]" +
                    (by_default ? " (the default for an action it does not list)" : "") +
                    ", the principal has [" + join(held) + "]");
  }

  static void check_live(const WorkspaceRecord& r, const std::string& operation) {
    if (r.deleted_at) {
      throw Error(ErrorCode::operation_not_allowed,
                  "cannot " + operation + " " + describe(r.workspace) +
                      ": it is soft-deleted; only recover and purge are allowed on a workspace in "
                      "the recycle bin");
    }
  }

  /// Refuses destroying the row (a permanent delete, a purge) while a legal hold or purge
  /// protection stops it: a hold first (workspace_held, naming every hold's reason), then
  /// purge protection (operation_not_allowed, naming the purge date where there is one).
  static void check_destructible(StoreTransaction& tx, const WorkspaceRecord& r, const std::string& operation,
                                 Timestamp now) {
    const Workspace& w = r.workspace;
    if (r.held) {
      std::string reasons;
      for (const GuardRow& hold : tx.guards(GuardKind::hold, w.id)) {
        reasons += (reasons.empty() ? "'" : ", '") + hold.reason + "' (hold " + hold.id + ")";
      }
      throw Error(ErrorCode::workspace_held,
                  "cannot " + operation + " " + describe(w) + ": it is under legal hold: " + reasons +
                      "; a hold stops destruction, not soft delete or recover: release every hold first");
    }
    if (protected_now(r, now)) {
      throw Error(ErrorCode::operation_not_allowed,
                  "cannot " + operation + " " + describe(w) + ": purge protection is on" +
                      (r.purge_at ? ", so it stays in the recycle bin until its purge date, " + format_iso8601(*r.purge_at)
                                  : ", so it can only be soft-deleted (the recycle bin is the only way out)") +
                      "; purge protection cannot be turned off");
    }
  }

  /// Refuses any delete of a live workspace while it has liens, naming each.
  static void check_liens(StoreTransaction& tx, const WorkspaceRecord& r) {
    if (!r.has_liens) return;
    std::string named;
    for (const GuardRow& lien : tx.guards(GuardKind::lien, r.workspace.id)) {
      named += (named.empty() ? "" : "; ") + std::string("origin '") + lien.origin + "': '" + lien.reason + "' (lien " +
               lien.id + ")";
    }
    throw Error(ErrorCode::precondition_failed,
                "cannot delete " + describe(r.workspace) + ": it has liens: " + named +
                    "; remove them (remove_lien) before deleting");
  }

  /// A workspace addressed by id; soft-deleted rows are returned (callers decide), expired
  /// ones (on_expiry: purge) are gone.
  WorkspaceRecord load_by_id(StoreTransaction& tx, const std::string& workspace_id, AuditTarget& target,
                             Timestamp now) const {
    check_identifier(workspace_id, "workspace id");
    auto record = tx.find_by_id(workspace_id);
    if (!record || gone(*record, rules(record->workspace.subscription_id), now)) {
      throw Error(ErrorCode::workspace_not_found, "no workspace with id '" + workspace_id + "'");
    }
    target.set(record->workspace);
    return *record;
  }

  Workspace with_components(StoreTransaction& tx, Workspace w) const {
    set_components(w, tx.components(w.id));
    return w;
  }

  /// The newest soft-deleted workspace with this name that is still in the bin.
  WorkspaceRecord find_in_bin(StoreTransaction& tx, const std::string& subscription_id,
                              const std::string& resource_group, const std::string& name,
                              Timestamp now) const {
    check_identifier(subscription_id, "subscription_id");
    check_identifier(resource_group, "resource_group");
    check_identifier(name, "name");
    const Rules& r = rules(subscription_id);
    for (auto& record : tx.find_deleted(subscription_id, resource_group, name)) {
      if (!gone(record, r, now)) return record;
    }
    throw Error(ErrorCode::workspace_not_found,
                "no workspace named '" + name + "' is in the recycle bin of resource group '" +
                    resource_group + "' in subscription '" + subscription_id +
                    "' (never deleted, recovered, purged, or its retention has ended)");
  }

  FactsSnapshot fetch_facts(const Rules& r, const Workspace& w) {
    FactsSnapshot snapshot;
    if (r.preconditions.blockers.empty() && r.preconditions.warnings.empty()) return snapshot;
    std::shared_ptr<const FactsProvider> provider;
    {
      std::lock_guard lock(facts_mutex);
      provider = facts_provider;
    }
    if (!provider || !*provider) {
      snapshot.unavailable = "no facts provider is set (Engine.set_facts_provider)";
      return snapshot;
    }
    try {
      snapshot.facts = (*provider)(w);
    } catch (const std::exception& e) {
      snapshot.unavailable = std::string("the facts provider failed: ") + e.what();
    } catch (...) {
      snapshot.unavailable = "the facts provider failed";
    }
    return snapshot;
  }

  /// Every check of a delete, in API.md's order (throws the first refusal), then what the
  /// delete will do; writes nothing, so a dry run is this decision alone.
  /// `auto_delete`: a due auto-deletion, which the policy's checks apply to except
  /// require_confirm_name.
  DeletePlan plan_delete(StoreTransaction& tx, const WorkspaceRecord& record, const DeleteOptions& options,
                         const MaybePrincipal& principal, const FactsSnapshot& facts,
                         std::size_t batch_size, Timestamp now, bool auto_delete = false) const {
    const Workspace& w = record.workspace;
    const Rules& r = rules(w.subscription_id);
    check_permission(tx, r, Action::delete_, principal, w.id, describe(w));

    check_live(record, "delete");
    if (r.preconditions.require_stopped && w.state == WorkspaceState::running) {
      throw Error(ErrorCode::workspace_not_stopped,
                  "cannot delete " + describe(w) + ": it is running; stop it first (policy '" +
                      r.name + "' deletes only stopped workspaces)");
    }

    DeletePlan plan;
    plan.record = record;
    plan.permanent = options.permanently_delete || always_hard_deleted(r, w.cmk_encrypted);
    if (options.delete_dependent_resources && !options.permanently_delete &&
        r.permanent_delete.dependent_resources_require_permanent) {
      throw Error(ErrorCode::operation_not_allowed,
                  "delete_dependent_resources is only allowed together with permanently_delete=True; "
                  "a soft delete keeps dependent resources so the workspace can be recovered");
    }
    if (options.permanently_delete && !r.permanent_delete.allowed) {
      throw Error(ErrorCode::operation_not_allowed,
                  "policy '" + r.name + "' does not allow permanent delete; delete without "
                  "permanently_delete and the workspace is purged when its retention ends");
    }
    if (plan.permanent && batch_size > 1 && !r.permanent_delete.batch) {
      throw Error(ErrorCode::operation_not_allowed,
                  "permanent delete is one workspace at a time under policy '" + r.name + "'; " +
                      std::to_string(batch_size) + " were given: delete them one by one");
    }
    if (plan.permanent) {
      check_destructible(tx, record,
                         options.permanently_delete ? "permanently delete"
                                                    : "delete (policy '" + r.name + "' deletes it permanently)",
                         now);
    }

    // Retention: the workspace's own, brought inside the policy's current range.
    plan.retention_days = r.retention.per_workspace
                              ? std::clamp(w.retention_days, r.retention.min_days, r.retention.max_days)
                              : r.retention.default_days;

    check_liens(tx, record);
    if (options.confirm_name && *options.confirm_name != w.name) {
      throw Error(ErrorCode::precondition_failed,
                  "confirm_name '" + *options.confirm_name + "' does not match the workspace name '" +
                      w.name + "'; type the name exactly to confirm the delete");
    }
    if (r.preconditions.require_confirm_name && !options.confirm_name && !auto_delete) {
      throw Error(ErrorCode::precondition_failed,
                  "deleting " + describe(w) + " needs confirmation: pass confirm_name='" + w.name + "'");
    }
    auto fact = [&](const std::string& name) -> std::optional<std::int64_t> {
      if (!facts.facts) return std::nullopt;
      auto it = facts.facts->find(name);
      if (it == facts.facts->end()) return std::nullopt;
      return it->second;
    };
    for (const auto& blocker : r.preconditions.blockers) {
      const auto value = fact(blocker);
      if (!value) {
        throw Error(ErrorCode::precondition_failed,
                    "cannot delete " + describe(w) + ": '" + blocker + "' could not be verified (" +
                        (facts.facts ? "the facts provider did not report it" : facts.unavailable) +
                        "); the policy refuses a delete it cannot check");
      }
      if (*value > 0) {
        throw Error(ErrorCode::precondition_failed,
                    "cannot delete " + describe(w) + ": " + blocker + " is " + std::to_string(*value) +
                        "; the policy allows a delete only while it is 0");
      }
    }
    for (const auto& warning : r.preconditions.warnings) {
      const auto value = fact(warning);
      if (!value) {
        plan.outcome.warnings.push_back(warning + ": could not be checked (" +
                                (facts.facts ? "not reported by the facts provider" : facts.unavailable) +
                                ")");
      } else if (*value > 0) {
        plan.outcome.warnings.push_back(warning + ": " + std::to_string(*value));
      }
    }
    plan_outcome(tx, plan, options.delete_dependent_resources, now);
    return plan;
  }

  /// What an allowed delete does to each component, its purge date and its cleanup tasks.
  void plan_outcome(StoreTransaction& tx, DeletePlan& plan, bool dependent, Timestamp now) const {
    const Workspace& w = plan.record.workspace;
    const Rules& r = rules(w.subscription_id);
    const std::vector<StoredComponent> components = tx.components(w.id);
    DeleteResult& result = plan.outcome;
    result.permanent = plan.permanent;
    result.deleted_at = now;
    if (plan.permanent) {
      plan_disposal(r, w.id, components, dependent, now, result);
      return;
    }
    try {
      result.purge_at = add_days(now, plan.retention_days);
    } catch (const Error& e) {
      throw Error(ErrorCode::invalid_argument, "cannot soft-delete " + describe(w) + ": its purge date, " +
                                                   e.what() + "; nothing was changed");
    }
    for (const auto& stored : components) {
      const Component& c = stored.component;
      const ComponentRule rule = r.component_rule(c.kind);
      if (c.standalone || (rule.on_delete == OnDelete::preserve && !dependent)) {
        add_kind(result.preserved, c.kind);
      } else if (rule.on_delete == OnDelete::retain) {
        add_kind(result.retained, c.kind);
      } else {
        add_kind(result.destroyed, c.kind);
        plan.destroyed_now.push_back(stored.position);
        result.cleanup.push_back(new_cleanup_task(c, w.id, now));
      }
    }
  }

  // ---- the changes ----

  /// Removes the row for good; writes cleanup tasks for everything not yet destroyed and
  /// not preserved. `action` is audited (delete, purge, expire).
  DeleteResult hard_delete(StoreTransaction& tx, const WorkspaceRecord& record, bool dependent,
                           const std::string& action, const MaybePrincipal& principal, Timestamp now) const {
    const auto components = tx.components(record.workspace.id);
    DeleteResult result = disposal(record, components, dependent, now);
    apply_hard_delete(tx, record, result, action, principal, now);
    return result;
  }

  /// hard_delete's answer, decided without writing (cleanup tasks with id 0).
  DeleteResult disposal(const WorkspaceRecord& record, const std::vector<StoredComponent>& components,
                        bool dependent, Timestamp now) const {
    const Workspace& w = record.workspace;
    DeleteResult result;
    result.permanent = true;
    result.deleted_at = now;
    plan_disposal(rules(w.subscription_id), w.id, components, dependent, now, result);
    return result;
  }

  /// Carries out a decided hard delete: its cleanup tasks get their ids, the row goes.
  static void apply_hard_delete(StoreTransaction& tx, const WorkspaceRecord& record, DeleteResult& result,
                                const std::string& action, const MaybePrincipal& principal, Timestamp now) {
    for (auto& task : result.cleanup) task = tx.add_cleanup(task);
    tx.remove_workspace(record.workspace.id);
    audit_ok(tx, action, record.workspace, principal, now);
  }

  /// What removing a workspace for good does to its components: preserved ones stay (and
  /// are reported), the others are destroyed, each not destroyed yet with a cleanup task.
  static void dispose_components(StoreTransaction& tx, const Rules& r, const std::string& workspace_id,
                                 const std::vector<StoredComponent>& components, bool dependent,
                                 Timestamp now, DeleteResult& result) {
    const std::size_t first = result.cleanup.size();
    plan_disposal(r, workspace_id, components, dependent, now, result);
    for (std::size_t i = first; i < result.cleanup.size(); ++i) result.cleanup[i] = tx.add_cleanup(result.cleanup[i]);
  }

  /// dispose_components without writing: the cleanup tasks it would write, with id 0.
  static void plan_disposal(const Rules& r, const std::string& workspace_id,
                            const std::vector<StoredComponent>& components, bool dependent, Timestamp now,
                            DeleteResult& result) {
    for (const auto& stored : components) {
      const Component& c = stored.component;
      const bool preserve = c.standalone || (r.component_rule(c.kind).on_delete == OnDelete::preserve && !dependent);
      if (preserve) {
        add_kind(result.preserved, c.kind);
        continue;
      }
      add_kind(result.destroyed, c.kind);
      if (!stored.destroyed) result.cleanup.push_back(new_cleanup_task(c, workspace_id, now));
    }
  }

  /// The decision of purge_by_id, shared by the real call and its dry run: the record, once
  /// the permission is checked and list_deletable would list it (past its date under
  /// on_expiry: hold, or orphaned); otherwise it throws.
  WorkspaceRecord deletable_by_id(StoreTransaction& tx, const std::string& workspace_id,
                                  const MaybePrincipal& principal, AuditTarget& target, Timestamp now) const {
    auto record = tx.find_by_id(workspace_id);
    const Rules* r = nullptr;
    if (record) {
      target.set(record->workspace);
      r = &rules(record->workspace.subscription_id);
      check_permission(tx, *r, Action::purge, principal, workspace_id, describe(record->workspace));
      if (!gone(*record, *r, now)) check_destructible(tx, *record, "purge", now);
    }
    const bool planned = record && expired(*record, now) && r->retention.on_expiry == OnExpiry::hold;
    const bool orphaned = record && record->orphaned_at && !gone(*record, *r, now);
    if (!planned && !orphaned) {
      throw Error(ErrorCode::operation_not_allowed,
                  "workspace id '" + workspace_id +
                      "' is not deletable: purge_by_id takes only what list_deletable lists (a "
                      "workspace past its deletion date under on_expiry: hold, or an orphaned one)");
    }
    return *record;
  }

  /// hard_delete's dry run: its answer, cleanup tasks with id 0, nothing written.
  DeleteResult plan_hard_delete(StoreTransaction& tx, const WorkspaceRecord& record, bool dependent,
                                Timestamp now) const {
    DeleteResult result = disposal(record, tx.components(record.workspace.id), dependent, now);
    result.dry_run = true;
    return result;
  }

  /// A purge whose caller exported its list of refs first (delete-realm) must not leave a
  /// cleanup task the caller did not export: throwing here rolls the purge back.
  static void check_expected_refs(const DeleteResult& result, const std::vector<std::string>& expected,
                                  const std::string& workspace_id) {
    const std::unordered_set<std::string_view> exported(expected.begin(), expected.end());
    std::vector<std::string> missing;
    for (const auto& task : result.cleanup) {
      if (exported.count(task.ref) == 0) missing.push_back(task.ref);
    }
    if (missing.empty()) return;
    const std::size_t shown = std::min<std::size_t>(missing.size(), 5);
    std::vector<std::string> named(missing.begin(), missing.begin() + static_cast<std::ptrdiff_t>(shown));
    throw Error(ErrorCode::operation_not_allowed,
                "workspace id '" + workspace_id + "' was not purged: the purge would leave " +
                    std::to_string(missing.size()) + " cleanup task(s) whose ref is not in expected_refs ([" +
                    join(named) + (missing.size() > shown ? ", ..." : "") +
                    "]); nothing was removed: export the refs again (a dry run lists them) and retry");
  }

  /// hard_delete of many rows at once (the purge sweeps), audited as `expire`: a few set
  /// statements for the lot instead of several statements per row.
  /// With report.dry_run, only the report: cleanup tasks with id 0, nothing written.
  void purge_rows(StoreTransaction& tx, const std::vector<const WorkspaceRecord*>& rows,
                  const MaybePrincipal& principal, Timestamp now, PurgeReport& report) const {
    if (rows.empty()) return;
    std::vector<std::string> ids;
    ids.reserve(rows.size());
    for (const WorkspaceRecord* row : rows) ids.push_back(row->workspace.id);
    const auto components = tx.components_of(ids);
    for (std::size_t i = 0; i < rows.size(); ++i) {
      const Workspace& w = rows[i]->workspace;
      DeleteResult result;
      if (report.dry_run) {
        plan_disposal(rules(w.subscription_id), w.id, components[i], false, now, result);
      } else {
        dispose_components(tx, rules(w.subscription_id), w.id, components[i], false, now, result);
      }
      for (auto& task : result.cleanup) report.cleanup.push_back(std::move(task));
      report.purged.push_back({w.subscription_id, w.resource_group, w.name});
    }
    if (report.dry_run) return;
    tx.append_audit_for(ids, {0, now, "expire", "", "", "", "ok", "", principal_id(principal)});
    tx.remove_workspaces(ids);
  }

  /// Brings a soft-deleted workspace back (recover's permission and checks, then the change).
  RecoverResult recover_record(StoreTransaction& tx, WorkspaceRecord& record, const MaybePrincipal& principal,
                               Timestamp now) const {
    Workspace& w = record.workspace;
    const Rules& r = rules(w.subscription_id);
    check_permission(tx, r, Action::recover, principal, w.id, describe(w));
    if (auto live = tx.find_live(w.subscription_id, w.resource_group, w.name)) {
      throw Error(ErrorCode::workspace_exists,
                  "cannot recover " + describe(w) + ": a live workspace (id " + live->workspace.id +
                      ") now has this name; delete or rename it first");
    }
    RecoverResult result;
    for (const auto& stored : tx.components(w.id)) {
      const Component& c = stored.component;
      const ComponentRule rule = r.component_rule(c.kind);
      if (!stored.destroyed) {
        if (!c.standalone && rule.on_delete == OnDelete::retain) add_kind(result.restored, c.kind);
      } else if (rule.on_recover == OnRecover::reattach) {
        add_kind(result.reattached, c.kind);
        tx.set_component_destroyed(w.id, stored.position, false);
      } else {
        add_kind(result.must_recreate, c.kind);
        tx.remove_component(w.id, stored.position);
      }
    }
    record.deleted_at.reset();
    record.purge_at.reset();
    record.deleted_seq = 0;
    record.retained_kinds.clear();
    record.tenant_key.reset();
    record.group_key = group_name_key(w.subscription_id, w.resource_group, w.name);
    tx.set_bin(record);
    audit_ok(tx, "recover", w, principal, now);
    result.workspace = with_components(tx, w);
    return result;
  }

  /// Hard-deletes a workspace from the bin (purge's permission and checks, then the change).
  DeleteResult purge_record(StoreTransaction& tx, const WorkspaceRecord& record, const MaybePrincipal& principal,
                            Timestamp now) const {
    const Workspace& w = record.workspace;
    const Rules& r = rules(w.subscription_id);
    check_permission(tx, r, Action::purge, principal, w.id, describe(w));
    if (!r.permanent_delete.allowed && !expired(record, now)) {
      throw Error(ErrorCode::operation_not_allowed,
                  "policy '" + r.name + "' does not allow purging " + describe(w) +
                      " before its retention ends; it is purged at " + format_iso8601(*record.purge_at));
    }
    check_destructible(tx, record, "purge", now);
    return hard_delete(tx, record, false, "purge", principal, now);
  }

  // ---- holds and liens ----

  GuardRow add_guard(const GuardSpec& spec, const std::string& workspace_id, const std::string& origin,
                     const std::string& reason, const MaybePrincipal& principal) {
    AuditTarget target{spec.placed, "", "", "", workspace_id};
    return write(target, principal, [&](StoreTransaction& tx, Timestamp now) {
      WorkspaceRecord record = load_by_id(tx, workspace_id, target, now);
      check_permission(tx, rules(record.workspace.subscription_id), spec.action, principal, workspace_id,
                       describe(record.workspace));
      if (spec.live_only) check_live(record, std::string("add a ") + enum_to_string(spec.kind) + " to");
      GuardRow guard{spec.kind, new_id(now), workspace_id, origin, reason, std::nullopt, now};
      if (principal) guard.placed_by = principal->id;
      tx.insert_guard(guard);
      if (!(record.*spec.flag)) {
        record.*spec.flag = true;
        tx.set_protection(record);
      }
      audit_ok(tx, spec.placed, record.workspace, principal, now);
      return guard;
    });
  }

  /// Removing the last one clears the row's flag: a workspace past its purge_at whose last
  /// hold goes expires at once (on_expiry: purge).
  void remove_guard(const GuardSpec& spec, const std::string& id, const MaybePrincipal& principal) {
    const std::string noun = enum_to_string(spec.kind);
    check_identifier(id, (noun + " id").c_str());
    AuditTarget target{spec.removed, "", "", "", ""};
    write(target, principal, [&](StoreTransaction& tx, Timestamp now) {
      const auto guard = tx.find_guard(spec.kind, id);
      if (!guard) throw Error(ErrorCode::not_found, "no " + noun + " with id '" + id + "' (never made, or removed)");
      // The workspace row first: it orders this removal after any other change of its guards.
      WorkspaceRecord record = load_by_id(tx, guard->workspace_id, target, now);
      check_permission(tx, rules(record.workspace.subscription_id), spec.action, principal, record.workspace.id,
                       describe(record.workspace));
      if (!tx.remove_guard(spec.kind, id)) {
        throw Error(ErrorCode::not_found, "no " + noun + " with id '" + id + "' (removed meanwhile)");
      }
      if (tx.guards(spec.kind, record.workspace.id).empty()) {
        record.*spec.flag = false;
        tx.set_protection(record);
      }
      audit_ok(tx, spec.removed, record.workspace, principal, now);
      return 0;
    });
  }

  std::vector<GuardRow> guards(const GuardSpec& spec, const std::string& workspace_id) const {
    auto tx = engine.store_->begin(TransactionMode::read);
    AuditTarget target;
    load_by_id(*tx, workspace_id, target, engine.clock_->now());
    return tx->guards(spec.kind, workspace_id);
  }

  /// Carries out a decided soft delete.
  void apply_soft_delete(StoreTransaction& tx, DeletePlan& plan, DeleteResult& result,
                         const MaybePrincipal& principal, Timestamp now) const {
    WorkspaceRecord& record = plan.record;
    Workspace& w = record.workspace;
    const Rules& r = rules(w.subscription_id);
    for (const std::int64_t position : plan.destroyed_now) tx.set_component_destroyed(w.id, position, true);
    for (auto& task : result.cleanup) task = tx.add_cleanup(task);

    record.deleted_at = now;
    record.purge_at = result.purge_at;
    record.retained_kinds = result.retained;
    w.retention_days = plan.retention_days;
    switch (r.name_reservation.scope) {
      case ReservationScope::group:
        break;  // the live group key stays: the name is held in its group
      case ReservationScope::tenant: {
        const std::string key = tenant_name_key(w.subscription_id, w.name);
        // Another deleted workspace may already hold the name tenant-wide; the group key
        // still holds it in this group.
        if (tx.find_name_holders(std::string(), key).empty()) record.tenant_key = key;
        break;
      }
      case ReservationScope::none:
        record.group_key.reset();
        break;
    }
    record.deleted_seq = tx.append_audit(ok_record("delete", w, principal, now));
    tx.set_bin(record);
  }

  /// Carries out a decided delete and returns its answer (cleanup tasks with their ids).
  DeleteResult apply_delete(StoreTransaction& tx, DeletePlan& plan, const MaybePrincipal& principal,
                            Timestamp now) const {
    DeleteResult result = std::move(plan.outcome);
    if (plan.permanent) {
      apply_hard_delete(tx, plan.record, result, "delete", principal, now);
    } else {
      apply_soft_delete(tx, plan, result, principal, now);
    }
    return result;
  }
};

Engine::Engine(std::unique_ptr<Store> store, Policy policy, std::shared_ptr<const Clock> clock)
    : store_(std::move(store)),
      policy_(std::move(policy)),
      clock_(clock ? std::move(clock) : std::make_shared<SystemClock>()),
      impl_(std::make_unique<Impl>(*this)) {}

std::unique_ptr<Engine> Engine::open(const std::string& location, Policy policy,
                                     std::shared_ptr<const Clock> clock) {
  return std::make_unique<Engine>(open_store(location), std::move(policy), std::move(clock));
}

Engine::~Engine() = default;

void Engine::close() {
  closing_.store(true, std::memory_order_release);
  std::unique_lock lock(lifecycle_);
  closed_ = true;
  store_.reset();
}

bool Engine::closed() const {
  std::shared_lock lock(lifecycle_);
  return closed_;
}

void Engine::set_facts_provider(FactsProvider provider) {
  std::shared_lock lifecycle_lock(lifecycle_);
  if (closed_) throw Error(ErrorCode::engine_closed, "the engine is closed; open a new one with Engine.open");
  auto shared = std::make_shared<const FactsProvider>(std::move(provider));
  std::lock_guard lock(impl_->facts_mutex);
  impl_->facts_provider = std::move(shared);
}

#define RB_OPEN_GUARD                                                                          \
  if (closing_.load(std::memory_order_acquire)) {                                              \
    throw Error(ErrorCode::engine_closed, "the engine is closed; open a new one with Engine.open"); \
  }                                                                                            \
  std::shared_lock lifecycle_lock(lifecycle_);                                                 \
  if (closed_) {                                                                               \
    throw Error(ErrorCode::engine_closed, "the engine is closed; open a new one with Engine.open"); \
  }

Workspace Engine::create(const CreateRequest& request, const MaybePrincipal& principal) {
  RB_OPEN_GUARD
  check_identifier(request.subscription_id, "subscription_id");
  check_identifier(request.resource_group, "resource_group");
  check_identifier(request.name, "name");
  for (const auto& c : request.components) check_identifier(c.kind, "component kind");
  AuditTarget target{"create", request.subscription_id, request.resource_group, request.name, ""};
  return impl_->write(target, principal, [&](StoreTransaction& tx, Timestamp now) {
    const Rules& r = impl_->rules(request.subscription_id);
    Impl::check_permission(tx, r, Action::create, principal, "",
                           "workspaces in subscription '" + request.subscription_id + "'");

    int retention = r.retention.default_days;
    if (request.retention_days) {
      const int asked = *request.retention_days;
      if (!r.retention.per_workspace && asked != r.retention.default_days) {
        throw Error(ErrorCode::invalid_retention,
                    "retention is fixed at " + std::to_string(r.retention.default_days) +
                        " days by policy '" + r.name + "' and cannot be changed; " +
                        std::to_string(asked) + " was given (omit it, or pass " +
                        std::to_string(r.retention.default_days) + ")");
      }
      if (asked < r.retention.min_days || asked > r.retention.max_days) {
        throw Error(ErrorCode::invalid_retention,
                    "soft_delete_retention_days is " + std::to_string(asked) + "; policy '" + r.name +
                        "' allows " + std::to_string(r.retention.min_days) + ".." +
                        std::to_string(r.retention.max_days) + " days");
      }
      retention = asked;
    }

    // Purge protection: asked for, or the policy's default where the workspace can have it.
    const bool always_hard = always_hard_deleted(r, request.cmk_encrypted);
    const bool protect = request.purge_protection.value_or(r.purge_protection.default_ && !always_hard);
    if (request.purge_protection == true) {
      check_protectable(r, request.cmk_encrypted, "workspace '" + request.name + "'");
      Impl::check_permission(tx, r, Action::protect, principal, "",
                             "workspace '" + request.name + "' (purge protection at create)", "owner");
    }
    std::optional<Timestamp> auto_delete_at = request.auto_delete_at;
    if (!auto_delete_at && r.auto_delete.after_days) {
      try {
        auto_delete_at = add_days(now, *r.auto_delete.after_days);
      } catch (const Error& e) {
        throw Error(ErrorCode::invalid_argument,
                    "cannot create workspace '" + request.name + "': its auto-deletion date, " + e.what());
      }
    }

    const std::string group_key = group_name_key(request.subscription_id, request.resource_group, request.name);
    const std::string tenant_key = tenant_name_key(request.subscription_id, request.name);
    const bool tenant_wide = r.name_reservation.scope == ReservationScope::tenant;
    // Who holds the name: a live workspace in the group, or soft-deleted ones that reserve
    // it (in the group, or under a tenant-wide reservation anywhere in the subscription).
    // A store that checks the names as it inserts is not asked first: when one is held, the
    // write runs again with the lookup.
    std::vector<WorkspaceRecord> holders;
    if (!tx.names_checked_at_insert()) {
      holders = tx.find_name_holders(group_key, tenant_key);
      if (tenant_wide) {
        for (auto& row : tx.find_deleted_in_tenant(request.subscription_id, request.name)) {
          const bool known = std::any_of(holders.begin(), holders.end(), [&](const WorkspaceRecord& h) {
            return h.workspace.id == row.workspace.id;
          });
          if (!known) holders.push_back(std::move(row));
        }
      }
    }
    for (const auto& holder : holders) {
      if (!holder.deleted_at) {
        throw Error(ErrorCode::workspace_exists,
                    describe(holder.workspace) + " already exists; choose another name, or delete it first");
      }
    }
    const WorkspaceRecord* latest = nullptr;  // the reservation that ends last
    std::vector<const WorkspaceRecord*> reserving;
    for (const auto& holder : holders) {
      if (gone(holder, impl_->rules(holder.workspace.subscription_id), now)) {
        // Expiry is a fact of time: the expired row is purged here, as purge_expired would.
        impl_->hard_delete(tx, holder, false, "expire", std::nullopt, now);
        continue;
      }
      reserving.push_back(&holder);
      if (!latest || *holder.purge_at > *latest->purge_at) latest = &holder;
    }
    auto reserved = [&] {
      const WorkspaceRecord& holder = *latest;
      const std::string until = format_iso8601(*holder.purge_at);
      const std::size_t others = reserving.size() - 1;
      return Error(ErrorCode::name_reserved,
                   "the name '" + request.name + "' is reserved until " + until + " by soft-deleted " +
                       describe(holder.workspace) + " (deleted " + format_iso8601(*holder.deleted_at) +
                       (holder.held ? ", under legal hold" : expired(holder, now) ? ", waiting for an administrator's purge" : "") +
                       (others > 0 ? "; " + std::to_string(others) + " other(s) in the recycle bin hold it until earlier" : "") +
                       "); recover it, or purge it, before creating a new one with this name "
                       "(or create with if_deleted='recover' or 'purge')",
                   holder.purge_at);
    };
    if (latest) {
      switch (request.if_deleted) {
        case IfDeleted::fail:
          throw reserved();
        case IfDeleted::recover: {
          // The holder in this group comes back with its own settings; the create's other
          // arguments are ignored. One in another group is not this create's to recover.
          const auto same_group = std::find_if(reserving.begin(), reserving.end(), [&](const WorkspaceRecord* h) {
            return h->workspace.resource_group == request.resource_group;
          });
          if (same_group == reserving.end()) throw reserved();
          WorkspaceRecord holder = **same_group;
          target.set(holder.workspace);
          return impl_->recover_record(tx, holder, principal, now).workspace;
        }
        case IfDeleted::purge:
          // Every holder goes first (purge's permission and checks each), in this transaction.
          for (const WorkspaceRecord* holder : reserving) impl_->purge_record(tx, *holder, principal, now);
          break;
      }
    }

    WorkspaceRecord record;
    Workspace& w = record.workspace;
    w.id = new_id(now);
    w.subscription_id = request.subscription_id;
    w.resource_group = request.resource_group;
    w.name = request.name;
    w.retention_days = retention;
    w.cmk_encrypted = request.cmk_encrypted;
    w.state = WorkspaceState::running;
    w.created_at = now;
    w.components = request.components;
    w.purge_protection = protect;
    w.auto_delete_at = auto_delete_at;
    record.group_key = group_key;
    record.had_members = principal.has_value();
    tx.insert_new_workspace(record, tenant_key, tenant_wide,
                            principal ? std::optional<std::string>(principal->id) : std::nullopt,
                            Impl::ok_record("create", w, principal, now));
    target.workspace_id = w.id;
    return w;
  });
}

Workspace Engine::get(const std::string& subscription_id, const std::string& resource_group,
                      const std::string& name, const MaybePrincipal&) {
  RB_OPEN_GUARD
  check_identifier(subscription_id, "subscription_id");
  check_identifier(resource_group, "resource_group");
  check_identifier(name, "name");
  auto tx = store_->begin_one_read();  // find_live brings the components
  auto record = tx->find_live(subscription_id, resource_group, name);
  if (!record) {
    throw Error(ErrorCode::workspace_not_found,
                "no workspace named '" + name + "' in resource group '" + resource_group +
                    "' of subscription '" + subscription_id +
                    "' (a soft-deleted one is shown by get_deleted and list_deleted)");
  }
  return impl_->with_components(*tx, record->workspace);
}

Workspace Engine::get_by_id(const std::string& workspace_id, const MaybePrincipal&) {
  RB_OPEN_GUARD
  check_identifier(workspace_id, "workspace id");
  auto tx = store_->begin_one_read();  // find_by_id brings the components
  auto record = tx->find_by_id(workspace_id);
  if (!record || record->deleted_at) {
    throw Error(ErrorCode::workspace_not_found, "no workspace with id '" + workspace_id + "'");
  }
  return impl_->with_components(*tx, record->workspace);
}

WorkspacePage Engine::list_live(const std::string& subscription_id,
                                const std::optional<std::string>& resource_group,
                                std::optional<std::size_t> limit, const std::optional<std::string>& cursor,
                                const MaybePrincipal&) {
  RB_OPEN_GUARD
  LiveQuery query;
  query.limit = listing_rows(subscription_id, resource_group, limit);
  query.subscription_id = subscription_id;
  query.resource_group = resource_group;
  if (cursor) query.after = decode_live_cursor(*cursor);
  auto tx = store_->begin(TransactionMode::read);
  auto rows = tx->list_live(query);
  WorkspacePage page;
  const bool more = limit && rows.size() > *limit;
  if (more) rows.resize(*limit);  // the extra row only said that another page exists
  std::vector<std::string> ids;
  ids.reserve(rows.size());
  for (const auto& row : rows) ids.push_back(row.workspace.id);
  const auto components = tx->components_of(ids);
  page.items.reserve(rows.size());
  for (std::size_t i = 0; i < rows.size(); ++i) {
    set_components(page.items.emplace_back(std::move(rows[i].workspace)), components[i]);
  }
  if (more) page.next_cursor = encode_live_cursor(page.items.back());
  return page;
}

Workspace Engine::stop(const std::string& workspace_id, const MaybePrincipal& principal) {
  return set_state(workspace_id, WorkspaceState::stopped, principal);
}

Workspace Engine::start(const std::string& workspace_id, const MaybePrincipal& principal) {
  return set_state(workspace_id, WorkspaceState::running, principal);
}

Workspace Engine::set_state(const std::string& workspace_id, WorkspaceState state,
                            const MaybePrincipal& principal) {
  RB_OPEN_GUARD
  const bool stopping = state == WorkspaceState::stopped;
  AuditTarget target{stopping ? "stop" : "start", "", "", "", workspace_id};
  return impl_->write(target, principal, [&](StoreTransaction& tx, Timestamp now) {
    WorkspaceRecord record = impl_->load_by_id(tx, workspace_id, target, now);
    Impl::check_permission(tx, impl_->rules(record.workspace.subscription_id),
                           stopping ? Action::stop : Action::start, principal, workspace_id,
                           describe(record.workspace));
    Impl::check_live(record, target.action);
    if (record.workspace.state != state) {  // idempotent
      record.workspace.state = state;
      tx.set_state(workspace_id, state);
    }
    Impl::audit_ok(tx, target.action, record.workspace, principal, now);
    return impl_->with_components(tx, record.workspace);
  });
}

void Engine::grant(const std::string& workspace_id, const std::string& member_id, const std::string& role,
                   const MaybePrincipal& principal) {
  RB_OPEN_GUARD
  check_identifier(member_id, "principal id");
  check_identifier(role, "role");
  AuditTarget target{"grant", "", "", "", workspace_id};
  impl_->write(target, principal, [&](StoreTransaction& tx, Timestamp now) {
    WorkspaceRecord record = impl_->load_by_id(tx, workspace_id, target, now);
    Impl::check_permission(tx, impl_->rules(record.workspace.subscription_id), Action::grant, principal,
                           workspace_id, describe(record.workspace));
    Impl::check_live(record, "grant a role on");
    tx.put_member(workspace_id, member_id, role);
    if (record.orphaned_at || !record.had_members) tx.set_membership(workspace_id, std::nullopt, true);
    Impl::audit_ok(tx, "grant", record.workspace, principal, now);
    return 0;
  });
}

void Engine::revoke(const std::string& workspace_id, const std::string& member_id,
                    const MaybePrincipal& principal) {
  RB_OPEN_GUARD
  check_identifier(member_id, "principal id");
  AuditTarget target{"revoke", "", "", "", workspace_id};
  impl_->write(target, principal, [&](StoreTransaction& tx, Timestamp now) {
    WorkspaceRecord record = impl_->load_by_id(tx, workspace_id, target, now);
    Impl::check_permission(tx, impl_->rules(record.workspace.subscription_id), Action::revoke, principal,
                           workspace_id, describe(record.workspace));
    Impl::check_live(record, "revoke a role on");
    if (tx.remove_member(workspace_id, member_id) && tx.count_members(workspace_id) == 0) {
      tx.set_membership(workspace_id, now, true);  // orphaned: nobody has access any more
    }
    Impl::audit_ok(tx, "revoke", record.workspace, principal, now);
    return 0;
  });
}

DeleteResult Engine::remove(const std::string& workspace_id, const DeleteOptions& options,
                            const MaybePrincipal& principal) {
  auto results = remove_many({workspace_id}, options, principal);
  return std::move(results.front());
}

std::vector<DeleteResult> Engine::remove_many(const std::vector<std::string>& workspace_ids,
                                              const DeleteOptions& options, const MaybePrincipal& principal) {
  RB_OPEN_GUARD
  if (workspace_ids.empty()) return {};
  // Facts first, outside the write transaction: the provider may call out to the platform.
  std::vector<FactsSnapshot> facts(workspace_ids.size());
  if (impl_->needs_facts) {
    auto tx = store_->begin(TransactionMode::read);
    for (std::size_t i = 0; i < workspace_ids.size(); ++i) {
      auto record = tx->find_by_id(workspace_ids[i]);
      if (record && !record->deleted_at) {
        facts[i] = impl_->fetch_facts(impl_->rules(record->workspace.subscription_id),
                                      impl_->with_components(*tx, record->workspace));
      }
    }
  }
  AuditTarget target{"delete", "", "", "", ""};
  // Decide every member before changing any: all or nothing.
  auto decide = [&](StoreTransaction& tx, Timestamp now) {
    std::vector<DeletePlan> plans;
    plans.reserve(workspace_ids.size());
    std::unordered_set<std::string> listed;  // not a scan of the plans: a batch may be large
    for (std::size_t i = 0; i < workspace_ids.size(); ++i) {
      target = AuditTarget{"delete", "", "", "", workspace_ids[i]};
      WorkspaceRecord record = impl_->load_by_id(tx, workspace_ids[i], target, now);
      if (workspace_ids.size() > 1 && !listed.insert(record.workspace.id).second) {
        throw Error(ErrorCode::invalid_argument,
                    describe(record.workspace) + " is listed twice; list each workspace once");
      }
      plans.push_back(impl_->plan_delete(tx, record, options, principal, facts[i], workspace_ids.size(), now));
    }
    return plans;
  };
  if (options.dry_run) {
    // The decision alone, in a read transaction: the same checks and answer, nothing
    // written and nothing audited.
    auto tx = store_->begin(TransactionMode::read);
    std::vector<DeleteResult> results;
    for (auto& plan : decide(*tx, clock_->now())) {
      results.push_back(std::move(plan.outcome));
      results.back().dry_run = true;
    }
    return results;
  }
  return impl_->write(target, principal, [&](StoreTransaction& tx, Timestamp now) {
    std::vector<DeletePlan> plans = decide(tx, now);
    std::vector<DeleteResult> results;
    for (auto& plan : plans) results.push_back(impl_->apply_delete(tx, plan, principal, now));
    return results;
  });
}

DeletedPage Engine::list_deleted(const std::string& subscription_id,
                                 const std::optional<std::string>& resource_group,
                                 std::optional<std::size_t> limit, const std::optional<std::string>& cursor,
                                 const MaybePrincipal&, std::optional<Timestamp> purge_before) {
  RB_OPEN_GUARD
  DeletedQuery query;
  query.purge_before = purge_before;
  query.limit = listing_rows(subscription_id, resource_group, limit);
  const Rules& r = impl_->rules(subscription_id);
  const Timestamp now = clock_->now();
  query.subscription_id = subscription_id;
  query.resource_group = resource_group;
  if (r.retention.on_expiry == OnExpiry::purge) query.purge_after = now;
  if (cursor) query.after = decode_cursor(*cursor);
  auto tx = store_->begin(TransactionMode::read);
  auto rows = tx->list_deleted(query);
  DeletedPage page;
  if (limit && rows.size() > *limit) {
    rows.resize(*limit);  // the extra row only said that another page exists
    page.next_cursor = encode_cursor(rows.back().position);
  }
  page.items.reserve(rows.size());
  for (auto& row : rows) page.items.push_back(std::move(row.workspace));
  return page;
}

DeletedWorkspace Engine::get_deleted(const std::string& subscription_id, const std::string& resource_group,
                                     const std::string& name, const MaybePrincipal&) {
  RB_OPEN_GUARD
  auto tx = store_->begin(TransactionMode::read);
  return to_deleted(impl_->find_in_bin(*tx, subscription_id, resource_group, name, clock_->now()));
}

RecoverResult Engine::recover(const std::string& subscription_id, const std::string& resource_group,
                              const std::string& name, const MaybePrincipal& principal) {
  RB_OPEN_GUARD
  AuditTarget target{"recover", subscription_id, resource_group, name, ""};
  return impl_->write(target, principal, [&](StoreTransaction& tx, Timestamp now) {
    WorkspaceRecord record = impl_->find_in_bin(tx, subscription_id, resource_group, name, now);
    target.set(record.workspace);
    return impl_->recover_record(tx, record, principal, now);
  });
}

DeleteResult Engine::purge(const std::string& subscription_id, const std::string& resource_group,
                           const std::string& name, const MaybePrincipal& principal) {
  RB_OPEN_GUARD
  AuditTarget target{"purge", subscription_id, resource_group, name, ""};
  return impl_->write(target, principal, [&](StoreTransaction& tx, Timestamp now) {
    const WorkspaceRecord record = impl_->find_in_bin(tx, subscription_id, resource_group, name, now);
    target.set(record.workspace);
    return impl_->purge_record(tx, record, principal, now);
  });
}

PurgeReport Engine::purge_expired(const MaybePrincipal& principal, bool dry_run) {
  RB_OPEN_GUARD
  PurgeReport report;
  report.dry_run = dry_run;
  // A dry run reads everything in one read transaction. The real sweep writes in chunks so
  // other writers get their turn; a store may run a write body more than once (it retries
  // conflicts), so each body builds its own part of the report, merged once it committed.
  std::unique_ptr<StoreTransaction> read_tx = dry_run ? store_->begin(TransactionMode::read) : nullptr;
  const Timestamp dry_now = clock_->now();
  auto step = [&](auto&& body) {
    AuditTarget target{"", "", "", "", ""};
    if (dry_run) return body(*read_tx, dry_now);
    return impl_->write(target, principal, body);
  };
  auto merge = [&](PurgeReport& part) {
    for (auto& item : part.purged) report.purged.push_back(std::move(item));
    for (auto& task : part.cleanup) report.cleanup.push_back(std::move(task));
    for (auto& item : part.auto_deleted) report.auto_deleted.push_back(std::move(item));
    for (auto& item : part.auto_delete_refused) report.auto_delete_refused.push_back(std::move(item));
  };
  if (principal) {
    step([&](StoreTransaction& tx, Timestamp) {
      Impl::check_permission(tx, policy_.base(), Action::purge, principal, "", "expired workspaces");
      return 0;
    });
  }
  // Expired soft-deleted workspaces. Several engines may sweep at once: each chunk skips
  // rows another engine is removing, and the report lists only what this call removed.
  struct Chunk {
    PurgeReport report;
    std::optional<ExpiryCursor> next;
    bool more = false;
  };
  std::optional<ExpiryCursor> cursor;
  for (bool more = true; more;) {
    Chunk chunk = step([&](StoreTransaction& tx, Timestamp now) {
      Chunk out;
      out.report.dry_run = dry_run;
      const auto rows = tx.expired(now, cursor, kPurgeChunk);
      std::vector<const WorkspaceRecord*> purge;
      purge.reserve(rows.size());
      for (const auto& row : rows) {
        // Held rows wait for an administrator's purge_by_id.
        if (impl_->rules(row.workspace.subscription_id).retention.on_expiry != OnExpiry::hold) purge.push_back(&row);
      }
      impl_->purge_rows(tx, purge, principal, now, out.report);
      if (!rows.empty()) out.next = ExpiryCursor{*rows.back().purge_at, rows.back().workspace.id};
      out.more = rows.size() == kPurgeChunk;
      return out;
    });
    merge(chunk.report);
    if (chunk.next) cursor = chunk.next;
    more = chunk.more;
  }

  // Orphans, where some policy purges them after a number of days.
  std::optional<int> shortest;
  auto consider = [&](const Rules& r) {
    if (r.orphans.purge_after_days) shortest = std::min(shortest.value_or(*r.orphans.purge_after_days), *r.orphans.purge_after_days);
  };
  consider(policy_.base());
  for (const auto& tenant : policy_.tenants()) consider(policy_.rules_for(tenant));
  if (shortest) {
    PurgeReport orphans = step([&](StoreTransaction& tx, Timestamp now) {
      PurgeReport out;
      out.dry_run = dry_run;
      const Timestamp before = add_days(now, -*shortest);
      const auto rows = tx.orphaned(std::nullopt, before, std::numeric_limits<std::int32_t>::max());
      std::vector<const WorkspaceRecord*> purge;
      for (const auto& row : rows) {
        const auto days = impl_->rules(row.workspace.subscription_id).orphans.purge_after_days;
        // A dry run's first sweep removed nothing: skip what it already reported.
        if (dry_run && gone(row, impl_->rules(row.workspace.subscription_id), now)) continue;
        if (!destructible(row, now)) continue;  // a hold, or purge protection, keeps it
        if (days && add_days(now, -*days) >= *row.orphaned_at) purge.push_back(&row);
      }
      impl_->purge_rows(tx, purge, principal, now, out);
      return out;
    });
    merge(orphans);
  }

  // Due auto-deletions: live workspaces whose auto_delete_at has come are deleted as the
  // platform would delete them, with the policy's checks except require_confirm_name; a
  // refused one stays live and is reported (and audited) with its error's code.
  std::optional<ExpiryCursor> due_after;
  for (bool more = true; more;) {
    // Facts first, outside the write transaction: the provider may call out to the platform.
    std::vector<WorkspaceRecord> due;
    std::vector<FactsSnapshot> facts;
    {
      // A dry run reads in its one read transaction (an in-memory store has one connection).
      std::unique_ptr<StoreTransaction> own = dry_run ? nullptr : store_->begin(TransactionMode::read);
      StoreTransaction& tx = dry_run ? *read_tx : *own;
      due = tx.auto_delete_due(dry_run ? dry_now : clock_->now(), due_after, kPurgeChunk);
      std::vector<std::vector<StoredComponent>> components;
      if (impl_->needs_facts) {
        std::vector<std::string> ids;
        ids.reserve(due.size());
        for (const auto& row : due) ids.push_back(row.workspace.id);
        components = tx.components_of(ids);  // one set query for the chunk
      }
      own.reset();
      facts.resize(due.size());
      for (std::size_t i = 0; i < components.size(); ++i) {
        Workspace shown = due[i].workspace;
        set_components(shown, components[i]);
        facts[i] = impl_->fetch_facts(impl_->rules(shown.subscription_id), shown);
      }
    }
    if (due.empty()) break;
    PurgeReport part = step([&](StoreTransaction& tx, Timestamp now) {
      PurgeReport out;
      out.dry_run = dry_run;
      for (std::size_t i = 0; i < due.size(); ++i) {
        // Another engine may have deleted it, or someone moved its time, meanwhile.
        auto record = dry_run ? std::optional<WorkspaceRecord>(due[i]) : tx.find_by_id(due[i].workspace.id);
        if (!record || record->deleted_at || !record->workspace.auto_delete_at || *record->workspace.auto_delete_at > now) {
          continue;
        }
        const Workspace& w = record->workspace;
        try {
          DeletePlan plan = impl_->plan_delete(tx, *record, DeleteOptions{}, std::nullopt, facts[i], 1, now, true);
          const bool permanent = plan.permanent;
          DeleteResult result = dry_run ? std::move(plan.outcome) : impl_->apply_delete(tx, plan, kAutoDelete, now);
          if (!dry_run && !permanent) {
            plan.record.workspace.auto_delete_at.reset();  // done: a recover brings it back without one
            tx.set_protection(plan.record);
          }
          for (auto& task : result.cleanup) out.cleanup.push_back(std::move(task));
          out.auto_deleted.push_back({w.subscription_id, w.resource_group, w.name});
        } catch (const Error& e) {
          if (!is_refusal(e.code())) throw;
          if (!dry_run) {
            AuditTarget refused{"delete", w.subscription_id, w.resource_group, w.name, w.id};
            Impl::audit(tx, refused, kAutoDelete, now, "refused:" + code_name(e.code()));
          }
          out.auto_delete_refused.push_back({w.subscription_id, w.resource_group, w.name, code_name(e.code())});
        }
      }
      return out;
    });
    merge(part);
    due_after = ExpiryCursor{*due.back().workspace.auto_delete_at, due.back().workspace.id};
    more = due.size() == kPurgeChunk;
  }
  return report;
}

std::vector<DeletableWorkspace> Engine::list_deletable(const std::string& subscription_id) {
  RB_OPEN_GUARD
  check_identifier(subscription_id, "subscription_id");
  const Rules& r = impl_->rules(subscription_id);
  const Timestamp now = clock_->now();
  auto tx = store_->begin(TransactionMode::read);
  std::vector<DeletableWorkspace> out;
  if (r.retention.on_expiry == OnExpiry::hold) {
    for (const auto& row : tx->expired_in(subscription_id, now)) {
      out.push_back({DeletableKind::deletion_planned, row.workspace.id, *row.purge_at});
    }
  }
  // A realm both past its date and orphaned is listed under each kind, as the realm server
  // lists it: each kind is a reason to delete it, with its own date.
  for (const auto& row : tx->orphaned(subscription_id, now, std::numeric_limits<std::int32_t>::max())) {
    if (gone(row, r, now) || !destructible(row, now)) continue;
    out.push_back({DeletableKind::orphaned, row.workspace.id, *row.orphaned_at});
  }
  std::stable_sort(out.begin(), out.end(),
                   [](const DeletableWorkspace& a, const DeletableWorkspace& b) { return a.since < b.since; });
  return out;
}

DeleteResult Engine::purge_by_id(const std::string& workspace_id, const MaybePrincipal& principal,
                                 const PurgeByIdOptions& options) {
  RB_OPEN_GUARD
  check_identifier(workspace_id, "workspace id");
  AuditTarget target{"purge", "", "", "", workspace_id};
  if (options.dry_run) {
    // The decision alone, in a read transaction: not audited, nothing written.
    auto tx = store_->begin(TransactionMode::read);
    const Timestamp now = clock_->now();
    const WorkspaceRecord record = impl_->deletable_by_id(*tx, workspace_id, principal, target, now);
    return impl_->plan_hard_delete(*tx, record, false, now);
  }
  return impl_->write(target, principal, [&](StoreTransaction& tx, Timestamp now) {
    const WorkspaceRecord record = impl_->deletable_by_id(tx, workspace_id, principal, target, now);
    DeleteResult result = impl_->hard_delete(tx, record, false, "purge", principal, now);
    if (options.expected_refs) Impl::check_expected_refs(result, *options.expected_refs, workspace_id);
    return result;
  });
}

std::vector<CleanupTask> Engine::cleanup_tasks() {
  RB_OPEN_GUARD
  auto tx = store_->begin(TransactionMode::read);
  return tx->pending_cleanup();
}

void Engine::complete_cleanup(std::int64_t task_id) {
  RB_OPEN_GUARD
  AuditTarget target;  // not audited: the outbox is the platform's bookkeeping
  impl_->write(target, std::nullopt, [&](StoreTransaction& tx, Timestamp now) {
    if (!tx.complete_cleanup(task_id, now)) {
      throw Error(ErrorCode::not_found, "no cleanup task with id " + std::to_string(task_id));
    }
    return 0;
  });
}

std::vector<CleanupTask> Engine::claim_cleanup(const std::string& worker, std::size_t limit,
                                               std::int64_t lease_micros) {
  RB_OPEN_GUARD
  check_identifier(worker, "worker");
  if (limit == 0) throw Error(ErrorCode::invalid_argument, "limit must be at least 1");
  if (lease_micros <= 0) {
    throw Error(ErrorCode::invalid_argument,
                "lease must be longer than zero (it is how long the worker holds the tasks)");
  }
  AuditTarget target;
  return impl_->write(target, std::nullopt, [&](StoreTransaction& tx, Timestamp now) {
    if (lease_micros > kLatestTime - now) {
      throw Error(ErrorCode::invalid_argument,
                  "lease of " + std::to_string(lease_micros / kMicrosPerSecond) +
                      " seconds would end after year 9999; give a shorter lease");
    }
    return tx.claim_cleanup(worker, now, now + lease_micros, limit);
  });
}

void Engine::fail_cleanup(std::int64_t task_id, const std::string& error, std::int64_t retry_after_micros) {
  RB_OPEN_GUARD
  if (error.find('\0') != std::string::npos) {
    throw Error(ErrorCode::invalid_argument, "error text contains a NUL character; give printable text");
  }
  constexpr std::size_t kMaxErrorBytes = 64 * 1024;
  if (error.size() > kMaxErrorBytes) {
    throw Error(ErrorCode::invalid_argument, "error text is " + std::to_string(error.size()) +
                                                 " bytes; at most " + std::to_string(kMaxErrorBytes) +
                                                 " are kept, shorten it");
  }
  if (retry_after_micros < 0) {
    throw Error(ErrorCode::invalid_argument, "retry_after must not be negative (0: claimable at once)");
  }
  AuditTarget target;
  impl_->write(target, std::nullopt, [&](StoreTransaction& tx, Timestamp now) {
    if (retry_after_micros > kLatestTime - now) {
      throw Error(ErrorCode::invalid_argument, "retry_after would end after year 9999; give a shorter one");
    }
    if (!tx.fail_cleanup(task_id, error, now + retry_after_micros)) {
      throw Error(ErrorCode::not_found, "no cleanup task with id " + std::to_string(task_id));
    }
    return 0;
  });
}

Hold Engine::place_hold(const std::string& workspace_id, const std::string& reason, const MaybePrincipal& principal) {
  RB_OPEN_GUARD
  check_note(reason, "a hold's reason");
  return to_hold(impl_->add_guard(kHoldGuard, workspace_id, "", reason, principal));
}

void Engine::release_hold(const std::string& hold_id, const MaybePrincipal& principal) {
  RB_OPEN_GUARD
  impl_->remove_guard(kHoldGuard, hold_id, principal);
}

std::vector<Hold> Engine::holds(const std::string& workspace_id) {
  RB_OPEN_GUARD
  return converted(impl_->guards(kHoldGuard, workspace_id), to_hold);
}

Lien Engine::add_lien(const std::string& workspace_id, const std::string& origin, const std::string& reason,
                      const MaybePrincipal& principal) {
  RB_OPEN_GUARD
  check_note(origin, "a lien's origin");
  check_note(reason, "a lien's reason");
  return to_lien(impl_->add_guard(kLienGuard, workspace_id, origin, reason, principal));
}

void Engine::remove_lien(const std::string& lien_id, const MaybePrincipal& principal) {
  RB_OPEN_GUARD
  impl_->remove_guard(kLienGuard, lien_id, principal);
}

std::vector<Lien> Engine::liens(const std::string& workspace_id) {
  RB_OPEN_GUARD
  return converted(impl_->guards(kLienGuard, workspace_id), to_lien);
}

Workspace Engine::enable_purge_protection(const std::string& workspace_id, const MaybePrincipal& principal) {
  RB_OPEN_GUARD
  AuditTarget target{"enable_purge_protection", "", "", "", workspace_id};
  return impl_->write(target, principal, [&](StoreTransaction& tx, Timestamp now) {
    WorkspaceRecord record = impl_->load_by_id(tx, workspace_id, target, now);
    Workspace& w = record.workspace;
    const Rules& r = impl_->rules(w.subscription_id);
    Impl::check_permission(tx, r, Action::protect, principal, workspace_id, describe(w));
    Impl::check_live(record, "turn on purge protection for");
    check_protectable(r, w.cmk_encrypted, describe(w));
    if (!w.purge_protection) {  // idempotent; there is no way back
      w.purge_protection = true;
      tx.set_protection(record);
    }
    Impl::audit_ok(tx, "enable_purge_protection", w, principal, now);
    return impl_->with_components(tx, w);
  });
}

Workspace Engine::set_auto_delete(const std::string& workspace_id, std::optional<Timestamp> at,
                                  const MaybePrincipal& principal) {
  RB_OPEN_GUARD
  AuditTarget target{"set_auto_delete", "", "", "", workspace_id};
  return impl_->write(target, principal, [&](StoreTransaction& tx, Timestamp now) {
    WorkspaceRecord record = impl_->load_by_id(tx, workspace_id, target, now);
    Workspace& w = record.workspace;
    Impl::check_permission(tx, impl_->rules(w.subscription_id), Action::delete_, principal, workspace_id,
                           describe(w));
    Impl::check_live(record, "set the auto-deletion time of");
    if (w.auto_delete_at != at) {
      w.auto_delete_at = at;
      tx.set_protection(record);
    }
    Impl::audit_ok(tx, "set_auto_delete", w, principal, now);
    return impl_->with_components(tx, w);
  });
}

std::vector<AuditRecord> Engine::audit_log(const std::optional<std::string>& subscription_id,
                                           std::optional<std::int64_t> after_seq,
                                           std::optional<std::size_t> limit) {
  RB_OPEN_GUARD
  if (after_seq && *after_seq < 0) {
    throw Error(ErrorCode::invalid_argument,
                "after_seq must be 0 or more (the last seq seen), not " + std::to_string(*after_seq));
  }
  if (limit && *limit == 0) {
    throw Error(ErrorCode::invalid_argument, "limit must be at least 1 (or None for everything)");
  }
  AuditQuery query{subscription_id, after_seq.value_or(0), limit};
  constexpr std::size_t kMaxRows = static_cast<std::size_t>(std::numeric_limits<std::int64_t>::max());
  if (query.limit) query.limit = std::min(*query.limit, kMaxRows);
  auto tx = store_->begin(TransactionMode::read);
  return tx->audit_log(query);
}

}  // namespace recyclebin
