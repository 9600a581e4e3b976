// The parameters of one statement. Values travel in text form, except times,
// which go in PostgreSQL's binary form (timestamptz: microseconds since 2000;
// arrays of them: the binary array format), so that no year is misread. A
// binary parameter must meet a statement parameter of exactly that type (cast
// it: `$2::timestamptz`). User ids are their canonical text, which is what
// the database stores (domain user_id), and arrays of them an array literal
// of those texts (cast with $n::user_id[]).
#pragma once

#include <absl/time/time.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "domain/model.h"

namespace segments::storage {

class PgParams {
 public:
  PgParams& Text(std::string_view value);
  PgParams& OptionalText(const std::optional<std::string>& value);
  PgParams& Int(int64_t value);
  PgParams& Time(absl::Time value);
  // Raw bytes, in binary form: for $n::bytea.
  PgParams& Bytes(std::string_view value);
  PgParams& OptionalTime(const std::optional<absl::Time>& value);
  // A user id, for $n::user_id.
  PgParams& User(const domain::UserId& user);
  // User ids, for $n::user_id[].
  PgParams& Users(const std::vector<domain::UserId>& users);
  // Who the changes made on this thread are for (domain/acting_as.h), for
  // the functions that record it in history: NULL for the system.
  PgParams& Actor();

  // Arrays; a nullopt item in an optional array is NULL.
  PgParams& IntArray(const std::vector<int64_t>& values);
  PgParams& TextArray(const std::vector<std::string>& values);
  PgParams& OptionalTimeArray(const std::vector<std::optional<absl::Time>>& values);
  PgParams& BoolArray(const std::vector<bool>& values);

  // For libpq: parallel arrays of values (nullptr: NULL), lengths and
  // formats (0 text, 1 binary).
  int size() const { return static_cast<int>(values_.size()); }
  std::vector<const char*> Values() const;
  const int* Lengths() const { return lengths_.data(); }
  const int* Formats() const { return formats_.data(); }

 private:
  PgParams& Add(std::optional<std::string> value, bool binary);

  std::vector<std::optional<std::string>> values_;
  std::vector<int> lengths_;
  std::vector<int> formats_;
};

}  // namespace segments::storage
