// SegmentService.CreateSegment, DeleteSegment and GetUserSegments through the
// generated stub, against the real database.
#include <algorithm>
#include <limits>

#include "domain/bucketing.h"
#include "service/service_fixture.h"

namespace segments::testing {
namespace {

using Catch::Matchers::Equals;

std::string SegmentRows() {
  std::string out;
  const std::string sql = "SELECT slug, coalesce(percent_to_fill, 0)::text, description, " + MicrosOf("created_at") +
                          ", coalesce(" + MicrosOf("deleted_at") + ", 0) FROM segments ORDER BY id";
  for (const auto& row : Query(sql)) {
    for (const auto& value : row) out += value + "|";
    out += "\n";
  }
  return out;
}

// --- CreateSegment

TEST_CASE_METHOD(ServiceFixture, "CreateSegment stores the segment and returns it", "[service][create_segment]") {
  v1::CreateSegmentRequest request;
  request.set_slug("AVITO_VOICE_MESSAGES");
  request.set_description("voice messages in chat");
  v1::CreateSegmentResponse response;
  const grpc::Status status = CreateSegment(request, &response);
  INFO(Describe(status));
  REQUIRE(status.ok());

  CHECK(response.segment().slug() == "AVITO_VOICE_MESSAGES");
  CHECK(response.segment().percent_to_fill() == 0);
  CHECK(response.segment().description() == "voice messages in chat");
  CHECK(response.segment().created_at().seconds() == absl::ToUnixSeconds(Now()));
  CHECK(response.segment().created_at().nanos() == 0);

  const auto rows = Query("SELECT slug, description, " + MicrosOf("created_at") +
                          ", deleted_at IS NULL, coalesce(percent_to_fill, 0) = 0, length(salt) > 0 FROM segments");
  REQUIRE(rows.size() == 1);
  CHECK(rows[0] == std::vector<std::string>{"AVITO_VOICE_MESSAGES", "voice messages in chat",
                                            std::to_string(Micros(Now())), "t", "t", "t"});
  CHECK(Count("SELECT count(*) FROM history") == 0);
}

TEST_CASE_METHOD(ServiceFixture, "CreateSegment accepts an explicit percentToFill of 0 and boundary slugs",
                 "[service][create_segment]") {
  v1::CreateSegmentRequest zero;
  zero.set_slug("ZERO_PERCENT");
  zero.set_percent_to_fill(0);
  const grpc::Status zero_status = CreateSegment(zero);
  INFO(Describe(zero_status));
  CHECK(zero_status.ok());

  const std::string longest(128, 'x');
  for (const std::string& slug : {longest, std::string("1st"), std::string("a.b-c_D"), std::string("Z")}) {
    INFO("slug " << slug);
    const grpc::Status status = CreateSegment(slug);
    INFO(Describe(status));
    CHECK(status.ok());
  }
  CHECK(Count("SELECT count(*) FROM segments WHERE deleted_at IS NULL") == 5);
  CHECK(QueryValue("SELECT slug FROM segments WHERE length(slug) = 128") == longest);
}

TEST_CASE_METHOD(ServiceFixture, "CreateSegment slugs are case-sensitive", "[service][create_segment]") {
  REQUIRE(CreateSegment("discount").ok());
  CHECK(CreateSegment("DISCOUNT").ok());
  CHECK(CreateSegment("Discount").ok());
  CHECK(Count("SELECT count(*) FROM segments") == 3);
}

TEST_CASE_METHOD(ServiceFixture, "CreateSegment rejects a malformed slug", "[service][create_segment]") {
  const std::string slug = GENERATE(std::string(""), std::string("_lead"), std::string(".lead"), std::string("-lead"),
                                    std::string("has space"), std::string("a/b"), std::string("caf\xc3\xa9"),
                                    std::string("semi;colon"), std::string(129, 'x'));
  INFO("slug '" << slug << "'");
  const grpc::Status status = CreateSegment(slug);
  INFO(Describe(status));
  CHECK(status.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK_THAT(ViolationFields(status), Equals(std::vector<std::string>{"slug"}));
  CHECK(Count("SELECT count(*) FROM segments") == 0);
}

TEST_CASE_METHOD(ServiceFixture, "CreateSegment rejects a bad percentToFill", "[service][create_segment]") {
  const double percent = GENERATE(-1.0, -0.01, 100.01, 12.345, 1000.0, std::numeric_limits<double>::quiet_NaN(),
                                  std::numeric_limits<double>::infinity());
  INFO("percent " << percent);
  v1::CreateSegmentRequest request;
  request.set_slug("DISCOUNT_30");
  request.set_percent_to_fill(percent);
  const grpc::Status status = CreateSegment(request);
  INFO(Describe(status));
  CHECK(status.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK_THAT(ViolationFields(status), Equals(std::vector<std::string>{"percentToFill"}));
  CHECK(Count("SELECT count(*) FROM segments") == 0);
}

TEST_CASE_METHOD(ServiceFixture, "CreateSegment lists every problem of a request", "[service][create_segment]") {
  v1::CreateSegmentRequest request;
  request.set_slug("bad slug");
  request.set_percent_to_fill(101);
  request.set_description(std::string(1001, 'd'));
  const grpc::Status status = CreateSegment(request);
  INFO(Describe(status));
  CHECK(status.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK_THAT(ViolationFields(status), Equals(std::vector<std::string>{"slug", "percentToFill", "description"}));
  CHECK(Count("SELECT count(*) FROM segments") == 0);

  request.set_slug("GOOD");
  request.clear_percent_to_fill();
  request.set_description(std::string(1000, 'd'));
  CHECK(CreateSegment(request).ok());
}

TEST_CASE_METHOD(ServiceFixture, "CreateSegment with percentToFill fills the segment before it returns",
                 "[service][create_segment][percent]") {
  // 2,000 users, one in ten excluded; the members must be exactly the active
  // users whose bucket (computed here in C++) is covered.
  Query(
      "INSERT INTO users (id, state, created_at, updated_at) "
      "SELECT format('00000000-0000-4000-8000-%s', lpad(g::text, 12, '0'))::uuid, "
      "CASE WHEN g % 10 = 0 THEN 'excluded' ELSE 'active' END::user_state, now(), now() "
      "FROM generate_series(1, 2000) AS g");
  const double percent = GENERATE(0.01, 30.0, 50.5, 100.0);
  INFO("percent " << percent);
  v1::CreateSegmentRequest request;
  request.set_slug("DISCOUNT_30");
  request.set_percent_to_fill(percent);
  v1::CreateSegmentResponse response;
  const grpc::Status status = CreateSegment(request, &response);
  INFO(Describe(status));
  REQUIRE(status.ok());
  CHECK(response.segment().percent_to_fill() == Approx(percent));
  const std::string salt = QueryValue("SELECT salt FROM segments WHERE slug = 'DISCOUNT_30'");
  const auto threshold = static_cast<int32_t>(std::lround(percent * 100));
  std::vector<std::string> expected;
  for (const auto& row : Query("SELECT id::text FROM users WHERE state = 'active' ORDER BY id")) {
    if (domain::Bucket(salt, row[0]) < threshold) expected.push_back(row[0]);
  }
  std::vector<std::string> members;
  for (const auto& row : Query("SELECT user_id::text FROM memberships WHERE auto ORDER BY user_id")) {
    members.push_back(row[0]);
  }
  CHECK(members == expected);
  CHECK(Count("SELECT count(*) FROM memberships WHERE NOT auto") == 0);
  CHECK(Count("SELECT count(*) FROM history WHERE operation = 'add' AND reason = 'auto_percent' "
              "AND at = (SELECT created_at FROM segments WHERE slug = 'DISCOUNT_30')") ==
        static_cast<int64_t>(expected.size()));
  if (percent == 100.0) CHECK(expected.size() == 1800);
  // The hot read sees them at once.
  if (!expected.empty()) CHECK(SegmentsOf(expected.front()) == std::vector<std::string>{"DISCOUNT_30"});
}

TEST_CASE_METHOD(ServiceFixture, "CreateSegment of a taken slug is ALREADY_EXISTS and changes nothing",
                 "[service][create_segment]") {
  v1::CreateSegmentRequest first;
  first.set_slug("AVITO_VOICE_MESSAGES");
  first.set_description("first");
  REQUIRE(CreateSegment(first).ok());
  const std::string before = SegmentRows();

  clock.Advance(absl::Minutes(5));
  v1::CreateSegmentRequest again;
  again.set_slug("AVITO_VOICE_MESSAGES");
  again.set_description("second");
  const grpc::Status status = CreateSegment(again);
  INFO(Describe(status));
  CHECK(status.error_code() == grpc::StatusCode::ALREADY_EXISTS);
  CHECK_THAT(ViolationFields(status), Equals(std::vector<std::string>{"slug"}));
  CHECK(SegmentRows() == before);
}

// The proto promises "at most 1000 characters"; text for humans here is often
// Cyrillic, two bytes a character in UTF-8.
TEST_CASE_METHOD(ServiceFixture, "CreateSegment limits the description in characters rather than bytes",
                 "[service][create_segment]") {
  std::string cyrillic_1000;
  for (int i = 0; i < 1000; ++i) cyrillic_1000 += "\xd1\x8f";  // U+044F
  v1::CreateSegmentRequest request;
  request.set_slug("RU");
  request.set_description(cyrillic_1000);
  v1::CreateSegmentResponse response;
  const grpc::Status status = CreateSegment(request, &response);
  INFO(Describe(status));
  CHECK(status.ok());
  const bool returned_as_given = response.segment().description() == cyrillic_1000;
  CHECK(returned_as_given);

  request.set_slug("RU_TOO_LONG");
  request.set_description(cyrillic_1000 + "\xd1\x8f");
  const grpc::Status too_long = CreateSegment(request);
  INFO(Describe(too_long));
  CHECK(too_long.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK_THAT(ViolationFields(too_long), Equals(std::vector<std::string>{"description"}));
}

// A NUL is valid in a protobuf string but not in PostgreSQL text: the server
// must refuse it or keep it, never cut the text short.
TEST_CASE_METHOD(ServiceFixture, "CreateSegment never truncates a description", "[service][create_segment]") {
  const std::string with_nul("before\0after", 12);
  v1::CreateSegmentRequest request;
  request.set_slug("NUL");
  request.set_description(with_nul);
  v1::CreateSegmentResponse response;
  const grpc::Status status = CreateSegment(request, &response);
  INFO(Describe(status));
  if (status.ok()) {
    CHECK(response.segment().description() == with_nul);
    CHECK(QueryValue("SELECT length(description) FROM segments") == std::to_string(with_nul.size()));
  } else {
    CHECK(status.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
    CHECK_THAT(ViolationFields(status), Equals(std::vector<std::string>{"description"}));
    CHECK(Count("SELECT count(*) FROM segments") == 0);
  }
}

// --- DeleteSegment

TEST_CASE_METHOD(ServiceFixture, "DeleteSegment ends every membership with a segment_deleted event",
                 "[service][delete_segment]") {
  const absl::Time t0 = Now();
  REQUIRE(CreateUser(kUser1).ok());
  REQUIRE(CreateUser(kUser2).ok());
  REQUIRE(CreateSegment("DOOMED").ok());
  REQUIRE(CreateSegment("KEPT").ok());
  REQUIRE(Update(Change(kUser1, {{"DOOMED"}, {"KEPT"}})).ok());
  REQUIRE(Update(Change(kUser2, {{"DOOMED", 3600}})).ok());

  clock.Advance(absl::Seconds(10));
  const absl::Time t1 = Now();
  v1::DeleteSegmentResponse response;
  const grpc::Status status = DeleteSegment("DOOMED", &response);
  INFO(Describe(status));
  REQUIRE(status.ok());
  CHECK(response.memberships_ended() == 2);

  CHECK(QueryValue("SELECT " + MicrosOf("deleted_at") + " FROM segments WHERE slug = 'DOOMED'") ==
        std::to_string(Micros(t1)));
  CHECK(QueryValue("SELECT deleted_at IS NULL FROM segments WHERE slug = 'KEPT'") == "t");
  CHECK(Count("SELECT count(*) FROM memberships") == 1);
  CHECK(SegmentsOf(kUser1) == std::vector<std::string>{"KEPT"});
  CHECK(SegmentsOf(kUser2).empty());

  CHECK(HistoryOf(kUser1) == std::vector<std::vector<std::string>>{Event("DOOMED", "add", "manual", t0),
                                                                   Event("KEPT", "add", "manual", t0),
                                                                   Event("DOOMED", "remove", "segment_deleted", t1)});
  CHECK(HistoryOf(kUser2) == std::vector<std::vector<std::string>>{Event("DOOMED", "add", "manual", t0),
                                                                   Event("DOOMED", "remove", "segment_deleted", t1)});
}

TEST_CASE_METHOD(ServiceFixture, "DeleteSegment of a segment without members ends nothing",
                 "[service][delete_segment]") {
  REQUIRE(CreateSegment("EMPTY").ok());
  v1::DeleteSegmentResponse response;
  REQUIRE(DeleteSegment("EMPTY", &response).ok());
  CHECK(response.memberships_ended() == 0);
  CHECK(Count("SELECT count(*) FROM history") == 0);
  CHECK(Count("SELECT count(*) FROM segments WHERE deleted_at IS NOT NULL") == 1);
}

TEST_CASE_METHOD(ServiceFixture, "DeleteSegment of an unknown or already deleted slug is NOT_FOUND",
                 "[service][delete_segment]") {
  SECTION("never created") {
    const grpc::Status status = DeleteSegment("NOPE");
    INFO(Describe(status));
    CHECK(status.error_code() == grpc::StatusCode::NOT_FOUND);
    CHECK_THAT(ViolationFields(status), Equals(std::vector<std::string>{"slug"}));
  }
  SECTION("deleted twice") {
    REQUIRE(CreateSegment("ONCE").ok());
    REQUIRE(DeleteSegment("ONCE").ok());
    const auto before = Snapshot();
    clock.Advance(absl::Seconds(1));
    const grpc::Status status = DeleteSegment("ONCE");
    INFO(Describe(status));
    CHECK(status.error_code() == grpc::StatusCode::NOT_FOUND);
    CHECK_THAT(ViolationFields(status), Equals(std::vector<std::string>{"slug"}));
    CHECK(Snapshot() == before);
  }
  SECTION("slugs differ in case") {
    REQUIRE(CreateSegment("CASE").ok());
    const grpc::Status status = DeleteSegment("case");
    CHECK(status.error_code() == grpc::StatusCode::NOT_FOUND);
    CHECK(Count("SELECT count(*) FROM segments WHERE deleted_at IS NULL") == 1);
  }
}

TEST_CASE_METHOD(ServiceFixture, "DeleteSegment rejects a malformed slug", "[service][delete_segment]") {
  const std::string slug = GENERATE(std::string(""), std::string("_x"), std::string("a b"), std::string(129, 'y'));
  INFO("slug '" << slug << "'");
  const grpc::Status status = DeleteSegment(slug);
  INFO(Describe(status));
  CHECK(status.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK_THAT(ViolationFields(status), Equals(std::vector<std::string>{"slug"}));
}

TEST_CASE_METHOD(ServiceFixture, "A deleted slug can be created again as a new segment; old history stays",
                 "[service][delete_segment]") {
  const absl::Time t0 = Now();
  REQUIRE(CreateUser(kUser1).ok());
  REQUIRE(CreateSegment("REUSED").ok());
  REQUIRE(Update(Change(kUser1, {{"REUSED"}})).ok());
  const std::string old_id = QueryValue("SELECT id FROM segments WHERE slug = 'REUSED'");

  clock.Advance(absl::Seconds(30));
  const absl::Time t1 = Now();
  REQUIRE(DeleteSegment("REUSED").ok());

  clock.Advance(absl::Seconds(30));
  const absl::Time t2 = Now();
  v1::CreateSegmentRequest request;
  request.set_slug("REUSED");
  v1::CreateSegmentResponse response;
  const grpc::Status status = CreateSegment(request, &response);
  INFO(Describe(status));
  REQUIRE(status.ok());
  CHECK(response.segment().created_at().seconds() == absl::ToUnixSeconds(t2));

  const std::string new_id = QueryValue("SELECT id FROM segments WHERE slug = 'REUSED' AND deleted_at IS NULL");
  CHECK(new_id != old_id);
  CHECK(Count("SELECT count(*) FROM segments WHERE slug = 'REUSED'") == 2);
  // Membership of the old segment is not carried over.
  CHECK(SegmentsOf(kUser1).empty());

  clock.Advance(absl::Seconds(30));
  const absl::Time t3 = Now();
  REQUIRE(Update(Change(kUser1, {{"REUSED"}})).ok());
  CHECK(SegmentsOf(kUser1) == std::vector<std::string>{"REUSED"});
  CHECK(HistoryOf(kUser1) == std::vector<std::vector<std::string>>{Event("REUSED", "add", "manual", t0),
                                                                   Event("REUSED", "remove", "segment_deleted", t1),
                                                                   Event("REUSED", "add", "manual", t3)});
  CHECK(Query("SELECT segment_id::text FROM history ORDER BY at") ==
        std::vector<std::vector<std::string>>{{old_id}, {old_id}, {new_id}});

  // Deleting the new one leaves the old one's row as it was.
  REQUIRE(DeleteSegment("REUSED").ok());
  CHECK(QueryValue("SELECT " + MicrosOf("deleted_at") + " FROM segments WHERE id = " + old_id) ==
        std::to_string(Micros(t1)));
}

// --- GetUserSegments

TEST_CASE_METHOD(ServiceFixture, "GetUserSegments returns the user's segments sorted by byte value",
                 "[service][get_user_segments]") {
  const std::vector<std::string> slugs = {"beta", "Zeta", "alpha", "a_b", "0zero", "Alpha", "a.b", "a-b", "a"};
  REQUIRE(CreateUser(kUser1).ok());
  REQUIRE(CreateUser(kUser2).ok());
  std::vector<AddItem> adds;
  for (const auto& slug : slugs) {
    REQUIRE(CreateSegment(slug).ok());
    adds.push_back({slug});
  }
  REQUIRE(CreateSegment("OTHER").ok());
  REQUIRE(Update(Change(kUser1, adds)).ok());
  REQUIRE(Update(Change(kUser2, {{"OTHER"}})).ok());

  CHECK(SegmentsOf(kUser1) ==
        std::vector<std::string>{"0zero", "Alpha", "Zeta", "a", "a-b", "a.b", "a_b", "alpha", "beta"});
  CHECK(SegmentsOf(kUser2) == std::vector<std::string>{"OTHER"});
}

TEST_CASE_METHOD(ServiceFixture, "GetUserSegments of an unknown user is an empty list",
                 "[service][get_user_segments]") {
  REQUIRE(CreateUser(kUser1).ok());
  v1::GetUserSegmentsResponse response;
  const grpc::Status status = GetUserSegments(kUser2, &response);
  INFO(Describe(status));
  CHECK(status.ok());
  CHECK(response.segments().empty());
  // Known but in no segment: empty too.
  CHECK(SegmentsOf(kUser1).empty());
}

TEST_CASE_METHOD(ServiceFixture, "GetUserSegments rejects a malformed user id", "[service][get_user_segments]") {
  const std::string user = GENERATE(
      std::string(""), std::string("not-a-uuid"), std::string("0b7f9f5e1c2d4e3f8a9b0c1d2e3f4a5b"),
      std::string("{0b7f9f5e-1c2d-4e3f-8a9b-0c1d2e3f4a5b}"), std::string("0b7f9f5e-1c2d-4e3f-8a9b-0c1d2e3f4a5g"),
      std::string("01"), std::string("+1"), std::string("-1"), std::string("1.0"), std::string(" 1"),
      std::string("1e3"), std::string("9223372036854775808"));
  INFO("user '" << user << "'");
  v1::GetUserSegmentsResponse response;
  const grpc::Status status = GetUserSegments(user, &response);
  INFO(Describe(status));
  CHECK(status.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK_THAT(ViolationFields(status), Equals(std::vector<std::string>{"userID"}));
  const auto violations = FieldViolations(status);
  REQUIRE(violations.size() == 1);
  CHECK(violations[0].description() ==
        (user.empty() ? "is required" : "must be a UUID or a decimal integer 0..9223372036854775807"));
}

TEST_CASE_METHOD(ServiceFixture, "Integer user ids work in every call, apart from the UUID with the same digits",
                 "[service][users]") {
  const std::string uuid1000 = "00000000-0000-0000-0000-000000001000";
  for (const std::string& user :
       {std::string("1000"), std::string("1002"), uuid1000, std::string("0"), std::string("9223372036854775807")}) {
    const grpc::Status created = CreateUser(user);
    INFO(user << ": " << Describe(created));
    REQUIRE(created.ok());
  }
  CHECK(CreateUser("1000").error_code() == grpc::StatusCode::ALREADY_EXISTS);
  REQUIRE(CreateSegment("AVITO_VOICE_MESSAGES").ok());
  REQUIRE(CreateSegment("AVITO_DISCOUNT_30").ok());
  REQUIRE(Update(Change("1000", {{"AVITO_VOICE_MESSAGES"}, {"AVITO_DISCOUNT_30"}})).ok());
  REQUIRE(Update(Change(uuid1000, {{"AVITO_DISCOUNT_30"}})).ok());
  REQUIRE(Update(Change("9223372036854775807", {{"AVITO_VOICE_MESSAGES"}})).ok());
  CHECK(SegmentsOf("1000") == std::vector<std::string>{"AVITO_DISCOUNT_30", "AVITO_VOICE_MESSAGES"});
  CHECK(SegmentsOf(uuid1000) == std::vector<std::string>{"AVITO_DISCOUNT_30"});
  CHECK(SegmentsOf("1002").empty());
  CHECK(SegmentsOf("0").empty());
  CHECK(SegmentsOf("9223372036854775807") == std::vector<std::string>{"AVITO_VOICE_MESSAGES"});

  REQUIRE(UpdateUser("1000", "excluded").ok());
  CHECK(QueryValue("SELECT state FROM users WHERE id = '1000'") == "excluded");
  CHECK(QueryValue("SELECT state FROM users WHERE id = " + Literal(uuid1000)) == "active");
  v1::DeleteUserResponse deleted;
  REQUIRE(DeleteUser("1000", &deleted).ok());
  CHECK(SegmentsOf("1000").empty());
  CHECK(SegmentsOf(uuid1000) == std::vector<std::string>{"AVITO_DISCOUNT_30"});
  CHECK(DeleteUser("1000").error_code() == grpc::StatusCode::NOT_FOUND);
  CHECK(QueryValue("SELECT string_agg(user_id || ':' || slug || ':' || operation || ':' || reason, ',' "
                   "ORDER BY user_id, operation, slug) FROM history WHERE user_id IN ('1000', " +
                   Literal(uuid1000) + ")") ==
        uuid1000 +
            ":AVITO_DISCOUNT_30:add:manual,1000:AVITO_DISCOUNT_30:add:manual,1000:AVITO_VOICE_MESSAGES:add:manual,"
            "1000:AVITO_DISCOUNT_30:remove:user_deleted,1000:AVITO_VOICE_MESSAGES:remove:user_deleted");
}

TEST_CASE_METHOD(ServiceFixture, "User ids are accepted in any case and stored canonical",
                 "[service][get_user_segments][users]") {
  const std::string upper = "0B7F9F5E-1C2D-4E3F-8A9B-0C1D2E3F4A5B";
  const std::string mixed = "0b7F9f5E-1c2D-4e3F-8a9B-0c1D2e3F4a5B";
  REQUIRE(CreateUser(upper).ok());
  CHECK(QueryValue("SELECT id::text FROM users") == kUser1);

  const grpc::Status again = CreateUser(kUser1);
  CHECK(again.error_code() == grpc::StatusCode::ALREADY_EXISTS);

  REQUIRE(CreateSegment("S").ok());
  const grpc::Status update = Update(Change(mixed, {{"S"}}));
  INFO(Describe(update));
  REQUIRE(update.ok());
  CHECK(SegmentsOf(upper) == std::vector<std::string>{"S"});
  CHECK(SegmentsOf(kUser1) == std::vector<std::string>{"S"});
  CHECK(QueryValue("SELECT user_id::text FROM history") == kUser1);
  CHECK(QueryValue("SELECT user_id::text FROM memberships") == kUser1);
}

TEST_CASE_METHOD(ServiceFixture, "GetSegment returns the segment and its current member count",
                 "[service][get_segment]") {
  REQUIRE(CreateUser(kUser1).ok());
  REQUIRE(CreateUser(kUser2).ok());
  v1::CreateSegmentRequest create;
  create.set_slug("AVITO_VOICE_MESSAGES");
  create.set_description("voice");
  REQUIRE(CreateSegment(create).ok());
  v1::UpdateUserSegmentsRequest add;
  add.set_user_id(kUser1);
  add.add_segments_to_add()->set_segment_slug("AVITO_VOICE_MESSAGES");
  REQUIRE(Update(add).ok());
  add.set_user_id(kUser2);
  add.mutable_segments_to_add(0)->set_seconds_to_be_in_segment(30);
  REQUIRE(Update(add).ok());

  auto get = [&](const std::string& slug, v1::GetSegmentResponse* response) {
    v1::GetSegmentRequest request;
    request.set_slug(slug);
    return segments->GetSegment(NewContext().get(), request, response);
  };
  v1::GetSegmentResponse response;
  REQUIRE(get("AVITO_VOICE_MESSAGES", &response).ok());
  CHECK(response.segment().slug() == "AVITO_VOICE_MESSAGES");
  CHECK(response.segment().description() == "voice");
  CHECK(response.segment().created_at().seconds() == absl::ToUnixSeconds(Now()));
  CHECK(response.member_count() == 2);

  clock.Advance(absl::Seconds(30));  // kUser2's membership ends; no job has run
  REQUIRE(get("AVITO_VOICE_MESSAGES", &response).ok());
  CHECK(response.member_count() == 1);

  const grpc::Status unknown = get("NOPE", &response);
  CHECK(unknown.error_code() == grpc::StatusCode::NOT_FOUND);
  CHECK_THAT(ViolationFields(unknown), Equals(std::vector<std::string>{"slug"}));
  CHECK(get("", &response).error_code() == grpc::StatusCode::INVALID_ARGUMENT);
}

}  // namespace
}  // namespace segments::testing
