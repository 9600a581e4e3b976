// Bearer tokens for tests that talk to a server with authentication on: one
// ES256 key made per test process, its JWKS written to a temporary file
// (removed at exit), and tokens minted for each role.
#pragma once

#include <string>

#include "auth/roles.h"
#include "auth/token_minter.h"

namespace segments::testing {

class TestTokens {
 public:
  static constexpr char kIssuer[] = "https://segments.test";
  static constexpr char kAudience[] = "segments";

  static TestTokens& Get();

  const std::string& jwks_file() const { return jwks_file_; }
  const std::string& private_key() const { return private_key_; }
  // "Bearer <jwt>" for subject "test-<role>" holding `role`, valid an hour.
  const std::string& BearerFor(auth::Role role);
  // Claims as BearerFor's, for tests that change one of them.
  static auth::TokenClaims ClaimsFor(auth::Role role);
  // "Bearer <jwt>" of `claims` signed with the test key.
  std::string Bearer(const auth::TokenClaims& claims) const;

 private:
  TestTokens();
  std::string private_key_;
  std::string jwks_file_;
  std::string bearer_[4];
};

}  // namespace segments::testing
