// Finishes the changes of whole segments (domain/segment_tasks.h) that an
// instance left unfinished when it stopped: every `period`, each task no
// chunk has run for in `stale_after` is run to its end. A task the call
// that started it is still running has a fresh heartbeat and is left alone;
// were two instances to run one task at once, each chunk would still be
// done once (chunks lock the task's row and continue where it stands).
#pragma once

#include <absl/status/statusor.h>
#include <absl/time/time.h>

#include "domain/segment_tasks.h"
#include "jobs/periodic_job.h"

namespace segments::jobs {

struct SegmentTaskResumerOptions {
  absl::Duration period = absl::Seconds(5);
  absl::Duration stale_after = absl::Seconds(30);
  absl::Duration max_backoff = absl::Seconds(30);
  // Chunk size and pause, as for the calls' own tasks.
  domain::SegmentTaskOptions chunks{};
};

class SegmentTaskResumer {
 public:
  SegmentTaskResumer(domain::Store& store, const domain::Clock& clock, SegmentTaskResumerOptions options);

  // Runs passes on a thread of its own until Stop().
  void Start();
  // Waits for a pass in progress to finish. Idempotent.
  void Stop() { job_.Stop(); }

  // One pass. Returns how many tasks it finished.
  absl::StatusOr<int64_t> RunOnce();

 private:
  domain::SegmentTasks tasks_;
  const SegmentTaskResumerOptions options_;
  PeriodicJob job_;
};

}  // namespace segments::jobs
