#include "api/field_paths.h"

#include <catch2/catch.hpp>
#include <set>

using namespace segments::api;
using segments::domain::Description;
using segments::domain::Field;
using segments::domain::FieldPath;

TEST_CASE("every field has its own JSON name", "[api]") {
  std::set<std::string_view> names;
  const int last = static_cast<int>(Field::kIdempotencyKey);  // the last field
  for (int f = 0; f <= last; ++f) {
    const std::string_view name = JsonName(static_cast<Field>(f));
    CHECK_FALSE(name.empty());
    names.insert(name);
  }
  CHECK(names.size() == static_cast<size_t>(last + 1));
  CHECK(JsonName(Field::kUserId) == "userID");
  CHECK(JsonName(Field::kTtlDeadline) == "deadlineForStayingInSegment");
}

TEST_CASE("paths render as the contract writes them", "[api]") {
  CHECK(RenderPath(FieldPath()).empty());
  CHECK(RenderPath(Field::kUserIds) == "userIDs");
  CHECK(RenderPath(FieldPath(Field::kUserIds, 3)) == "userIDs[3]");
  CHECK(RenderPath(FieldPath(Field::kSegmentsToAdd, 1, Field::kTtlSeconds)) == "segmentsToAdd[1].secondsToBeInSegment");
}

TEST_CASE("descriptions render the paths they name", "[api]") {
  CHECK(RenderDescription(Description::Of("give ", Field::kTtlSeconds, " or ", Field::kTtlDeadline, ", not both")) ==
        "give secondsToBeInSegment or deadlineForStayingInSegment, not both");
  CHECK(RenderDescription(
            Description::Of("segment \"A\" is already listed at ", FieldPath(Field::kIncludeSegments, 0))) ==
        "segment \"A\" is already listed at includeSegments[0]");
  CHECK(RenderDescription("is required") == "is required");
}

TEST_CASE("the message joins the rendered violations", "[api]") {
  const absl::Status status = segments::domain::ErrorWithViolations(
      absl::StatusCode::kInvalidArgument,
      {{Field::kTo, Description::Of("must be later than ", Field::kFrom)},
       {FieldPath(), Description::Of(Field::kSegmentsToAdd, " or ", Field::kSegmentsToRemove, " must list")}});
  const std::vector<ClientViolation> violations = ClientViolations(status);
  CHECK(violations == std::vector<ClientViolation>{{"to", "must be later than from"},
                                                   {"", "segmentsToAdd or segmentsToRemove must list"}});
  CHECK(ClientMessage(violations) == "to: must be later than from; segmentsToAdd or segmentsToRemove must list");
  CHECK(ClientViolations(absl::NotFoundError("gone")).empty());
}
