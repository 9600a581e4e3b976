#include "jobs/expiry_job.h"

#include <absl/status/status.h>
#include <fmt/format.h>

#include <algorithm>

#include "common/status_macros.h"
#include "metrics/registry.h"

namespace segments::jobs {
namespace {

struct ExpiryMetrics {
  metrics::Family<metrics::Counter>& runs = metrics::Default().AddCounterFamily(
      "segments_expiry_runs_total", "Passes of the TTL expiry job, by result (ok or error).", {"result"});
  metrics::Counter& ended = metrics::Default().AddCounter("segments_expiry_memberships_ended_total",
                                                          "Memberships the TTL expiry job ended at their deadline.");
  metrics::Histogram& seconds = metrics::Default().AddHistogram(
      "segments_expiry_run_seconds", "Duration of a TTL expiry pass, in seconds.", metrics::TaskBuckets());
  metrics::Gauge& lag = metrics::Default().AddGauge(
      "segments_expiry_lag_seconds",
      "At the start of the last pass: how long the earliest deadline still held had passed (0: none due).");
  metrics::Gauge& last_success = metrics::Default().AddGauge("segments_expiry_last_success_timestamp_seconds",
                                                             "When the last TTL expiry pass succeeded (Unix time).");
};

ExpiryMetrics& Metrics() {
  static auto* metrics = [] {
    auto* made = new ExpiryMetrics();
    made->runs.With({"ok"});
    made->runs.With({"error"});
    return made;
  }();
  return *metrics;
}
// Registered when the program starts, so that the series exist (at 0)
// before the first event: rates and dashboards need them.
[[maybe_unused]] const bool kExpiryMetricsRegistered = (Metrics(), true);

}  // namespace

ExpiryJob::ExpiryJob(domain::Store& store, const domain::Clock& clock, ExpiryJobOptions options)
    : store_(store),
      clock_(clock),
      options_(options),
      job_("TTL expiry job", "ended {} memberships", options.period, options.max_backoff,
           [this] { return ObservedRun(); }) {}

void ExpiryJob::Start() {
  job_.Start(
      fmt::format("every {}, {} memberships per batch", absl::FormatDuration(options_.period), options_.batch_size));
}

absl::StatusOr<int64_t> ExpiryJob::ObservedRun() {
  const absl::Time started = absl::Now();
  absl::StatusOr<int64_t> ended = RunOnce();
  Metrics().seconds.Observe(absl::ToDoubleSeconds(absl::Now() - started));
  Metrics().runs.With({ended.ok() ? "ok" : "error"}).Inc();
  if (ended.ok()) Metrics().last_success.Set(absl::ToDoubleSeconds(absl::Now() - absl::UnixEpoch()));
  return ended;
}

absl::StatusOr<int64_t> ExpiryJob::RunOnce() {
  const absl::Time now = domain::TruncateToMicros(clock_.Now());
  // How far behind the pass starts. Only a metric: a failure here is left
  // to the pass itself to meet and report.
  std::optional<absl::Time> earliest;
  const absl::Status read = store_.InTransaction([&](domain::Transaction& tx) -> absl::Status {
    ASSIGN_OR_RETURN(earliest, tx.memberships().EarliestDeadline());
    return absl::OkStatus();
  });
  if (read.ok()) Metrics().lag.Set(earliest ? std::max(0.0, absl::ToDoubleSeconds(now - *earliest)) : 0.0);
  int64_t total = 0;
  for (;;) {
    int64_t ended = 0;
    RETURN_IF_ERROR(store_.InTransaction([&](domain::Transaction& tx) -> absl::Status {
      ASSIGN_OR_RETURN(ended, tx.memberships().EndExpired(now, options_.batch_size));
      return absl::OkStatus();
    }));
    total += ended;
    Metrics().ended.Inc(static_cast<uint64_t>(ended));
    if (ended < options_.batch_size || job_.Stopping()) return total;
  }
}

}  // namespace segments::jobs
