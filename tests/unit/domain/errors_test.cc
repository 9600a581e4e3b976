#include "domain/errors.h"

#include <catch2/catch.hpp>

#include "support/domain_testing.h"

using namespace segments::domain;
using segments::testing::ClientMessage;
using segments::testing::ViolationsOf;

TEST_CASE("violations travel inside the status and read back in order", "[errors]") {
  const std::vector<FieldViolation> violations = {
      {FieldPath(Field::kSegmentsToAdd, 0, Field::kSegmentSlug), "segment \"A\" does not exist"},
      {FieldPath(Field::kSegmentsToRemove, 2, Field::kSegmentSlug), "segment \"B\" does not exist"},
      {FieldPath(), "a problem of the whole request"},
  };
  const absl::Status status = ErrorWithViolations(absl::StatusCode::kNotFound, violations);
  CHECK(status.code() == absl::StatusCode::kNotFound);
  CHECK(ViolationsIn(status) == violations);
  CHECK(ClientMessage(status) ==
        "segmentsToAdd[0].segmentSlug: segment \"A\" does not exist; "
        "segmentsToRemove[2].segmentSlug: segment \"B\" does not exist; a problem of the whole request");
}

TEST_CASE("descriptions name fields by path; the domain's message uses its own names", "[errors]") {
  const std::vector<FieldViolation> violations = {
      {FieldPath(Field::kSegmentsToAdd, 1, Field::kSegmentSlug),
       Description::Of("segment \"A\" is already listed at ", FieldPath(Field::kSegmentsToAdd, 0))},
      {FieldPath(), Description::Of(Field::kSegmentsToAdd, " or ", Field::kSegmentsToRemove, " must list one")},
      {Field::kUserIds, Description::Of(FieldPath(Field::kUserIds, 3), FieldPath(Field::kUserIds, 4))},
  };
  const absl::Status status = ErrorWithViolations(absl::StatusCode::kInvalidArgument, violations);
  CHECK(ViolationsIn(status) == violations);
  CHECK(std::string(status.message()) ==
        "segments_to_add[1].segment_slug: segment \"A\" is already listed at segments_to_add[0]; "
        "segments_to_add or segments_to_remove must list one; user_ids: user_ids[3]user_ids[4]");
}

TEST_CASE("text given in pieces equals the same text given whole", "[errors]") {
  CHECK(Description::Of("is ", std::string("required"), "") == Description("is required"));
  CHECK(Description("").parts().empty());
}

TEST_CASE("a member of the whole request is the field itself", "[errors]") {
  CHECK(FieldPath().Member(Field::kTtlSeconds) == FieldPath(Field::kTtlSeconds));
  CHECK(FieldPath(Field::kSegmentsToAdd, 2).Member(Field::kTtlDeadline) ==
        FieldPath(Field::kSegmentsToAdd, 2, Field::kTtlDeadline));
}

TEST_CASE("separator characters in descriptions cannot split a violation", "[errors]") {
  const absl::Status status = FieldError(absl::StatusCode::kInvalidArgument, Field::kSlug, "bad\x1e\x1fvalue");
  const auto read = ViolationsOf(status);
  REQUIRE(read.size() == 1);
  CHECK(read[0].field == "slug");
  CHECK(read[0].description == "bad  value");

  const absl::Status marked = FieldError(absl::StatusCode::kInvalidArgument, Field::kSlug,
                                         Description::Of("a\x1d", FieldPath(Field::kUserIds, 1), "\x1d"));
  REQUIRE(ViolationsIn(marked).size() == 1);
  CHECK(ViolationsIn(marked)[0].description == Description::Of("a ", FieldPath(Field::kUserIds, 1), " "));
}

TEST_CASE("a plain status carries no violations", "[errors]") {
  CHECK(ViolationsIn(absl::UnavailableError("db down")).empty());
  CHECK(ViolationsIn(absl::OkStatus()).empty());
}
