#include "storage/pg_pool.h"

#include <fmt/format.h>

namespace segments::storage {

PgPool::PgPool(PgPoolOptions options) : options_(std::move(options)) {}

std::vector<std::pair<std::string, std::string>> PgPool::ConnectionDefaults() const {
  return {
      {"connect_timeout", std::to_string(std::max<int64_t>(1, absl::ToInt64Seconds(options_.connect_timeout)))},
      {"application_name", "segments"},
      // Notice a dead server within ~25 s even on an idle connection.
      {"keepalives", "1"},
      {"keepalives_idle", "10"},
      {"keepalives_interval", "5"},
      {"keepalives_count", "3"},
      {"options", fmt::format("-c statement_timeout={}", absl::ToInt64Milliseconds(options_.statement_timeout))},
  };
}

absl::StatusOr<PgPool::Lease> PgPool::Acquire() {
  {
    absl::MutexLock lock(&mu_);
    auto can_lend = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
      return closed_ || !idle_.empty() || leased_ < options_.size;
    };
    if (!mu_.AwaitWithTimeout(absl::Condition(&can_lend), options_.acquire_timeout)) {
      return absl::UnavailableError("all database connections are busy");
    }
    if (closed_) return absl::UnavailableError("database pool is closed");
    ++leased_;
    while (!idle_.empty()) {
      std::unique_ptr<PgConnection> conn = std::move(idle_.back());
      idle_.pop_back();
      if (!conn->Broken()) return Lease(this, std::move(conn), /*reused=*/true);
    }
  }
  // Connect outside the lock: it can take up to connect_timeout.
  auto conn = PgConnection::Open(options_.conninfo, ConnectionDefaults());
  if (!conn.ok()) {
    absl::MutexLock lock(&mu_);
    --leased_;
    return conn.status();
  }
  return Lease(this, *std::move(conn), /*reused=*/false);
}

void PgPool::Release(std::unique_ptr<PgConnection> conn) {
  absl::MutexLock lock(&mu_);
  --leased_;
  if (!closed_ && !conn->Broken()) idle_.push_back(std::move(conn));
}

void PgPool::DiscardIdle() {
  std::vector<std::unique_ptr<PgConnection>> dropped;
  absl::MutexLock lock(&mu_);
  dropped.swap(idle_);
}

void PgPool::Close() {
  std::vector<std::unique_ptr<PgConnection>> closing;
  {
    absl::MutexLock lock(&mu_);
    closed_ = true;
    closing.swap(idle_);
  }
}

}  // namespace segments::storage
