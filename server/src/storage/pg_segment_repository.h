// domain::SegmentRepository on one open transaction, and
// domain::SegmentQueries on pooled connections.
#pragma once

#include "domain/repositories/segment_repository.h"
#include "storage/pg_pool.h"
#include "storage/pg_transaction.h"

namespace segments::storage {

class PgSegmentRepository final : public domain::SegmentRepository {
 public:
  explicit PgSegmentRepository(PgTransactionContext& tx) : tx_(tx) {}

  absl::StatusOr<domain::Segment> Insert(const domain::NewSegment& segment, absl::Time now) override;
  absl::StatusOr<std::optional<domain::Segment>> MarkDeleted(const std::string& slug, absl::Time now) override;
  absl::StatusOr<std::vector<domain::Segment>> LockLive(const std::vector<std::string>& slugs) override;
  absl::StatusOr<std::optional<domain::Segment>> LockLiveExclusively(const std::string& slug) override;
  absl::StatusOr<std::vector<std::string>> Referring(domain::SegmentId segment) override;
  absl::StatusOr<std::vector<domain::Segment>> Automatic() override;
  absl::Status SetPercent(domain::SegmentId segment, int32_t percent_hundredths) override;
  absl::StatusOr<int64_t> StartTask(const domain::SegmentTask& task, absl::Time now) override;
  absl::StatusOr<std::optional<domain::SegmentTask>> LockUnfinishedTask(domain::SegmentId segment) override;
  absl::StatusOr<std::optional<domain::SegmentTask>> LockTask(int64_t id) override;
  absl::StatusOr<std::optional<domain::SegmentTask>> Task(int64_t id) override;
  absl::StatusOr<std::optional<domain::Segment>> SegmentOfTask(int64_t task) override;
  absl::Status SetTaskLastUser(int64_t task, const std::string& last_user) override;
  absl::Status RecordChunk(int64_t task, const std::string& after_user, int64_t count, absl::Time now) override;
  absl::Status FinishTask(int64_t task, absl::Time now) override;
  absl::StatusOr<std::vector<domain::SegmentTask>> StaleTasks(absl::Time before, int limit) override;

 private:
  PgTransactionContext& tx_;
};

class PgSegmentQueries final : public domain::SegmentQueries {
 public:
  explicit PgSegmentQueries(PgPool& pool) : pool_(pool) {}

  absl::StatusOr<std::optional<std::pair<domain::Segment, int64_t>>> FindWithMemberCount(const std::string& slug,
                                                                                         absl::Time now) override;
  absl::StatusOr<std::optional<domain::Segment>> Find(const std::string& slug) override;
  absl::StatusOr<std::vector<domain::Segment>> List(const std::string& after_slug, int limit) override;

 private:
  PgPool& pool_;
};

}  // namespace segments::storage
