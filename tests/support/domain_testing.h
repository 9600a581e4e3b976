// Small helpers shared by the domain unit tests.
#pragma once

#include <absl/status/status.h>
#include <fmt/format.h>

#include <string>
#include <vector>

#include "api/field_paths.h"
#include "domain/user_id.h"

namespace segments::testing {

// A valid, distinct user id for each i, in the order of i, as text and as
// the id.
inline std::string UserText(int i) { return fmt::format("00000000-0000-4000-8000-{:012x}", i); }
inline domain::UserId UserNo(int i) { return domain::UserId::Parse(UserText(i)).value(); }

// The id of a valid UUID text.
inline domain::UserId Id(std::string_view text) { return domain::UserId::Parse(text).value(); }
inline std::vector<domain::UserId> Ids(const std::vector<std::string>& texts) {
  std::vector<domain::UserId> ids;
  ids.reserve(texts.size());
  for (const std::string& text : texts) ids.push_back(Id(text));
  return ids;
}

// The violations `status` carries, with the paths and descriptions clients
// see (api/field_paths.h).
inline std::vector<api::ClientViolation> ViolationsOf(const absl::Status& status) {
  return api::ClientViolations(status);
}

// The JSON paths of the violations `status` carries, in order.
inline std::vector<std::string> ViolationFields(const absl::Status& status) {
  std::vector<std::string> out;
  for (const auto& v : ViolationsOf(status)) out.push_back(v.field);
  return out;
}

// The message clients see for `status`, which carries violations.
inline std::string ClientMessage(const absl::Status& status) { return api::ClientMessage(ViolationsOf(status)); }

}  // namespace segments::testing
