#include "support/test_tokens.h"

#include <absl/time/clock.h>
#include <stdlib.h>  // NOLINT(modernize-deprecated-headers): mkstemp
#include <unistd.h>

#include <cstdio>
#include <stdexcept>

namespace segments::testing {
namespace {

std::string Checked(absl::StatusOr<std::string> made) {
  if (!made.ok()) throw std::runtime_error(made.status().ToString());
  return *std::move(made);
}

}  // namespace

TestTokens& TestTokens::Get() {
  static TestTokens* tokens = new TestTokens();  // never destroyed: used until exit
  return *tokens;
}

TestTokens::TestTokens() {
  private_key_ = Checked(auth::GenerateSigningKey("ES256", "test-key"));
  const std::string jwks = Checked(auth::PublicJwks({private_key_}));
  std::string path = "/tmp/segments-test-jwks-XXXXXX";
  const int fd = ::mkstemp(path.data());
  if (fd < 0) throw std::runtime_error("mkstemp failed");
  const bool written = ::write(fd, jwks.data(), jwks.size()) == static_cast<ssize_t>(jwks.size());
  ::close(fd);
  if (!written) throw std::runtime_error("cannot write the test JWKS");
  jwks_file_ = path;
  static std::string to_remove;
  to_remove = path;
  std::atexit([] { std::remove(to_remove.c_str()); });
}

auth::TokenClaims TestTokens::ClaimsFor(auth::Role role) {
  const absl::Time now = absl::Now();
  return auth::TokenClaims{kIssuer,
                           {kAudience},
                           "test-" + std::string(auth::NameOf(role)),
                           {std::string(auth::NameOf(role))},
                           "roles",
                           now,
                           now + absl::Hours(1),
                           std::nullopt};
}

const std::string& TestTokens::BearerFor(auth::Role role) {
  std::string& bearer = bearer_[static_cast<int>(role)];
  if (bearer.empty()) bearer = Bearer(ClaimsFor(role));
  return bearer;
}

std::string TestTokens::Bearer(const auth::TokenClaims& claims) const {
  return "Bearer " + Checked(auth::MintToken(private_key_, claims));
}

}  // namespace segments::testing
