// The only source of "now" for the domain, so tests can move time by hand.
#pragma once

#include <absl/time/clock.h>
#include <absl/time/time.h>

namespace segments::domain {

class Clock {
 public:
  virtual ~Clock() = default;
  virtual absl::Time Now() const = 0;
};

// Times are kept to the microsecond, as PostgreSQL stores them; the use cases
// compare and store times at that precision only.
inline absl::Time TruncateToMicros(absl::Time t) {
  return absl::UnixEpoch() + absl::Floor(t - absl::UnixEpoch(), absl::Microseconds(1));
}

class SystemClock final : public Clock {
 public:
  absl::Time Now() const override { return absl::Now(); }
};

}  // namespace segments::domain
