// The bucket function against the documented vectors, and the properties the
// percentage assignment relies on.
#include "domain/bucketing.h"

#include <absl/strings/str_format.h>

#include <catch2/catch.hpp>
#include <set>

#include "common/crypto.h"
#include "support/bucketing_vectors.h"

namespace segments::domain {
namespace {

std::string Hex(const uint8_t* bytes, size_t n) {
  std::string out;
  for (size_t i = 0; i < n; ++i) out += absl::StrFormat("%02x", bytes[i]);
  return out;
}

std::string UserNumber(int i) { return absl::StrFormat("00000000-0000-4000-8000-%012x", i); }

TEST_CASE("Bucket matches every vector of docs/bucketing.md", "[bucketing]") {
  const auto vectors = testing::DocumentedBucketVectors();
  REQUIRE(vectors.size() >= 10);
  int integers = 0;
  for (const auto& v : vectors) {
    INFO(v.salt << " " << v.user_id);
    const auto digest = crypto::Sha256(v.salt + ":" + v.user_id);
    CHECK(Hex(digest.data(), 8) == v.digest_prefix);
    CHECK(Bucket(v.salt, v.user_id) == v.bucket);
    // The id's canonical text is what is hashed, for both kinds.
    const UserId id = UserId::Parse(v.user_id).value();
    CHECK(id.ToString() == v.user_id);
    CHECK(Bucket(v.salt, id) == v.bucket);
    integers += id.kind() == UserId::Kind::kInteger ? 1 : 0;
  }
  CHECK(integers >= 5);
}

TEST_CASE("the integer 1000 and the UUID ending in 1000 have their own buckets", "[bucketing]") {
  const UserId integer = UserId::Parse("1000").value();
  const UserId uuid = UserId::Parse("00000000-0000-0000-0000-000000001000").value();
  CHECK(Bucket("9f86d081884c7d65", integer) == 6151);
  CHECK(Bucket("9f86d081884c7d65", uuid) == 2853);
}

TEST_CASE("buckets spread evenly and two salts are independent", "[bucketing]") {
  constexpr int kUsers = 100'000;
  int in_a = 0, in_b = 0, in_both = 0;
  std::set<int32_t> seen;
  for (int i = 0; i < kUsers; ++i) {
    // Half UUIDs, half consecutive integers: both kinds spread.
    const std::string user = i % 2 == 0 ? UserNumber(i) : std::to_string(i);
    const int32_t a = Bucket("salt-a", user);
    const int32_t b = Bucket("salt-b", user);
    REQUIRE(a >= 0);
    REQUIRE(a < kBuckets);
    seen.insert(a);
    in_a += InPercent(a, 1000) ? 1 : 0;  // 10%
    const bool a_half = InPercent(a, 5000), b_half = InPercent(b, 5000);
    in_b += b_half ? 1 : 0;
    in_both += a_half && b_half ? 1 : 0;
  }
  // 10% within ±0.5 percentage points; two 50% segments overlap near 25%.
  CHECK(std::abs(in_a - kUsers / 10) < kUsers / 200);
  CHECK(std::abs(in_b - kUsers / 2) < kUsers / 100);
  CHECK(std::abs(in_both - kUsers / 4) < kUsers / 100);
  CHECK(seen.size() > 9990);  // 100,000 draws reach practically every bucket
}

TEST_CASE("membership only grows with the percentage", "[bucketing]") {
  for (int i = 0; i < 2000; ++i) {
    const int32_t bucket = Bucket("monotone", UserNumber(i));
    CHECK(InPercent(bucket, 10000));
    CHECK_FALSE(InPercent(bucket, 0));
    // In at p implies in at every q > p.
    for (int32_t p : {1000, 3000, 5000}) {
      if (InPercent(bucket, p)) CHECK(InPercent(bucket, p + 1));
    }
  }
}

}  // namespace
}  // namespace segments::domain
