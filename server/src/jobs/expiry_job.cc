#include "jobs/expiry_job.h"

#include <absl/status/status.h>
#include <fmt/format.h>

#include "common/status_macros.h"

namespace segments::jobs {

ExpiryJob::ExpiryJob(domain::Store& store, const domain::Clock& clock, ExpiryJobOptions options)
    : store_(store),
      clock_(clock),
      options_(options),
      job_("TTL expiry job", "ended {} memberships", options.period, options.max_backoff,
           [this] { return RunOnce(); }) {}

void ExpiryJob::Start() {
  job_.Start(
      fmt::format("every {}, {} memberships per batch", absl::FormatDuration(options_.period), options_.batch_size));
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
    if (ended < options_.batch_size || job_.Stopping()) return total;
  }
}

}  // namespace segments::jobs
