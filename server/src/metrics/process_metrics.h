// What every Prometheus target is expected to say about itself: the
// standard process_* metrics (read from /proc at each scrape) and a build
// info gauge.
#pragma once

#include "metrics/registry.h"

namespace segments::metrics {

// Until the registration is destroyed, `registry` exposes process_*
// metrics of this process and segments_build_info{version,revision} 1.
[[nodiscard]] Registry::Registration ExposeProcessAndBuild(Registry& registry);

}  // namespace segments::metrics
