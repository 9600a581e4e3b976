// Making keys and signing tokens: for the segments-token tool (local
// setups, compose, operators) and for tests. The server itself only
// verifies.
#pragma once

#include <absl/status/statusor.h>
#include <absl/time/time.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace segments::auth {

// A new private signing key as a JWK (JSON): "ES256" (P-256) or "RS256"
// (RSA, 2048 bits), with `kid`, "use": "sig" and its "alg".
absl::StatusOr<std::string> GenerateSigningKey(std::string_view algorithm, std::string_view kid);

// A JWKS document holding the public halves of `private_jwks`.
absl::StatusOr<std::string> PublicJwks(const std::vector<std::string>& private_jwks);

struct TokenClaims {
  std::string issuer;
  std::vector<std::string> audience;  // one: "aud" is a string; more: an array
  std::string subject;
  std::vector<std::string> roles;
  std::string roles_claim = "roles";  // a dotted path nests objects ("realm_access.roles")
  absl::Time issued_at;
  absl::Time expires;
  std::optional<absl::Time> not_before;
};

// A compact JWT of `claims` signed with a private JWK from GenerateSigningKey.
absl::StatusOr<std::string> MintToken(std::string_view private_jwk, const TokenClaims& claims);
// The same signed HS256 with a shared secret (development only).
absl::StatusOr<std::string> MintTokenWithSecret(std::string_view secret, const TokenClaims& claims);

}  // namespace segments::auth
