#include "domain/errors.h"

#include <catch2/catch.hpp>

using namespace segments::domain;

TEST_CASE("violations travel inside the status and read back in order", "[errors]") {
  const std::vector<FieldViolation> violations = {
      {"segmentsToAdd[0].segmentSlug", "segment \"A\" does not exist"},
      {"segmentsToRemove[2].segmentSlug", "segment \"B\" does not exist"},
      {"", "a problem of the whole request"},
  };
  const absl::Status status = ErrorWithViolations(absl::StatusCode::kNotFound, violations);
  CHECK(status.code() == absl::StatusCode::kNotFound);
  CHECK(ViolationsOf(status) == violations);
  CHECK(std::string(status.message()) ==
        "segmentsToAdd[0].segmentSlug: segment \"A\" does not exist; "
        "segmentsToRemove[2].segmentSlug: segment \"B\" does not exist; a problem of the whole request");
}

TEST_CASE("separator characters in descriptions cannot split a violation", "[errors]") {
  const absl::Status status = FieldError(absl::StatusCode::kInvalidArgument, "slug", "bad\x1e\x1fvalue");
  const auto read = ViolationsOf(status);
  REQUIRE(read.size() == 1);
  CHECK(read[0].field == "slug");
  CHECK(read[0].description == "bad  value");
}

TEST_CASE("a plain status carries no violations", "[errors]") {
  CHECK(ViolationsOf(absl::UnavailableError("db down")).empty());
  CHECK(ViolationsOf(absl::OkStatus()).empty());
}
