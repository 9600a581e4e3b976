#include "storage/pg_params.h"

#include <absl/strings/str_cat.h>

namespace segments::storage {
namespace {

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
