#include "auth/token_verifier.h"

#include <absl/strings/str_cat.h>
#include <absl/strings/str_split.h>
#include <cjose/cjose.h>

#include <cmath>
#include <memory>
#include <vector>

#include "auth/json.h"
#include "common/string_views.h"

namespace segments::auth {
namespace {

// Far above any real token; bounds the work a junk header costs.
constexpr size_t kMaxTokenBytes = 8192;

absl::Status Refused(absl::string_view why) { return absl::UnauthenticatedError(absl::StrCat("invalid token: ", why)); }

// The JSON object in base64url `part`, or null.
Json DecodeObject(absl::string_view part) {
  uint8_t* bytes = nullptr;
  size_t length = 0;
  cjose_err err;
  if (!cjose_base64url_decode(part.data(), part.size(), &bytes, &length, &err)) return Own(nullptr);
  json_t* parsed = json_loadb(reinterpret_cast<const char*>(bytes), length, 0, nullptr);
  cjose_get_dealloc()(bytes);
  if (parsed != nullptr && !json_is_object(parsed)) {
    json_decref(parsed);
    parsed = nullptr;
  }
  return Own(parsed);
}

absl::string_view StringOf(const json_t* value) {
  return json_is_string(value) ? absl::string_view(json_string_value(value), json_string_length(value))
                               : absl::string_view();
}

// A NumericDate claim: absent (nullopt), or seconds since the epoch.
absl::StatusOr<std::optional<absl::Time>> TimeClaim(const json_t* claims, const char* name) {
  const json_t* value = json_object_get(claims, name);
  if (value == nullptr) return std::nullopt;
  if (!json_is_number(value) || !std::isfinite(json_number_value(value))) {
    return Refused(absl::StrCat("\"", name, "\" is not a number of seconds"));
  }
  return absl::FromUnixSeconds(static_cast<int64_t>(std::floor(json_number_value(value))));
}

const json_t* ClaimAt(const json_t* claims, absl::string_view path) {
  const json_t* at = claims;
  for (absl::string_view part : absl::StrSplit(path, '.')) {
    if (!json_is_object(at)) return nullptr;
    at = json_object_getn(at, part.data(), part.size());
  }
  return at;
}

RoleSet RolesOf(const json_t* claim) {
  RoleSet roles;
  auto add = [&roles](absl::string_view name) {
    if (auto role = RoleNamed(Std(name))) roles.Add(*role);
  };
  if (json_is_string(claim)) {
    for (absl::string_view name : absl::StrSplit(StringOf(claim), ' ', absl::SkipEmpty())) add(name);
  } else if (json_is_array(claim)) {
    for (size_t i = 0; i < json_array_size(claim); ++i) add(StringOf(json_array_get(claim, i)));
  }
  return roles;
}

bool AudienceHolds(const json_t* aud, absl::string_view audience) {
  if (json_is_string(aud)) return StringOf(aud) == audience;
  if (!json_is_array(aud)) return false;
  for (size_t i = 0; i < json_array_size(aud); ++i) {
    if (StringOf(json_array_get(aud, i)) == audience) return true;
  }
  return false;
}

// The bytes a signature of `key` has: cjose reads the first ones of a longer
// one, so that appended characters would still verify; such a token is not
// the one that was signed.
size_t SignatureBytes(const KeySet::Key& key) {
  if (key.algorithm == "ES256") return 64;
  if (key.algorithm == "HS256") return 32;
  cjose_err err;
  return (cjose_jwk_get_keysize(key.jwk, &err) + 7) / 8;  // RS256: the modulus
}

// Whether one of `candidates` verifies the signature of `token`, whose
// signature part is `signature` (base64url, unpadded).
bool SignatureVerifies(absl::string_view token, absl::string_view signature,
                       const std::vector<const KeySet::Key*>& candidates) {
  cjose_err err;
  cjose_jws_t* jws = cjose_jws_import(token.data(), token.size(), &err);
  if (jws == nullptr) return false;
  bool verified = false;
  for (const KeySet::Key* key : candidates) {
    const size_t bytes = SignatureBytes(*key);
    if (signature.size() != (bytes * 4 + 2) / 3) continue;  // its exact unpadded base64url length
    if (cjose_jws_verify(jws, key->jwk, &err)) {
      verified = true;
      break;
    }
  }
  cjose_jws_release(jws);
  return verified;
}

}  // namespace

absl::StatusOr<Principal> VerifyToken(const KeySet& keys, const TokenPolicy& policy, std::string_view compact,
                                      absl::Time now) {
  const absl::string_view token = Absl(compact);
  if (token.empty()) return Refused("empty");
  if (token.size() > kMaxTokenBytes) return Refused("longer than 8 KiB");
  const std::vector<absl::string_view> parts = absl::StrSplit(token, '.');
  if (parts.size() != 3 || parts[0].empty() || parts[1].empty()) {
    return Refused("not a signed JWT (header.payload.signature)");
  }
  const Json header = DecodeObject(parts[0]);
  if (!header) return Refused("the header is not base64url JSON");
  const absl::string_view algorithm = StringOf(json_object_get(header.get(), "alg"));
  if (algorithm.empty() || algorithm == "none") return Refused("unsigned (alg none)");
  const absl::string_view kid = StringOf(json_object_get(header.get(), "kid"));
  const std::vector<const KeySet::Key*> candidates = keys.Candidates(Std(algorithm), Std(kid));
  if (candidates.empty()) {
    return Refused(absl::StrCat("no accepted key for alg ", algorithm, kid.empty() ? "" : " and kid ", kid));
  }
  if (!SignatureVerifies(token, parts[2], candidates)) return Refused("the signature does not verify");

  const Json claims = DecodeObject(parts[1]);
  if (!claims) return Refused("the payload is not base64url JSON");
  auto expires = TimeClaim(claims.get(), "exp");
  if (!expires.ok()) return expires.status();
  if (!*expires) return Refused("no \"exp\"");
  if (now >= **expires + policy.clock_skew) return Refused("expired");
  auto not_before = TimeClaim(claims.get(), "nbf");
  if (!not_before.ok()) return not_before.status();
  if (*not_before && now + policy.clock_skew < **not_before) return Refused("not valid yet (nbf)");
  if (StringOf(json_object_get(claims.get(), "iss")) != policy.issuer) return Refused("wrong issuer");
  if (!AudienceHolds(json_object_get(claims.get(), "aud"), policy.audience)) return Refused("wrong audience");
  const absl::string_view subject = StringOf(json_object_get(claims.get(), "sub"));
  if (subject.empty()) return Refused("no \"sub\"");
  return Principal{std::string(subject), RolesOf(ClaimAt(claims.get(), policy.roles_claim)), **expires};
}

}  // namespace segments::auth
