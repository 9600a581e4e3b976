#include "auth/authenticator.h"

#include <absl/strings/str_cat.h>
#include <absl/time/clock.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "auth/token_minter.h"

namespace segments::auth {
namespace {

// A folder of its own, removed at the end.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "segments-auth-XXXXXX").string();
    REQUIRE(::mkdtemp(pattern.data()) != nullptr);
    path_ = pattern;
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  std::string File(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

// Writes `text` to `path` through a rename, as a key rotation would.
void WriteAtomically(const std::string& path, const std::string& text) {
  const std::string temporary = path + ".tmp";
  {
    std::ofstream out(temporary, std::ios::binary | std::ios::trunc);
    out << text;
  }
  REQUIRE(std::rename(temporary.c_str(), path.c_str()) == 0);
}

std::string NewKey(const std::string& kid) {
  auto key = GenerateSigningKey("ES256", kid);
  REQUIRE(key.ok());
  return *key;
}

std::string JwksOf(const std::vector<std::string>& keys) {
  auto jwks = PublicJwks(keys);
  REQUIRE(jwks.ok());
  return *jwks;
}

TokenClaims Claims(absl::Duration lifetime = absl::Hours(1)) {
  const absl::Time now = absl::Now();
  return TokenClaims{"https://issuer.test", {"segments"}, "svc-checkout", {"service"}, "roles", now,
                     now + lifetime,        std::nullopt};
}

std::string Bearer(const std::string& key, const TokenClaims& claims = Claims()) {
  auto token = MintToken(key, claims);
  REQUIRE(token.ok());
  return "Bearer " + *token;
}

AuthenticatorOptions Options(const std::string& jwks_file) {
  AuthenticatorOptions options;
  options.policy = TokenPolicy{"https://issuer.test", "segments", "roles", absl::Seconds(1)};
  options.jwks_file = jwks_file;
  options.reload_period = absl::Milliseconds(20);
  return options;
}

bool Accepts(Authenticator& authenticator, const std::string& authorization) {
  return authenticator.Authenticate(authorization, absl::Now()).ok();
}

bool Eventually(const std::function<bool()>& done) {
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (!done()) {
    if (absl::Now() > deadline) return false;
    absl::SleepFor(absl::Milliseconds(10));
  }
  return true;
}

}  // namespace

TEST_CASE("the authorization metadata must be \"Bearer <token>\"") {
  TempDir dir;
  const std::string key = NewKey("k1");
  WriteAtomically(dir.File("jwks.json"), JwksOf({key}));
  auto authenticator = Authenticator::Start(Options(dir.File("jwks.json")));
  REQUIRE(authenticator.ok());
  auto missing = (*authenticator)->Authenticate("", absl::Now());
  CHECK(missing.status().code() == absl::StatusCode::kUnauthenticated);
  CHECK(missing.status().message() == "missing bearer token (Authorization: Bearer <token>)");
  CHECK((*authenticator)->Authenticate("Basic dXNlcjpwYXNz", absl::Now()).status().message() ==
        "the authorization is not \"Bearer <token>\"");
  const std::string token = Bearer(key).substr(7);
  auto principal = (*authenticator)->Authenticate("bearer " + token, absl::Now());
  REQUIRE(principal.ok());
  CHECK(principal->subject == "svc-checkout");
  CHECK(principal->roles == RoleSet::Of(Role::kService));
}

TEST_CASE("a remembered token is refused once it expires") {
  TempDir dir;
  const std::string key = NewKey("k1");
  WriteAtomically(dir.File("jwks.json"), JwksOf({key}));
  auto authenticator = Authenticator::Start(Options(dir.File("jwks.json")));
  REQUIRE(authenticator.ok());
  const std::string bearer = Bearer(key, Claims(absl::Minutes(5)));
  REQUIRE((*authenticator)->Authenticate(bearer, absl::Now()).ok());
  REQUIRE((*authenticator)->Authenticate(bearer, absl::Now()).ok());  // from the cache
  auto later = (*authenticator)->Authenticate(bearer, absl::Now() + absl::Minutes(6));
  CHECK(later.status().code() == absl::StatusCode::kUnauthenticated);
  CHECK(later.status().message() == "invalid token: expired");
}

TEST_CASE("keys rotate by rewriting the JWKS file, without a restart") {
  TempDir dir;
  const std::string jwks = dir.File("jwks.json");
  const std::string old_key = NewKey("2026-01");
  const std::string new_key = NewKey("2026-02");
  WriteAtomically(jwks, JwksOf({old_key}));
  auto started = Authenticator::Start(Options(jwks));
  REQUIRE(started.ok());
  Authenticator& authenticator = **started;
  const std::string old_token = Bearer(old_key);
  const std::string new_token = Bearer(new_key);
  CHECK(Accepts(authenticator, old_token));  // now remembered
  CHECK_FALSE(Accepts(authenticator, new_token));

  // Both keys while tokens of the old one are still out.
  WriteAtomically(jwks, JwksOf({old_key, new_key}));
  REQUIRE(Eventually([&] { return Accepts(authenticator, new_token); }));
  CHECK(Accepts(authenticator, old_token));

  // The old key retired: its remembered token is verified again and refused.
  const uint64_t before = authenticator.key_generation();
  WriteAtomically(jwks, JwksOf({new_key}));
  REQUIRE(Eventually([&] { return authenticator.key_generation() > before; }));
  CHECK_FALSE(Accepts(authenticator, old_token));
  CHECK(Accepts(authenticator, new_token));
}

TEST_CASE("a broken JWKS file is not taken: the keys before it stay") {
  TempDir dir;
  const std::string jwks = dir.File("jwks.json");
  const std::string key = NewKey("k1");
  const std::string next = NewKey("k2");
  WriteAtomically(jwks, JwksOf({key}));
  auto started = Authenticator::Start(Options(jwks));
  REQUIRE(started.ok());
  Authenticator& authenticator = **started;
  WriteAtomically(jwks, R"({"keys": [{"kty": "EC", "crv": "P-256", "x": "junk"}]})");
  REQUIRE(Eventually([&] { return authenticator.refused_key_files() == 1; }));
  CHECK(Accepts(authenticator, Bearer(key)));
  CHECK_FALSE(Accepts(authenticator, Bearer(next)));
  WriteAtomically(jwks, JwksOf({key, next}));
  REQUIRE(Eventually([&] { return Accepts(authenticator, Bearer(next)); }));
  CHECK(authenticator.key_generation() == 2);  // the broken file never replaced the keys
}

TEST_CASE("authentication does not start without usable keys, issuer and audience") {
  TempDir dir;
  CHECK(Authenticator::Start(Options(dir.File("missing.json"))).status().code() == absl::StatusCode::kNotFound);
  WriteAtomically(dir.File("jwks.json"), "{}");
  CHECK_FALSE(Authenticator::Start(Options(dir.File("jwks.json"))).ok());
  WriteAtomically(dir.File("jwks.json"), JwksOf({NewKey("k1")}));
  AuthenticatorOptions no_issuer = Options(dir.File("jwks.json"));
  no_issuer.policy.issuer = "";
  CHECK_FALSE(Authenticator::Start(no_issuer).ok());
  AuthenticatorOptions both = Options(dir.File("jwks.json"));
  both.hs256_secret_file = dir.File("secret");
  CHECK_FALSE(Authenticator::Start(both).ok());
}

TEST_CASE("the HS256 development secret is read from its file") {
  TempDir dir;
  const std::string secret(48, 'q');
  WriteAtomically(dir.File("secret"), secret + "\n");
  AuthenticatorOptions options = Options("");
  options.hs256_secret_file = dir.File("secret");
  auto authenticator = Authenticator::Start(options);
  REQUIRE(authenticator.ok());
  auto token = MintTokenWithSecret(secret, Claims());
  REQUIRE(token.ok());
  CHECK(Accepts(**authenticator, "Bearer " + *token));
  auto other = MintTokenWithSecret(std::string(48, 'z'), Claims());
  CHECK_FALSE(Accepts(**authenticator, "Bearer " + *other));
}

}  // namespace segments::auth
