#include "common/worker_pool.h"

#include <catch2/catch.hpp>

#include <atomic>

#include <absl/synchronization/notification.h>

using segments::WorkerPool;

TEST_CASE("every accepted task runs, also those queued at Stop", "[workers]") {
  std::atomic<int> ran{0};
  WorkerPool pool(2, 1000);
  for (int i = 0; i < 500; ++i) REQUIRE(pool.TrySubmit([&ran] { ran.fetch_add(1); }));
  pool.Stop();
  CHECK(ran.load() == 500);
  CHECK_FALSE(pool.TrySubmit([] {}));
}

TEST_CASE("a full queue refuses instead of growing", "[workers]") {
  absl::Notification release;
  absl::Notification started;
  WorkerPool pool(1, 2);
  REQUIRE(pool.TrySubmit([&] {
    started.Notify();
    release.WaitForNotification();
  }));
  started.WaitForNotification();
  CHECK(pool.TrySubmit([] {}));
  CHECK(pool.TrySubmit([] {}));
  CHECK_FALSE(pool.TrySubmit([] {}));
  release.Notify();
}
