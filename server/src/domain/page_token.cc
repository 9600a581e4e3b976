#include "domain/page_token.h"

#include <absl/strings/escaping.h>
#include <absl/strings/match.h>
#include <absl/strings/numbers.h>
#include <absl/strings/str_cat.h>
#include <absl/strings/str_join.h>
#include <absl/strings/str_split.h>

namespace segments::domain::page_token {

std::string Encode(std::string_view kind, const std::vector<std::string>& fields) {
  return absl::WebSafeBase64Escape(
      absl::StrCat(absl::string_view(kind.data(), kind.size()), ":", absl::StrJoin(fields, ":")));
}

std::optional<std::vector<std::string>> Decode(std::string_view token, std::string_view kind, size_t count) {
  std::string raw;
  if (count == 0 || !absl::WebSafeBase64Unescape(absl::string_view(token.data(), token.size()), &raw)) {
    return std::nullopt;
  }
  const std::string prefix = absl::StrCat(absl::string_view(kind.data(), kind.size()), ":");
  if (!absl::StartsWith(raw, prefix)) return std::nullopt;
  std::vector<std::string> fields =
      absl::StrSplit(absl::string_view(raw).substr(prefix.size()), absl::MaxSplits(':', static_cast<int>(count - 1)));
  if (fields.size() != count) return std::nullopt;
  return fields;
}

std::string FromTime(absl::Time t) { return absl::StrCat(absl::ToUnixMicros(t)); }

std::optional<absl::Time> ToTime(std::string_view field) {
  std::optional<int64_t> micros = ToInt(field);
  if (!micros) return std::nullopt;
  return absl::FromUnixMicros(*micros);
}

std::optional<int64_t> ToInt(std::string_view field) {
  int64_t value = 0;
  if (!absl::SimpleAtoi(absl::string_view(field.data(), field.size()), &value)) return std::nullopt;
  return value;
}

std::optional<UserId> ToUser(std::string_view field) {
  absl::StatusOr<UserId> user = UserId::Parse(field);
  if (!user.ok() || user->ToString() != field) return std::nullopt;
  return *user;
}

}  // namespace segments::domain::page_token
