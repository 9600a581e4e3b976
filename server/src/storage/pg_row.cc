#include "storage/pg_row.h"

#include <absl/strings/numbers.h>
#include <absl/strings/str_split.h>
#include <fmt/format.h>

#include "common/status_macros.h"
#include "common/string_views.h"

namespace segments::storage {

absl::StatusOr<std::string_view> PgRow::NotNull(int column) const {
  if (result_.IsNull(row_, column)) {
    return absl::InternalError(fmt::format("database row: column \"{}\" is NULL", result_.ColumnName(column)));
  }
  return result_.Get(row_, column);
}

absl::Status PgRow::Malformed(int column, std::string_view value) const {
  constexpr size_t kShown = 40;
  return absl::InternalError(fmt::format("database row: column \"{}\" holds an unexpected value \"{}\"",
                                         result_.ColumnName(column), value.substr(0, kShown)));
}

absl::StatusOr<std::string> PgRow::Text(int column) const {
  ASSIGN_OR_RETURN(std::string_view text, NotNull(column));
  return std::string(text);
}

absl::StatusOr<std::string> PgRow::Bytes(int column) const {
  ASSIGN_OR_RETURN(std::string_view text, NotNull(column));
  if (text.size() % 2 != 0 || text.substr(0, 2) != "\\x") return Malformed(column, text);
  const auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  std::string out;
  out.reserve(text.size() / 2 - 1);
  for (size_t i = 2; i < text.size(); i += 2) {
    const int high = nibble(text[i]);
    const int low = nibble(text[i + 1]);
    if (high < 0 || low < 0) return Malformed(column, text);
    out += static_cast<char>((high << 4) | low);
  }
  return out;
}

absl::StatusOr<int64_t> PgRow::Int64(int column) const {
  ASSIGN_OR_RETURN(std::string_view text, NotNull(column));
  int64_t value = 0;
  if (!absl::SimpleAtoi(Absl(text), &value)) return Malformed(column, text);
  return value;
}

absl::StatusOr<std::optional<int64_t>> PgRow::OptionalInt64(int column) const {
  if (IsNull(column)) return std::nullopt;
  return Int64(column);
}

absl::StatusOr<int32_t> PgRow::Int32(int column) const {
  ASSIGN_OR_RETURN(std::string_view text, NotNull(column));
  int32_t value = 0;
  if (!absl::SimpleAtoi(Absl(text), &value)) return Malformed(column, text);
  return value;
}

absl::StatusOr<bool> PgRow::Bool(int column) const {
  ASSIGN_OR_RETURN(std::string_view text, NotNull(column));
  if (text == "t") return true;
  if (text == "f") return false;
  return Malformed(column, text);
}

absl::StatusOr<absl::Time> PgRow::Micros(int column) const {
  ASSIGN_OR_RETURN(int64_t micros, Int64(column));
  return absl::FromUnixMicros(micros);
}

absl::StatusOr<std::optional<absl::Time>> PgRow::OptionalMicros(int column) const {
  if (IsNull(column)) return std::nullopt;
  return Micros(column);
}

absl::StatusOr<domain::UserId> PgRow::User(int column) const {
  ASSIGN_OR_RETURN(std::string_view text, NotNull(column));
  absl::StatusOr<domain::UserId> user = domain::UserId::Parse(text);
  if (!user.ok()) return Malformed(column, text);
  return *user;
}

absl::StatusOr<std::vector<int64_t>> PgRow::Int64List(int column) const {
  ASSIGN_OR_RETURN(std::string_view text, NotNull(column));
  std::vector<int64_t> out;
  if (text.empty()) return out;
  for (absl::string_view part : absl::StrSplit(Absl(text), ',')) {
    int64_t value = 0;
    if (!absl::SimpleAtoi(part, &value)) return Malformed(column, text);
    out.push_back(value);
  }
  return out;
}

absl::StatusOr<std::vector<std::string>> PgRow::TextList(int column) const {
  ASSIGN_OR_RETURN(std::string_view text, NotNull(column));
  std::vector<std::string> out;
  if (text.empty()) return out;
  for (absl::string_view part : absl::StrSplit(Absl(text), ',')) out.emplace_back(part);
  return out;
}

}  // namespace segments::storage
