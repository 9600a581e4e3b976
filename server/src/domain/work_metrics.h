// Metrics of the work that changes many memberships at once: automatic
// assignment's tasks (a new segment's fill, a percentage change, a deleted
// segment's removals) and the bulk calls.
#pragma once

#include <absl/time/time.h>

#include <cstdint>
#include <string_view>

namespace segments::domain {

// `kind`: fill, percent_change, segment_deletion, bulk_add or bulk_remove;
// `memberships`: how many it added or ended.
void ObserveMembershipWork(std::string_view kind, absl::Duration took, int64_t memberships);

}  // namespace segments::domain
