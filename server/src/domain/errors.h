// Errors of the domain: an absl::Status whose payload lists every problem of a
// request, each naming the JSON path of its field. The transport turns the
// list into google.rpc.BadRequest (api/grpc_status.h).
#pragma once

#include <absl/status/status.h>

#include <string>
#include <string_view>
#include <vector>

namespace segments::domain {

struct FieldViolation {
  std::string field;        // JSON path, e.g. "segmentsToAdd[1].segmentSlug"
  std::string description;  // for humans, e.g. "segment \"X\" does not exist"

  bool operator==(const FieldViolation&) const = default;
};

// A status of `code` carrying `violations`. Its message joins them as
// "field: description; ...". `violations` must not be empty.
absl::Status ErrorWithViolations(absl::StatusCode code, const std::vector<FieldViolation>& violations);

// Shorthand for one violation.
absl::Status FieldError(absl::StatusCode code, std::string field, std::string description);

// The violations carried by `status`; empty when it carries none.
std::vector<FieldViolation> ViolationsOf(const absl::Status& status);

}  // namespace segments::domain
