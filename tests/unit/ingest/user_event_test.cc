#include "ingest/user_event.h"

#include <catch2/catch.hpp>

#include "support/domain_testing.h"

using segments::ingest::EventRecord;
using segments::ingest::ParseUserEvent;
using segments::ingest::PlanBatch;
using segments::testing::Id;

namespace {
constexpr const char* kUser = "0b7f9f5e-1c2d-4e3f-8a9b-0c1d2e3f4a5b";
constexpr const char* kOther = "11111111-1111-4111-8111-111111111111";

EventRecord Record(int32_t partition, int64_t offset, const std::string& value) {
  return EventRecord{partition, offset, "key", value};
}
std::string Event(const std::string& user) { return R"({"userID":")" + user + R"("})"; }
}  // namespace

TEST_CASE("a user event names one user, in canonical form", "[ingest]") {
  CHECK(ParseUserEvent(Event(kUser))->ToString() == kUser);
  CHECK(ParseUserEvent(R"({"userID": "0B7F9F5E-1C2D-4E3F-8A9B-0C1D2E3F4A5B", "extra": [1, {"x": 2}]})")->ToString() ==
        kUser);
}

TEST_CASE("anything else is refused with a reason", "[ingest]") {
  auto not_json = ParseUserEvent("this is not JSON");
  CHECK(not_json.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK_THAT(std::string(not_json.status().message()), Catch::Matchers::StartsWith("value is not a JSON user event"));
  CHECK(std::string(not_json.status().message()).find('\n') == std::string::npos);
  CHECK(std::string(ParseUserEvent("{}").status().message()) == "userID: is required");
  CHECK_THAT(std::string(ParseUserEvent(R"({"userID": "nope"})").status().message()),
             Catch::Matchers::StartsWith("userID: "));
  CHECK_FALSE(ParseUserEvent(R"({"userID": 42})").ok());
  CHECK_FALSE(ParseUserEvent("").ok());
  CHECK_FALSE(ParseUserEvent(R"(["userID"])").ok());
}

TEST_CASE("a batch looks each user up once and commits past its last record per partition", "[ingest]") {
  const std::vector<EventRecord> records = {
      Record(0, 10, Event(kUser)), Record(1, 5, Event(kOther)), Record(0, 11, "junk"),
      Record(0, 12, Event(kUser)), Record(1, 6, Event(kUser)),
  };
  auto batch = PlanBatch(records);
  CHECK(batch.events == 5);
  CHECK(batch.users == std::vector<segments::domain::UserId>{Id(kUser), Id(kOther)});
  REQUIRE(batch.dead_letters.size() == 1);
  CHECK(batch.dead_letters[0].record.offset == 11);
  CHECK(batch.commit_offsets == std::map<int32_t, int64_t>{{0, 13}, {1, 7}});
}

TEST_CASE("a batch of only bad records still commits them", "[ingest]") {
  auto batch = PlanBatch({Record(2, 0, "{"), Record(2, 1, "null")});
  CHECK(batch.users.empty());
  CHECK(batch.dead_letters.size() == 2);
  CHECK(batch.commit_offsets == std::map<int32_t, int64_t>{{2, 2}});
}
