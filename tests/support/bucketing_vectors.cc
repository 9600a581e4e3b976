#include "support/bucketing_vectors.h"

#include <fstream>
#include <regex>
#include <stdexcept>

namespace segments::testing {

std::vector<BucketVector> DocumentedBucketVectors() {
  const std::string path = std::string(SEGMENTS_SOURCE_DIR) + "/docs/bucketing.md";
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot read " + path);
  // | `salt` | `user_id` | `0123456789abcdef` | 1234 |, the id a UUID or digits
  const std::regex row(R"(^\| `([^`]*)` \| `([0-9a-f-]{36}|[0-9]{1,19})` \| `([0-9a-f]{16})` \| ([0-9]+) \|$)");
  std::vector<BucketVector> vectors;
  std::string line;
  std::smatch match;
  while (std::getline(in, line)) {
    if (std::regex_match(line, match, row)) {
      vectors.push_back({match[1].str(), match[2].str(), match[3].str(), std::stoi(match[4].str())});
    }
  }
  return vectors;
}

}  // namespace segments::testing
