// The keys tokens may be signed with: the public keys of a JWKS document
// (ES256 on P-256, RS256 on RSA of 2048 bits or more), or, for development
// only, one HS256 shared secret. Immutable once made; a reload makes a new one.
#pragma once

#include <absl/status/statusor.h>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

typedef struct _cjose_jwk_int cjose_jwk_t;  // NOLINT(modernize-use-using): cjose's own declaration

namespace segments::auth {

class KeySet {
 public:
  struct Key {
    std::string kid;        // "" when the JWKS entry has none
    std::string algorithm;  // the one JWS "alg" this key verifies: ES256, RS256 or HS256
    cjose_jwk_t* jwk = nullptr;
  };

  // Parses a JWKS document ({"keys": [...]}). Entries for other uses
  // ("use": "enc") or of other types are skipped; an entry of a supported
  // type that does not parse, private key material, or no usable key at
  // all is an error, so that a broken file never replaces working keys.
  static absl::StatusOr<std::shared_ptr<const KeySet>> FromJwks(std::string_view json);
  // One HS256 key (development only): at least 32 bytes.
  static absl::StatusOr<std::shared_ptr<const KeySet>> FromSharedSecret(std::string_view secret);

  ~KeySet();
  KeySet(const KeySet&) = delete;
  KeySet& operator=(const KeySet&) = delete;

  // The keys that may verify a token signed with `algorithm` and naming
  // `kid` ("" if it names none: then every key of that algorithm).
  std::vector<const Key*> Candidates(std::string_view algorithm, std::string_view kid) const;
  size_t size() const { return keys_.size(); }

 private:
  KeySet() = default;
  std::vector<Key> keys_;
};

}  // namespace segments::auth
