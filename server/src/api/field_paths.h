// The one mapping from the domain's fields to the names of the contract
// (the JSON names of the requests), and the violations of a domain error as
// clients see them.
#pragma once

#include <absl/status/status.h>

#include <string>
#include <string_view>
#include <vector>

#include "domain/errors.h"

namespace segments::api {

// The JSON name of `field`, e.g. "segmentsToAdd".
std::string_view JsonName(domain::Field field);

// e.g. "segmentsToAdd[1].segmentSlug", "userIDs[3]", "slug"; "" for the whole
// request.
std::string RenderPath(const domain::FieldPath& path);

// The text with each path it names rendered.
std::string RenderDescription(const domain::Description& description);

struct ClientViolation {
  std::string field;
  std::string description;

  bool operator==(const ClientViolation&) const = default;
};

// The violations `status` carries, rendered; empty when it carries none.
std::vector<ClientViolation> ClientViolations(const absl::Status& status);

// The message of an error with `violations`: "field: description; ...".
std::string ClientMessage(const std::vector<ClientViolation>& violations);

}  // namespace segments::api
