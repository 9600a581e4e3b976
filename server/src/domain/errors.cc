#include "domain/errors.h"

#include <absl/strings/cord.h>
#include <absl/strings/str_join.h>
#include <absl/strings/str_split.h>

namespace segments::domain {
namespace {

constexpr absl::string_view kPayloadUrl = "type.segments.local/FieldViolations";
// Separators that cannot appear in field paths; descriptions have them removed.
constexpr char kFieldEnd = '\x1f';
constexpr char kViolationEnd = '\x1e';

std::string Sanitize(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    if (c == kFieldEnd || c == kViolationEnd) c = ' ';
  }
  return out;
}

}  // namespace

absl::Status ErrorWithViolations(absl::StatusCode code, const std::vector<FieldViolation>& violations) {
  std::string payload;
  std::vector<std::string> parts;
  for (const auto& v : violations) {
    payload += Sanitize(v.field) + kFieldEnd + Sanitize(v.description) + kViolationEnd;
    parts.push_back(v.field.empty() ? v.description : v.field + ": " + v.description);
  }
  absl::Status status(code, absl::StrJoin(parts, "; "));
  status.SetPayload(kPayloadUrl, absl::Cord(payload));
  return status;
}

absl::Status FieldError(absl::StatusCode code, std::string field, std::string description) {
  return ErrorWithViolations(code, {{std::move(field), std::move(description)}});
}

std::vector<FieldViolation> ViolationsOf(const absl::Status& status) {
  std::vector<FieldViolation> out;
  auto payload = status.GetPayload(kPayloadUrl);
  if (!payload) return out;
  std::string flat(*payload);
  for (absl::string_view item : absl::StrSplit(flat, kViolationEnd, absl::SkipEmpty())) {
    std::pair<absl::string_view, absl::string_view> kv = absl::StrSplit(item, absl::MaxSplits(kFieldEnd, 1));
    out.push_back({std::string(kv.first), std::string(kv.second)});
  }
  return out;
}

}  // namespace segments::domain
