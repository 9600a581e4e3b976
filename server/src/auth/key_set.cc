#include "auth/key_set.h"

#include <absl/strings/str_cat.h>
#include <cjose/cjose.h>
#include <jansson.h>

#include <cstring>

#include "auth/json.h"

namespace segments::auth {
namespace {

constexpr size_t kMinSecretBytes = 32;
constexpr size_t kMinRsaBits = 2048;

std::string StringField(const json_t* object, const char* name) {
  const json_t* value = json_object_get(object, name);
  return json_is_string(value) ? std::string(json_string_value(value)) : std::string();
}

// The JWS algorithm a parsed key verifies, or an error for a key we refuse.
absl::StatusOr<std::string> AlgorithmOf(const cjose_jwk_t* jwk, const std::string& declared) {
  cjose_err err;
  std::string algorithm;
  switch (cjose_jwk_get_kty(jwk, &err)) {
    case CJOSE_JWK_KTY_EC:
      if (cjose_jwk_EC_get_curve(jwk, &err) != CJOSE_JWK_EC_P_256) {
        return absl::InvalidArgumentError("only the P-256 curve (ES256) is accepted for EC keys");
      }
      algorithm = "ES256";
      break;
    case CJOSE_JWK_KTY_RSA:
      if (cjose_jwk_get_keysize(jwk, &err) < kMinRsaBits) {
        return absl::InvalidArgumentError("RSA keys must have at least 2048 bits");
      }
      algorithm = "RS256";
      break;
    default:
      return absl::InvalidArgumentError("only EC (P-256) and RSA public keys are accepted");
  }
  if (!declared.empty() && declared != algorithm) {
    return absl::InvalidArgumentError(
        absl::StrCat("its \"alg\" ", declared, " does not fit the key, which verifies ", algorithm));
  }
  return algorithm;
}

}  // namespace

absl::StatusOr<std::shared_ptr<const KeySet>> KeySet::FromJwks(std::string_view json) {
  json_error_t parse_error;
  json_t* root = json_loadb(json.data(), json.size(), 0, &parse_error);
  if (root == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("JWKS is not JSON: ", parse_error.text, " at line ", parse_error.line));
  }
  const Json owned = Own(root);
  const json_t* keys = json_object_get(root, "keys");
  if (!json_is_array(keys)) return absl::InvalidArgumentError("JWKS has no \"keys\" array");

  std::shared_ptr<KeySet> set(new KeySet());
  for (size_t i = 0; i < json_array_size(keys); ++i) {
    json_t* entry = json_array_get(keys, i);
    const std::string kty = StringField(entry, "kty");
    const std::string use = StringField(entry, "use");
    if ((kty != "EC" && kty != "RSA") || (!use.empty() && use != "sig")) continue;
    const std::string where = absl::StrCat("JWKS key ", i, " (kid \"", StringField(entry, "kid"), "\")");
    if (json_object_get(entry, "d") != nullptr) {
      return absl::InvalidArgumentError(where + " holds a private key: the server needs public keys only");
    }
    cjose_err err;
    cjose_jwk_t* jwk = cjose_jwk_import_json(reinterpret_cast<cjose_header_t*>(entry), &err);
    if (jwk == nullptr) return absl::InvalidArgumentError(absl::StrCat(where, " does not parse: ", err.message));
    auto algorithm = AlgorithmOf(jwk, StringField(entry, "alg"));
    if (!algorithm.ok()) {
      cjose_jwk_release(jwk);
      return absl::InvalidArgumentError(absl::StrCat(where, ": ", algorithm.status().message()));
    }
    set->keys_.push_back(Key{StringField(entry, "kid"), *std::move(algorithm), jwk});
  }
  if (set->keys_.empty()) return absl::InvalidArgumentError("JWKS has no EC (P-256) or RSA signing key");
  return std::shared_ptr<const KeySet>(std::move(set));
}

absl::StatusOr<std::shared_ptr<const KeySet>> KeySet::FromSharedSecret(std::string_view secret) {
  if (secret.size() < kMinSecretBytes) {
    return absl::InvalidArgumentError(absl::StrCat("the HS256 secret must have at least ", kMinSecretBytes, " bytes"));
  }
  cjose_err err;
  cjose_jwk_t* jwk = cjose_jwk_create_oct_spec(reinterpret_cast<const uint8_t*>(secret.data()), secret.size(), &err);
  if (jwk == nullptr) return absl::InternalError(absl::StrCat("cannot make the HS256 key: ", err.message));
  std::shared_ptr<KeySet> set(new KeySet());
  set->keys_.push_back(Key{"", "HS256", jwk});
  return std::shared_ptr<const KeySet>(std::move(set));
}

KeySet::~KeySet() {
  for (Key& key : keys_) cjose_jwk_release(key.jwk);
}

std::vector<const KeySet::Key*> KeySet::Candidates(std::string_view algorithm, std::string_view kid) const {
  std::vector<const Key*> out;
  for (const Key& key : keys_) {
    if (key.algorithm == algorithm && (kid.empty() || key.kid == kid)) out.push_back(&key);
  }
  return out;
}

}  // namespace segments::auth
