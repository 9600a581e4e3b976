#include "jobs/periodic_job.h"

#include <fmt/format.h>

#include <algorithm>

#include "common/log.h"

namespace segments::jobs {

void PeriodicJob::Start(const std::string& started) {
  log::Info("{}: {}", name_, started);
  thread_ = std::thread([this] { Loop(); });
}

void PeriodicJob::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

bool PeriodicJob::Stopping() {
  absl::MutexLock lock(&mu_);
  return stopping_;
}

absl::Duration PeriodicJob::PauseAfter(int failures) const {
  if (failures == 0) return period_;
  absl::Duration pause = std::max(period_ / 10, absl::Milliseconds(1));
  for (int i = 1; i < failures && pause < max_backoff_; ++i) pause *= 2;
  return std::min(pause, max_backoff_);
}

void PeriodicJob::Loop() {
  int failures = 0;
  for (;;) {
    auto done = pass_();
    if (done.ok()) {
      if (failures > 0) log::Info("{} recovered after {} failed passes", name_, failures);
      failures = 0;
      if (*done > 0) log::Info("{} {}", name_, fmt::format(fmt::runtime(done_), *done));
    } else {
      ++failures;
      log::Warning("{} failed (attempt {}), retrying in {}: {}", name_, failures,
                   absl::FormatDuration(PauseAfter(failures)), done.status().ToString());
    }
    absl::MutexLock lock(&mu_);
    if (mu_.AwaitWithTimeout(absl::Condition(&stopping_), PauseAfter(failures))) return;
  }
}

}  // namespace segments::jobs
