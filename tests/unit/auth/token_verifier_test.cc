#include "auth/token_verifier.h"

#include <absl/strings/escaping.h>
#include <absl/strings/match.h>
#include <absl/strings/str_cat.h>
#include <absl/strings/str_replace.h>
#include <absl/strings/str_split.h>

#include <catch2/catch.hpp>

#include "auth/key_set.h"
#include "auth/token_minter.h"

namespace segments::auth {
namespace {

const absl::Time kNow = absl::FromUnixSeconds(1'800'000'000);

TokenPolicy Policy() { return TokenPolicy{"https://issuer.test", "segments", "roles", absl::Seconds(30)}; }

TokenClaims Claims(std::vector<std::string> roles = {"analyst"}) {
  return TokenClaims{"https://issuer.test",   {"segments"},          "alice",     std::move(roles), "roles",
                     kNow - absl::Minutes(1), kNow + absl::Hours(1), std::nullopt};
}

std::string Key(const std::string& algorithm, const std::string& kid) {
  auto key = GenerateSigningKey(algorithm, kid);
  REQUIRE(key.ok());
  return *key;
}

std::shared_ptr<const KeySet> Jwks(const std::vector<std::string>& private_keys) {
  auto jwks = PublicJwks(private_keys);
  REQUIRE(jwks.ok());
  auto set = KeySet::FromJwks(*jwks);
  REQUIRE(set.ok());
  return *set;
}

std::string Mint(const std::string& key, const TokenClaims& claims) {
  auto token = MintToken(key, claims);
  REQUIRE(token.ok());
  return *token;
}

std::string B64(absl::string_view text) { return absl::WebSafeBase64Escape(text); }

// The reason VerifyToken gives, or "ok".
std::string Outcome(const KeySet& keys, const std::string& token, absl::Time now = kNow,
                    const TokenPolicy& policy = Policy()) {
  auto principal = VerifyToken(keys, policy, token, now);
  if (principal.ok()) return "ok";
  CHECK(principal.status().code() == absl::StatusCode::kUnauthenticated);
  return std::string(principal.status().message());
}

}  // namespace

TEST_CASE("an ES256 token from a JWKS key gives its subject, roles and expiry") {
  const std::string key = Key("ES256", "k1");
  const auto keys = Jwks({key});
  auto principal = VerifyToken(*keys, Policy(), Mint(key, Claims({"support", "analyst"})), kNow);
  REQUIRE(principal.ok());
  CHECK(principal->subject == "alice");
  CHECK(principal->roles.Has(Role::kSupport));
  CHECK(principal->roles.Has(Role::kAnalyst));
  CHECK_FALSE(principal->roles.Has(Role::kAdmin));
  CHECK(principal->expires == kNow + absl::Hours(1));
}

TEST_CASE("an RS256 token verifies too, and a set holds several keys chosen by kid") {
  const std::string rsa = Key("RS256", "rsa-1");
  const std::string ec = Key("ES256", "ec-1");
  const auto keys = Jwks({rsa, ec});
  CHECK(keys->size() == 2);
  CHECK(Outcome(*keys, Mint(rsa, Claims())) == "ok");
  CHECK(Outcome(*keys, Mint(rsa, Claims()) + "A") == "invalid token: the signature does not verify");
  CHECK(Outcome(*keys, Mint(ec, Claims())) == "ok");
}

TEST_CASE("time claims: expired and not-yet-valid tokens are refused, within the clock skew they pass") {
  const std::string key = Key("ES256", "k1");
  const auto keys = Jwks({key});
  TokenClaims expired = Claims();
  expired.expires = kNow - absl::Minutes(5);
  CHECK(Outcome(*keys, Mint(key, expired)) == "invalid token: expired");
  TokenClaims just_expired = Claims();
  just_expired.expires = kNow - absl::Seconds(10);  // inside the 30 s skew
  CHECK(Outcome(*keys, Mint(key, just_expired)) == "ok");
  TokenClaims early = Claims();
  early.not_before = kNow + absl::Minutes(5);
  CHECK(Outcome(*keys, Mint(key, early)) == "invalid token: not valid yet (nbf)");
  early.not_before = kNow + absl::Seconds(10);
  CHECK(Outcome(*keys, Mint(key, early)) == "ok");
}

TEST_CASE("issuer, audience and subject must match the policy") {
  const std::string key = Key("ES256", "k1");
  const auto keys = Jwks({key});
  TokenClaims other_issuer = Claims();
  other_issuer.issuer = "https://elsewhere.test";
  CHECK(Outcome(*keys, Mint(key, other_issuer)) == "invalid token: wrong issuer");
  TokenClaims other_audience = Claims();
  other_audience.audience = {"billing"};
  CHECK(Outcome(*keys, Mint(key, other_audience)) == "invalid token: wrong audience");
  TokenClaims no_subject = Claims();
  no_subject.subject = "";
  CHECK(Outcome(*keys, Mint(key, no_subject)) == "invalid token: no \"sub\"");
}

TEST_CASE("an audience array passes when it holds ours") {
  const std::string key = Key("ES256", "k1");
  const auto keys = Jwks({key});
  TokenClaims claims = Claims();
  claims.audience = {"billing", "segments"};
  CHECK(Outcome(*keys, Mint(key, claims)) == "ok");
  claims.audience = {"billing", "reports"};
  CHECK(Outcome(*keys, Mint(key, claims)) == "invalid token: wrong audience");
}

TEST_CASE("a signature that does not verify is refused: tampered payload, another key, alg none") {
  const std::string key = Key("ES256", "k1");
  const std::string stranger = Key("ES256", "k1");  // same kid, different key
  const auto keys = Jwks({key});
  CHECK(Outcome(*keys, Mint(stranger, Claims())) == "invalid token: the signature does not verify");

  const std::string token = Mint(key, Claims({"service"}));
  std::vector<std::string> parts = absl::StrSplit(token, '.');
  std::string payload;
  REQUIRE(absl::WebSafeBase64Unescape(parts[1], &payload));
  const std::string promoted =
      absl::StrCat(parts[0], ".", B64(absl::StrReplaceAll(payload, {{"service", "admin"}})), ".", parts[2]);
  CHECK(Outcome(*keys, promoted) == "invalid token: the signature does not verify");

  // Characters appended to the signature: not the token that was signed.
  CHECK(Outcome(*keys, token + "A") == "invalid token: the signature does not verify");
  CHECK(Outcome(*keys, token + "AAAA") == "invalid token: the signature does not verify");
  CHECK(Outcome(*keys, token) == "ok");

  const std::string unsigned_token = absl::StrCat(B64(R"({"alg":"none","typ":"JWT"})"), ".", parts[1], ".");
  CHECK(Outcome(*keys, unsigned_token) == "invalid token: unsigned (alg none)");
}

TEST_CASE("HS256 is refused when the keys are a JWKS (no algorithm confusion with a public key)") {
  const std::string key = Key("ES256", "k1");
  const auto keys = Jwks({key});
  // Sign HS256 with the public JWK's JSON as the "secret": the classic confusion.
  auto jwks = PublicJwks({key});
  REQUIRE(jwks.ok());
  auto forged = MintTokenWithSecret(*jwks, Claims({"admin"}));
  REQUIRE(forged.ok());
  CHECK(Outcome(*keys, *forged) == "invalid token: no accepted key for alg HS256");
}

TEST_CASE("a token naming a kid the set does not hold is refused") {
  const auto keys = Jwks({Key("ES256", "k1")});
  CHECK(Outcome(*keys, Mint(Key("ES256", "k2"), Claims())) ==
        "invalid token: no accepted key for alg ES256 and kid k2");
}

TEST_CASE("malformed tokens are refused with what is wrong") {
  const auto keys = Jwks({Key("ES256", "k1")});
  CHECK(Outcome(*keys, "") == "invalid token: empty");
  CHECK(Outcome(*keys, "abc") == "invalid token: not a signed JWT (header.payload.signature)");
  CHECK(Outcome(*keys, "a.b.c") == "invalid token: the header is not base64url JSON");
  CHECK(Outcome(*keys, std::string(9000, 'a')) == "invalid token: longer than 8 KiB");
}

TEST_CASE("the roles claim can be a dotted path; unknown role names are ignored") {
  const std::string secret(32, 'x');
  auto keys = KeySet::FromSharedSecret(secret);
  REQUIRE(keys.ok());
  TokenPolicy nested = Policy();
  nested.roles_claim = "realm_access.roles";
  TokenClaims claims = Claims({"support", "owner"});
  claims.roles_claim = "realm_access.roles";
  auto principal = VerifyToken(**keys, nested, *MintTokenWithSecret(secret, claims), kNow);
  REQUIRE(principal.ok());
  CHECK(principal->roles == RoleSet::Of(Role::kSupport));
  // The same token read with the default claim name holds no roles.
  principal = VerifyToken(**keys, Policy(), *MintTokenWithSecret(secret, claims), kNow);
  REQUIRE(principal.ok());
  CHECK(principal->roles.empty());
}

TEST_CASE("a JWKS with private keys, no signing keys, or junk does not load") {
  CHECK_FALSE(KeySet::FromJwks("not json").ok());
  CHECK_FALSE(KeySet::FromJwks(R"({"keys": []})").ok());
  CHECK_FALSE(KeySet::FromJwks(R"({"keys": [{"kty": "oct", "k": "c2VjcmV0"}]})").ok());
  auto with_private = KeySet::FromJwks(absl::StrCat(R"({"keys": [)", Key("ES256", "k1"), "]}"));
  REQUIRE_FALSE(with_private.ok());
  CHECK(absl::StrContains(with_private.status().message(), "private key"));
  CHECK_FALSE(KeySet::FromSharedSecret("short").ok());
}

TEST_CASE("roles cover the ones below them") {
  CHECK(RoleSet::Of(Role::kAdmin).Covers(Role::kService));
  CHECK(RoleSet::Of(Role::kAnalyst).Covers(Role::kSupport));
  CHECK_FALSE(RoleSet::Of(Role::kSupport).Covers(Role::kAnalyst));
  CHECK_FALSE(RoleSet::Of(Role::kService).Covers(Role::kSupport));
  CHECK_FALSE(RoleSet().Covers(Role::kService));
  CHECK(RoleNamed("admin") == Role::kAdmin);
  CHECK(RoleNamed("root") == std::nullopt);
}

}  // namespace segments::auth
