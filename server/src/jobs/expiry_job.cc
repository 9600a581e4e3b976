#include "jobs/expiry_job.h"

#include <absl/status/status.h>

#include <algorithm>

#include "common/log.h"
#include "common/status_macros.h"

namespace segments::jobs {

void ExpiryJob::Start() {
  thread_ = std::thread([this] { Loop(); });
}

void ExpiryJob::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

absl::StatusOr<int64_t> ExpiryJob::RunOnce() {
  const absl::Time now = domain::TruncateToMicros(clock_.Now());
  int64_t total = 0;
  for (;;) {
    int64_t ended = 0;
    RETURN_IF_ERROR(store_.InTransaction([&](domain::Transaction& tx) -> absl::Status {
      ASSIGN_OR_RETURN(ended, tx.memberships().EndExpired(now, options_.batch_size));
      return absl::OkStatus();
    }));
    total += ended;
    if (ended < options_.batch_size) return total;
    absl::MutexLock lock(&mu_);
    if (stopping_) return total;
  }
}

absl::Duration ExpiryJob::PauseAfter(int failures) const {
  if (failures == 0) return options_.period;
  absl::Duration pause = std::max(options_.period / 10, absl::Milliseconds(1));
  for (int i = 1; i < failures && pause < options_.max_backoff; ++i) pause *= 2;
  return std::min(pause, options_.max_backoff);
}

void ExpiryJob::Loop() {
  log::Info("TTL expiry job: every {}, {} memberships per batch", absl::FormatDuration(options_.period),
            options_.batch_size);
  int failures = 0;
  for (;;) {
    auto ended = RunOnce();
    if (ended.ok()) {
      if (failures > 0) log::Info("TTL expiry job recovered after {} failed passes", failures);
      failures = 0;
      if (*ended > 0) log::Info("TTL expiry job ended {} memberships", *ended);
    } else {
      ++failures;
      log::Warning("TTL expiry job failed (attempt {}), retrying in {}: {}", failures,
                   absl::FormatDuration(PauseAfter(failures)), ended.status().ToString());
    }
    absl::MutexLock lock(&mu_);
    if (mu_.AwaitWithTimeout(absl::Condition(&stopping_), PauseAfter(failures))) return;
  }
}

}  // namespace segments::jobs
