// The cleanup of idempotency keys: every `period`, forgets the keys made
// more than `ttl` ago (IdempotencyStore::DeleteKeysMadeBefore), a batch per
// statement, so that a key is remembered for at least `ttl` and at most
// `ttl` + `period` (and the time a pass takes).
//
// Several instances may run it at once: each skips the rows another is
// deleting. Failures are logged and retried with a growing pause
// (PeriodicJob).
#pragma once

#include <absl/status/statusor.h>
#include <absl/time/time.h>

#include "domain/clock.h"
#include "domain/repositories/idempotency_store.h"
#include "jobs/periodic_job.h"

namespace segments::jobs {

struct IdempotencyKeyCleanupOptions {
  absl::Duration ttl = absl::Hours(24);
  absl::Duration period = absl::Minutes(1);
  int batch_size = 1000;
  absl::Duration max_backoff = absl::Seconds(30);
};

class IdempotencyKeyCleanup {
 public:
  IdempotencyKeyCleanup(domain::IdempotencyStore& store, const domain::Clock& clock,
                        IdempotencyKeyCleanupOptions options);

  // Runs passes on a thread of its own until Stop().
  void Start();
  // Waits for a pass in progress to finish its batch. Idempotent.
  void Stop() { job_.Stop(); }

  // One pass: forgets every key made before the clock's now minus the TTL,
  // a batch at a time, until a batch comes back short. Returns how many.
  absl::StatusOr<int64_t> RunOnce();

 private:
  domain::IdempotencyStore& store_;
  const domain::Clock& clock_;
  const IdempotencyKeyCleanupOptions options_;
  PeriodicJob job_;
};

}  // namespace segments::jobs
