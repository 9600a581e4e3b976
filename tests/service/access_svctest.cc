// Who may call what, through the real server: every row of the access
// table against every role, no token and bad tokens; idempotency keys
// scoped to their caller.
#include <grpcpp/generic/generic_stub.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>

#include "api/access.h"
#include "service/service_fixture.h"

namespace segments::testing {
namespace {

// Calls `method` with an empty request (every field unset) and returns its
// status. Generic, so that it reaches unary and streaming methods alike.
grpc::Status CallEmpty(const std::shared_ptr<grpc::Channel>& channel, std::string_view method,
                       const std::string& authorization) {
  grpc::GenericStub stub(channel);
  auto context = NewContextAs(authorization);
  grpc::Slice empty("");
  grpc::ByteBuffer request(&empty, 1);
  grpc::ByteBuffer response;
  std::promise<grpc::Status> done;
  auto result = done.get_future();
  stub.UnaryCall(context.get(), std::string(method), grpc::StubOptions(), &request, &response,
                 [&done](grpc::Status status) { done.set_value(std::move(status)); });
  return result.get();
}

bool Refused(const grpc::Status& status) {
  return status.error_code() == grpc::StatusCode::UNAUTHENTICATED ||
         status.error_code() == grpc::StatusCode::PERMISSION_DENIED;
}

}  // namespace

TEST_CASE_METHOD(ServiceFixture, "each role may call exactly the methods the access table gives it", "[access]") {
  int checked = 0;
  for (const api::Access& access : api::AccessTable()) {
    for (auth::Role role : auth::kAllRoles) {
      const grpc::Status status = CallEmpty(channel, access.method, TestTokens::Get().BearerFor(role));
      const bool allowed = !access.role || auth::RoleSet::Of(role).Covers(*access.role);
      INFO(access.method << " as " << auth::NameOf(role) << ": " << Describe(status));
      if (allowed) {
        CHECK_FALSE(Refused(status));
      } else {
        CHECK(status.error_code() == grpc::StatusCode::PERMISSION_DENIED);
        CHECK_THAT(status.error_message(), Catch::Contains("role (or a role above it) is needed"));
      }
      ++checked;
    }
  }
  CHECK(checked == 4 * static_cast<int>(api::AccessTable().size()));
  // Nothing the refused calls asked for happened (the allowed ones had empty,
  // invalid requests).
  CHECK(Count("SELECT count(*) FROM segments") == 0);
  CHECK(Count("SELECT count(*) FROM users") == 0);
}

TEST_CASE_METHOD(ServiceFixture, "a call without a valid token is unauthenticated, except the open ones", "[access]") {
  auth::TokenClaims expired = TestTokens::ClaimsFor(auth::Role::kAdmin);
  expired.expires = absl::Now() - absl::Minutes(10);
  auth::TokenClaims early = TestTokens::ClaimsFor(auth::Role::kAdmin);
  early.not_before = absl::Now() + absl::Minutes(10);
  auth::TokenClaims other_issuer = TestTokens::ClaimsFor(auth::Role::kAdmin);
  other_issuer.issuer = "https://elsewhere.test";
  auth::TokenClaims other_audience = TestTokens::ClaimsFor(auth::Role::kAdmin);
  other_audience.audience = {"billing"};
  auto stranger_key = auth::GenerateSigningKey("ES256", "test-key");  // same kid, another key
  REQUIRE(stranger_key.ok());
  const std::string forged = "Bearer " + *auth::MintToken(*stranger_key, TestTokens::ClaimsFor(auth::Role::kAdmin));

  const std::vector<std::pair<std::string, std::string>> bad = {
      {"", "missing bearer token"},
      {"Basic YWRtaW46YWRtaW4=", "not \"Bearer <token>\""},
      {TestTokens::Get().Bearer(expired), "invalid token: expired"},
      {TestTokens::Get().Bearer(early), "invalid token: not valid yet"},
      {TestTokens::Get().Bearer(other_issuer), "invalid token: wrong issuer"},
      {TestTokens::Get().Bearer(other_audience), "invalid token: wrong audience"},
      {forged, "invalid token: the signature does not verify"},
      {"Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.", "invalid token: unsigned (alg none)"},
  };
  for (const api::Access& access : api::AccessTable()) {
    for (const auto& [authorization, why] : bad) {
      const grpc::Status status = CallEmpty(channel, access.method, authorization);
      INFO(access.method << " with '" << authorization.substr(0, 20) << "': " << Describe(status));
      if (!access.role) {
        CHECK_FALSE(Refused(status));
      } else {
        CHECK(status.error_code() == grpc::StatusCode::UNAUTHENTICATED);
        CHECK_THAT(status.error_message(), Catch::Contains(why));
      }
    }
  }
  // Health stays open.
  CHECK(HealthNow() == Health::kServing);
}

TEST_CASE_METHOD(ServiceFixture, "a token of no known role may call nothing but the open methods", "[access]") {
  auth::TokenClaims claims = TestTokens::ClaimsFor(auth::Role::kAdmin);
  claims.roles = {"superuser", "owner"};
  const std::string bearer = TestTokens::Get().Bearer(claims);
  v1::GetUserSegmentsRequest request;
  request.set_user_id(kUser1);
  v1::GetUserSegmentsResponse response;
  const grpc::Status status = segments->GetUserSegments(NewContextAs(bearer).get(), request, &response);
  CHECK(status.error_code() == grpc::StatusCode::PERMISSION_DENIED);
  CHECK_THAT(status.error_message(), Catch::Contains("the service role"));
}

TEST_CASE_METHOD(ServiceFixture, "the service role reads a user's segments and nothing else", "[access]") {
  REQUIRE(CreateUser(kUser1).ok());
  REQUIRE(CreateSegment("AVITO_VOICE_MESSAGES").ok());
  v1::UpdateUserSegmentsRequest add;
  add.set_user_id(kUser1);
  add.add_segments_to_add()->set_segment_slug("AVITO_VOICE_MESSAGES");
  REQUIRE(Update(add).ok());

  const std::string& service = TestTokens::Get().BearerFor(auth::Role::kService);
  v1::GetUserSegmentsRequest read;
  read.set_user_id(kUser1);
  v1::GetUserSegmentsResponse segments_of;
  const grpc::Status read_status = segments->GetUserSegments(NewContextAs(service).get(), read, &segments_of);
  REQUIRE(read_status.ok());
  CHECK(std::vector<std::string>(segments_of.segments().begin(), segments_of.segments().end()) ==
        std::vector<std::string>{"AVITO_VOICE_MESSAGES"});

  v1::UpdateUserSegmentsRequest remove;
  remove.set_user_id(kUser1);
  remove.add_segments_to_remove()->set_segment_slug("AVITO_VOICE_MESSAGES");
  v1::UpdateUserSegmentsResponse ignored;
  CHECK(segments->UpdateUserSegments(NewContextAs(service).get(), remove, &ignored).error_code() ==
        grpc::StatusCode::PERMISSION_DENIED);
  CHECK(SegmentsOf(kUser1) == std::vector<std::string>{"AVITO_VOICE_MESSAGES"});
}

TEST_CASE_METHOD(ServiceFixture, "idempotency keys are scoped to the token's subject", "[access][idempotency]") {
  auth::TokenClaims alice = TestTokens::ClaimsFor(auth::Role::kAnalyst);
  alice.subject = "alice";
  auth::TokenClaims bob = alice;
  bob.subject = "bob";
  auto create = [&](const auth::TokenClaims& who, const std::string& slug) {
    auto context = NewContextAs(TestTokens::Get().Bearer(who));
    context->AddMetadata("idempotency-key", "create-1");
    v1::CreateSegmentRequest request;
    request.set_slug(slug);
    v1::CreateSegmentResponse response;
    return segments->CreateSegment(context.get(), request, &response);
  };
  REQUIRE(create(alice, "ALICE_SEGMENT").ok());
  // The same key from bob with another request is bob's own first call.
  const grpc::Status from_bob = create(bob, "BOB_SEGMENT");
  INFO(Describe(from_bob));
  CHECK(from_bob.ok());
  // Alice reusing her key for another request is refused.
  CHECK(create(alice, "OTHER_SEGMENT").error_code() == grpc::StatusCode::ALREADY_EXISTS);
  CHECK(QueryValue("SELECT string_agg(slug, ',' ORDER BY slug) FROM segments") == "ALICE_SEGMENT,BOB_SEGMENT");
  CHECK(QueryValue("SELECT string_agg(scope, ',' ORDER BY scope) FROM idempotency_keys") == "alice,bob");
}

}  // namespace segments::testing

namespace segments::testing {
namespace {

// A server whose JWKS file is the test's own, checked every 20 ms.
class RotatingKeysFixture {
 public:
  RotatingKeysFixture() {
    std::string dir = "/tmp/segments-rotation-XXXXXX";
    REQUIRE(::mkdtemp(dir.data()) != nullptr);
    dir_ = dir;
    jwks_file_ = dir_ + "/jwks.json";
  }
  ~RotatingKeysFixture() {
    fixture_.reset();
    std::remove(jwks_file_.c_str());
    ::rmdir(dir_.c_str());
  }

  // Writes a JWKS of `keys` by renaming a finished file over the old one.
  void WriteJwks(const std::vector<std::string>& keys) {
    auto jwks = auth::PublicJwks(keys);
    REQUIRE(jwks.ok());
    const std::string temporary = jwks_file_ + ".tmp";
    {
      std::ofstream out(temporary, std::ios::trunc);
      out << *jwks;
    }
    REQUIRE(std::rename(temporary.c_str(), jwks_file_.c_str()) == 0);
  }

  ServiceFixture& Start() {
    config::Config config = TestConfig();
    config.auth_jwks_file = jwks_file_;
    config.auth_keys_reload_period = absl::Milliseconds(20);
    fixture_ = std::make_unique<ServiceFixture>(config);
    return *fixture_;
  }

 private:
  std::string dir_;
  std::string jwks_file_;
  std::unique_ptr<ServiceFixture> fixture_;
};

std::string Key(const std::string& kid) {
  auto key = auth::GenerateSigningKey("ES256", kid);
  REQUIRE(key.ok());
  return *key;
}

grpc::StatusCode ReadWith(ServiceFixture& f, const std::string& private_key) {
  auto token = auth::MintToken(private_key, TestTokens::ClaimsFor(auth::Role::kService));
  REQUIRE(token.ok());
  v1::GetUserSegmentsRequest request;
  request.set_user_id(kUser1);
  v1::GetUserSegmentsResponse response;
  return f.segments->GetUserSegments(NewContextAs("Bearer " + *token).get(), request, &response).error_code();
}

}  // namespace

TEST_CASE("keys rotated in the JWKS file take effect while the server runs", "[access]") {
  RotatingKeysFixture keys;
  const std::string old_key = Key("2026-11");
  const std::string new_key = Key("2026-12");
  keys.WriteJwks({old_key});
  ServiceFixture& f = keys.Start();
  CHECK(ReadWith(f, old_key) == grpc::StatusCode::OK);
  CHECK(ReadWith(f, new_key) == grpc::StatusCode::UNAUTHENTICATED);

  keys.WriteJwks({old_key, new_key});
  REQUIRE(Eventually([&] { return ReadWith(f, new_key) == grpc::StatusCode::OK; }, absl::Seconds(10)));
  CHECK(ReadWith(f, old_key) == grpc::StatusCode::OK);

  keys.WriteJwks({new_key});
  REQUIRE(Eventually([&] { return ReadWith(f, old_key) == grpc::StatusCode::UNAUTHENTICATED; }, absl::Seconds(10)));
  CHECK(ReadWith(f, new_key) == grpc::StatusCode::OK);
}

}  // namespace segments::testing
