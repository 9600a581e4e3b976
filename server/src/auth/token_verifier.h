// Verifies a JWT (compact JWS) against a KeySet and the configured issuer,
// audience and roles claim: the signature, then exp/nbf, iss, aud, sub.
#pragma once

#include <absl/status/statusor.h>
#include <absl/time/time.h>

#include <string>
#include <string_view>

#include "auth/key_set.h"
#include "auth/principal.h"

namespace segments::auth {

struct TokenPolicy {
  std::string issuer;    // `iss` must equal it
  std::string audience;  // `aud` (a string or an array) must hold it
  // The claim holding the roles: a name ("roles") or a dotted path into
  // objects ("realm_access.roles"); an array of strings or one string of
  // space-separated names. Names that are not roles are ignored.
  std::string roles_claim = "roles";
  // Allowed difference between our clock and the issuer's for exp and nbf.
  absl::Duration clock_skew = absl::Seconds(30);
};

// UNAUTHENTICATED, with a message saying what is wrong (never the token),
// unless every check passes.
absl::StatusOr<Principal> VerifyToken(const KeySet& keys, const TokenPolicy& policy, std::string_view compact,
                                      absl::Time now);

}  // namespace segments::auth
