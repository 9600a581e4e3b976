// A background pass run every `period` on a thread of its own: the loop,
// the pause and the logs that the jobs share. A failed pass is logged and
// retried after a pause that doubles from period / 10 up to max_backoff; the
// job never stops the server and never stops by itself.
#pragma once

#include <absl/base/thread_annotations.h>
#include <absl/functional/any_invocable.h>
#include <absl/status/statusor.h>
#include <absl/synchronization/mutex.h>
#include <absl/time/time.h>

#include <cstdint>
#include <string>
#include <thread>

namespace segments::jobs {

class PeriodicJob {
 public:
  // `name` starts each log line ("TTL expiry job"); `done` says what a pass
  // did, with {} for the count `pass` returns ("ended {} memberships"), and
  // is logged when that is not 0.
  PeriodicJob(std::string name, std::string done, absl::Duration period, absl::Duration max_backoff,
              absl::AnyInvocable<absl::StatusOr<int64_t>()> pass)
      : name_(std::move(name)),
        done_(std::move(done)),
        period_(period),
        max_backoff_(max_backoff),
        pass_(std::move(pass)) {}
  ~PeriodicJob() { Stop(); }
  PeriodicJob(const PeriodicJob&) = delete;
  PeriodicJob& operator=(const PeriodicJob&) = delete;

  // Runs passes until Stop(), the first one at once; `started` is logged.
  void Start(const std::string& started);
  // Waits for a pass in progress to return. Idempotent.
  void Stop();
  // For a pass that works in batches: whether to end after this one.
  bool Stopping();

  // The pause before the next pass after `failures` failed passes in a row.
  absl::Duration PauseAfter(int failures) const;

 private:
  void Loop();

  const std::string name_;
  const std::string done_;
  const absl::Duration period_;
  const absl::Duration max_backoff_;
  absl::AnyInvocable<absl::StatusOr<int64_t>()> pass_;

  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace segments::jobs
