#include "jobs/segment_task_resumer.h"

#include <fmt/format.h>

#include <utility>

#include "common/status_macros.h"

namespace segments::jobs {

SegmentTaskResumer::SegmentTaskResumer(domain::Store& store, const domain::Clock& clock,
                                       SegmentTaskResumerOptions options)
    : tasks_(store, clock, options.chunks),
      options_(std::move(options)),
      job_("segment task resumer", "finished {} segment tasks left unfinished", options_.period, options_.max_backoff,
           [this] { return RunOnce(); }) {}

void SegmentTaskResumer::Start() {
  job_.Start(fmt::format("every {}, tasks idle for {}", absl::FormatDuration(options_.period),
                         absl::FormatDuration(options_.stale_after)));
}

absl::StatusOr<int64_t> SegmentTaskResumer::RunOnce() {
  ASSIGN_OR_RETURN(const int finished, tasks_.FinishStale(options_.stale_after));
  return finished;
}

}  // namespace segments::jobs
