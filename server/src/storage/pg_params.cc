#include "storage/pg_params.h"

#include <absl/strings/str_cat.h>
#include <arpa/inet.h>

#include <algorithm>

#include "domain/acting_as.h"

namespace segments::storage {
namespace {

constexpr uint32_t kTimestamptzTypeOid = 1184;

void AppendInt32(std::string& out, uint32_t value) {
  const uint32_t network = htonl(value);
  out.append(reinterpret_cast<const char*>(&network), sizeof(network));
}

void AppendInt64(std::string& out, int64_t value) {
  const auto bits = static_cast<uint64_t>(value);
  AppendInt32(out, static_cast<uint32_t>(bits >> 32));
  AppendInt32(out, static_cast<uint32_t>(bits));
}

// timestamptz in binary: microseconds since 2000-01-01T00:00:00Z, an int64
// in network order. Any year the API accepts (1..9999) is in range and
// travels without a text form to misread.
constexpr int64_t kPostgresEpochUnixMicros = 946'684'800'000'000;

std::string TimestamptzBytes(absl::Time t) {
  std::string out;
  AppendInt64(out, absl::ToUnixMicros(t) - kPostgresEpochUnixMicros);
  return out;
}

// The header of a one-dimensional binary array with `size` items of the
// type `element_oid`: dimensions, has-NULLs flag, element type, then the
// dimension's size and lower bound. An empty array has no dimension.
void AppendArrayHeader(std::string& out, size_t size, bool has_nulls, uint32_t element_oid) {
  AppendInt32(out, size == 0 ? 0 : 1);
  AppendInt32(out, has_nulls ? 1 : 0);
  AppendInt32(out, element_oid);
  if (size != 0) {
    AppendInt32(out, static_cast<uint32_t>(size));
    AppendInt32(out, 1);
  }
}

// Quoted and escaped as an element of an array literal.
void AppendArrayItem(std::string& out, std::string_view item) {
  out += '"';
  for (char c : item) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  out += '"';
}

template <typename T, typename AppendItem>
std::string ArrayLiteral(const std::vector<T>& items, AppendItem append_item) {
  std::string out = "{";
  for (size_t i = 0; i < items.size(); ++i) {
    if (i > 0) out += ',';
    append_item(out, items[i]);
  }
  return out + "}";
}

}  // namespace

PgParams& PgParams::Add(std::optional<std::string> value, bool binary) {
  lengths_.push_back(value ? static_cast<int>(value->size()) : 0);
  formats_.push_back(binary ? 1 : 0);
  values_.push_back(std::move(value));
  return *this;
}

PgParams& PgParams::Text(std::string_view value) { return Add(std::string(value), false); }

PgParams& PgParams::OptionalText(const std::optional<std::string>& value) { return Add(value, false); }

PgParams& PgParams::Actor() {
  const std::string& actor = domain::ActingAs::Current();
  return actor.empty() ? Add(std::nullopt, false) : Text(actor);
}

PgParams& PgParams::Int(int64_t value) { return Add(std::to_string(value), false); }

PgParams& PgParams::Time(absl::Time value) { return Add(TimestamptzBytes(value), true); }

PgParams& PgParams::Bytes(std::string_view value) { return Add(std::string(value), true); }

PgParams& PgParams::OptionalTime(const std::optional<absl::Time>& value) {
  if (!value) return Add(std::nullopt, true);
  return Time(*value);
}

PgParams& PgParams::User(const domain::UserId& user) { return Add(user.ToString(), false); }

PgParams& PgParams::Users(const std::vector<domain::UserId>& users) {
  // Canonical ids need no quotes: digits, letters a-f and dashes.
  std::string out;
  out.reserve(2 + users.size() * (domain::UserId::kMaxTextLength + 1));
  out += '{';
  for (size_t i = 0; i < users.size(); ++i) {
    if (i > 0) out += ',';
    users[i].AppendTo(out);
  }
  out += '}';
  return Add(std::move(out), false);
}

PgParams& PgParams::IntArray(const std::vector<int64_t>& values) {
  return Add(ArrayLiteral(values, [](std::string& out, int64_t v) { absl::StrAppend(&out, v); }), false);
}

PgParams& PgParams::TextArray(const std::vector<std::string>& values) {
  return Add(ArrayLiteral(values, [](std::string& out, const std::string& v) { AppendArrayItem(out, v); }), false);
}

PgParams& PgParams::OptionalTimeArray(const std::vector<std::optional<absl::Time>>& values) {
  // The header, then each element as its length and bytes; NULL is length -1.
  std::string out;
  out.reserve(20 + values.size() * 12);
  const bool has_nulls = std::any_of(values.begin(), values.end(), [](const auto& v) { return !v.has_value(); });
  AppendArrayHeader(out, values.size(), has_nulls, kTimestamptzTypeOid);
  for (const std::optional<absl::Time>& value : values) {
    if (!value) {
      AppendInt32(out, static_cast<uint32_t>(-1));
      continue;
    }
    AppendInt32(out, 8);
    out += TimestamptzBytes(*value);
  }
  return Add(std::move(out), true);
}

PgParams& PgParams::BoolArray(const std::vector<bool>& values) {
  return Add(ArrayLiteral(values, [](std::string& out, bool v) { out += v ? 't' : 'f'; }), false);
}

std::vector<const char*> PgParams::Values() const {
  std::vector<const char*> out;
  out.reserve(values_.size());
  for (const auto& v : values_) out.push_back(v ? v->data() : nullptr);
  return out;
}

}  // namespace segments::storage
