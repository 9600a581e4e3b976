// The TTL expiry job: every `period`, ends the memberships whose deadline has
// passed, in batches, each with a `remove` event of reason ttl stamped at its
// deadline (MembershipRepository::EndExpired). Reads never need it (they filter
// on the deadline); it makes the history and the tables catch up.
//
// Several instances may run it at once: rows are claimed with SKIP LOCKED.
// A database error is logged and retried with a growing pause; the job never
// stops the server and never stops by itself.
#pragma once

#include <absl/base/thread_annotations.h>
#include <absl/status/statusor.h>
#include <absl/synchronization/mutex.h>
#include <absl/time/time.h>

#include <thread>

#include "domain/clock.h"
#include "domain/repositories/unit_of_work.h"

namespace segments::jobs {

struct ExpiryJobOptions {
  absl::Duration period = absl::Seconds(10);
  int batch_size = 1000;
  // Pauses after failures double from `period` / 10 up to this.
  absl::Duration max_backoff = absl::Seconds(30);
};

class ExpiryJob {
 public:
  ExpiryJob(domain::Store& store, const domain::Clock& clock, ExpiryJobOptions options)
      : store_(store), clock_(clock), options_(options) {}
  ~ExpiryJob() { Stop(); }
  ExpiryJob(const ExpiryJob&) = delete;
  ExpiryJob& operator=(const ExpiryJob&) = delete;

  // Runs passes on a thread of its own until Stop().
  void Start();
  // Waits for a pass in progress to finish its batch. Idempotent.
  void Stop();

  // One pass: ends every membership due at the clock's now, a batch per
  // transaction, until a batch comes back short. Returns how many ended.
  absl::StatusOr<int64_t> RunOnce();

  // The pause before the next pass after `failures` failed passes in a row.
  absl::Duration PauseAfter(int failures) const;

 private:
  void Loop();

  domain::Store& store_;
  const domain::Clock& clock_;
  const ExpiryJobOptions options_;

  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace segments::jobs
