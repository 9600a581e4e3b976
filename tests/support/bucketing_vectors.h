// The bucketing test vectors, read from the table in docs/bucketing.md, so
// the documentation and the tests cannot drift apart.
#pragma once

#include <string>
#include <vector>

namespace segments::testing {

struct BucketVector {
  std::string salt;
  std::string user_id;
  std::string digest_prefix;  // first 8 bytes of the SHA-256, in hex
  int bucket = 0;
};

// Every row of the table; throws if the file cannot be read.
std::vector<BucketVector> DocumentedBucketVectors();

}  // namespace segments::testing
