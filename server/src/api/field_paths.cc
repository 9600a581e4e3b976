#include "api/field_paths.h"

#include <absl/strings/str_cat.h>
#include <absl/strings/str_join.h>

namespace segments::api {

using domain::Field;

std::string_view JsonName(Field field) {
  switch (field) {
    case Field::kUserId:
      return "userID";
    case Field::kUserIds:
      return "userIDs";
    case Field::kStatus:
      return "status";
    case Field::kSlug:
      return "slug";
    case Field::kSegment:
      return "segment";
    case Field::kSegmentsToAdd:
      return "segmentsToAdd";
    case Field::kSegmentsToRemove:
      return "segmentsToRemove";
    case Field::kSegmentSlug:
      return "segmentSlug";
    case Field::kTtlSeconds:
      return "secondsToBeInSegment";
    case Field::kTtlDeadline:
      return "deadlineForStayingInSegment";
    case Field::kPercentToFill:
      return "percentToFill";
    case Field::kDescription:
      return "description";
    case Field::kIncludeSegments:
      return "includeSegments";
    case Field::kExcludeSegments:
      return "excludeSegments";
    case Field::kAutoTtlSeconds:
      return "autoSecondsToBeInSegment";
    case Field::kPageSize:
      return "pageSize";
    case Field::kPageToken:
      return "pageToken";
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
      return "Idempotency-Key";
  }
  return domain::FieldName(field);
}

std::string RenderPath(const domain::FieldPath& path) { return domain::FormatPath(path, JsonName); }

std::string RenderDescription(const domain::Description& description) {
  return domain::FormatDescription(description, JsonName);
}

std::vector<ClientViolation> ClientViolations(const absl::Status& status) {
  std::vector<ClientViolation> out;
  for (const domain::FieldViolation& v : domain::ViolationsIn(status)) {
    out.push_back({RenderPath(v.field), RenderDescription(v.description)});
  }
  return out;
}

std::string ClientMessage(const std::vector<ClientViolation>& violations) {
  return absl::StrJoin(violations, "; ", [](std::string* out, const ClientViolation& v) {
    if (!v.field.empty()) absl::StrAppend(out, v.field, ": ");
    absl::StrAppend(out, v.description);
  });
}

}  // namespace segments::api
