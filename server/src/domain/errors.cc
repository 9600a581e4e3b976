#include "domain/errors.h"

#include <absl/strings/cord.h>
#include <absl/strings/numbers.h>
#include <absl/strings/str_cat.h>
#include <absl/strings/str_join.h>
#include <absl/strings/str_split.h>

namespace segments::domain {
namespace {

constexpr absl::string_view kPayloadUrl = "type.segments.local/FieldViolations";
// Separators of the payload; descriptions have them removed. A violation is
// <path> kFieldEnd <description> kViolationEnd, a path inside a description
// is enclosed in kPathMark, and a path is "<field>.<index>.<member>" in
// digits, each part possibly empty.
constexpr char kPathMark = '\x1d';
constexpr char kFieldEnd = '\x1f';
constexpr char kViolationEnd = '\x1e';

std::string Sanitize(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    if (c == kPathMark || c == kFieldEnd || c == kViolationEnd) c = ' ';
  }
  return out;
}

std::string EncodePath(const FieldPath& path) {
  if (!path.field) return "";
  return absl::StrCat(static_cast<int>(*path.field), ".", path.index ? absl::StrCat(*path.index) : "", ".",
                      path.member ? absl::StrCat(static_cast<int>(*path.member)) : "");
}

// The whole request for anything this file did not write.
FieldPath DecodePath(absl::string_view text) {
  std::vector<absl::string_view> parts = absl::StrSplit(text, '.');
  FieldPath path;
  int field = 0;
  if (parts.size() != 3 || !absl::SimpleAtoi(parts[0], &field)) return path;
  path.field = static_cast<Field>(field);
  size_t index = 0;
  if (absl::SimpleAtoi(parts[1], &index)) path.index = index;
  int member = 0;
  if (absl::SimpleAtoi(parts[2], &member)) path.member = static_cast<Field>(member);
  return path;
}

std::string EncodeDescription(const Description& description) {
  std::string out;
  for (const Description::Part& part : description.parts()) {
    if (const auto* text = std::get_if<std::string>(&part)) {
      out += Sanitize(*text);
    } else {
      absl::StrAppend(&out, std::string(1, kPathMark), EncodePath(std::get<FieldPath>(part)),
                      std::string(1, kPathMark));
    }
  }
  return out;
}

Description DecodeDescription(absl::string_view text) {
  std::vector<absl::string_view> pieces = absl::StrSplit(text, kPathMark);
  Description out;
  // Texts and paths alternate: even pieces are text, odd ones paths.
  for (size_t i = 0; i < pieces.size(); ++i) {
    if (i % 2 == 0) {
      out.Append(std::string(pieces[i]));
    } else {
      out.Append(DecodePath(pieces[i]));
    }
  }
  return out;
}

}  // namespace

std::string_view FieldName(Field field) {
  switch (field) {
    case Field::kUserId:
      return "user_id";
    case Field::kUserIds:
      return "user_ids";
    case Field::kStatus:
      return "status";
    case Field::kSlug:
      return "slug";
    case Field::kSegment:
      return "segment";
    case Field::kSegmentsToAdd:
      return "segments_to_add";
    case Field::kSegmentsToRemove:
      return "segments_to_remove";
    case Field::kSegmentSlug:
      return "segment_slug";
    case Field::kTtlSeconds:
      return "ttl_seconds";
    case Field::kTtlDeadline:
      return "ttl_deadline";
    case Field::kPercentToFill:
      return "percent_to_fill";
    case Field::kDescription:
      return "description";
    case Field::kIncludeSegments:
      return "include_segments";
    case Field::kExcludeSegments:
      return "exclude_segments";
    case Field::kAutoTtlSeconds:
      return "auto_ttl_seconds";
    case Field::kPageSize:
      return "page_size";
    case Field::kPageToken:
      return "page_token";
    case Field::kMonth:
      return "month";
    case Field::kYear:
      return "year";
    case Field::kFrom:
      return "from";
    case Field::kTo:
      return "to";
    case Field::kAt:
      return "at";
    case Field::kStep:
      return "step";
    case Field::kSegments:
      return "segments";
    case Field::kIdempotencyKey:
      return "idempotency_key";
  }
  return "unknown_field";
}

FieldPath FieldPath::Member(Field leaf) const {
  if (!field) return FieldPath(leaf);
  FieldPath out = *this;
  out.member = leaf;
  return out;
}

std::string FormatPath(const FieldPath& path, std::string_view (*name)(Field)) {
  if (!path.field) return "";
  std::string out(name(*path.field));
  if (path.index) absl::StrAppend(&out, "[", *path.index, "]");
  if (path.member) (out += ".") += name(*path.member);
  return out;
}

Description::Description(std::string text) {
  if (!text.empty()) parts_.emplace_back(std::move(text));
}

Description& Description::Append(std::string_view text) {
  if (text.empty()) return *this;
  if (!parts_.empty()) {
    if (auto* last = std::get_if<std::string>(&parts_.back())) {
      last->append(text);
      return *this;
    }
  }
  parts_.emplace_back(std::string(text));
  return *this;
}

Description& Description::Append(const FieldPath& path) {
  parts_.emplace_back(path);
  return *this;
}

std::string FormatDescription(const Description& description, std::string_view (*name)(Field)) {
  std::string out;
  for (const Description::Part& part : description.parts()) {
    if (const auto* text = std::get_if<std::string>(&part)) {
      out += *text;
    } else {
      out += FormatPath(std::get<FieldPath>(part), name);
    }
  }
  return out;
}

absl::Status ErrorWithViolations(absl::StatusCode code, const std::vector<FieldViolation>& violations) {
  std::string payload;
  std::vector<std::string> parts;
  for (const auto& v : violations) {
    absl::StrAppend(&payload, EncodePath(v.field), std::string(1, kFieldEnd), EncodeDescription(v.description),
                    std::string(1, kViolationEnd));
    const std::string field = FormatPath(v.field, FieldName);
    const std::string description = FormatDescription(v.description, FieldName);
    parts.push_back(field.empty() ? description : absl::StrCat(field, ": ", description));
  }
  absl::Status status(code, absl::StrJoin(parts, "; "));
  status.SetPayload(kPayloadUrl, absl::Cord(payload));
  return status;
}

absl::Status FieldError(absl::StatusCode code, FieldPath field, Description description) {
  return ErrorWithViolations(code, {{field, std::move(description)}});
}

std::vector<FieldViolation> ViolationsIn(const absl::Status& status) {
  std::vector<FieldViolation> out;
  auto payload = status.GetPayload(kPayloadUrl);
  if (!payload) return out;
  std::string flat(*payload);
  for (absl::string_view item : absl::StrSplit(flat, kViolationEnd, absl::SkipEmpty())) {
    std::pair<absl::string_view, absl::string_view> kv = absl::StrSplit(item, absl::MaxSplits(kFieldEnd, 1));
    out.push_back({DecodePath(kv.first), DecodeDescription(kv.second)});
  }
  return out;
}

}  // namespace segments::domain
