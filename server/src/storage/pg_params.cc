#include "storage/pg_params.h"

#include <absl/strings/str_cat.h>
#include <arpa/inet.h>

namespace segments::storage {
namespace {

constexpr uint32_t kUuidTypeOid = 2950;

void AppendInt32(std::string& out, uint32_t value) {
  const uint32_t network = htonl(value);
  out.append(reinterpret_cast<const char*>(&network), sizeof(network));
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

std::string TimeText(absl::Time t) { return absl::FormatTime("%Y-%m-%dT%H:%M:%E6SZ", t, absl::UTCTimeZone()); }

PgParams& PgParams::Add(std::optional<std::string> value, bool binary) {
  lengths_.push_back(value ? static_cast<int>(value->size()) : 0);
  formats_.push_back(binary ? 1 : 0);
  values_.push_back(std::move(value));
  return *this;
}

PgParams& PgParams::Text(std::string_view value) { return Add(std::string(value), false); }

PgParams& PgParams::OptionalText(const std::optional<std::string>& value) { return Add(value, false); }

PgParams& PgParams::Int(int64_t value) { return Add(std::to_string(value), false); }

PgParams& PgParams::Time(absl::Time value) { return Add(TimeText(value), false); }

PgParams& PgParams::OptionalTime(const std::optional<absl::Time>& value) {
  return Add(value ? std::optional(TimeText(*value)) : std::nullopt, false);
}

PgParams& PgParams::User(const domain::UserId& user) {
  const auto& bytes = user.bytes();
  return Add(std::string(bytes.begin(), bytes.end()), true);
}

PgParams& PgParams::Users(const std::vector<domain::UserId>& users) {
  // One dimension, no NULLs, element type uuid; then the dimension's size
  // and lower bound; then each element as its length and bytes. An empty
  // array has no dimension.
  std::string out;
  out.reserve(20 + users.size() * 20);
  AppendInt32(out, users.empty() ? 0 : 1);
  AppendInt32(out, 0);
  AppendInt32(out, kUuidTypeOid);
  if (!users.empty()) {
    AppendInt32(out, static_cast<uint32_t>(users.size()));
    AppendInt32(out, 1);
  }
  for (const domain::UserId& user : users) {
    AppendInt32(out, static_cast<uint32_t>(user.bytes().size()));
    out.append(user.bytes().begin(), user.bytes().end());
  }
  return Add(std::move(out), true);
}

PgParams& PgParams::IntArray(const std::vector<int64_t>& values) {
  return Add(ArrayLiteral(values, [](std::string& out, int64_t v) { absl::StrAppend(&out, v); }), false);
}

PgParams& PgParams::TextArray(const std::vector<std::string>& values) {
  return Add(ArrayLiteral(values, [](std::string& out, const std::string& v) { AppendArrayItem(out, v); }), false);
}

PgParams& PgParams::OptionalTimeArray(const std::vector<std::optional<absl::Time>>& values) {
  return Add(ArrayLiteral(values,
                          [](std::string& out, const std::optional<absl::Time>& v) {
                            if (v) {
                              AppendArrayItem(out, TimeText(*v));
                            } else {
                              out += "NULL";
                            }
                          }),
             false);
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
