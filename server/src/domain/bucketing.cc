#include "domain/bucketing.h"

#include <string>

#include "common/crypto.h"

namespace segments::domain {

int32_t Bucket(std::string_view salt, std::string_view user_id) {
  std::string input;
  input.reserve(salt.size() + 1 + user_id.size());
  input.append(salt).append(":").append(user_id);
  const auto digest = crypto::Sha256(input);
  uint64_t prefix = 0;
  for (int i = 0; i < 8; ++i) prefix = (prefix << 8) | digest[static_cast<size_t>(i)];
  return static_cast<int32_t>(prefix % kBuckets);
}

}  // namespace segments::domain
