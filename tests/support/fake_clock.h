// A clock that moves only when a test says so. Thread-safe.
#pragma once

#include <absl/synchronization/mutex.h>

#include "domain/clock.h"

namespace segments::testing {

class FakeClock final : public domain::Clock {
 public:
  explicit FakeClock(absl::Time start = absl::FromCivil(absl::CivilSecond(2024, 3, 1, 12, 0, 0), absl::UTCTimeZone()))
      : now_(start) {}

  absl::Time Now() const override {
    absl::MutexLock lock(&mu_);
    return now_;
  }
  void Set(absl::Time now) {
    absl::MutexLock lock(&mu_);
    now_ = now;
  }
  void Advance(absl::Duration d) {
    absl::MutexLock lock(&mu_);
    now_ += d;
  }

 private:
  mutable absl::Mutex mu_;
  absl::Time now_;
};

}  // namespace segments::testing
