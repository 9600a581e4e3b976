#include "jobs/idempotency_key_cleanup.h"

#include <fmt/format.h>

#include "common/status_macros.h"

namespace segments::jobs {

IdempotencyKeyCleanup::IdempotencyKeyCleanup(domain::IdempotencyStore& store, const domain::Clock& clock,
                                             IdempotencyKeyCleanupOptions options)
    : store_(store),
      clock_(clock),
      options_(options),
      job_("idempotency key cleanup", "forgot {} keys", options.period, options.max_backoff,
           [this] { return RunOnce(); }) {}

void IdempotencyKeyCleanup::Start() {
  job_.Start(fmt::format("every {}, keys older than {}, {} per batch", absl::FormatDuration(options_.period),
                         absl::FormatDuration(options_.ttl), options_.batch_size));
}

absl::StatusOr<int64_t> IdempotencyKeyCleanup::RunOnce() {
  const absl::Time cutoff = domain::TruncateToMicros(clock_.Now()) - options_.ttl;
  int64_t total = 0;
  for (;;) {
    ASSIGN_OR_RETURN(const int64_t deleted, store_.DeleteKeysMadeBefore(cutoff, options_.batch_size));
    total += deleted;
    if (deleted < options_.batch_size || job_.Stopping()) return total;
  }
}

}  // namespace segments::jobs
