#include "jobs/idempotency_key_cleanup.h"

#include <absl/synchronization/mutex.h>

#include <catch2/catch.hpp>

#include <deque>
#include <utility>
#include <vector>

#include "support/fake_clock.h"

using namespace segments::domain;
using segments::jobs::IdempotencyKeyCleanup;
using segments::jobs::IdempotencyKeyCleanupOptions;
using segments::testing::FakeClock;

namespace {

constexpr int64_t kFail = -1;

// Answers each deletion with the next scripted count (kFail: UNAVAILABLE; 0
// once the script is done) and records what it was asked. Thread-safe.
class ScriptedStore final : public IdempotencyStore {
 public:
  explicit ScriptedStore(std::deque<int64_t> script = {}) : script_(std::move(script)) {}

  std::unique_ptr<KeyedCall> StartKeyedCall(IdempotencyKey, absl::Time) override { return nullptr; }
  absl::StatusOr<int64_t> DeleteKeysMadeBefore(absl::Time cutoff, int limit) override {
    absl::MutexLock lock(&mu_);
    calls_.emplace_back(cutoff, limit);
    if (script_.empty()) return 0;
    const int64_t next = script_.front();
    script_.pop_front();
    if (next == kFail) return absl::UnavailableError("database is down");
    return next;
  }
  std::vector<std::pair<absl::Time, int>> calls() {
    absl::MutexLock lock(&mu_);
    return calls_;
  }

 private:
  absl::Mutex mu_;
  std::deque<int64_t> script_;
  std::vector<std::pair<absl::Time, int>> calls_;
};

}  // namespace

TEST_CASE("a pass forgets keys older than the TTL, a batch at a time, until a batch comes back short",
          "[idempotency][cleanup]") {
  FakeClock clock;
  clock.Advance(absl::Nanoseconds(1500));
  ScriptedStore store({3, 3, 1});
  IdempotencyKeyCleanup cleanup(store, clock, {.ttl = absl::Hours(24), .period = absl::Minutes(1), .batch_size = 3});
  auto forgotten = cleanup.RunOnce();
  REQUIRE(forgotten.ok());
  CHECK(*forgotten == 7);
  const auto calls = store.calls();
  REQUIRE(calls.size() == 3);
  for (const auto& [cutoff, limit] : calls) {
    CHECK(cutoff == clock.Now() - absl::Nanoseconds(500) - absl::Hours(24));
    CHECK(limit == 3);
  }
}

TEST_CASE("a failed batch fails the pass", "[idempotency][cleanup]") {
  FakeClock clock;
  ScriptedStore store({2, kFail});
  IdempotencyKeyCleanup cleanup(store, clock, {.batch_size = 2});
  CHECK(cleanup.RunOnce().status().code() == absl::StatusCode::kUnavailable);
  CHECK(store.calls().size() == 2);
}

TEST_CASE("a running cleanup passes again every period, and retries after failures", "[idempotency][cleanup]") {
  FakeClock clock;
  ScriptedStore store({kFail, kFail});
  IdempotencyKeyCleanup cleanup(store, clock,
                                {.period = absl::Milliseconds(10), .max_backoff = absl::Milliseconds(20)});
  cleanup.Start();
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (store.calls().size() < 5 && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(1));
  cleanup.Stop();
  CHECK(store.calls().size() >= 5);
  cleanup.Stop();  // idempotent
}
