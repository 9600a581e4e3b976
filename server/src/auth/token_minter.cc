#include "auth/token_minter.h"

#include <absl/strings/str_cat.h>
#include <absl/strings/str_split.h>
#include <cjose/cjose.h>

#include <memory>

#include "auth/json.h"
#include "common/string_views.h"

namespace segments::auth {
namespace {

using Jwk = std::unique_ptr<cjose_jwk_t, bool (*)(cjose_jwk_t*)>;

absl::Status CjoseError(std::string_view what, const cjose_err& err) {
  return absl::InternalError(absl::StrCat(Absl(what), ": ", err.message == nullptr ? "unknown error" : err.message));
}

std::string Dump(const json_t* json) {
  char* text = json_dumps(json, JSON_COMPACT | JSON_SORT_KEYS);
  std::string out(text == nullptr ? "" : text);
  free(text);  // NOLINT(cppcoreguidelines-no-malloc): jansson's allocation
  return out;
}

// The JWK JSON of `jwk` with "use" and "alg" added.
absl::StatusOr<Json> JwkJson(const cjose_jwk_t* jwk, bool with_private, std::string_view algorithm) {
  cjose_err err;
  char* text = cjose_jwk_to_json(jwk, with_private, &err);
  if (text == nullptr) return CjoseError("cannot export the key", err);
  Json json = Own(json_loads(text, 0, nullptr));
  cjose_get_dealloc()(text);
  if (!json) return absl::InternalError("cjose exported a key that is not JSON");
  json_object_set_new(json.get(), "use", json_string("sig"));
  json_object_set_new(json.get(), "alg", json_stringn(algorithm.data(), algorithm.size()));
  return json;
}

absl::StatusOr<Jwk> ImportJwk(std::string_view private_jwk) {
  cjose_err err;
  cjose_jwk_t* jwk = cjose_jwk_import(private_jwk.data(), private_jwk.size(), &err);
  if (jwk == nullptr) return CjoseError("the key is not a JWK", err);
  return Jwk(jwk, cjose_jwk_release);
}

std::string AlgorithmOf(const cjose_jwk_t* jwk) {
  cjose_err err;
  switch (cjose_jwk_get_kty(jwk, &err)) {
    case CJOSE_JWK_KTY_EC:
      return "ES256";
    case CJOSE_JWK_KTY_RSA:
      return "RS256";
    default:
      return "HS256";
  }
}

absl::StatusOr<std::string> Sign(const cjose_jwk_t* jwk, const TokenClaims& claims) {
  const std::string algorithm = AlgorithmOf(jwk);
  Json payload = Own(json_object());
  json_object_set_new(payload.get(), "iss", json_string(claims.issuer.c_str()));
  if (claims.audience.size() == 1) {
    json_object_set_new(payload.get(), "aud", json_string(claims.audience[0].c_str()));
  } else {
    json_t* audience = json_array();
    for (const std::string& aud : claims.audience) json_array_append_new(audience, json_string(aud.c_str()));
    json_object_set_new(payload.get(), "aud", audience);
  }
  json_object_set_new(payload.get(), "sub", json_string(claims.subject.c_str()));
  json_object_set_new(payload.get(), "iat", json_integer(absl::ToUnixSeconds(claims.issued_at)));
  json_object_set_new(payload.get(), "exp", json_integer(absl::ToUnixSeconds(claims.expires)));
  if (claims.not_before)
    json_object_set_new(payload.get(), "nbf", json_integer(absl::ToUnixSeconds(*claims.not_before)));
  json_t* roles = json_array();
  for (const std::string& role : claims.roles) json_array_append_new(roles, json_string(role.c_str()));
  json_t* parent = payload.get();
  const std::vector<std::string> path = absl::StrSplit(claims.roles_claim, '.');
  for (size_t i = 0; i + 1 < path.size(); ++i) {
    json_t* child = json_object();
    json_object_set_new(parent, path[i].c_str(), child);
    parent = child;
  }
  json_object_set_new(parent, path.back().c_str(), roles);
  const std::string body = Dump(payload.get());

  cjose_err err;
  cjose_header_t* header = cjose_header_new(&err);
  if (header == nullptr) return CjoseError("cannot make a header", err);
  std::unique_ptr<cjose_header_t, void (*)(cjose_header_t*)> owned_header(header, cjose_header_release);
  cjose_header_set(header, CJOSE_HDR_ALG, algorithm.c_str(), &err);
  cjose_header_set(header, "typ", "JWT", &err);
  const char* kid = cjose_jwk_get_kid(jwk, &err);
  if (kid != nullptr && *kid != '\0') cjose_header_set(header, CJOSE_HDR_KID, kid, &err);
  cjose_jws_t* jws = cjose_jws_sign(jwk, header, reinterpret_cast<const uint8_t*>(body.data()), body.size(), &err);
  if (jws == nullptr) return CjoseError("cannot sign", err);
  const char* compact = nullptr;
  const bool exported = cjose_jws_export(jws, &compact, &err);
  std::string token = exported ? std::string(compact) : std::string();
  cjose_jws_release(jws);
  if (!exported) return CjoseError("cannot serialize the token", err);
  return token;
}

}  // namespace

absl::StatusOr<std::string> GenerateSigningKey(std::string_view algorithm, std::string_view kid) {
  cjose_err err;
  cjose_jwk_t* made = nullptr;
  if (algorithm == "ES256") {
    made = cjose_jwk_create_EC_random(CJOSE_JWK_EC_P_256, &err);
  } else if (algorithm == "RS256") {
    static const uint8_t kExponent[] = {0x01, 0x00, 0x01};
    made = cjose_jwk_create_RSA_random(2048, kExponent, sizeof(kExponent), &err);
  } else {
    return absl::InvalidArgumentError(absl::StrCat("unsupported algorithm ", Absl(algorithm), " (ES256 or RS256)"));
  }
  if (made == nullptr) return CjoseError("cannot make the key", err);
  Jwk jwk(made, cjose_jwk_release);
  if (!kid.empty() && !cjose_jwk_set_kid(jwk.get(), kid.data(), kid.size(), &err)) {
    return CjoseError("cannot set the kid", err);
  }
  absl::StatusOr<Json> json = JwkJson(jwk.get(), true, algorithm);
  if (!json.ok()) return json.status();
  return Dump(json->get());
}

absl::StatusOr<std::string> PublicJwks(const std::vector<std::string>& private_jwks) {
  Json keys = Own(json_array());
  for (const std::string& text : private_jwks) {
    absl::StatusOr<Jwk> jwk = ImportJwk(text);
    if (!jwk.ok()) return jwk.status();
    absl::StatusOr<Json> json = JwkJson(jwk->get(), false, AlgorithmOf(jwk->get()));
    if (!json.ok()) return json.status();
    json_array_append(keys.get(), json->get());
  }
  Json jwks = Own(json_object());
  json_object_set(jwks.get(), "keys", keys.get());
  return Dump(jwks.get());
}

absl::StatusOr<std::string> MintToken(std::string_view private_jwk, const TokenClaims& claims) {
  absl::StatusOr<Jwk> jwk = ImportJwk(private_jwk);
  if (!jwk.ok()) return jwk.status();
  return Sign(jwk->get(), claims);
}

absl::StatusOr<std::string> MintTokenWithSecret(std::string_view secret, const TokenClaims& claims) {
  cjose_err err;
  cjose_jwk_t* made = cjose_jwk_create_oct_spec(reinterpret_cast<const uint8_t*>(secret.data()), secret.size(), &err);
  if (made == nullptr) return CjoseError("cannot make the HS256 key", err);
  Jwk jwk(made, cjose_jwk_release);
  return Sign(jwk.get(), claims);
}

}  // namespace segments::auth
