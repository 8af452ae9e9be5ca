#pragma once
// The values that cross the engine's public edge. Plain structs, copied freely.

#include <boost/describe/enum.hpp>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "recyclebin/time.hpp"

namespace recyclebin {

BOOST_DEFINE_ENUM_CLASS(WorkspaceState, running, stopped, deleted)
BOOST_DEFINE_ENUM_CLASS(DeletableKind, deletion_planned, orphaned)
/// What a create does when a soft-deleted workspace holds the name (API.md, "Creating over a
/// soft-deleted name"): refuse (name_reserved), recover the holder, or purge it first.
BOOST_DEFINE_ENUM_CLASS(IfDeleted, fail, recover, purge)

/// A resource that belongs to a workspace (a compute instance, a volume, a block, ...).
struct Component {
  std::string kind;         // policy component kind, e.g. "compute_instance"
  std::string ref;          // the platform's reference: a resource id, a block path
  bool standalone = false;  // created on its own: always preserved
};

/// Who is calling. The engine's callers pass std::nullopt for the trusted platform itself.
struct Principal {
  std::string id;
  std::vector<std::string> roles;  // roles in the tenant; the workspace role is looked up
};

struct Workspace {
  std::string id;
  std::string subscription_id;
  std::string resource_group;
  std::string name;
  int retention_days = 0;
  bool cmk_encrypted = false;
  WorkspaceState state = WorkspaceState::running;
  Timestamp created_at = 0;
  std::vector<Component> components;
  bool purge_protection = false;            // on for good: deletes are soft, no purge before purge_at
  std::optional<Timestamp> auto_delete_at = std::nullopt;  // purge_expired soft-deletes it from then on
};

struct CreateRequest {
  std::string subscription_id;
  std::string resource_group;
  std::string name;
  std::optional<int> retention_days;  // nullopt: the policy's default
  bool cmk_encrypted = false;
  std::vector<Component> components;
  std::optional<bool> purge_protection = std::nullopt;  // nullopt: the policy's purge_protection.default
  IfDeleted if_deleted = IfDeleted::fail;
  std::optional<Timestamp> auto_delete_at = std::nullopt;  // nullopt: created + auto_delete.after_days, or never
};

/// A legal hold: stops the workspace's destruction (not its soft delete) until released.
struct Hold {
  std::string id;
  std::string workspace_id;
  std::string reason;
  std::optional<std::string> placed_by;  // nullopt: the platform
  Timestamp placed_at = 0;
};

/// A lien: stops every delete of a live workspace until removed; `origin` says who needs it.
struct Lien {
  std::string id;
  std::string workspace_id;
  std::string origin;
  std::string reason;
  Timestamp created_at = 0;
};

struct DeleteOptions {
  bool delete_dependent_resources = false;  // permanent only: also destroy `preserve` kinds
  bool permanently_delete = false;          // skip the recycle bin
  std::optional<std::string> confirm_name;  // the typed-in name, where the policy asks for it
  /// Make every check of the real call and answer what it would do (cleanup tasks with id 0),
  /// writing nothing: no audit record, no cleanup task, no state.
  bool dry_run = false;
};

/// How Engine::purge_by_id runs; the defaults are the plain purge.
struct PurgeByIdOptions {
  /// Make every check of the real call and answer what it would do (its cleanup tasks with
  /// id 0), writing nothing: no audit record, no cleanup task, no state.
  bool dry_run = false;
  /// When set, the purge goes ahead only if every cleanup task it writes has its ref in this
  /// list (the caller exported the list before, as delete-realm does); otherwise it throws
  /// operation_not_allowed in its own transaction, so nothing is removed.
  std::optional<std::vector<std::string>> expected_refs;
};

/// Something the platform must destroy in its own storage (the cleanup outbox).
struct CleanupTask {
  std::int64_t id = 0;
  std::string kind;
  std::string ref;
  std::string workspace_id;
  Timestamp created_at = 0;
  int attempts = 0;                         // failed attempts (fail_cleanup) so far
  std::optional<std::string> last_error;    // what the last failed attempt reported
  std::optional<std::string> leased_by;     // the worker holding it (claim_cleanup)
  std::optional<Timestamp> leased_until;    // until when (a lease that ended no longer holds)
};

struct DeleteResult {
  bool permanent = false;
  Timestamp deleted_at = 0;
  std::optional<Timestamp> purge_at;  // nullopt when permanent
  std::vector<std::string> retained;
  std::vector<std::string> destroyed;
  std::vector<std::string> preserved;
  std::vector<CleanupTask> cleanup;
  std::vector<std::string> warnings;
  bool dry_run = false;  // nothing was written; every cleanup task has id 0
};

struct DeletedWorkspace {
  std::string id;
  std::string name;
  std::string subscription_id;
  std::string resource_group;
  Timestamp deleted_at = 0;
  Timestamp purge_at = 0;
  int retention_days = 0;
  std::vector<std::string> retained;
  bool held = false;  // a legal hold keeps it in the bin, past purge_at too
};

struct DeletedPage {
  std::vector<DeletedWorkspace> items;
  std::optional<std::string> next_cursor;
};

/// A page of live workspaces, ordered by (resource_group, name).
struct WorkspacePage {
  std::vector<Workspace> items;
  std::optional<std::string> next_cursor;
};

struct RecoverResult {
  Workspace workspace;
  std::vector<std::string> restored;
  std::vector<std::string> reattached;
  std::vector<std::string> must_recreate;
};

struct PurgedWorkspace {
  std::string subscription_id;
  std::string resource_group;
  std::string name;
};

/// A due auto-deletion that the policy's checks refused: the workspace stays live.
struct RefusedAutoDelete {
  std::string subscription_id;
  std::string resource_group;
  std::string name;
  std::string code;  // the refusal's error code, e.g. "precondition_failed"
};

struct PurgeReport {
  std::vector<PurgedWorkspace> purged;
  std::vector<CleanupTask> cleanup;
  bool dry_run = false;  // nothing was written; every cleanup task has id 0
  std::vector<PurgedWorkspace> auto_deleted;          // live workspaces whose auto_delete_at came
  std::vector<RefusedAutoDelete> auto_delete_refused;  // ... and that the checks kept live
};

struct DeletableWorkspace {
  DeletableKind kind = DeletableKind::deletion_planned;
  std::string workspace_id;
  Timestamp since = 0;  // the deletion date, or when it became orphaned
};

struct AuditRecord {
  std::int64_t seq = 0;
  Timestamp at = 0;
  std::string action;  // create stop start grant revoke delete recover purge expire place_hold
                       // release_hold add_lien remove_lien enable_purge_protection set_auto_delete
  std::string subscription_id;
  std::string resource_group;
  std::string name;
  std::string outcome;       // "ok" or "refused:<code>"
  std::string workspace_id;  // empty when the target did not exist
  std::string principal_id;  // empty for the trusted caller
};

/// Numbers the platform knows about a workspace: {"running_jobs": 0, "active_sessions": 1}.
using Facts = std::map<std::string, std::int64_t, std::less<>>;

}  // namespace recyclebin
