#pragma once
// The Engine is the only door: every operation is check policy -> one store transaction
// -> audit record -> result. It never sleeps and never reads the wall clock itself.
//
// Thread-safety: all member functions may be called from many threads at once.
// Ownership: the Engine owns its Store; Policy and Clock are shared, immutable or
// thread-safe. close() waits for calls in flight; later calls throw Error(engine_closed).

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <shared_mutex>
#include <string>
#include <vector>

#include "recyclebin/error.hpp"
#include "recyclebin/policy.hpp"
#include "recyclebin/store.hpp"
#include "recyclebin/time.hpp"
#include "recyclebin/types.hpp"

namespace recyclebin {

/// Asked for the facts of a workspace before a delete where the policy lists blockers or
/// warnings. May throw: the engine then treats every listed fact as unverifiable.
using FactsProvider = std::function<Facts(const Workspace&)>;

using MaybePrincipal = std::optional<Principal>;

class Engine {
 public:
  Engine(std::unique_ptr<Store> store, Policy policy, std::shared_ptr<const Clock> clock);
  /// open_store(location) (SQLite or PostgreSQL, by the location) + Engine;
  /// clock nullptr = SystemClock.
  static std::unique_ptr<Engine> open(const std::string& location, Policy policy,
                                      std::shared_ptr<const Clock> clock = nullptr);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  void close();
  bool closed() const;
  const Policy& policy() const { return policy_; }
  const Clock& clock() const { return *clock_; }
  void set_facts_provider(FactsProvider provider);

  Workspace create(const CreateRequest& request, const MaybePrincipal& principal);
  /// A live workspace by name; soft-deleted or unknown: workspace_not_found.
  Workspace get(const std::string& subscription_id, const std::string& resource_group,
                const std::string& name, const MaybePrincipal& principal);
  /// A live workspace by id; soft-deleted or unknown: workspace_not_found.
  Workspace get_by_id(const std::string& workspace_id, const MaybePrincipal& principal);

  /// Live workspaces (running or stopped) of a subscription, or of one group, ordered by
  /// (resource_group, name); keyset-paged like list_deleted (limit nullopt: everything).
  WorkspacePage list_live(const std::string& subscription_id,
                          const std::optional<std::string>& resource_group,
                          std::optional<std::size_t> limit, const std::optional<std::string>& cursor,
                          const MaybePrincipal& principal);

  Workspace stop(const std::string& workspace_id, const MaybePrincipal& principal);
  Workspace start(const std::string& workspace_id, const MaybePrincipal& principal);
  void grant(const std::string& workspace_id, const std::string& member_id, const std::string& role,
             const MaybePrincipal& principal);
  void revoke(const std::string& workspace_id, const std::string& member_id,
              const MaybePrincipal& principal);

  DeleteResult remove(const std::string& workspace_id, const DeleteOptions& options,
                      const MaybePrincipal& principal);
  /// All or nothing; the first refused member's error is thrown.
  std::vector<DeleteResult> remove_many(const std::vector<std::string>& workspace_ids,
                                        const DeleteOptions& options, const MaybePrincipal& principal);

  DeletedPage list_deleted(const std::string& subscription_id,
                           const std::optional<std::string>& resource_group,
                           std::optional<std::size_t> limit, const std::optional<std::string>& cursor,
                           const MaybePrincipal& principal,
                           std::optional<Timestamp> purge_before = std::nullopt);
  DeletedWorkspace get_deleted(const std::string& subscription_id, const std::string& resource_group,
                               const std::string& name, const MaybePrincipal& principal);
  RecoverResult recover(const std::string& subscription_id, const std::string& resource_group,
                        const std::string& name, const MaybePrincipal& principal);
  DeleteResult purge(const std::string& subscription_id, const std::string& resource_group,
                     const std::string& name, const MaybePrincipal& principal);

  /// Removes every expired workspace (and orphans past their policy's days). dry_run: the
  /// same checks and report (cleanup tasks with id 0), nothing written.
  PurgeReport purge_expired(const MaybePrincipal& principal, bool dry_run = false);
  /// What purge_by_id would remove now; a workspace both orphaned and past its deletion date
  /// is listed once under each kind. Oldest `since` first.
  std::vector<DeletableWorkspace> list_deletable(const std::string& subscription_id);
  /// Hard-deletes one workspace that list_deletable lists; anything else throws
  /// operation_not_allowed (after the permission check).
  DeleteResult purge_by_id(const std::string& workspace_id, const MaybePrincipal& principal,
                           const PurgeByIdOptions& options = {});

  std::vector<CleanupTask> cleanup_tasks();
  /// Completing a completed task is a no-op; an unknown id throws Error(not_found).
  void complete_cleanup(std::int64_t task_id);
  /// Leases up to `limit` claimable tasks, oldest first, to `worker` for `lease_micros`.
  std::vector<CleanupTask> claim_cleanup(const std::string& worker, std::size_t limit, std::int64_t lease_micros);
  /// Ends the task's lease, counts the attempt, records `error`, and makes it claimable
  /// again after `retry_after_micros`. A completed task: no-op; unknown id: Error(not_found).
  void fail_cleanup(std::int64_t task_id, const std::string& error, std::int64_t retry_after_micros);
  // ---- protections (API.md, version 2, "Protections") ----
  /// A legal hold on a live or soft-deleted workspace: while it has one, nothing destroys it
  /// (permanent delete, purge, purge_by_id, expiry). Permission action `hold`.
  Hold place_hold(const std::string& workspace_id, const std::string& reason, const MaybePrincipal& principal);
  /// Unknown id: Error(not_found). Releasing the last hold of a workspace past its purge_at
  /// (on_expiry: purge) lets it expire at once.
  void release_hold(const std::string& hold_id, const MaybePrincipal& principal);
  /// The workspace's holds, oldest first (an unknown or gone workspace: workspace_not_found).
  std::vector<Hold> holds(const std::string& workspace_id);
  /// A lien on a live workspace: while it has one, every delete of it is refused
  /// (precondition_failed). Permission action `lien`.
  Lien add_lien(const std::string& workspace_id, const std::string& origin, const std::string& reason,
                const MaybePrincipal& principal);
  /// Unknown id: Error(not_found).
  void remove_lien(const std::string& lien_id, const MaybePrincipal& principal);
  std::vector<Lien> liens(const std::string& workspace_id);
  /// Turns purge protection on for a live workspace, for good (idempotent). Permission action
  /// `protect`; a workspace the policy always hard-deletes: operation_not_allowed.
  Workspace enable_purge_protection(const std::string& workspace_id, const MaybePrincipal& principal);
  /// Sets (or with nullopt cancels) a live workspace's auto-deletion time. Permission action
  /// `delete`.
  Workspace set_auto_delete(const std::string& workspace_id, std::optional<Timestamp> at,
                            const MaybePrincipal& principal);

  /// Audited operations, seq ascending: those with seq > after_seq (nullopt: from the
  /// start), at most `limit` (nullopt: all). A consumer tails the log by passing the last
  /// seq it saw. after_seq < 0 or limit 0: invalid_argument.
  std::vector<AuditRecord> audit_log(const std::optional<std::string>& subscription_id,
                                     std::optional<std::int64_t> after_seq = std::nullopt,
                                     std::optional<std::size_t> limit = std::nullopt);

 private:
  Workspace set_state(const std::string& workspace_id, WorkspaceState state,
                      const MaybePrincipal& principal);
  struct Impl;
  std::unique_ptr<Store> store_;
  Policy policy_;
  std::shared_ptr<const Clock> clock_;
  std::unique_ptr<Impl> impl_;
  mutable std::shared_mutex lifecycle_;  // shared: a call in flight; unique: close()
  bool closed_ = false;
  // Set by close() before it waits: new calls fail at once, so a stream of calls cannot keep
  // close() waiting (the shared mutex lets readers overtake a waiting writer).
  std::atomic<bool> closing_{false};
};

}  // namespace recyclebin
