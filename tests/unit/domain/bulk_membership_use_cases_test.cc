#include "domain/bulk_membership_use_cases.h"

#include <absl/strings/ascii.h>
#include <fmt/format.h>

#include <catch2/catch.hpp>
#include <set>

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
using segments::testing::UserText;
using segments::testing::ViolationFields;
using segments::testing::ViolationsOf;

namespace {

struct Fixture {
  FakeStore store;
  FakeClock clock;
  SegmentUseCases segments{store, clock};
  UserUseCases users{store, clock};
  BulkMembershipUseCases bulk{store, clock};
  SegmentId seg = 0;

  Fixture() {
    for (int i = 0; i < 300; ++i) store.state.users[UserNo(i)] = UserState::kActive;
    auto created = segments.CreateSegment({"S", std::nullopt, "", {}, {}, std::nullopt});
    REQUIRE(created.ok());
    seg = created->id;
  }

  static std::vector<std::string> Range(int from, int to) {
    std::vector<std::string> out;
    for (int i = from; i < to; ++i) out.push_back(UserText(i));
    return out;
  }

  absl::StatusOr<BulkAddResult> AddAll(std::vector<std::string> ids, TtlInput ttl = {}, std::string slug = "S") {
    return bulk.AddSegmentToUsers({std::move(slug), {ids.begin(), ids.end()}, ttl});
  }
  absl::StatusOr<BulkRemoveResult> RemoveAll(std::vector<std::string> ids, std::string slug = "S") {
    return bulk.RemoveSegmentFromUsers({std::move(slug), {ids.begin(), ids.end()}, {}});
  }

  std::set<std::string> Members() {
    std::set<std::string> out;
    for (const auto& [key, m] : store.state.memberships) {
      if (key.second == seg) out.insert(key.first.ToString());
    }
    return out;
  }
};

}  // namespace

// --- shape

TEST_CASE_METHOD(Fixture, "bulk: an empty list, a bad slug and a missing segment", "[bulk]") {
  auto empty = AddAll({});
  CHECK(empty.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(ViolationFields(empty.status()) == std::vector<std::string>{"userIDs"});
  CHECK(ViolationFields(RemoveAll({}).status()) == std::vector<std::string>{"userIDs"});

  auto bad_slug = AddAll({UserText(1)}, {}, "no such slug");
  CHECK(ViolationFields(bad_slug.status()) == std::vector<std::string>{"slug"});
  CHECK(store.transactions == 1);  // only the fixture's CreateSegment

  auto missing = AddAll({UserText(1)}, {}, "NOPE");
  CHECK(missing.status().code() == absl::StatusCode::kNotFound);
  CHECK(ViolationFields(missing.status()) == std::vector<std::string>{"slug"});
  CHECK(RemoveAll({UserText(1)}, "NOPE").status().code() == absl::StatusCode::kNotFound);
}

TEST_CASE_METHOD(Fixture, "bulk: at most 100,000 ids", "[bulk]") {
  std::vector<std::string> ids(BulkMembershipUseCases::kMaxUsers + 1, "not even a uuid");
  auto too_many = AddAll(ids);
  CHECK(too_many.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(ViolationFields(too_many.status()) == std::vector<std::string>{"userIDs"});  // no per-id noise
  CHECK(ViolationFields(RemoveAll(ids).status()) == std::vector<std::string>{"userIDs"});
  CHECK(store.transactions == 1);
}

TEST_CASE_METHOD(Fixture, "bulk: malformed and repeated ids are listed by index, the first 20 only", "[bulk]") {
  std::vector<std::string> ids = {UserText(1), "nope",     UserText(2), absl::AsciiStrToUpper(UserText(1)),
                                  "",          UserText(2)};
  auto status = AddAll(ids).status();
  CHECK(status.code() == absl::StatusCode::kInvalidArgument);
  CHECK(ViolationFields(status) == std::vector<std::string>{"userIDs[1]", "userIDs[3]", "userIDs[4]", "userIDs[5]"});
  const auto v = ViolationsOf(status);
  CHECK(v[0].description == "must be a UUID or a decimal integer 0..9223372036854775807");
  CHECK(v[1].description.find("userIDs[0]") != std::string::npos);  // same user in another case
  CHECK(v[2].description == "is required");
  CHECK(v[3].description.find("userIDs[2]") != std::string::npos);

  // 250 bad ids: 20 listed, the rest summed up in one more entry.
  std::vector<std::string> many;
  for (int i = 0; i < 250; ++i) many.push_back(i % 2 == 0 ? "bad-" + std::to_string(i) : UserText(0));
  many[1] = UserText(5);  // good; UserText(0) first at [3], repeated at every odd index from [5]
  auto lots = RemoveAll(many).status();
  CHECK(lots.code() == absl::StatusCode::kInvalidArgument);
  const auto listed = ViolationsOf(lots);
  REQUIRE(listed.size() == BulkMembershipUseCases::kMaxListedProblems + 1);
  CHECK(listed[0].field == "userIDs[0]");
  CHECK(listed[3].field == "userIDs[5]");
  CHECK(listed[19].field == "userIDs[21]");
  CHECK(listed[20].field == "userIDs");
  // 125 malformed + 123 repeats of UserText(0): 248, of which 20 listed
  CHECK(listed[20].description == "and 228 more problems");
  CHECK(Members().empty());
}

TEST_CASE_METHOD(Fixture, "bulk add: TTL as seconds or deadline, never both", "[bulk][ttl]") {
  const absl::Time now = clock.Now();
  auto both = AddAll({UserText(1)}, {60, now + absl::Hours(1)});
  CHECK(ViolationFields(both.status()) == std::vector<std::string>{"secondsToBeInSegment"});
  CHECK(ViolationFields(AddAll({UserText(1)}, {0, std::nullopt}).status()) ==
        std::vector<std::string>{"secondsToBeInSegment"});
  CHECK(ViolationFields(AddAll({UserText(1)}, {std::nullopt, now}).status()) ==
        std::vector<std::string>{"deadlineForStayingInSegment"});
  CHECK(ViolationFields(AddAll({"x"}, {0, std::nullopt}).status()) ==
        std::vector<std::string>{"userIDs[0]", "secondsToBeInSegment"});

  REQUIRE(AddAll({UserText(1), UserText(2)}, {90, std::nullopt}).ok());
  for (const auto& [key, m] : store.state.memberships) {
    CHECK(m.expires_at == now + absl::Seconds(90));
    CHECK_FALSE(m.automatic);
  }
}

// --- unknown users: all or nothing

TEST_CASE_METHOD(Fixture, "bulk: unknown users fail the whole call, first 20 listed by index", "[bulk]") {
  REQUIRE(AddAll({UserText(0)}).ok());
  const auto history_before = store.state.history.size();
  std::vector<std::string> ids = Range(0, 100);                  // known
  for (int i = 1000; i < 1250; ++i) ids.push_back(UserText(i));  // 250 unknown at [100..349]
  ids.push_back(UserText(100));                                  // known, at the end

  auto add = AddAll(ids);
  CHECK(add.status().code() == absl::StatusCode::kNotFound);
  const auto v = ViolationsOf(add.status());
  REQUIRE(v.size() == 21);
  CHECK(v[0].field == "userIDs[100]");
  CHECK(v[0].description == fmt::format("user \"{}\" does not exist", UserText(1000)));
  CHECK(v[19].field == "userIDs[119]");
  CHECK(v[20].field == "userIDs");
  CHECK(v[20].description == "and 230 more unknown users");
  CHECK(Members() == std::set<std::string>{UserText(0)});
  CHECK(store.state.history.size() == history_before);

  auto remove = RemoveAll(ids);
  CHECK(remove.status().code() == absl::StatusCode::kNotFound);
  CHECK(Members() == std::set<std::string>{UserText(0)});
  CHECK(store.state.opt_outs.empty());

  // One unknown id among many known ones: still nothing.
  std::vector<std::string> one_bad = Range(1, 300);
  one_bad.insert(one_bad.begin() + 17, UserText(5000));
  auto single = AddAll(one_bad);
  CHECK(single.status().code() == absl::StatusCode::kNotFound);
  CHECK(ViolationFields(single.status()) == std::vector<std::string>{"userIDs[17]"});
  CHECK(Members().size() == 1);
}

// --- effects

TEST_CASE_METHOD(Fixture, "bulk add counts added and already-member users, with history", "[bulk]") {
  REQUIRE(segments.UpdateUserSegments({UserText(3), {{"S", {}}}, {}}).ok());
  clock.Advance(absl::Seconds(1));
  std::vector<std::string> ids = Range(0, 10);
  ids[5] = absl::AsciiStrToUpper(ids[5]);  // any case, stored canonical
  auto added = AddAll(ids);
  REQUIRE(added.ok());
  CHECK(added->added == 9);
  CHECK(added->already_members == 1);
  CHECK(Members().size() == 10);
  CHECK(Members().count(UserText(5)) == 1);
  CHECK(store.state.history.size() == 10);
  for (size_t i = 1; i < store.state.history.size(); ++i) {
    CHECK(store.state.history[i].operation == Operation::kAdd);
    CHECK(store.state.history[i].reason == Reason::kManual);
    CHECK(store.state.history[i].at == clock.Now());
  }
  // The segment is held shared; user events and other fills go on.
  CHECK(store.shared_segment_locks >= 2);
  CHECK(store.exclusive_segment_locks == 0);
  CHECK(store.shared_auto_locks == 0);
  CHECK(store.exclusive_auto_locks == 0);
}

TEST_CASE_METHOD(Fixture, "bulk add ends an expired row first, recording it at its deadline", "[bulk][ttl]") {
  const absl::Time start = clock.Now();
  REQUIRE(AddAll({UserText(1)}, {60, std::nullopt}).ok());
  clock.Advance(absl::Minutes(5));
  auto added = AddAll({UserText(1)});
  REQUIRE(added.ok());
  CHECK(added->added == 1);
  const auto& h = store.state.history;
  REQUIRE(h.size() == 3);
  CHECK(h[1].operation == Operation::kRemove);
  CHECK(h[1].reason == Reason::kTtl);
  CHECK(h[1].at == start + absl::Seconds(60));
  CHECK(h[2].operation == Operation::kAdd);
  CHECK_FALSE(store.state.memberships.at({UserNo(1), seg}).expires_at.has_value());
}

TEST_CASE_METHOD(Fixture, "bulk remove counts, records manual history and opts users out", "[bulk]") {
  REQUIRE(AddAll(Range(0, 5)).ok());
  const int shared_before = store.shared_segment_locks;
  clock.Advance(absl::Seconds(1));
  auto removed = RemoveAll(Range(3, 8));
  REQUIRE(removed.ok());
  CHECK(removed->removed == 2);
  CHECK(removed->not_members == 3);
  CHECK(Members() == std::set<std::string>{UserText(0), UserText(1), UserText(2)});
  CHECK(store.shared_segment_locks == shared_before + 1);
  CHECK(store.shared_auto_locks == 0);
  std::set<std::string> opted;
  for (const auto& [key, reason] : store.state.opt_outs) {
    CHECK(key.first == seg);
    CHECK(reason == Reason::kManual);
    opted.insert(key.second.ToString());
  }
  CHECK(opted == std::set<std::string>{UserText(3), UserText(4)});  // not the non-members
  const auto& last = store.state.history.back();
  CHECK(last.operation == Operation::kRemove);
  CHECK(last.reason == Reason::kManual);
  CHECK(last.at == clock.Now());
}

TEST_CASE_METHOD(Fixture, "users removed in bulk are not put back by raising or by reactivation", "[bulk]") {
  const auto at = [&] {
    REQUIRE(segments.UpdateSegmentPercent({"S", 100.0}).ok());
    return Members();
  };
  REQUIRE(at().size() == 300);
  REQUIRE(RemoveAll(Range(0, 100)).ok());
  REQUIRE(segments.UpdateSegmentPercent({"S", 0.0}).ok());
  CHECK(Members().empty());
  const std::vector<std::string> kept = Range(100, 300);
  CHECK(at() == std::set<std::string>(kept.begin(), kept.end()));
  REQUIRE(users.UpdateUser(UserText(1), "excluded").ok());
  REQUIRE(users.UpdateUser(UserText(1), "active").ok());
  CHECK(Members().count(UserText(1)) == 0);
}
