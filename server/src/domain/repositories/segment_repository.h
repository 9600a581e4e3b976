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

  // --- segment tasks (domain/segment_tasks.h)
  // Records `task` (id, after_user, count and finished ignored), started at
  // `now`; returns its id. The segment must have no unfinished task.
  virtual absl::StatusOr<int64_t> StartTask(const SegmentTask& task, absl::Time now) = 0;
  // The segment's unfinished task, locked until the transaction ends;
  // nullopt if it has none.
  virtual absl::StatusOr<std::optional<SegmentTask>> LockUnfinishedTask(SegmentId segment) = 0;
  // The task `id`, locked until the transaction ends; nullopt if there is none.
  virtual absl::StatusOr<std::optional<SegmentTask>> LockTask(int64_t id) = 0;
  // The task `id`, unlocked; nullopt if there is none.
  virtual absl::StatusOr<std::optional<SegmentTask>> Task(int64_t id) = 0;
  // The segment of task `id`, deleted or not, as it is now; nullopt if
  // there is no such task.
  virtual absl::StatusOr<std::optional<Segment>> SegmentOfTask(int64_t task) = 0;
  // Fixes the last user the task looks at (SegmentTask::last_user).
  virtual absl::Status SetTaskLastUser(int64_t task, const std::string& last_user) = 0;
  // Records a chunk done: users up to `after_user`, `count` more memberships.
  virtual absl::Status RecordChunk(int64_t task, const std::string& after_user, int64_t count, absl::Time now) = 0;
  virtual absl::Status FinishTask(int64_t task, absl::Time now) = 0;
  // Unfinished tasks no chunk has run for since `before` (left by a stopped
  // instance), oldest first.
  virtual absl::StatusOr<std::vector<SegmentTask>> StaleTasks(absl::Time before, int limit) = 0;
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
