// Who made each change: history records the token's subject for what a call
// changes, "system" for the expiry job and automatic assignment, and
// "unknown" for rows written before actors were recorded.
#include "service/service_fixture.h"

namespace segments::testing {
namespace {

// A fixture whose expiry job runs every 50 ms.
class ActorFixture : public ServiceFixture {
 public:
  ActorFixture() : ServiceFixture(FastExpiry()) {}
  static config::Config FastExpiry() {
    config::Config config = TestConfig();
    config.expiry_period = absl::Milliseconds(50);
    return config;
  }

  // "Bearer <jwt>" of `subject` with `role`.
  static std::string As(const std::string& subject, auth::Role role) {
    auth::TokenClaims claims = TestTokens::ClaimsFor(role);
    claims.subject = subject;
    return TestTokens::Get().Bearer(claims);
  }

  grpc::Status UpdateAs(const std::string& bearer, const v1::UpdateUserSegmentsRequest& request,
                        const std::string& idempotency_key = "") {
    auto context = NewContextAs(bearer);
    if (!idempotency_key.empty()) context->AddMetadata("idempotency-key", idempotency_key);
    v1::UpdateUserSegmentsResponse response;
    return segments->UpdateUserSegments(context.get(), request, &response);
  }

  // "slug operation reason actor" of every history row of `user`, in order.
  static std::vector<std::string> ActorsOf(const std::string& user) {
    std::vector<std::string> out;
    for (const auto& row : Query("SELECT slug, operation::text, reason::text, coalesce(actor, 'NULL') FROM history "
                                 "WHERE user_id = " +
                                 Literal(user) + " ORDER BY id")) {
      out.push_back(row[0] + " " + row[1] + " " + row[2] + " " + row[3]);
    }
    return out;
  }
};

v1::UpdateUserSegmentsRequest Adding(const std::string& user, const std::string& slug, int64_t ttl_seconds = 0) {
  v1::UpdateUserSegmentsRequest request;
  request.set_user_id(user);
  auto* add = request.add_segments_to_add();
  add->set_segment_slug(slug);
  if (ttl_seconds > 0) add->set_seconds_to_be_in_segment(ttl_seconds);
  return request;
}

v1::UpdateUserSegmentsRequest Removing(const std::string& user, const std::string& slug) {
  v1::UpdateUserSegmentsRequest request;
  request.set_user_id(user);
  request.add_segments_to_remove()->set_segment_slug(slug);
  return request;
}

}  // namespace

TEST_CASE_METHOD(ActorFixture, "hand changes record their caller; a keyed one too", "[actor]") {
  REQUIRE(CreateUser(kUser1).ok());
  REQUIRE(CreateSegment("AVITO_VOICE_MESSAGES").ok());
  REQUIRE(CreateSegment("AVITO_DISCOUNT_30").ok());
  const std::string alice = As("alice", auth::Role::kAnalyst);
  const std::string bob = As("bob", auth::Role::kAnalyst);
  REQUIRE(UpdateAs(alice, Adding(kUser1, "AVITO_VOICE_MESSAGES")).ok());
  REQUIRE(UpdateAs(bob, Adding(kUser1, "AVITO_DISCOUNT_30"), "bob-add-1").ok());
  REQUIRE(UpdateAs(bob, Adding(kUser1, "AVITO_DISCOUNT_30"), "bob-add-1").ok());  // the repeat changes nothing
  REQUIRE(UpdateAs(alice, Removing(kUser1, "AVITO_VOICE_MESSAGES")).ok());
  CHECK(ActorsOf(kUser1) == std::vector<std::string>{"AVITO_VOICE_MESSAGES add manual alice",
                                                     "AVITO_DISCOUNT_30 add manual bob",
                                                     "AVITO_VOICE_MESSAGES remove manual alice"});

  // The JSON history shows it as `actor`.
  v1::ListUserHistoryRequest request;
  request.set_user_id(kUser1);
  v1::ListUserHistoryResponse page;
  REQUIRE(history->ListUserHistory(NewContext().get(), request, &page).ok());
  REQUIRE(page.events_size() == 3);
  CHECK(page.events(0).actor() == "alice");  // newest first
  CHECK(page.events(1).actor() == "bob");
  CHECK(page.events(2).actor() == "alice");
}

TEST_CASE_METHOD(ActorFixture, "bulk changes, segment and user deletions record their caller", "[actor]") {
  for (const std::string& user : {kUser1, kUser2}) REQUIRE(CreateUser(user).ok());
  REQUIRE(CreateSegment("AVITO_TRIAL").ok());
  const std::string carol = As("carol", auth::Role::kAnalyst);
  v1::AddSegmentToUsersRequest bulk;
  bulk.set_slug("AVITO_TRIAL");
  bulk.add_user_ids(kUser1);
  bulk.add_user_ids(kUser2);
  v1::AddSegmentToUsersResponse added;
  REQUIRE(segments->AddSegmentToUsers(NewContextAs(carol).get(), bulk, &added).ok());
  REQUIRE(CreateSegment("AVITO_GONE").ok());
  REQUIRE(UpdateAs(carol, Adding(kUser1, "AVITO_GONE")).ok());
  REQUIRE(UpdateAs(carol, Adding(kUser2, "AVITO_GONE")).ok());

  const std::string dave = As("dave", auth::Role::kAnalyst);
  v1::DeleteSegmentRequest delete_segment;
  delete_segment.set_slug("AVITO_GONE");
  v1::DeleteSegmentResponse deleted;
  REQUIRE(segments->DeleteSegment(NewContextAs(dave).get(), delete_segment, &deleted).ok());
  REQUIRE(deleted.memberships_ended() == 2);

  const std::string root = As("erin", auth::Role::kAdmin);
  v1::DeleteUserRequest delete_user;
  delete_user.set_user_id(kUser2);
  v1::DeleteUserResponse user_deleted;
  REQUIRE(users->DeleteUser(NewContextAs(root).get(), delete_user, &user_deleted).ok());

  CHECK(ActorsOf(kUser1) == std::vector<std::string>{"AVITO_TRIAL add manual carol", "AVITO_GONE add manual carol",
                                                     "AVITO_GONE remove segment_deleted dave"});
  CHECK(ActorsOf(kUser2) == std::vector<std::string>{"AVITO_TRIAL add manual carol", "AVITO_GONE add manual carol",
                                                     "AVITO_GONE remove segment_deleted dave",
                                                     "AVITO_TRIAL remove user_deleted erin"});
}

TEST_CASE_METHOD(ActorFixture, "automatic assignment and the expiry job record the system", "[actor]") {
  REQUIRE(CreateUser(kUser1).ok());
  const std::string alice = As("alice", auth::Role::kAnalyst);
  v1::CreateSegmentRequest everyone;
  everyone.set_slug("AVITO_EVERYONE");
  everyone.set_percent_to_fill(100);
  v1::CreateSegmentResponse created;
  REQUIRE(segments->CreateSegment(NewContextAs(alice).get(), everyone, &created).ok());  // the fill
  REQUIRE(CreateUser(kUser2).ok());                                                      // enters on creation
  REQUIRE(CreateSegment("AVITO_SHORT").ok());
  REQUIRE(UpdateAs(alice, Adding(kUser1, "AVITO_SHORT", 60)).ok());
  clock.Advance(absl::Seconds(61));
  REQUIRE(
      Eventually([&] { return Count("SELECT count(*) FROM history WHERE reason = 'ttl'") == 1; }, absl::Seconds(10)));

  CHECK(ActorsOf(kUser1) == std::vector<std::string>{"AVITO_EVERYONE add auto_percent system",
                                                     "AVITO_SHORT add manual alice", "AVITO_SHORT remove ttl system"});
  CHECK(ActorsOf(kUser2) == std::vector<std::string>{"AVITO_EVERYONE add auto_percent system"});
}

TEST_CASE_METHOD(ActorFixture, "events recorded before actors were read as unknown", "[actor]") {
  REQUIRE(CreateUser(kUser1).ok());
  REQUIRE(CreateSegment("AVITO_OLD").ok());
  REQUIRE(UpdateAs(As("alice", auth::Role::kAnalyst), Adding(kUser1, "AVITO_OLD")).ok());
  // As a row written before migration 14 is.
  Query("UPDATE history SET actor = NULL WHERE user_id = " + Literal(kUser1));
  v1::ListUserHistoryRequest request;
  request.set_user_id(kUser1);
  v1::ListUserHistoryResponse page;
  REQUIRE(
      history->ListUserHistory(NewContextAs(TestTokens::Get().BearerFor(auth::Role::kSupport)).get(), request, &page)
          .ok());
  REQUIRE(page.events_size() == 1);
  CHECK(page.events(0).actor() == "unknown");
}

}  // namespace segments::testing
