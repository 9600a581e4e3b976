// Segments: changes inside a transaction (SegmentRepository) and reads on
// their own (SegmentQueries).
#pragma once

#include <absl/status/status.h>
#include <absl/status/statusor.h>
#include <absl/time/time.h>

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "domain/model.h"

namespace segments::domain {

class SegmentRepository {
 public:
  virtual ~SegmentRepository() = default;

  // ALREADY_EXISTS if a live segment has the slug.
  virtual absl::StatusOr<Segment> Insert(const NewSegment& segment, absl::Time now) = 0;
  // Marks the live segment with `slug` deleted; nullopt if there is none.
  virtual absl::StatusOr<std::optional<Segment>> MarkDeleted(const std::string& slug, absl::Time now) = 0;
  // The live segments among `slugs` (any order), held shared until the
  // transaction ends: no one deletes them or changes their percentage
  // meanwhile, while others may hold them shared too. Takes no row lock.
  virtual absl::StatusOr<std::vector<Segment>> LockLive(const std::vector<std::string>& slugs) = 0;
  // The live segment with `slug`, held exclusively until the transaction
  // ends: every holder of a shared hold (a hand change naming it, a bulk
  // call) has finished, and new ones wait. nullopt if there is none.
  virtual absl::StatusOr<std::optional<Segment>> LockLiveExclusively(const std::string& slug) = 0;
  // Slugs of the live segments naming `segment` in their include or exclude
  // options, sorted.
  virtual absl::StatusOr<std::vector<std::string>> Referring(SegmentId segment) = 0;
  // Live segments with a percentage above 0, in creation order.
  virtual absl::StatusOr<std::vector<Segment>> Automatic() = 0;
  virtual absl::Status SetPercent(SegmentId segment, int32_t percent_hundredths) = 0;
};

class SegmentQueries {
 public:
  virtual ~SegmentQueries() = default;

  // The live segment with `slug` and how many of its memberships are active
  // at `now`; nullopt if there is none.
  virtual absl::StatusOr<std::optional<std::pair<Segment, int64_t>>> FindWithMemberCount(const std::string& slug,
                                                                                         absl::Time now) = 0;
  // The live segment with `slug`, without counting; nullopt if there is none.
  virtual absl::StatusOr<std::optional<Segment>> Find(const std::string& slug) = 0;
  // Live segments with slugs above `after_slug` (all if empty), in byte
  // order of their slugs.
  virtual absl::StatusOr<std::vector<Segment>> List(const std::string& after_slug, int limit) = 0;
};

}  // namespace segments::domain
