// A fixed-size pool that lends connections as RAII leases. Connections open
// lazily; broken ones are dropped and reopened on a later Acquire, which is
// how the service recovers after a database restart.
#pragma once

#include <absl/base/thread_annotations.h>
#include <absl/status/statusor.h>
#include <absl/synchronization/mutex.h>
#include <absl/time/time.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/status_macros.h"
#include "metrics/registry.h"
#include "storage/pg_connection.h"

namespace segments::storage {

struct PgPoolOptions {
  std::string conninfo;  // libpq URI or key=value string
  int size = 8;
  absl::Duration connect_timeout = absl::Seconds(2);
  absl::Duration statement_timeout = absl::Seconds(30);
  absl::Duration acquire_timeout = absl::Seconds(2);
};

class PgPool {
 public:
  class Lease {
   public:
    Lease(PgPool* pool, std::unique_ptr<PgConnection> conn, bool reused)
        : pool_(pool), conn_(std::move(conn)), reused_(reused) {}
    Lease(Lease&&) = default;
    Lease& operator=(Lease&&) = delete;
    ~Lease() {
      if (conn_) pool_->Release(std::move(conn_));
    }
    PgConnection& operator*() { return *conn_; }
    PgConnection* operator->() { return conn_.get(); }
    // The connection sat idle in the pool before: it may have gone stale.
    bool reused() const { return reused_; }

   private:
    PgPool* pool_;
    std::unique_ptr<PgConnection> conn_;
    bool reused_;
  };

  explicit PgPool(PgPoolOptions options);

  // A connection, waiting up to acquire_timeout for a free slot.
  // UNAVAILABLE if the database cannot be reached or the pool is closed.
  absl::StatusOr<Lease> Acquire();

  // Drops every idle connection: after one turned out stale (the server
  // restarted), the others are stale too.
  void DiscardIdle();

  // Closes idle connections and refuses new leases; leases out keep working
  // until returned.
  void Close();

  // What the pool's connections open with; a connection of its own (the
  // read model's) starts from the same.
  const std::string& conninfo() const { return options_.conninfo; }
  std::vector<std::pair<std::string, std::string>> ConnectionDefaults() const;

 private:
  void Release(std::unique_ptr<PgConnection> conn);

  const PgPoolOptions options_;
  absl::Mutex mu_;
  std::vector<std::unique_ptr<PgConnection>> idle_ ABSL_GUARDED_BY(mu_);
  int leased_ ABSL_GUARDED_BY(mu_) = 0;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  // Last: gone before what it reads.
  metrics::Registry::Registration metrics_;
};

// Runs `read(lease)` on a pooled connection, once more on a fresh one if the
// pooled connection turns out to have gone stale (a database restart).
// `read` returns an absl::Status or StatusOr.
template <typename Read>
auto WithPooledConnection(PgPool& pool, Read read) -> decltype(read(std::declval<PgPool::Lease&>())) {
  for (bool stale_retry_left = true;; stale_retry_left = false) {
    ASSIGN_OR_RETURN(PgPool::Lease lease, pool.Acquire());
    auto result = read(lease);
    if (!result.ok() && absl::IsUnavailable(status_internal::StatusOf(result)) && lease.reused() && stale_retry_left) {
      pool.DiscardIdle();
      continue;
    }
    return result;
  }
}

}  // namespace segments::storage
