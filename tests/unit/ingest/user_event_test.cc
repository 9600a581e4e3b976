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

std::string Message(std::string_view value) {
  auto user = ParseUserEvent(value);
  if (user.ok()) return "ok: " + user->ToString();
  CHECK(user.status().code() == absl::StatusCode::kInvalidArgument);
  return std::string(user.status().message());
}

constexpr const char* kNotAnId = "userID: must be a UUID or a decimal integer 0..9223372036854775807";
}  // namespace

TEST_CASE("a user event names one user, in canonical form", "[ingest]") {
  CHECK(ParseUserEvent(Event(kUser))->ToString() == kUser);
  CHECK(ParseUserEvent(R"({"userID": "0B7F9F5E-1C2D-4E3F-8A9B-0C1D2E3F4A5B", "extra": [1, {"x": 2}]})")->ToString() ==
        kUser);
  CHECK(Message(R"({"user_id":")" + std::string(kUser) + R"("})") == "ok: " + std::string(kUser));
  CHECK(Message(" \t\r\n{ \"userID\" : \"1000\" } \n") == "ok: 1000");
  CHECK(Message(R"({"\u0075serID": "\u0031\u0030\u0030\u0030"})") == "ok: 1000");
}

TEST_CASE("a user event's id may be an integer, as a string or a JSON number", "[ingest]") {
  CHECK(Message(R"({"userID": "1000"})") == "ok: 1000");
  CHECK(Message(R"({"userID": 1000})") == "ok: 1000");
  CHECK(Message(R"({"userID": 0})") == "ok: 0");
  CHECK(Message(R"({"userID":9223372036854775807,"at":1.5e3})") == "ok: 9223372036854775807");
  CHECK(ParseUserEvent(R"({"userID": 1000})").value() == ParseUserEvent(R"({"userID": "1000"})").value());
  CHECK(ParseUserEvent(R"({"userID": 1000})").value() != Id("00000000-0000-0000-0000-000000001000"));
  // Only what the text form allows: no sign, fraction, exponent or overflow.
  for (const char* number : {"-1", "-0", "1.0", "1e3", "1E3", "10.5", "9223372036854775808", "18446744073709551616"}) {
    INFO(number);
    CHECK(Message(std::string(R"({"userID": )") + number + "}") == kNotAnId);
  }
  for (const char* text : {"01", "+1", "-1", "1.0", "1e3", " 1", "9223372036854775808"}) {
    INFO(text);
    CHECK(Message(Event(text)) == kNotAnId);
  }
}

TEST_CASE("anything else is refused with a reason", "[ingest]") {
  auto not_json = ParseUserEvent("this is not JSON");
  CHECK(not_json.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK_THAT(std::string(not_json.status().message()), Catch::Matchers::StartsWith("value is not a JSON user event"));
  CHECK(std::string(not_json.status().message()).find('\n') == std::string::npos);
  CHECK(Message("{}") == "userID: is required");
  CHECK(Message(R"({"userID": null})") == "userID: is required");
  CHECK(Message(R"({"other": "1000"})") == "userID: is required");
  CHECK(Message(R"({"userID": "nope"})") == kNotAnId);
  CHECK(Message(R"({"userID": true})") == "userID: must be a string or an integer");
  CHECK(Message(R"({"userID": ["1000"]})") == "userID: must be a string or an integer");
  CHECK(Message(R"({"userID": "1000", "user_id": "1002"})") == "userID: given twice");
  for (const char* bad :
       {"", "null", "1000", R"("1000")", R"(["userID"])", R"({"userID": "1000")", R"({"userID": "1000"} x)",
        R"({"userID": "1000",})", R"({"userID" "1000"})", R"({userID: "1000"})", R"({"userID": 01})",
        R"({"userID": 1.})", R"({"userID": -})", R"({"userID": "1000", "x": [1,]})", R"({"userID": "1000", "x": tru})",
        R"({"userID": "10\x00"})", "{\"userID\": \"10\n00\"}", R"({"userID": "\ud800"})",
        R"({"userID": "1000", "x": "unterminated})"}) {
    INFO(bad);
    CHECK_THAT(Message(bad), Catch::Matchers::StartsWith("value is not a JSON user event: "));
  }
  // Deep nesting is refused, not recursed into without end.
  const std::string deep = R"({"userID": "1000", "x": )" + std::string(100000, '[') + std::string(100000, ']') + "}";
  CHECK_THAT(Message(deep), Catch::Matchers::Contains("nested too deeply"));
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
