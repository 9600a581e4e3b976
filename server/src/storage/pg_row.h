// Typed reads of the columns of one result row. A value that cannot be
// decoded (NULL where none may be, a malformed number, an unknown enum
// label) is an INTERNAL error naming the column: a mismatch between the SQL
// and its reader, never something to paper over with a default.
#pragma once

#include <absl/status/statusor.h>
#include <absl/time/time.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status_macros.h"
#include "domain/model.h"
#include "storage/pg_connection.h"

namespace segments::storage {

class PgRow {
 public:
  PgRow(const PgResult& result, int row) : result_(result), row_(row) {}

  bool IsNull(int column) const { return result_.IsNull(row_, column); }

  absl::StatusOr<std::string> Text(int column) const;
  // A bytea column (PostgreSQL writes it as \x and hex digits).
  absl::StatusOr<std::string> Bytes(int column) const;
  absl::StatusOr<int64_t> Int64(int column) const;
  absl::StatusOr<std::optional<int64_t>> OptionalInt64(int column) const;
  absl::StatusOr<int32_t> Int32(int column) const;
  absl::StatusOr<bool> Bool(int column) const;
  // A time selected as microseconds since the Unix epoch (an int8).
  absl::StatusOr<absl::Time> Micros(int column) const;
  absl::StatusOr<std::optional<absl::Time>> OptionalMicros(int column) const;
  absl::StatusOr<domain::UserId> User(int column) const;
  // "1,2,3" (array_to_string of an int8 array); empty text is no items.
  absl::StatusOr<std::vector<int64_t>> Int64List(int column) const;
  // "A,B" (string_agg of items without commas); empty text is no items.
  absl::StatusOr<std::vector<std::string>> TextList(int column) const;
  // An enum label, read with the domain's parser.
  template <typename T>
  absl::StatusOr<T> Enum(int column, std::optional<T> (*parse)(std::string_view)) const {
    ASSIGN_OR_RETURN(const std::string_view text, NotNull(column));
    if (std::optional<T> value = parse(text)) return *value;
    return Malformed(column, text);
  }

 private:
  absl::StatusOr<std::string_view> NotNull(int column) const;
  absl::Status Malformed(int column, std::string_view value) const;

  const PgResult& result_;
  int row_;
};

}  // namespace segments::storage
