// Automatic assignment through gRPC on the real server and database:
// distribution and independence of percentage segments, percentage changes,
// evaluation of new and reactivated users, removals by hand that stick,
// include/exclude options, automatic TTLs with the expiry job, and races
// between user creation and set-based assignment.
#include <atomic>
#include <cmath>
#include <future>
#include <latch>
#include <mutex>
#include <thread>

#include "service/auto_fixture.h"

namespace segments::testing {
namespace {

using Rows = std::vector<std::vector<std::string>>;

TEST_CASE_METHOD(AutoFixture, "10 % of 100,000 users: exactly those with a bucket below 1000",
                 "[service][auto][distribution]") {
  const auto people = InsertUsers(100'000, "dist");
  REQUIRE(people.size() == 100'000);
  const grpc::Status status = CreateAuto("TEN", 10.0);
  INFO(Describe(status));
  REQUIRE(status.ok());
  const UserSet expected = Covered("TEN", people, 1000);
  CHECK(MemberCount("TEN") == static_cast<int64_t>(expected.size()));
  CHECK(std::abs(static_cast<double>(expected.size()) / 100'000.0 - 0.10) <= 0.005);
  CHECK(MembersOf("TEN") == expected);
  CHECK(Count("SELECT count(*) FROM history WHERE reason = 'auto_percent' AND operation = 'add'") ==
        static_cast<int64_t>(expected.size()));
}

TEST_CASE_METHOD(AutoFixture, "Two 50 % segments choose independently: about a quarter of users are in both",
                 "[service][auto][distribution]") {
  const auto people = InsertUsers(20'000, "indep");
  REQUIRE(CreateAuto("HALF_A", 50.0).ok());
  REQUIRE(CreateAuto("HALF_B", 50.0).ok());
  REQUIRE(SaltOf("HALF_A") != SaltOf("HALF_B"));
  const UserSet a = MembersOf("HALF_A");
  const UserSet b = MembersOf("HALF_B");
  CHECK(a == Covered("HALF_A", people, 5000));
  CHECK(b == Covered("HALF_B", people, 5000));
  const double both = static_cast<double>(Intersect(a, b).size()) / 20'000.0;
  INFO("in both: " << both);
  CHECK(std::abs(both - 0.25) <= 0.015);
  CHECK(std::abs(static_cast<double>(a.size()) / 20'000.0 - 0.5) <= 0.015);
}

TEST_CASE_METHOD(AutoFixture, "UpdateSegmentPercent: 10 -> 30 -> 10 -> 30 moves exactly the same users",
                 "[service][auto][update_percent]") {
  const auto people = InsertUsers(5000, "mono");
  REQUIRE(CreateAuto("S", 10.0).ok());
  const UserSet at10 = Covered("S", people, 1000);
  const UserSet at30 = Covered("S", people, 3000);
  REQUIRE(MembersOf("S") == at10);
  // A user outside the first 30 % is in by hand and must stay throughout.
  std::string hand;
  for (const auto& u : people) {
    if (!at30.contains(u)) {
      hand = u;
      break;
    }
  }
  REQUIRE(Update(Change(hand, {{"S"}})).ok());

  v1::UpdateSegmentPercentResponse response;
  clock.Advance(absl::Seconds(1));
  REQUIRE(SetPercent("S", 30.0, &response).ok());
  CHECK(response.members_added() == static_cast<int64_t>(at30.size() - at10.size()));
  CHECK(response.members_removed() == 0);
  CHECK(MembersOf("S", "m.auto") == at30);

  clock.Advance(absl::Seconds(1));
  const absl::Time lowered = Now();
  REQUIRE(SetPercent("S", 10.0, &response).ok());
  CHECK(response.members_added() == 0);
  CHECK(response.members_removed() == static_cast<int64_t>(at30.size() - at10.size()));
  CHECK(MembersOf("S", "m.auto") == at10);
  CHECK(Count("SELECT count(*) FROM history WHERE operation = 'remove' AND reason = 'auto_percent' AND at = '" +
              Rfc3339Of(lowered) + "'") == static_cast<int64_t>(at30.size() - at10.size()));

  REQUIRE(SetPercent("S", 30.0, &response).ok());
  CHECK(MembersOf("S", "m.auto") == at30);
  REQUIRE(SetPercent("S", 30.0, &response).ok());  // the same: nothing
  CHECK(response.members_added() == 0);
  CHECK(response.members_removed() == 0);

  REQUIRE(SetPercent("S", 0.0, &response).ok());
  CHECK(response.members_removed() == static_cast<int64_t>(at30.size()));
  CHECK(MembersOf("S") == UserSet{hand});
  CHECK(SegmentsOf(hand) == std::vector<std::string>{"S"});
}

TEST_CASE_METHOD(AutoFixture, "UpdateSegmentPercent: percent required, range checked, slug must be live",
                 "[service][auto][update_percent]") {
  REQUIRE(CreateAuto("S", 10.0).ok());
  grpc::Status missing = SetPercent("S", std::nullopt);
  CHECK(missing.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK(ViolationFields(missing) == std::vector<std::string>{"percentToFill"});
  CHECK(ViolationFields(SetPercent("S", 100.5)) == std::vector<std::string>{"percentToFill"});
  CHECK(ViolationFields(SetPercent("", 12.345)) == std::vector<std::string>{"slug", "percentToFill"});
  grpc::Status unknown = SetPercent("NOPE", 10.0);
  CHECK(unknown.error_code() == grpc::StatusCode::NOT_FOUND);
  CHECK(ViolationFields(unknown) == std::vector<std::string>{"slug"});
}

TEST_CASE_METHOD(AutoFixture, "CreateUser puts a new user in exactly the automatic segments that take them",
                 "[service][auto][evaluation]") {
  v1::CreateSegmentResponse p50;
  REQUIRE(CreateAuto("P20", 20.0).ok());
  REQUIRE(CreateAuto("P50_TTL", 50.0, {}, {}, 3600, &p50).ok());
  CHECK(p50.segment().auto_seconds_to_be_in_segment() == 3600);
  REQUIRE(CreateAuto("P100_NOT_P20", 100.0, {}, {"P20"}).ok());
  REQUIRE(CreateAuto("P100_AND_P50", 100.0, {"P50_TTL"}, {}).ok());
  REQUIRE(CreateSegment("MANUAL").ok());
  const std::string s20 = SaltOf("P20"), s50 = SaltOf("P50_TTL");
  clock.Advance(absl::Minutes(1));

  int in20 = 0;
  for (int i = 0; i < 120; ++i) {
    const std::string user = fmt::format("{:08x}-1c2d-4e3f-8a9b-0c1d2e3f4a5b", i * 0x01f3a1c5u);
    const grpc::Status created = CreateUser(user);
    INFO(Describe(created));
    REQUIRE(created.ok());
    std::vector<std::string> expected;
    const bool a = domain::Bucket(s20, user) < 2000, b = domain::Bucket(s50, user) < 5000;
    in20 += a ? 1 : 0;
    if (b) expected.push_back("P100_AND_P50");
    if (!a) expected.push_back("P100_NOT_P20");
    if (a) expected.push_back("P20");
    if (b) expected.push_back("P50_TTL");
    INFO(user);
    CHECK(SegmentsOf(user) == expected);
    CHECK(Count("SELECT count(*) FROM history WHERE reason = 'auto_percent' AND user_id = " + Literal(user) +
                " AND at = '" + Rfc3339Of(Now()) + "'") == static_cast<int64_t>(expected.size()));
  }
  CHECK(in20 > 5);
  CHECK(Count("SELECT count(*) FROM memberships m JOIN segments s ON s.id = m.segment_id WHERE s.slug = 'P50_TTL' "
              "AND m.expires_at <> '" +
              Rfc3339Of(Now() + absl::Hours(1)) + "'") == 0);
  CHECK(Count("SELECT count(*) FROM memberships WHERE NOT auto") == 0);
}

TEST_CASE_METHOD(AutoFixture, "An excluded user is left out of a new segment and joins on becoming active",
                 "[service][auto][evaluation]") {
  const auto excluded = InsertUsers(10, "excl", "excluded");
  REQUIRE(CreateAuto("ALL", 100.0).ok());
  CHECK(MembersOf("ALL").empty());
  clock.Advance(absl::Minutes(1));
  for (const auto& user : excluded) {
    REQUIRE(UpdateUser(user, "active").ok());
    CHECK(SegmentsOf(user) == std::vector<std::string>{"ALL"});
    CHECK(HistoryOf(user) == Rows{Event("ALL", "add", "auto_percent", Now())});
  }
  // Leaving and coming back adds nothing twice.
  REQUIRE(UpdateUser(excluded[0], "excluded").ok());
  REQUIRE(UpdateUser(excluded[0], "active").ok());
  CHECK(HistoryOf(excluded[0]).size() == 1);
}

// 400 users; picks a member and a non-member of a 50 % segment.
class StickyFixture : public AutoFixture {
 public:
  StickyFixture() {
    people = InsertUsers(400, "sticky");
    REQUIRE(CreateAuto("S", 50.0).ok());
    const UserSet members = MembersOf("S");
    REQUIRE(members == Covered("S", people, 5000));
    removed = *members.begin();
    for (const auto& u : people) {
      if (!members.contains(u)) outsider = u;
    }
  }

  // Raising to 100 % and reactivating must not bring `removed` back.
  void CheckSticks() {
    v1::UpdateSegmentPercentResponse response;
    REQUIRE(SetPercent("S", 100.0, &response).ok());
    // Everyone not in yet, except the one removed by hand.
    CHECK(response.members_added() == 400 - static_cast<int64_t>(Covered("S", people, 5000).size()));
    UserSet expected(people.begin(), people.end());
    expected.erase(removed);
    CHECK(MembersOf("S") == expected);
    REQUIRE(UpdateUser(removed, "excluded").ok());
    REQUIRE(UpdateUser(removed, "active").ok());
    CHECK(SegmentsOf(removed).empty());
    REQUIRE(SetPercent("S", 0.0).ok());
    REQUIRE(SetPercent("S", 100.0).ok());
    CHECK(SegmentsOf(removed).empty());
    CHECK(SegmentsOf(outsider) == std::vector<std::string>{"S"});
    CHECK(Query("SELECT user_id::text, reason::text FROM auto_opt_outs") == Rows{{removed, "manual"}});
    // By hand it can still come back.
    REQUIRE(Update(Change(removed, {{"S"}})).ok());
    CHECK(SegmentsOf(removed) == std::vector<std::string>{"S"});
  }

  std::vector<std::string> people;
  std::string removed;
  std::string outsider;
};

TEST_CASE_METHOD(StickyFixture, "A removal with UpdateUserSegments sticks through raises and reactivation",
                 "[service][auto][opt_out]") {
  REQUIRE(Update(Change(removed, {}, {"S"})).ok());
  CheckSticks();
}

TEST_CASE_METHOD(StickyFixture, "A removal with RemoveSegmentFromUsers sticks through raises and reactivation",
                 "[service][auto][opt_out]") {
  v1::RemoveSegmentFromUsersResponse response;
  REQUIRE(BulkRemove("S", {removed, outsider}, &response).ok());
  CHECK(response.removed() == 1);
  CHECK(response.not_members() == 1);
  CheckSticks();
}

TEST_CASE_METHOD(AutoFixture, "include and exclude options pick users by their memberships at that moment",
                 "[service][auto][options]") {
  const auto people = InsertUsers(300, "opts");
  REQUIRE(CreateSegment("BASE").ok());
  const std::vector<std::string> base(people.begin(), people.begin() + 120);
  REQUIRE(BulkAdd("BASE", base).ok());
  // Ten of them only for a minute, already over when the segments are made.
  const std::vector<std::string> brief(people.begin() + 120, people.begin() + 130);
  REQUIRE(BulkAdd("BASE", brief, nullptr, 60).ok());
  clock.Advance(absl::Minutes(5));

  v1::CreateSegmentResponse inc, exc;
  REQUIRE(CreateAuto("INC", 100.0, {"BASE"}, {}, std::nullopt, &inc).ok());
  REQUIRE(CreateAuto("EXC", 100.0, {}, {"BASE"}, std::nullopt, &exc).ok());
  CHECK(std::vector<std::string>(inc.segment().include_segments().begin(), inc.segment().include_segments().end()) ==
        std::vector<std::string>{"BASE"});
  CHECK(std::vector<std::string>(exc.segment().exclude_segments().begin(), exc.segment().exclude_segments().end()) ==
        std::vector<std::string>{"BASE"});
  const UserSet in_base(base.begin(), base.end());
  CHECK(MembersOf("INC") == in_base);
  CHECK(MembersOf("EXC") == Minus(UserSet(people.begin(), people.end()), in_base));

  REQUIRE(CreateUser(kUser1).ok());
  CHECK(SegmentsOf(kUser1) == std::vector<std::string>{"EXC"});

  grpc::Status unknown = CreateAuto("X", 10.0, {"BASE", "NOPE"}, {"GONE"});
  CHECK(unknown.error_code() == grpc::StatusCode::NOT_FOUND);
  CHECK(ViolationFields(unknown) == std::vector<std::string>{"includeSegments[1]", "excludeSegments[0]"});
  grpc::Status twice = CreateAuto("X", 10.0, {"BASE"}, {"BASE"});
  CHECK(twice.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK(ViolationFields(twice) == std::vector<std::string>{"excludeSegments[0]"});
}

TEST_CASE_METHOD(AutoFixture, "DeleteSegment is refused while a live segment names it in its options",
                 "[service][auto][options]") {
  REQUIRE(CreateSegment("BASE").ok());
  REQUIRE(CreateAuto("USES_BASE", 10.0, {"BASE"}).ok());
  const auto before = Snapshot();
  grpc::Status refused = DeleteSegment("BASE");
  CHECK(refused.error_code() == grpc::StatusCode::FAILED_PRECONDITION);
  CHECK(ViolationFields(refused) == std::vector<std::string>{"slug"});
  CHECK(refused.error_message().find("USES_BASE") != std::string::npos);
  CHECK(Snapshot() == before);
  REQUIRE(DeleteSegment("USES_BASE").ok());
  CHECK(DeleteSegment("BASE").ok());
}

TEST_CASE_METHOD(AutoFixture, "A deleted user's opt-outs go with them: the same id created again is assigned",
                 "[service][auto][opt_out]") {
  REQUIRE(CreateAuto("ALL", 100.0).ok());
  REQUIRE(CreateUser(kUser1).ok());
  REQUIRE(CreateUser(kUser2).ok());
  REQUIRE(Update(Change(kUser1, {}, {"ALL"})).ok());
  REQUIRE(Update(Change(kUser2, {}, {"ALL"})).ok());
  REQUIRE(Count("SELECT count(*) FROM auto_opt_outs") == 2);
  REQUIRE(DeleteUser(kUser1).ok());
  CHECK(Query("SELECT user_id::text FROM auto_opt_outs") == Rows{{kUser2}});
  REQUIRE(CreateUser(kUser1).ok());
  CHECK(SegmentsOf(kUser1) == std::vector<std::string>{"ALL"});
  CHECK(SegmentsOf(kUser2).empty());
}

class AutoExpiryFixture : public AutoFixture {
 public:
  AutoExpiryFixture() : AutoFixture(FastExpiry()) {}
  static config::Config FastExpiry() {
    config::Config config = TestConfig();
    config.expiry_period = absl::Milliseconds(50);
    return config;
  }
};

TEST_CASE_METHOD(AutoExpiryFixture, "An automatic TTL ends memberships; the expiry job records them and opts out",
                 "[service][auto][ttl][expiry_job]") {
  const auto people = InsertUsers(50, "ttl");
  const absl::Time t0 = Now();
  REQUIRE(CreateAuto("TTL", 100.0, {}, {}, 60).ok());
  CHECK(MemberCount("TTL") == 50);
  CHECK(Count("SELECT count(*) FROM memberships WHERE auto AND expires_at = '" + Rfc3339Of(t0 + absl::Seconds(60)) +
              "'") == 50);

  clock.Set(t0 + absl::Minutes(2));
  CHECK(SegmentsOf(people[0]).empty());  // at once, job or not
  CHECK(MemberCount("TTL") == 0);
  CHECK(Eventually([&] { return Count("SELECT count(*) FROM memberships") == 0; }, absl::Seconds(20)));
  CHECK(Count("SELECT count(*) FROM history WHERE operation = 'remove' AND reason = 'ttl' AND at = '" +
              Rfc3339Of(t0 + absl::Seconds(60)) + "'") == 50);
  CHECK(Count("SELECT count(*) FROM auto_opt_outs WHERE reason = 'ttl'") == 50);

  // Their time is over for good: neither a raise nor reactivation brings them back.
  v1::UpdateSegmentPercentResponse response;
  REQUIRE(SetPercent("TTL", 50.0, &response).ok());
  REQUIRE(SetPercent("TTL", 100.0, &response).ok());
  CHECK(response.members_added() == 0);
  REQUIRE(UpdateUser(people[1], "excluded").ok());
  REQUIRE(UpdateUser(people[1], "active").ok());
  CHECK(SegmentsOf(people[1]).empty());
  // A new user does join, for 60 seconds.
  REQUIRE(CreateUser(kUser1).ok());
  CHECK(SegmentsOf(kUser1) == std::vector<std::string>{"TTL"});
  clock.Advance(absl::Seconds(60));
  CHECK(SegmentsOf(kUser1).empty());
}

TEST_CASE_METHOD(AutoFixture, "Users created while a 50 % segment is being created are all evaluated",
                 "[service][auto][concurrency]") {
  constexpr int kThreads = 8;
  constexpr int kPerThread = 40;
  std::atomic<int> created{0};
  std::latch start(kThreads + 1);
  std::vector<grpc::Status> failures;
  std::mutex mu;
  std::vector<std::thread> threads;
  // Joins the creators however the test ends (a failed REQUIRE throws).
  struct Joiner {
    std::vector<std::thread>& threads;
    ~Joiner() {
      for (auto& t : threads) {
        if (t.joinable()) t.join();
      }
    }
  } joiner{threads};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      auto stub = v1::UserAdminService::NewStub(NewChannel(app->port()));
      start.arrive_and_wait();
      for (int i = 0; i < kPerThread; ++i) {
        v1::CreateUserRequest request;
        request.set_user_id(fmt::format("{:08x}-0000-4000-8000-{:012x}", t, i * 7919));
        v1::CreateUserResponse response;
        const grpc::Status status = stub->CreateUser(NewContext(std::chrono::seconds(30)).get(), request, &response);
        if (!status.ok()) {
          std::lock_guard<std::mutex> lock(mu);
          failures.push_back(status);
        }
        created.fetch_add(1);
      }
    });
  }
  start.arrive_and_wait();
  // Segments created early, midway and late in the stream of new users.
  std::vector<std::string> slugs;
  for (int round = 0; round < 3; ++round) {
    const int target = (round + 1) * kThreads * kPerThread / 4;
    REQUIRE(Eventually([&] { return created.load() >= target; }, absl::Seconds(60), absl::Milliseconds(1)));
    slugs.push_back("RACE_" + std::to_string(round));
    const grpc::Status status = CreateAuto(slugs.back(), 50.0);
    INFO(Describe(status));
    REQUIRE(status.ok());
  }
  for (auto& t : threads) t.join();
  for (const auto& f : failures) UNSCOPED_INFO(Describe(f));
  REQUIRE(failures.empty());

  std::vector<std::string> people;
  for (const auto& row : Query("SELECT id::text FROM users")) people.push_back(row[0]);
  REQUIRE(people.size() == kThreads * kPerThread);
  for (const auto& slug : slugs) {
    INFO(slug);
    CHECK(MembersOf(slug) == Covered(slug, people, 5000));
  }
}

// Memberships have no foreign keys: evaluation of one user reads the
// automatic segments without locking them, so DeleteSegment must wait for
// evaluations in progress (it takes the automatic-assignment lock
// exclusively), or a segment deleted meanwhile keeps a membership that
// GetUserSegments returns. The test holds an uncommitted membership row of
// the user in DOOMED, so the evaluation stops between reading the segments
// and writing that membership (its insert waits for the key),
// deterministically; the row is then rolled back.
TEST_CASE_METHOD(AutoFixture, "A segment deleted while a user is evaluated keeps no membership",
                 "[service][auto][concurrency]") {
  const auto excluded = InsertUsers(1, "evaluated", "excluded");
  const std::string user = excluded[0];
  REQUIRE(CreateSegment("HAND").ok());
  REQUIRE(Update(Change(user, {{"HAND"}})).ok());
  REQUIRE(CreateAuto("DOOMED", 100.0).ok());  // the excluded user is not in it
  REQUIRE(SegmentsOf(user) == std::vector<std::string>{"HAND"});

  const auto waiting = [] { return LockWaiters(); };
  PgSession holder;
  holder.Exec("BEGIN");
  holder.Exec("INSERT INTO memberships (user_id, segment_id, added_at) SELECT " + Literal(user) +
              ", id, now() FROM segments WHERE slug = 'DOOMED' AND deleted_at IS NULL");
  auto activate = std::async(std::launch::async, [&] { return UpdateUser(user, "active"); });
  REQUIRE(Eventually([&] { return waiting() >= 1; }, absl::Seconds(5)));
  auto remove = std::async(std::launch::async, [&] { return DeleteSegment("DOOMED"); });
  // Either the deletion goes through at once (the bug) or it waits for the evaluation.
  Eventually([&] { return remove.wait_for(std::chrono::seconds(0)) == std::future_status::ready || waiting() >= 2; },
             absl::Seconds(3));
  holder.Exec("ROLLBACK");
  const grpc::Status activated = activate.get();
  const grpc::Status deleted = remove.get();
  INFO(Describe(activated) << " / " << Describe(deleted));
  REQUIRE(activated.ok());
  REQUIRE(deleted.ok());
  CHECK(SegmentsOf(user) == std::vector<std::string>{"HAND"});
  CHECK(Count("SELECT count(*) FROM memberships m JOIN segments s ON s.id = m.segment_id "
              "WHERE s.deleted_at IS NOT NULL") == 0);
}

}  // namespace
}  // namespace segments::testing
