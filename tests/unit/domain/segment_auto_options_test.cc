// SegmentUseCases for automatic assignment: CreateSegment's include/exclude
// and TTL options, UpdateSegmentPercent, DeleteSegment of a referenced
// segment, and which automatic-assignment lock each use case takes.
#include <fmt/format.h>

#include <catch2/catch.hpp>
#include <limits>
#include <set>

#include "domain/bucketing.h"
#include "domain/errors.h"
#include "domain/segment_use_cases.h"
#include "domain/user_use_cases.h"
#include "domain/validation.h"
#include "support/domain_testing.h"
#include "support/fake_clock.h"
#include "support/fake_store.h"

using namespace segments::domain;
using segments::testing::FakeClock;
using segments::testing::FakeStore;
using segments::testing::UserNo;
using segments::testing::ViolationFields;
using segments::testing::ViolationsOf;

namespace {

CreateSegmentCommand Auto(std::string slug, std::optional<double> percent, std::vector<std::string> include = {},
                          std::vector<std::string> exclude = {}, std::optional<int64_t> ttl = std::nullopt) {
  return {std::move(slug), percent, "", std::move(include), std::move(exclude), ttl};
}

struct Fixture {
  FakeStore store;
  FakeClock clock;
  SegmentUseCases segments{store, clock};
  UserUseCases users{store, clock};

  // `n` active users put straight into the fake (no evaluation).
  void AddUsers(int n, int first = 0) {
    for (int i = first; i < first + n; ++i) store.state.users[UserNo(i)] = UserState::kActive;
  }

  Segment Create(CreateSegmentCommand command) {
    auto created = segments.CreateSegment(command);
    INFO(created.status());
    REQUIRE(created.ok());
    return *created;
  }

  // Users in segment `id` (expired rows included), and only automatic ones.
  std::set<std::string> Members(SegmentId id, bool automatic_only = false) {
    std::set<std::string> out;
    for (const auto& [key, m] : store.state.memberships) {
      if (key.second == id && (!automatic_only || m.automatic)) out.insert(key.first.ToString());
    }
    return out;
  }

  // Active users whose bucket for `salt` is below `percent` (hundredths).
  std::set<std::string> Covered(const std::string& salt, int32_t percent) {
    std::set<std::string> out;
    for (const auto& [user, state] : store.state.users) {
      if (state == UserState::kActive && Bucket(salt, user) < percent) out.insert(user.ToString());
    }
    return out;
  }

  absl::StatusOr<PercentChange> SetPercent(const std::string& slug, std::optional<double> percent) {
    return segments.UpdateSegmentPercent({slug, percent});
  }
};

}  // namespace

// --- CreateSegment options: validation

TEST_CASE_METHOD(Fixture, "include/exclude slugs: malformed, repeated within or across lists, each with its path",
                 "[segments][auto_options]") {
  auto status = segments.CreateSegment(Auto("S", 10.0, {"A", "bad slug", "A", "B"}, {"C", "B", "", "C"})).status();
  CHECK(status.code() == absl::StatusCode::kInvalidArgument);
  CHECK(ViolationFields(status) == std::vector<std::string>{"includeSegments[1]", "includeSegments[2]",
                                                            "excludeSegments[1]", "excludeSegments[2]",
                                                            "excludeSegments[3]"});
  const auto violations = ViolationsOf(status);
  CHECK(violations[1].description.find("includeSegments[0]") != std::string::npos);
  CHECK(violations[2].description.find("includeSegments[3]") != std::string::npos);  // B across lists
  CHECK(store.transactions == 0);
  CHECK(store.state.segments.empty());
}

TEST_CASE_METHOD(Fixture, "include/exclude lists hold at most 20 slugs each", "[segments][auto_options]") {
  std::vector<std::string> twenty, twenty_one;
  for (int i = 0; i < 21; ++i) {
    const std::string slug = "S" + std::to_string(i);
    Create(Auto(slug, std::nullopt));
    if (i < 20) twenty.push_back(slug);
    twenty_one.push_back(slug);
  }
  auto too_many = segments.CreateSegment(Auto("X", 10.0, twenty_one, {})).status();
  CHECK(too_many.code() == absl::StatusCode::kInvalidArgument);
  CHECK(ViolationFields(too_many) == std::vector<std::string>{"includeSegments"});
  auto too_many_excluded = segments.CreateSegment(Auto("X", 10.0, {}, twenty_one)).status();
  CHECK(ViolationFields(too_many_excluded) == std::vector<std::string>{"excludeSegments"});

  const Segment ok = Create(Auto("X", 10.0, twenty, {"S20"}));
  CHECK(ok.auto_options.include_ids.size() == 20);
  CHECK(ok.auto_options.exclude_ids.size() == 1);
}

TEST_CASE_METHOD(Fixture, "include/exclude slugs of no live segment are NOT_FOUND, each path listed",
                 "[segments][auto_options]") {
  Create(Auto("A", std::nullopt));
  Create(Auto("GONE", std::nullopt));
  REQUIRE(segments.DeleteSegment("GONE").ok());
  auto status = segments.CreateSegment(Auto("S", 10.0, {"A", "NOPE"}, {"GONE"})).status();
  CHECK(status.code() == absl::StatusCode::kNotFound);
  CHECK(ViolationFields(status) == std::vector<std::string>{"includeSegments[1]", "excludeSegments[0]"});
  CHECK(store.state.segments.size() == 2);  // nothing created
}

TEST_CASE_METHOD(Fixture, "include/exclude are stored as ids with their sorted slugs", "[segments][auto_options]") {
  const Segment b = Create(Auto("b", std::nullopt));
  const Segment a = Create(Auto("A", std::nullopt));
  const Segment c = Create(Auto("C", std::nullopt));
  const Segment s = Create(Auto("S", 0.0, {"b", "A"}, {"C"}));
  CHECK(s.auto_options.include_ids == std::vector<SegmentId>{b.id, a.id});
  CHECK(s.auto_options.exclude_ids == std::vector<SegmentId>{c.id});
  CHECK(s.include_slugs == std::vector<std::string>{"A", "b"});
  CHECK(s.exclude_slugs == std::vector<std::string>{"C"});
}

TEST_CASE_METHOD(Fixture, "autoSecondsToBeInSegment: 1 second up to 3650 days", "[segments][auto_options]") {
  for (int64_t bad : {int64_t{0}, int64_t{-1}, kMaxTtlSeconds + 1}) {
    INFO(bad);
    auto status = segments.CreateSegment(Auto("S", 10.0, {}, {}, bad)).status();
    CHECK(status.code() == absl::StatusCode::kInvalidArgument);
    CHECK(ViolationFields(status) == std::vector<std::string>{"autoSecondsToBeInSegment"});
  }
  CHECK(Create(Auto("ONE", 10.0, {}, {}, 1)).auto_options.ttl_seconds == 1);
  CHECK(Create(Auto("TEN_YEARS", 10.0, {}, {}, kMaxTtlSeconds)).auto_options.ttl_seconds == kMaxTtlSeconds);
  CHECK_FALSE(Create(Auto("FOREVER", 10.0)).auto_options.ttl_seconds.has_value());
}

TEST_CASE_METHOD(Fixture, "every problem of a create request is listed at once", "[segments][auto_options]") {
  auto status = segments.CreateSegment({"", 101.0, "", {"x y"}, {"x y"}, 0}).status();
  CHECK(ViolationFields(status) == std::vector<std::string>{"slug", "percentToFill", "includeSegments[0]",
                                                            "excludeSegments[0]", "autoSecondsToBeInSegment"});
}

// --- CreateSegment with options: who is assigned

TEST_CASE_METHOD(Fixture, "create with include/exclude assigns only users passing both, by active memberships",
                 "[segments][auto_options]") {
  AddUsers(300);
  Create(Auto("INC", std::nullopt));
  Create(Auto("EXC", std::nullopt));
  // Users 0..149 in INC (those divisible by 5 with an expired TTL), users
  // 100..199 in EXC (those divisible by 7 expired).
  const absl::Time start = clock.Now();
  for (int i = 0; i < 200; ++i) {
    std::vector<SegmentToAdd> add;
    auto ttl = [&](int divisor) { return TtlInput{i % divisor == 0 ? std::optional<int64_t>(60) : std::nullopt, {}}; };
    if (i < 150) add.push_back({"INC", ttl(5)});
    if (i >= 100) add.push_back({"EXC", ttl(7)});
    REQUIRE(segments.UpdateUserSegments({UserNo(i), add, {}}).ok());
  }
  clock.Set(start + absl::Minutes(5));
  const Segment s = Create(Auto("S", 50.0, {"INC"}, {"EXC"}));

  std::set<std::string> expected;
  for (int i = 0; i < 300; ++i) {
    const bool in_inc = i < 150 && i % 5 != 0;
    const bool in_exc = i >= 100 && i < 200 && i % 7 != 0;
    if (in_inc && !in_exc && Bucket(s.salt, UserNo(i)) < 5000) expected.insert(UserNo(i).ToString());
  }
  REQUIRE(expected.size() > 20);
  CHECK(Members(s.id) == expected);
  CHECK(Members(s.id, true) == expected);
}

TEST_CASE_METHOD(Fixture, "create with an automatic TTL sets each automatic membership's deadline",
                 "[segments][auto_options]") {
  AddUsers(50);
  const Segment s = Create(Auto("S", 100.0, {}, {}, 3600));
  REQUIRE(Members(s.id).size() == 50);
  for (const auto& [key, m] : store.state.memberships) {
    CHECK(m.automatic);
    CHECK(m.added_at == clock.Now());
    CHECK(m.expires_at == clock.Now() + absl::Hours(1));
  }
}

// --- UpdateSegmentPercent

TEST_CASE_METHOD(Fixture, "update percent: percentToFill is required, slug and percent validated together",
                 "[segments][update_percent]") {
  Create(Auto("S", 10.0));
  const int before = store.transactions;
  auto missing = SetPercent("S", std::nullopt);
  CHECK(missing.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(ViolationFields(missing.status()) == std::vector<std::string>{"percentToFill"});
  CHECK(ViolationsOf(missing.status())[0].description == "is required");

  for (double bad : {-0.01, 100.01, 12.345, std::numeric_limits<double>::quiet_NaN()}) {
    INFO(bad);
    CHECK(ViolationFields(SetPercent("S", bad).status()) == std::vector<std::string>{"percentToFill"});
  }
  auto both = SetPercent("bad slug", std::nullopt);
  CHECK(ViolationFields(both.status()) == std::vector<std::string>{"slug", "percentToFill"});
  CHECK(store.transactions == before);

  auto unknown = SetPercent("NOPE", 20.0);
  CHECK(unknown.status().code() == absl::StatusCode::kNotFound);
  CHECK(ViolationFields(unknown.status()) == std::vector<std::string>{"slug"});
}

TEST_CASE_METHOD(Fixture, "update percent raises and lowers monotonically, by bucket, with history",
                 "[segments][update_percent]") {
  AddUsers(1000);
  const Segment s = Create(Auto("S", 10.0));
  const auto at10 = Covered(s.salt, 1000);
  const auto at30 = Covered(s.salt, 3000);
  REQUIRE(at10.size() > 50);
  REQUIRE(at30.size() > at10.size());
  CHECK(Members(s.id) == at10);

  clock.Advance(absl::Seconds(1));
  auto up = SetPercent("S", 30.0);
  REQUIRE(up.ok());
  CHECK(up->added == static_cast<int64_t>(at30.size() - at10.size()));
  CHECK(up->removed == 0);
  CHECK(Members(s.id) == at30);
  CHECK(store.state.segments.at(s.id).percent_hundredths == 3000);

  clock.Advance(absl::Seconds(1));
  const absl::Time lowered_at = clock.Now();
  const size_t events_before = store.state.history.size();
  auto down = SetPercent("S", 10.0);
  REQUIRE(down.ok());
  CHECK(down->added == 0);
  CHECK(down->removed == static_cast<int64_t>(at30.size() - at10.size()));
  CHECK(Members(s.id) == at10);
  REQUIRE(store.state.history.size() == events_before + at30.size() - at10.size());
  for (size_t i = events_before; i < store.state.history.size(); ++i) {
    const HistoryEvent& e = store.state.history[i];
    CHECK(e.operation == Operation::kRemove);
    CHECK(e.reason == Reason::kAutoPercent);
    CHECK(e.at == lowered_at);
    CHECK(at30.count(e.user_id.ToString()) == 1);
    CHECK(at10.count(e.user_id.ToString()) == 0);
  }
  CHECK(store.state.opt_outs.empty());  // lowering is not an opt-out

  auto again = SetPercent("S", 30.0);
  REQUIRE(again.ok());
  CHECK(Members(s.id) == at30);  // the very same users come back

  auto same = SetPercent("S", 30.0);
  REQUIRE(same.ok());
  CHECK(same->added == 0);
  CHECK(same->removed == 0);

  auto zero = SetPercent("S", 0.0);
  REQUIRE(zero.ok());
  CHECK(zero->removed == static_cast<int64_t>(at30.size()));
  CHECK(Members(s.id).empty());
}

TEST_CASE_METHOD(Fixture, "lowering never removes members added by hand", "[segments][update_percent]") {
  AddUsers(200);
  const Segment s = Create(Auto("S", 0.0));
  // Everyone by hand first; then 100 % adds nobody, 0 % removes nobody.
  for (int i = 0; i < 200; ++i) REQUIRE(segments.UpdateUserSegments({UserNo(i), {{"S", {}}}, {}}).ok());
  auto up = SetPercent("S", 100.0);
  REQUIRE(up.ok());
  CHECK(up->added == 0);
  auto down = SetPercent("S", 0.0);
  REQUIRE(down.ok());
  CHECK(down->removed == 0);
  CHECK(Members(s.id).size() == 200);
}

TEST_CASE_METHOD(Fixture, "raising skips opted-out and excluded users and honours include/exclude",
                 "[segments][update_percent]") {
  AddUsers(400);
  for (int i = 0; i < 400; i += 4) store.state.users[UserNo(i)] = UserState::kExcluded;
  Create(Auto("INC", std::nullopt));
  for (int i = 0; i < 300; ++i) REQUIRE(segments.UpdateUserSegments({UserNo(i), {{"INC", {}}}, {}}).ok());
  const Segment s = Create(Auto("S", 0.0, {"INC"}, {}));
  for (int i = 1; i < 400; i += 10) store.state.opt_outs[{s.id, UserNo(i)}] = Reason::kManual;

  REQUIRE(SetPercent("S", 60.0).ok());
  std::set<std::string> expected;
  for (int i = 0; i < 300; ++i) {
    if (i % 4 != 0 && i % 10 != 1 && Bucket(s.salt, UserNo(i)) < 6000) expected.insert(UserNo(i).ToString());
  }
  REQUIRE(expected.size() > 50);
  CHECK(Members(s.id) == expected);
}

// --- DeleteSegment of a segment named in options

TEST_CASE_METHOD(Fixture, "delete is refused while a live segment names the segment in its options",
                 "[segments][auto_options]") {
  Create(Auto("BASE", std::nullopt));
  Create(Auto("OTHER", std::nullopt));
  Create(Auto("INC", 10.0, {"BASE"}, {}));
  Create(Auto("EXC", 10.0, {"OTHER"}, {"BASE"}));
  auto refused = segments.DeleteSegment("BASE");
  CHECK(refused.status().code() == absl::StatusCode::kFailedPrecondition);
  CHECK(ViolationFields(refused.status()) == std::vector<std::string>{"slug"});
  const std::string message(refused.status().message());
  CHECK(message.find("\"EXC\"") != std::string::npos);
  CHECK(message.find("\"INC\"") != std::string::npos);
  CHECK(store.state.deleted_segments.empty());

  REQUIRE(segments.DeleteSegment("INC").ok());
  CHECK(segments.DeleteSegment("BASE").status().code() == absl::StatusCode::kFailedPrecondition);
  REQUIRE(segments.DeleteSegment("EXC").ok());
  CHECK(segments.DeleteSegment("BASE").ok());
  CHECK(segments.DeleteSegment("OTHER").ok());
}

// --- locks

TEST_CASE_METHOD(Fixture, "set-based assignment takes the automatic-assignment lock exclusively in its first chunk",
                 "[segments][locks]") {
  Create(Auto("MANUAL", std::nullopt));
  CHECK(store.shared_auto_locks == 0);
  CHECK(store.task_chunks == 0);

  // No users: one chunk (the first), which finds none. It holds the lock and the
  // segment exclusively; publishing the segment holds neither.
  Create(Auto("AUTO", 5.0));
  CHECK(store.task_chunks == 1);
  CHECK(store.exclusive_auto_locks == 1);
  CHECK(store.exclusive_segment_locks == 1);
  CHECK(store.shared_auto_locks == 0);

  // Publishing a new percentage holds the segment exclusively, so hand
  // changes and bulk calls naming it wait; then its chunk holds both.
  REQUIRE(SetPercent("AUTO", 7.0).ok());
  CHECK(store.task_chunks == 2);
  CHECK(store.exclusive_auto_locks == 2);
  CHECK(store.exclusive_segment_locks == 3);
  REQUIRE(SetPercent("AUTO", 3.0).ok());
  CHECK(store.exclusive_auto_locks == 3);
  CHECK(store.exclusive_segment_locks == 5);
  CHECK(store.shared_auto_locks == 0);
}

TEST_CASE_METHOD(Fixture, "only a task's first chunk takes the automatic-assignment lock", "[segments][locks]") {
  AddUsers(5);
  SegmentUseCases chunked{store, clock, SegmentTaskOptions{.chunk_users = 2}};
  auto created = chunked.CreateSegment(Auto("AUTO", 100.0));
  REQUIRE(created.ok());
  // Users 0-1, 2-3, 4, then none left: four chunks, each holding the
  // segment; the first alone also waits for the evaluations under way.
  CHECK(store.task_chunks == 4);
  CHECK(store.exclusive_auto_locks == 1);
  CHECK(store.exclusive_segment_locks == 4);
  CHECK(Members(created->id).size() == 5);
}

TEST_CASE("chunks are sized to the time they aim at, by at most a factor of two at once", "[segments][tasks]") {
  CHECK(NextChunkUsers(500, absl::Milliseconds(10), absl::ZeroDuration()) == 500);  // fixed size
  CHECK(NextChunkUsers(500, absl::Milliseconds(25), absl::Milliseconds(25)) == 500);
  CHECK(NextChunkUsers(500, absl::Milliseconds(20), absl::Milliseconds(25)) == 625);
  CHECK(NextChunkUsers(500, absl::Milliseconds(5), absl::Milliseconds(25)) == 1000);
  CHECK(NextChunkUsers(500, absl::ZeroDuration(), absl::Milliseconds(25)) == 1000);
  CHECK(NextChunkUsers(500, absl::Milliseconds(40), absl::Milliseconds(25)) == 312);
  CHECK(NextChunkUsers(500, absl::Seconds(2), absl::Milliseconds(25)) == 250);
  CHECK(NextChunkUsers(60, absl::Seconds(1), absl::Milliseconds(25)) == kMinChunkUsers);
  CHECK(NextChunkUsers(kMaxChunkUsers, absl::Microseconds(1), absl::Milliseconds(25)) == kMaxChunkUsers);
}

TEST_CASE_METHOD(Fixture, "user changes take the automatic-assignment lock shared, hand changes their segments",
                 "[segments][locks]") {
  Create(Auto("A", std::nullopt));
  const UserId user = UserNo(1);
  int shared = 0;
  REQUIRE(users.CreateUser(user).ok());
  CHECK(store.shared_auto_locks == ++shared);
  REQUIRE(segments.UpdateUserSegments({user, {{"A", {}}}, {}}).ok());
  CHECK(store.shared_segment_locks == 1);
  REQUIRE(segments.UpdateUserSegments({user, {}, {"A"}}).ok());
  CHECK(store.shared_segment_locks == 2);
  CHECK(store.shared_auto_locks == shared);  // hand changes leave it alone
  REQUIRE(users.UpdateUser(user, "excluded").ok());
  CHECK(store.shared_auto_locks == ++shared);
  REQUIRE(users.UpdateUser(user, "active").ok());
  CHECK(store.shared_auto_locks == ++shared);
  REQUIRE(users.DeleteUser(user).ok());
  CHECK(store.shared_auto_locks == ++shared);
  CHECK(store.exclusive_auto_locks == 0);
  REQUIRE(segments.DeleteSegment("A").ok());
  CHECK(store.exclusive_segment_locks == 1);
}

TEST_CASE_METHOD(Fixture, "fills and percentage changes run a chunk of users per transaction, with the same result",
                 "[segments][tasks]") {
  AddUsers(10);
  SegmentUseCases chunked{store, clock, SegmentTaskOptions{.chunk_users = 3}};
  const int transactions = store.transactions;
  auto created = chunked.CreateSegment(Auto("S", 100.0));
  REQUIRE(created.ok());
  CHECK(Members(created->id).size() == 10);
  // Chunks of 3, 3, 3 and 1 users, then the one that finds none left.
  CHECK(store.task_chunks == 5);
  CHECK(store.transactions - transactions == 1 + 5);  // the publish, then the chunks

  auto lowered = chunked.UpdateSegmentPercent({"S", 40.0});
  REQUIRE(lowered.ok());
  CHECK(Members(created->id) == Covered(created->salt, 4000));
  CHECK(lowered->removed == 10 - static_cast<int64_t>(Covered(created->salt, 4000).size()));
  CHECK(store.task_chunks == 5 + 5);  // the 10 automatic members, 3 at a time
}
