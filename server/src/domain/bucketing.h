// Stable percentage assignment: every (segment salt, user) pair falls into
// one of 10,000 buckets, and a segment at p percent holds the users whose
// bucket is below round(p × 100). The hash is documented with test vectors in
// docs/bucketing.md; db/schema.sql computes the same function in SQL
// (segment_bucket), and tests check both against those vectors.
#pragma once

#include "domain/user_id.h"

#include <cstdint>
#include <string_view>

namespace segments::domain {

inline constexpr int32_t kBuckets = 10000;

// The first 8 bytes of SHA-256(salt ":" user_id) as a big-endian unsigned
// integer, modulo 10000. `user_id` is the id's canonical text (UserId::ToString).
int32_t Bucket(std::string_view salt, std::string_view user_id);
inline int32_t Bucket(std::string_view salt, const UserId& user) { return Bucket(salt, user.ToString()); }

// Whether a user in `bucket` belongs to a segment filled to
// `percent_hundredths` (0..10000).
inline bool InPercent(int32_t bucket, int32_t percent_hundredths) { return bucket < percent_hundredths; }

}  // namespace segments::domain
