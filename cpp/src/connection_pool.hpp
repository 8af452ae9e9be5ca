#pragma once
// A small pool of connections shared by a store's threads: up to `max` connections, made
// on demand, handed to one transaction at a time; a caller waits when all are in use.
// Thread-safe. Both stores use it; what a connection is, is theirs.

#include <condition_variable>
#include <cstddef>
#include <memory>
#include <mutex>
#include <vector>

namespace recyclebin {

template <class Connection>
class ConnectionPool {
 public:
  explicit ConnectionPool(std::size_t max) : max_(max) {}

  /// Adds a connection made outside the pool (the one a store migrated with).
  void adopt(std::unique_ptr<Connection> connection) {
    std::lock_guard lock(mutex_);
    idle_.push_back(std::move(connection));
    ++created_;
  }

  /// An idle connection, or a new one from `connect()` while fewer than `max` exist.
  template <class Connect>
  std::unique_ptr<Connection> acquire(Connect&& connect) {
    std::unique_lock lock(mutex_);
    for (;;) {
      if (!idle_.empty()) {
        auto connection = std::move(idle_.back());
        idle_.pop_back();
        return connection;
      }
      if (created_ < max_) {
        ++created_;
        lock.unlock();
        try {
          return connect();
        } catch (...) {
          lock.lock();
          --created_;
          throw;
        }
      }
      available_.wait(lock);
    }
  }

  /// Gives a connection back; `reusable` false drops it (a broken connection).
  void release(std::unique_ptr<Connection> connection, bool reusable = true) {
    {
      std::lock_guard lock(mutex_);
      if (connection && reusable) {
        idle_.push_back(std::move(connection));
      } else {
        --created_;
      }
    }
    available_.notify_one();
  }

  void clear() {
    std::lock_guard lock(mutex_);
    created_ -= idle_.size();
    idle_.clear();
  }

 private:
  std::size_t max_;
  std::mutex mutex_;
  std::condition_variable available_;
  std::vector<std::unique_ptr<Connection>> idle_;
  std::size_t created_ = 0;
};

}  // namespace recyclebin
