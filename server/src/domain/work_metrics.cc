#include "domain/work_metrics.h"

#include <array>

#include "metrics/registry.h"

namespace segments::domain {
namespace {

constexpr std::array<std::string_view, 5> kKinds = {"fill", "percent_change", "segment_deletion", "bulk_add",
                                                    "bulk_remove"};

struct WorkMetrics {
  metrics::Family<metrics::Histogram>& seconds = metrics::Default().AddHistogramFamily(
      "segments_membership_task_seconds",
      "Duration of work over many users (a fill, a percentage change, a segment's deletion, a bulk call), in "
      "seconds, by kind.",
      {"kind"}, metrics::TaskBuckets());
  metrics::Family<metrics::Counter>& users = metrics::Default().AddCounterFamily(
      "segments_membership_task_users_total", "Memberships added or ended by work over many users, by kind.", {"kind"});
};

WorkMetrics& Metrics() {
  static auto* metrics = [] {
    auto* made = new WorkMetrics();
    for (std::string_view kind : kKinds) {
      made->seconds.With({kind});
      made->users.With({kind});
    }
    return made;
  }();
  return *metrics;
}
// Registered when the program starts, so that the series exist (at 0)
// before the first event: rates and dashboards need them.
[[maybe_unused]] const bool kWorkMetricsRegistered = (Metrics(), true);

}  // namespace

void ObserveMembershipWork(std::string_view kind, absl::Duration took, int64_t memberships) {
  Metrics().seconds.With({kind}).Observe(absl::ToDoubleSeconds(took));
  Metrics().users.With({kind}).Inc(static_cast<uint64_t>(memberships < 0 ? 0 : memberships));
}

}  // namespace segments::domain
