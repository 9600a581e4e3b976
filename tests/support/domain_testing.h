// Small helpers shared by the domain unit tests.
#pragma once

#include <absl/status/status.h>
#include <fmt/format.h>

#include <string>
#include <vector>

#include "domain/errors.h"

namespace segments::testing {

// A valid, distinct user id for each i, in the order of i.
inline std::string UserNo(int i) { return fmt::format("00000000-0000-4000-8000-{:012x}", i); }

// The JSON paths of the violations `status` carries, in order.
inline std::vector<std::string> ViolationFields(const absl::Status& status) {
  std::vector<std::string> out;
  for (const auto& v : domain::ViolationsOf(status)) out.push_back(v.field);
  return out;
}

}  // namespace segments::testing
