#include "jobs/expiry_job.h"

#include <absl/strings/str_cat.h>
#include <absl/synchronization/mutex.h>

#include <catch2/catch.hpp>

#include <functional>
#include <limits>

#include "support/domain_testing.h"
#include "support/fake_clock.h"
#include "support/fake_store.h"

using namespace segments::domain;
using segments::jobs::ExpiryJob;
using segments::jobs::ExpiryJobOptions;
using segments::testing::FakeClock;
using segments::testing::FakeStore;

namespace {

const segments::domain::UserId kU1 = segments::testing::Id("0b7f9f5e-1c2d-4e3f-8a9b-0c1d2e3f4a5b");
const segments::domain::UserId kU2 = segments::testing::Id("5d0c1b2a-3e4f-4a5b-8c6d-7e8f9a0b1c2d");

// The fake store behind a mutex, for the job's own thread: the test reads
// and changes the fake only through Locked().
class LockedStore final : public Store {
 public:
  // Runs `f` on the fake store while no job call is in progress.
  template <typename F>
  auto Locked(F f) {
    absl::MutexLock lock(&mu_);
    return f(store_);
  }

  absl::Status InTransaction(absl::FunctionRef<absl::Status(Transaction&)> work) override {
    absl::MutexLock lock(&mu_);
    return store_.InTransaction(work);
  }
  // The job reads nothing outside a transaction.
  SegmentQueries& segments() override { return store_.segments(); }
  MembershipQueries& memberships() override { return store_.memberships(); }
  HistoryQueries& history() override { return store_.history(); }

 private:
  absl::Mutex mu_;
  FakeStore store_;
};

// Polls `done` until it holds or a generous deadline passes; true if it held.
bool WaitFor(const std::function<bool()>& done, absl::Duration timeout = absl::Seconds(10)) {
  const absl::Time deadline = absl::Now() + timeout;
  while (!done()) {
    if (absl::Now() > deadline) return false;
    absl::SleepFor(absl::Milliseconds(1));
  }
  return true;
}

void AddSegment(FakeStore& store, SegmentId id, const std::string& slug) {
  Segment segment;
  segment.id = id;
  segment.slug = slug;
  segment.salt = "salt";
  store.state.segments[id] = segment;
}

void AddMembership(FakeStore& store, const UserId& user, SegmentId segment, std::optional<absl::Time> expires) {
  store.state.users[user] = UserState::kActive;
  store.state.memberships[{user, segment}] =
      Membership{segment, store.state.segments.at(segment).slug, absl::UnixEpoch(), expires};
}

struct Fixture {
  FakeStore store;
  FakeClock clock;
  absl::Time now = clock.Now();

  Fixture() {
    for (SegmentId id = 1; id <= 6; ++id) AddSegment(store, id, absl::StrCat("S", id));
  }

  ExpiryJob Job(int batch_size = 1000) { return ExpiryJob(store, clock, {absl::Seconds(10), batch_size}); }
};

}  // namespace

TEST_CASE_METHOD(Fixture, "a pass ends due memberships with ttl events stamped at their deadlines", "[expiry]") {
  AddMembership(store, kU1, 1, now - absl::Hours(1));         // long due
  AddMembership(store, kU2, 2, now);                          // due right now
  AddMembership(store, kU1, 3, now + absl::Microseconds(1));  // not yet
  AddMembership(store, kU2, 4, std::nullopt);                 // permanent
  ExpiryJob job(store, clock, {});

  auto ended = job.RunOnce();
  REQUIRE(ended.ok());
  CHECK(*ended == 2);
  CHECK(store.state.memberships.size() == 2);
  CHECK(store.state.memberships.contains({kU1, 3}));
  CHECK(store.state.memberships.contains({kU2, 4}));
  REQUIRE(store.state.history.size() == 2);
  for (const HistoryEvent& e : store.state.history) {
    CHECK(e.operation == Operation::kRemove);
    CHECK(e.reason == Reason::kTtl);
  }
  CHECK(store.state.history[0].user_id == kU1);
  CHECK(store.state.history[0].slug == "S1");
  CHECK(store.state.history[0].at == now - absl::Hours(1));  // the deadline, not now
  CHECK(store.state.history[1].user_id == kU2);
  CHECK(store.state.history[1].slug == "S2");
  CHECK(store.state.history[1].at == now);

  // Nothing more is due until the clock moves.
  auto again = job.RunOnce();
  REQUIRE(again.ok());
  CHECK(*again == 0);
  CHECK(store.state.history.size() == 2);

  clock.Advance(absl::Minutes(5));
  auto later = job.RunOnce();
  REQUIRE(later.ok());
  CHECK(*later == 1);
  REQUIRE(store.state.history.size() == 3);
  CHECK(store.state.history[2].slug == "S3");
  CHECK(store.state.history[2].at == now + absl::Microseconds(1));
  CHECK(store.state.memberships.size() == 1);
  CHECK(store.state.memberships.contains({kU2, 4}));
}

TEST_CASE("every batch of a pass uses one now, the clock's truncated to microseconds, and the batch size", "[expiry]") {
  // Records what the job asks of the store.
  struct RecordingStore final : FakeStore {
    FakeStore& fake = *this;
    std::vector<std::pair<absl::Time, int>> calls;
    FakeClock* clock = nullptr;

    RecordingStore() {
      on_end_expired = [this](absl::Time now, int limit) {
        calls.emplace_back(now, limit);
        // Time moves on during the pass; the pass must keep its own now.
        clock->Advance(absl::Seconds(1));
      };
    }
  };

  FakeClock clock;
  RecordingStore store;
  store.clock = &clock;
  const absl::Time second = clock.Now();
  clock.Set(second + absl::Nanoseconds(1500));
  AddSegment(store.fake, 1, "S1");
  AddSegment(store.fake, 2, "S2");
  AddSegment(store.fake, 3, "S3");
  AddMembership(store.fake, kU1, 1, second);
  AddMembership(store.fake, kU1, 2, second + absl::Microseconds(1));
  AddMembership(store.fake, kU1, 3, second + absl::Microseconds(2));  // due only after the pass began

  ExpiryJob job(store, clock, {absl::Seconds(10), 1});
  auto ended = job.RunOnce();
  REQUIRE(ended.ok());
  CHECK(*ended == 2);
  REQUIRE(store.calls.size() == 3);
  for (const auto& [now, limit] : store.calls) {
    CHECK(now == second + absl::Microseconds(1));
    CHECK(limit == 1);
  }
  CHECK(store.fake.state.memberships.contains({kU1, 3}));
}

TEST_CASE_METHOD(Fixture, "a pass works in batches until one comes back short", "[expiry]") {
  SECTION("5 due, batches of 2: 2 + 2 + 1") {
    for (SegmentId id = 1; id <= 5; ++id) AddMembership(store, kU1, id, now - absl::Seconds(id));
    auto ended = Job(2).RunOnce();
    REQUIRE(ended.ok());
    CHECK(*ended == 5);
    CHECK(store.expiry_batches == 3);
    CHECK(store.state.memberships.empty());
    CHECK(store.state.history.size() == 5);
  }
  SECTION("4 due, batches of 2: 2 + 2 + an empty one") {
    for (SegmentId id = 1; id <= 4; ++id) AddMembership(store, kU1, id, now - absl::Seconds(id));
    auto ended = Job(2).RunOnce();
    REQUIRE(ended.ok());
    CHECK(*ended == 4);
    CHECK(store.expiry_batches == 3);
    CHECK(store.state.memberships.empty());
  }
  SECTION("5 due, one batch when it is big enough") {
    for (SegmentId id = 1; id <= 5; ++id) AddMembership(store, kU1, id, now - absl::Seconds(id));
    auto ended = Job(1000).RunOnce();
    REQUIRE(ended.ok());
    CHECK(*ended == 5);
    CHECK(store.expiry_batches == 1);
  }
  SECTION("nothing due: one call") {
    AddMembership(store, kU1, 1, now + absl::Seconds(1));
    auto ended = Job(2).RunOnce();
    REQUIRE(ended.ok());
    CHECK(*ended == 0);
    CHECK(store.expiry_batches == 1);
    CHECK(store.state.memberships.size() == 1);
  }
  SECTION("only due ones are taken, even across batches") {
    for (SegmentId id = 1; id <= 3; ++id) AddMembership(store, kU1, id, now - absl::Seconds(id));
    for (SegmentId id = 4; id <= 6; ++id) AddMembership(store, kU2, id, now + absl::Seconds(id));
    auto ended = Job(1).RunOnce();
    REQUIRE(ended.ok());
    CHECK(*ended == 3);
    CHECK(store.expiry_batches == 4);
    CHECK(store.state.memberships.size() == 3);
    for (const auto& [key, m] : store.state.memberships) CHECK(key.first == kU2);
  }
}

TEST_CASE_METHOD(Fixture, "a failing store fails the pass and changes nothing", "[expiry]") {
  AddMembership(store, kU1, 1, now - absl::Hours(1));
  store.failure = absl::UnavailableError("database is down");
  auto ended = Job().RunOnce();
  CHECK(ended.status().code() == absl::StatusCode::kUnavailable);
  CHECK(store.state.memberships.size() == 1);
  CHECK(store.state.history.empty());
}

TEST_CASE("the pause after failures grows from period/10 and stops at max_backoff", "[expiry]") {
  FakeStore store;
  FakeClock clock;
  const ExpiryJob job(store, clock, {absl::Seconds(10), 1000, absl::Seconds(30)});
  CHECK(job.PauseAfter(0) == absl::Seconds(10));
  CHECK(job.PauseAfter(1) == absl::Seconds(1));
  CHECK(job.PauseAfter(2) == absl::Seconds(2));
  CHECK(job.PauseAfter(3) == absl::Seconds(4));
  CHECK(job.PauseAfter(4) == absl::Seconds(8));
  CHECK(job.PauseAfter(5) == absl::Seconds(16));
  CHECK(job.PauseAfter(6) == absl::Seconds(30));
  CHECK(job.PauseAfter(7) == absl::Seconds(30));
  CHECK(job.PauseAfter(1000) == absl::Seconds(30));
  CHECK(job.PauseAfter(std::numeric_limits<int>::max()) == absl::Seconds(30));
  for (int failures = 2; failures < 100; ++failures) {
    CHECK(job.PauseAfter(failures) >= job.PauseAfter(failures - 1));
    CHECK(job.PauseAfter(failures) <= absl::Seconds(30));
  }

  // Tiny periods still pause at least 1ms; a small cap caps the first pause too.
  CHECK(ExpiryJob(store, clock, {absl::Milliseconds(5), 1, absl::Seconds(1)}).PauseAfter(1) == absl::Milliseconds(1));
  CHECK(ExpiryJob(store, clock, {absl::Milliseconds(5), 1, absl::Seconds(1)}).PauseAfter(0) == absl::Milliseconds(5));
  CHECK(ExpiryJob(store, clock, {absl::Seconds(10), 1, absl::Milliseconds(200)}).PauseAfter(1) ==
        absl::Milliseconds(200));
  // The default options: 10s period, first retry after 1s, at most 30s.
  const ExpiryJob defaults(store, clock, {});
  CHECK(defaults.PauseAfter(0) == absl::Seconds(10));
  CHECK(defaults.PauseAfter(1) == absl::Seconds(1));
  CHECK(defaults.PauseAfter(50) == absl::Seconds(30));
}

TEST_CASE("a running job ends memberships as they fall due", "[expiry][thread]") {
  LockedStore store;
  FakeClock clock;
  const absl::Time now = clock.Now();
  store.Locked([&](FakeStore& s) {
    AddSegment(s, 1, "S1");
    AddSegment(s, 2, "S2");
    AddMembership(s, kU1, 1, now - absl::Seconds(1));
    AddMembership(s, kU1, 2, now + absl::Hours(1));
  });

  ExpiryJob job(store, clock, {absl::Milliseconds(20), 1000, absl::Milliseconds(40)});
  job.Start();
  // The first pass runs at once.
  CHECK(WaitFor([&] { return store.Locked([](FakeStore& s) { return s.state.memberships.size() == 1; }); }));
  clock.Advance(absl::Hours(1));
  CHECK(WaitFor([&] { return store.Locked([](FakeStore& s) { return s.state.memberships.empty(); }); }));
  job.Stop();

  store.Locked([&](FakeStore& s) {
    REQUIRE(s.state.history.size() == 2);
    CHECK(s.state.history[0].at == now - absl::Seconds(1));
    CHECK(s.state.history[1].at == now + absl::Hours(1));
    CHECK(s.state.history[1].reason == Reason::kTtl);
  });
}

TEST_CASE("a database error never stops the job: it retries and catches up", "[expiry][thread]") {
  LockedStore store;
  FakeClock clock;
  const absl::Time now = clock.Now();
  store.Locked([&](FakeStore& s) {
    AddSegment(s, 1, "S1");
    AddMembership(s, kU1, 1, now - absl::Minutes(10));
    AddMembership(s, kU2, 1, now - absl::Minutes(5));
    s.failure = absl::UnavailableError("database is down");
  });
  auto batches = [&] { return store.Locked([](FakeStore& s) { return s.expiry_batches; }); };

  ExpiryJob job(store, clock, {absl::Milliseconds(20), 1000, absl::Milliseconds(40)});
  job.Start();
  // Several failed passes in a row, and the job keeps trying.
  CHECK(WaitFor([&] { return batches() >= 5; }));
  store.Locked([](FakeStore& s) {
    CHECK(s.state.memberships.size() == 2);
    CHECK(s.state.history.empty());
  });

  store.Locked([](FakeStore& s) { s.failure = absl::OkStatus(); });
  CHECK(WaitFor([&] { return store.Locked([](FakeStore& s) { return s.state.memberships.empty(); }); }));
  job.Stop();

  store.Locked([&](FakeStore& s) {
    REQUIRE(s.state.history.size() == 2);
    CHECK(s.state.history[0].at == now - absl::Minutes(10));
    CHECK(s.state.history[1].at == now - absl::Minutes(5));
  });
  // Stopped means stopped: no more calls, even once a job with the same
  // period, started now on a store of its own, has made three passes (not a
  // fixed sleep: a slow machine may make none in it).
  const int after_stop = batches();
  LockedStore other;
  ExpiryJob probe(other, clock, {absl::Milliseconds(20), 1000, absl::Milliseconds(40)});
  probe.Start();
  CHECK(WaitFor([&] { return other.Locked([](FakeStore& s) { return s.expiry_batches >= 3; }); }));
  probe.Stop();
  CHECK(batches() == after_stop);
}

TEST_CASE("Stop interrupts the pause at once", "[expiry][thread]") {
  LockedStore store;
  FakeClock clock;
  ExpiryJob job(store, clock, {absl::Hours(1), 1000, absl::Hours(1)});
  job.Start();
  REQUIRE(WaitFor([&] { return store.Locked([](FakeStore& s) { return s.expiry_batches >= 1; }); }));
  const absl::Time before = absl::Now();
  job.Stop();
  CHECK(absl::Now() - before < absl::Seconds(5));  // not the hour of the period
  CHECK(store.Locked([](FakeStore& s) { return s.expiry_batches; }) == 1);
  job.Stop();  // idempotent
}

TEST_CASE("a job that never started stops at once, also from its destructor", "[expiry][thread]") {
  FakeStore store;
  FakeClock clock;
  {
    ExpiryJob job(store, clock, {});
    job.Stop();
    job.Stop();
  }
  { ExpiryJob job(store, clock, {}); }
  CHECK(store.expiry_batches == 0);
}
