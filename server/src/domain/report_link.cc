#include "domain/report_link.h"

#include <absl/strings/escaping.h>
#include <absl/strings/str_cat.h>
#include <absl/strings/str_split.h>

#include <set>

#include "common/crypto.h"

namespace segments::domain {

absl::Time ReportQuery::From() const { return absl::FromCivil(absl::CivilMonth(year, month), absl::UTCTimeZone()); }

absl::Time ReportQuery::To() const { return absl::FromCivil(absl::CivilMonth(year, month) + 1, absl::UTCTimeZone()); }

absl::StatusOr<ReportLinkSigner> ReportLinkSigner::Create(std::vector<SigningKey> keys, absl::Duration ttl) {
  if (keys.empty()) return absl::InvalidArgumentError("report link keys: at least one key is needed");
  if (ttl < absl::Seconds(1)) return absl::InvalidArgumentError("report link ttl: must be at least 1s");
  std::set<std::string> ids;
  for (const SigningKey& key : keys) {
    if (key.id.empty() || key.id.size() > 64 ||
        key.id.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-") !=
            std::string::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("report link keys: key id \"", key.id, "\" must be 1..64 chars of A-Z a-z 0-9 _ . -"));
    }
    if (!ids.insert(key.id).second) {
      return absl::InvalidArgumentError(absl::StrCat("report link keys: key id \"", key.id, "\" appears twice"));
    }
    if (key.secret.size() < kMinSecretLength) {
      return absl::InvalidArgumentError(absl::StrCat("report link keys: the secret of key \"", key.id,
                                                     "\" must have at least ", kMinSecretLength, " bytes"));
    }
  }
  return ReportLinkSigner(std::move(keys), ttl);
}

std::string ReportLinkSigner::SignatureOf(const SigningKey& key, const ReportQuery& query, absl::Time expires) {
  // Every field is delimited, so no two different links sign the same text.
  const std::string message = absl::StrCat("segments.history-report.v1\n", key.id, "\n", query.user.value_or(""), "\n",
                                           query.year, "\n", query.month, "\n", absl::ToUnixSeconds(expires));
  return absl::WebSafeBase64Escape(crypto::HmacSha256(key.secret, message));
}

ReportLink ReportLinkSigner::Sign(const ReportQuery& query, absl::Time now) const {
  const absl::Time expires = absl::FromUnixSeconds(absl::ToUnixSeconds(now + ttl_));
  const SigningKey& key = keys_.front();
  return ReportLink{query, expires, key.id, SignatureOf(key, query, expires)};
}

absl::Status ReportLinkSigner::Verify(const ReportLink& link, absl::Time now) const {
  absl::Status invalid = absl::NotFoundError("report link is not valid: it was changed or its key was retired");
  // Only whole seconds are signed: a fraction would stretch the link's life
  // without changing its signature.
  if (link.expires != absl::FromUnixSeconds(absl::ToUnixSeconds(link.expires))) return invalid;
  for (const SigningKey& key : keys_) {
    if (key.id != link.key_id) continue;
    if (!crypto::ConstantTimeEquals(SignatureOf(key, link.query, link.expires), link.signature)) return invalid;
    if (now >= link.expires) {
      return absl::NotFoundError(absl::StrCat("report link expired at ",
                                              absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", link.expires, absl::UTCTimeZone()),
                                              "; request a new one"));
    }
    return absl::OkStatus();
  }
  return invalid;
}

absl::StatusOr<std::vector<SigningKey>> ParseSigningKeys(std::string_view text) {
  std::vector<SigningKey> keys;
  for (absl::string_view entry : absl::StrSplit(absl::string_view(text.data(), text.size()), ',', absl::SkipEmpty())) {
    const size_t colon = entry.find(':');
    if (colon == absl::string_view::npos) {
      return absl::InvalidArgumentError("report link keys: each entry is id:secret");
    }
    keys.push_back({std::string(entry.substr(0, colon)), std::string(entry.substr(colon + 1))});
  }
  return keys;
}

}  // namespace segments::domain
