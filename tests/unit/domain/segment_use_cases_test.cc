#include "domain/segment_use_cases.h"

#include <catch2/catch.hpp>
#include <cstdio>

#include "domain/bucketing.h"
#include "domain/errors.h"
#include "domain/validation.h"
#include "support/domain_testing.h"
#include "support/fake_clock.h"
#include "support/fake_store.h"

using namespace segments::domain;
using segments::testing::FakeClock;
using segments::testing::FakeStore;
using segments::testing::Id;
using segments::testing::ViolationFields;

namespace {

constexpr const char* kUser = "0b7f9f5e-1c2d-4e3f-8a9b-0c1d2e3f4a5b";

struct Fixture {
  FakeStore store;
  FakeClock clock;
  SegmentUseCases segments{store, clock};

  Fixture() { store.state.users[Id(kUser)] = UserState::kActive; }

  void Create(const std::string& slug) {
    REQUIRE(segments.CreateSegment({slug, std::nullopt, "", {}, {}, std::nullopt}).ok());
  }

  absl::Status Change(std::vector<SegmentToAdd> add, std::vector<std::string> remove, std::string user = kUser) {
    return segments.UpdateUserSegments({std::move(user), std::move(add), std::move(remove)});
  }

  std::vector<std::string> Get() {
    auto got = segments.GetUserSegments(kUser);
    REQUIRE(got.ok());
    return *got;
  }
};

SegmentToAdd Add(std::string slug) { return {std::move(slug), {}}; }

}  // namespace

TEST_CASE_METHOD(Fixture, "creating a segment stores it with a salt and the clock's time", "[segments]") {
  auto created = segments.CreateSegment({"AVITO_VOICE_MESSAGES", 0.0, "voice in chat", {}, {}, std::nullopt});
  REQUIRE(created.ok());
  CHECK(created->slug == "AVITO_VOICE_MESSAGES");
  CHECK(created->description == "voice in chat");
  CHECK(created->created_at == clock.Now());
  CHECK(created->salt.size() == 16);
  CHECK(store.state.segments.size() == 1);
}

TEST_CASE_METHOD(Fixture, "create rejects a taken slug and bad input", "[segments]") {
  Create("A");
  auto dup = segments.CreateSegment({"A", std::nullopt, "", {}, {}, std::nullopt});
  CHECK(dup.status().code() == absl::StatusCode::kAlreadyExists);
  CHECK(ViolationFields(dup.status()) == std::vector<std::string>{"slug"});

  auto bad = segments.CreateSegment({"_bad", 12.345, std::string(1001, 'x'), {}, {}, std::nullopt});
  CHECK(bad.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(ViolationFields(bad.status()) == std::vector<std::string>{"slug", "percentToFill", "description"});
  CHECK(store.state.segments.size() == 1);
}

TEST_CASE_METHOD(Fixture, "create with a percentage makes the covered active users members, with history",
                 "[segments][percent]") {
  std::vector<std::string> users;
  for (int i = 0; i < 400; ++i) {
    char id[37];
    std::snprintf(id, sizeof id, "00000000-0000-4000-8000-%012d", i);
    users.push_back(id);
    store.state.users[Id(id)] = i % 10 == 0 ? UserState::kExcluded : UserState::kActive;
  }
  auto created = segments.CreateSegment({"AUTO_30", 30.0, "", {}, {}, std::nullopt});
  REQUIRE(created.ok());
  CHECK(created->percent_hundredths == 3000);
  size_t expected = 0;
  for (const auto& [user, state] : store.state.users) {  // the fixture's users too
    const bool covered = Bucket(created->salt, user) < 3000;
    const bool active = state == UserState::kActive;
    INFO(user);
    CHECK(store.state.memberships.count({user, created->id}) == (covered && active ? 1u : 0u));
    expected += covered && active ? 1 : 0;
  }
  REQUIRE(expected > 0);
  CHECK(store.state.history.size() == expected);
  for (const HistoryEvent& e : store.state.history) {
    CHECK(e.operation == Operation::kAdd);
    CHECK(e.reason == Reason::kAutoPercent);
    CHECK(e.at == clock.Now());
  }
}

TEST_CASE_METHOD(Fixture, "a deleted slug can be created again as a new segment", "[segments]") {
  Create("A");
  REQUIRE(segments.DeleteSegment("A").ok());
  auto again = segments.CreateSegment({"A", std::nullopt, "", {}, {}, std::nullopt});
  REQUIRE(again.ok());
  CHECK(again->id == 2);
}

TEST_CASE_METHOD(Fixture, "adding and removing records history only for real changes", "[memberships]") {
  Create("A");
  Create("B");
  REQUIRE(Change({Add("B"), Add("A")}, {}).ok());
  CHECK(Get() == std::vector<std::string>{"A", "B"});
  REQUIRE(store.state.history.size() == 2);
  CHECK(store.state.history[0].operation == Operation::kAdd);
  CHECK(store.state.history[0].reason == Reason::kManual);
  CHECK(store.state.history[0].at == clock.Now());

  clock.Advance(absl::Seconds(5));
  REQUIRE(Change({}, {"A"}).ok());
  CHECK(Get() == std::vector<std::string>{"B"});
  REQUIRE(store.state.history.size() == 3);
  CHECK(store.state.history[2].slug == "A");
  CHECK(store.state.history[2].operation == Operation::kRemove);
  CHECK(store.state.history[2].at == clock.Now());
}

TEST_CASE_METHOD(Fixture, "every shape problem is listed at once with its path", "[memberships]") {
  const absl::Time now = clock.Now();
  auto status = segments.UpdateUserSegments({"not-a-uuid",
                                             {Add("A"),
                                              Add("A"),
                                              {"B", 10, now + absl::Hours(1)},
                                              {"C", 0, std::nullopt},
                                              {"D", std::nullopt, now},
                                              {"E", std::nullopt, now + absl::Hours(24 * 3660)},
                                              Add("bad slug")},
                                             {"B", "F", "F"}});
  CHECK(status.code() == absl::StatusCode::kInvalidArgument);
  CHECK(ViolationFields(status) == std::vector<std::string>{
                                       "userID",
                                       "segmentsToAdd[1].segmentSlug",
                                       "segmentsToAdd[2].secondsToBeInSegment",
                                       "segmentsToAdd[3].secondsToBeInSegment",
                                       "segmentsToAdd[4].deadlineForStayingInSegment",
                                       "segmentsToAdd[5].deadlineForStayingInSegment",
                                       "segmentsToAdd[6].segmentSlug",
                                       "segmentsToRemove[0].segmentSlug",
                                   });
  CHECK(store.transactions == 0);
}

TEST_CASE_METHOD(Fixture, "an empty change is accepted and touches nothing", "[memberships]") {
  CHECK(Change({}, {}).ok());
  // Not even the user is looked up, as in the original service.
  CHECK(Change({}, {}, "11111111-1111-1111-1111-111111111111").ok());
  CHECK(store.transactions == 0);
  CHECK(store.state.history.empty());
  // The id must still be one.
  CHECK(ViolationFields(Change({}, {}, "not-an-id")) == std::vector<std::string>{"userID"});
}

TEST_CASE_METHOD(Fixture, "unknown user and unknown slugs are not found, each slug listed", "[memberships]") {
  Create("A");
  auto no_user = Change({Add("A")}, {}, "11111111-1111-1111-1111-111111111111");
  CHECK(no_user.code() == absl::StatusCode::kNotFound);
  CHECK(ViolationFields(no_user) == std::vector<std::string>{"userID"});

  auto missing = Change({Add("X"), Add("A"), Add("Y")}, {"Z"});
  CHECK(missing.code() == absl::StatusCode::kNotFound);
  CHECK(ViolationFields(missing) == std::vector<std::string>{"segmentsToAdd[0].segmentSlug",
                                                             "segmentsToAdd[2].segmentSlug",
                                                             "segmentsToRemove[0].segmentSlug"});
  CHECK(Get().empty());  // "A" was not added: all or nothing
  CHECK(store.state.history.empty());
}

TEST_CASE_METHOD(Fixture, "adding a held segment is refused and changes nothing", "[memberships]") {
  Create("A");
  Create("B");
  Create("C");
  REQUIRE(Change({Add("A")}, {}).ok());
  auto status = Change({Add("C"), Add("A")}, {"B"});
  CHECK(status.code() == absl::StatusCode::kFailedPrecondition);
  CHECK(ViolationFields(status) == std::vector<std::string>{"segmentsToAdd[1].segmentSlug"});
  CHECK(Get() == std::vector<std::string>{"A"});
  CHECK(store.state.history.size() == 1);
}

TEST_CASE_METHOD(Fixture, "removing a segment the user is not in is accepted without an event", "[memberships]") {
  Create("A");
  Create("B");
  REQUIRE(Change({Add("A")}, {}).ok());
  REQUIRE(store.state.history.size() == 1);

  // B is not held: accepted, no event. A listed twice is removed once.
  CHECK(Change({}, {"B"}).ok());
  CHECK(store.state.history.size() == 1);
  CHECK(Change({}, {"A", "B", "A"}).ok());
  CHECK(Get().empty());
  REQUIRE(store.state.history.size() == 2);
  CHECK(store.state.history[1].slug == "A");
  CHECK(store.state.history[1].operation == Operation::kRemove);
  // A removal of a missing segment does not keep it from automatic assignment either.
  CHECK(store.state.opt_outs.size() == 1);

  // A segment that does not exist is still not found; one in both lists still refused.
  CHECK(ViolationFields(Change({}, {"B", "NOPE"})) == std::vector<std::string>{"segmentsToRemove[1].segmentSlug"});
  auto both = Change({Add("B")}, {"C", "B"});
  CHECK(both.code() == absl::StatusCode::kInvalidArgument);
  CHECK(ViolationFields(both) == std::vector<std::string>{"segmentsToRemove[1].segmentSlug"});
}

TEST_CASE_METHOD(Fixture, "a TTL membership is visible until its deadline, exclusive", "[ttl]") {
  Create("A");
  Create("B");
  const absl::Time start = clock.Now();
  REQUIRE(Change({{"A", 60, std::nullopt}, {"B", std::nullopt, start + absl::Minutes(2)}}, {}).ok());

  clock.Set(start + absl::Seconds(60) - absl::Microseconds(1));
  CHECK(Get() == std::vector<std::string>{"A", "B"});
  clock.Set(start + absl::Seconds(60));
  CHECK(Get() == std::vector<std::string>{"B"});
  clock.Set(start + absl::Minutes(2));
  CHECK(Get().empty());
}

TEST_CASE_METHOD(Fixture, "TTL bounds: one second up to 3650 days, deadline strictly in the future up to ten years",
                 "[ttl]") {
  Create("A");
  const absl::Time now = clock.Now();
  CHECK(Change({{"A", kMaxTtlSeconds + 1, std::nullopt}}, {}).code() == absl::StatusCode::kInvalidArgument);
  CHECK(Change({{"A", std::nullopt, MaxDeadline(now) + absl::Seconds(1)}}, {}).code() ==
        absl::StatusCode::kInvalidArgument);
  CHECK(Change({{"A", -5, std::nullopt}}, {}).code() == absl::StatusCode::kInvalidArgument);
  CHECK(Change({{"A", std::nullopt, now + absl::Microseconds(1)}}, {}).ok());
  clock.Advance(absl::Microseconds(1));
  CHECK(Change({{"A", kMaxTtlSeconds, std::nullopt}}, {}).ok());
}

TEST_CASE_METHOD(Fixture, "re-adding after expiry records the TTL exit at the deadline first", "[ttl]") {
  Create("A");
  const absl::Time start = clock.Now();
  REQUIRE(Change({{"A", 60, std::nullopt}}, {}).ok());
  clock.Advance(absl::Minutes(10));
  // Expired: not in it, so the removal adds nothing but the TTL exit the
  // expiry job has not recorded yet.
  REQUIRE(Change({}, {"A"}).ok());
  REQUIRE(store.state.history.size() == 2);
  REQUIRE(Change({Add("A")}, {}).ok());

  const auto& h = store.state.history;
  REQUIRE(h.size() == 3);
  CHECK(h[1].operation == Operation::kRemove);
  CHECK(h[1].reason == Reason::kTtl);
  CHECK(h[1].at == start + absl::Seconds(60));
  CHECK(h[2].operation == Operation::kAdd);
  CHECK(h[2].at == clock.Now());
  CHECK(Get() == std::vector<std::string>{"A"});
  CHECK_FALSE(store.state.memberships.begin()->second.expires_at.has_value());
}

TEST_CASE_METHOD(Fixture, "deleting a segment ends its memberships with the right reasons", "[segments]") {
  Create("A");
  const std::string other = "22222222-2222-2222-2222-222222222222";
  store.state.users[Id(other)] = UserState::kActive;
  const absl::Time start = clock.Now();
  REQUIRE(Change({{"A", 30, std::nullopt}}, {}).ok());
  REQUIRE(Change({Add("A")}, {}, other).ok());
  clock.Advance(absl::Minutes(1));

  auto ended = segments.DeleteSegment("A");
  REQUIRE(ended.ok());
  CHECK(*ended == 1);  // the expired one had ended already
  CHECK(store.state.memberships.empty());
  int ttl = 0, deleted = 0;
  for (const auto& e : store.state.history) {
    if (e.operation != Operation::kRemove) continue;
    if (e.reason == Reason::kTtl) {
      ++ttl;
      CHECK(e.at == start + absl::Seconds(30));
    }
    if (e.reason == Reason::kSegmentDeleted) {
      ++deleted;
      CHECK(e.at == clock.Now());
    }
  }
  CHECK(ttl == 1);
  CHECK(deleted == 1);
  CHECK(segments.DeleteSegment("A").status().code() == absl::StatusCode::kNotFound);
  CHECK(segments.DeleteSegment("").status().code() == absl::StatusCode::kInvalidArgument);
}

TEST_CASE_METHOD(Fixture, "get is sorted, empty for unknown users, strict on UUID form", "[read]") {
  for (const char* slug : {"b", "A", "a", "B_2"}) Create(slug);
  REQUIRE(Change({Add("b"), Add("A"), Add("a"), Add("B_2")}, {}).ok());
  CHECK(Get() == std::vector<std::string>{"A", "B_2", "a", "b"});

  auto upper = segments.GetUserSegments("0B7F9F5E-1C2D-4E3F-8A9B-0C1D2E3F4A5B");
  REQUIRE(upper.ok());
  CHECK(upper->size() == 4);
  auto unknown = segments.GetUserSegments("33333333-3333-3333-3333-333333333333");
  REQUIRE(unknown.ok());
  CHECK(unknown->empty());
  CHECK(segments.GetUserSegments("nope").status().code() == absl::StatusCode::kInvalidArgument);
}

TEST_CASE_METHOD(Fixture, "storage failures pass through unchanged", "[errors]") {
  Create("A");
  store.failure = absl::UnavailableError("database is unavailable");
  CHECK(Change({Add("A")}, {}).code() == absl::StatusCode::kUnavailable);
  CHECK(segments.GetUserSegments(kUser).status().code() == absl::StatusCode::kUnavailable);
  CHECK(segments.CreateSegment({"B", std::nullopt, "", {}, {}, std::nullopt}).status().code() ==
        absl::StatusCode::kUnavailable);
}

TEST_CASE_METHOD(Fixture, "GetSegment counts the members active now", "[segments][get_segment]") {
  const std::string other = "1c8f0a6f-2d3e-4f40-9bac-1d2e3f405b6c";
  store.state.users[Id(other)] = UserState::kActive;
  Create("A");
  REQUIRE(Change({{"A", 60, std::nullopt}}, {}).ok());
  REQUIRE(Change({{"A", {}}}, {}, other).ok());

  auto got = segments.GetSegment("A");
  REQUIRE(got.ok());
  CHECK(got->first.slug == "A");
  CHECK(got->second == 2);

  clock.Advance(absl::Seconds(60));  // the TTL membership has ended, job or not
  got = segments.GetSegment("A");
  REQUIRE(got.ok());
  CHECK(got->second == 1);

  CHECK(segments.GetSegment("B").status().code() == absl::StatusCode::kNotFound);
  CHECK(ViolationFields(segments.GetSegment("B").status()) == std::vector<std::string>{"slug"});
  CHECK(segments.GetSegment("_bad").status().code() == absl::StatusCode::kInvalidArgument);
  REQUIRE(segments.DeleteSegment("A").ok());
  CHECK(segments.GetSegment("A").status().code() == absl::StatusCode::kNotFound);
}
