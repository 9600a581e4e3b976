// The TTL expiry job: every `period`, ends the memberships whose deadline has
// passed, in batches, each with a `remove` event of reason ttl stamped at its
// deadline (MembershipRepository::EndExpired). Reads never need it (they filter
// on the deadline); it makes the history and the tables catch up.
//
// Several instances may run it at once: rows are claimed with SKIP LOCKED.
// A database error is logged and retried with a growing pause (PeriodicJob).
#pragma once

#include <absl/status/statusor.h>
#include <absl/time/time.h>

#include "domain/clock.h"
#include "domain/repositories/unit_of_work.h"
#include "jobs/periodic_job.h"

namespace segments::jobs {

struct ExpiryJobOptions {
  absl::Duration period = absl::Seconds(10);
  int batch_size = 1000;
  // Pauses after failures double from `period` / 10 up to this.
  absl::Duration max_backoff = absl::Seconds(30);
};

class ExpiryJob {
 public:
  ExpiryJob(domain::Store& store, const domain::Clock& clock, ExpiryJobOptions options);

  // Runs passes on a thread of its own until Stop().
  void Start();
  // Waits for a pass in progress to finish its batch. Idempotent.
  void Stop() { job_.Stop(); }

  // One pass: ends every membership due at the clock's now, a batch per
  // transaction, until a batch comes back short. Returns how many ended.
  // Sets segments_expiry_lag_seconds from the earliest deadline first.
  absl::StatusOr<int64_t> RunOnce();

  // The pause before the next pass after `failures` failed passes in a row.
  absl::Duration PauseAfter(int failures) const { return job_.PauseAfter(failures); }

 private:
  // RunOnce, timed and counted (segments_expiry_*).
  absl::StatusOr<int64_t> ObservedRun();

  domain::Store& store_;
  const domain::Clock& clock_;
  const ExpiryJobOptions options_;
  PeriodicJob job_;
};

}  // namespace segments::jobs
