#include "domain/work_metrics.h"

#include "metrics/registry.h"

namespace segments::domain {

void ObserveMembershipWork(std::string_view kind, absl::Duration took, int64_t memberships) {
  static metrics::Family<metrics::Histogram>& seconds = metrics::Default().AddHistogramFamily(
      "segments_membership_task_seconds",
      "Duration of work over many users (a fill, a percentage change, a segment's deletion, a bulk call), in "
      "seconds, by kind.",
      {"kind"}, metrics::TaskBuckets());
  static metrics::Family<metrics::Counter>& users = metrics::Default().AddCounterFamily(
      "segments_membership_task_users_total", "Memberships added or ended by work over many users, by kind.",
      {"kind"});
  seconds.With({kind}).Observe(absl::ToDoubleSeconds(took));
  users.With({kind}).Inc(static_cast<uint64_t>(memberships < 0 ? 0 : memberships));
}

}  // namespace segments::domain
