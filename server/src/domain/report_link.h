// Signed, expiring links to history reports. A link carries its query, its
// expiry, the id of the key that signed it and an HMAC-SHA256 over all of
// these, so any instance holding the key can check it without shared state.
#pragma once

#include <absl/status/status.h>
#include <absl/status/statusor.h>
#include <absl/time/time.h>

#include <optional>
#include <string>
#include <vector>

#include "domain/model.h"

namespace segments::domain {

// One month of history (UTC), for one user or for all of them.
struct ReportQuery {
  std::optional<std::string> user;  // the canonical id as signed; nullopt: all users
  int year = 0;
  int month = 0;

  // The month as a half-open UTC interval [from, to).
  absl::Time From() const;
  absl::Time To() const;
};

struct ReportLink {
  ReportQuery query;
  absl::Time expires;  // whole seconds
  std::string key_id;
  std::string signature;  // base64url, no padding
};

struct SigningKey {
  std::string id;      // short name carried by links, e.g. "2026-11"
  std::string secret;  // at least kMinSecretLength bytes
};

class ReportLinkSigner {
 public:
  static constexpr size_t kMinSecretLength = 32;

  // The first key signs new links; every key verifies, so a key can be
  // rotated in by listing it second everywhere, then first, and retired once
  // the links it signed have expired. INVALID_ARGUMENT for no keys, duplicate
  // ids, bad id characters or short secrets.
  static absl::StatusOr<ReportLinkSigner> Create(std::vector<SigningKey> keys, absl::Duration ttl);

  // A link for `query` valid until now + ttl (rounded down to a second).
  ReportLink Sign(const ReportQuery& query, absl::Time now) const;

  // OK if the link was signed by one of our keys and has not expired;
  // NOT_FOUND otherwise, as the contract asks for tampered or expired links.
  absl::Status Verify(const ReportLink& link, absl::Time now) const;

  absl::Duration ttl() const { return ttl_; }

 private:
  ReportLinkSigner(std::vector<SigningKey> keys, absl::Duration ttl) : keys_(std::move(keys)), ttl_(ttl) {}
  static std::string SignatureOf(const SigningKey& key, const ReportQuery& query, absl::Time expires);

  std::vector<SigningKey> keys_;
  absl::Duration ttl_;
};

// "id:secret,id:secret" as configured; the first key signs.
absl::StatusOr<std::vector<SigningKey>> ParseSigningKeys(std::string_view text);

}  // namespace segments::domain
