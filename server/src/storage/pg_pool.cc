#include "storage/pg_pool.h"

#include <fmt/format.h>

namespace segments::storage {
namespace {

struct PoolMetrics {
  metrics::Gauge& max = metrics::Default().AddGauge("segments_db_pool_max_connections",
                                                    "Database connections the pool may open (--db-pool-size).");
  metrics::Gauge& open =
      metrics::Default().AddGauge("segments_db_pool_open_connections", "Database connections open or opening.");
  metrics::Gauge& in_use =
      metrics::Default().AddGauge("segments_db_pool_in_use_connections", "Database connections lent out.");
  metrics::Histogram& wait_seconds = metrics::Default().AddHistogram(
      "segments_db_pool_wait_seconds", "Time a call waited for a free database connection, in seconds.",
      metrics::LatencyBuckets());
  metrics::Counter& acquire_failures = metrics::Default().AddCounter(
      "segments_db_pool_acquire_failures_total",
      "Requests for a connection that failed: none free in time, the pool closed, or the database unreachable.");
};

PoolMetrics& Metrics() {
  static auto* metrics = new PoolMetrics();
  return *metrics;
}

}  // namespace

PgPool::PgPool(PgPoolOptions options) : options_(std::move(options)) {
  Metrics().max.Set(options_.size);
  metrics_ = metrics::Default().OnScrape([this] {
    absl::MutexLock lock(&mu_);
    Metrics().in_use.Set(leased_);
    Metrics().open.Set(leased_ + static_cast<double>(idle_.size()));
  });
}

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
    const absl::Time asked = absl::Now();
    const bool lent = mu_.AwaitWithTimeout(absl::Condition(&can_lend), options_.acquire_timeout);
    Metrics().wait_seconds.Observe(absl::ToDoubleSeconds(absl::Now() - asked));
    if (!lent) {
      Metrics().acquire_failures.Inc();
      return absl::UnavailableError("all database connections are busy");
    }
    if (closed_) {
      Metrics().acquire_failures.Inc();
      return absl::UnavailableError("database pool is closed");
    }
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
    Metrics().acquire_failures.Inc();
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
