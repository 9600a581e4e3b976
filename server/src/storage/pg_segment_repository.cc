#include "storage/pg_segment_repository.h"

#include <absl/strings/str_cat.h>

#include "common/status_macros.h"
#include "storage/pg_row.h"

namespace segments::storage {
namespace {

using domain::Segment;
using domain::SegmentId;
using domain::SegmentTask;
using domain::SegmentTaskKind;

// The columns SegmentAt reads: the options' ids as "1,2" and their slugs as
// "A,B" (sorted; slugs cannot hold commas), the TTL NULL when permanent.
constexpr const char* kSegmentColumns =
    "segments.id, segments.slug, coalesce(round(segments.percent_to_fill * 100), 0)::int4 AS percent_hundredths, "
    "segments.description, segments.salt, (extract(epoch FROM segments.created_at) * 1000000)::int8 AS created_at, "
    "array_to_string(segments.auto_include, ',') AS auto_include, "
    "array_to_string(segments.auto_exclude, ',') AS auto_exclude, segments.auto_ttl_seconds, "
    "(SELECT coalesce(string_agg(o.slug, ',' ORDER BY o.slug COLLATE \"C\"), '') FROM segments o "
    "WHERE o.id = ANY(segments.auto_include)) AS include_slugs, "
    "(SELECT coalesce(string_agg(o.slug, ',' ORDER BY o.slug COLLATE \"C\"), '') FROM segments o "
    "WHERE o.id = ANY(segments.auto_exclude)) AS exclude_slugs";
constexpr int kSegmentColumnCount = 11;

// ON CONFLICT waits for a concurrent insert of the same slug and then yields
// no row, so racing creators get ALREADY_EXISTS rather than an error.
const Statement kInsertSegment{
    "insert_segment",
    absl::StrCat("INSERT INTO segments (slug, percent_to_fill, description, salt, created_at, auto_include, "
                 "auto_exclude, auto_ttl_seconds) VALUES ($1, nullif($2::int4, 0) / 100.0, $3, $4, $5, $6, $7, $8) "
                 "ON CONFLICT (slug) WHERE deleted_at IS NULL DO NOTHING RETURNING ",
                 kSegmentColumns)};
const Statement kMarkSegmentDeleted{
    "mark_segment_deleted",
    absl::StrCat("UPDATE segments SET deleted_at = $2 WHERE slug = $1 AND deleted_at IS NULL RETURNING ",
                 kSegmentColumns)};
// Segment locks live in PostgreSQL's lock table, not on the rows
// (lock_live_segments in db/schema.sql). $1 slugs.
const Statement kLockLiveSegments{
    "lock_live_segments",
    absl::StrCat("SELECT ", kSegmentColumns, " FROM lock_live_segments($1::text[], false) AS segments")};
const Statement kLockLiveSegmentExclusively{
    "lock_live_segment_exclusively",
    absl::StrCat("SELECT ", kSegmentColumns, " FROM lock_live_segments(ARRAY[$1::text], true) AS segments")};
const Statement kSegmentsReferring{
    "segments_referring",
    "SELECT slug FROM segments WHERE deleted_at IS NULL AND ($1 = ANY(auto_include) OR $1 = ANY(auto_exclude)) "
    "ORDER BY slug COLLATE \"C\""};
const Statement kAutoSegments{
    "auto_segments", absl::StrCat("SELECT ", kSegmentColumns,
                                  " FROM segments WHERE deleted_at IS NULL AND percent_to_fill > 0 ORDER BY id")};
const Statement kSetSegmentPercent{"set_segment_percent",
                                   "UPDATE segments SET percent_to_fill = nullif($2::int4, 0) / 100.0 WHERE id = $1"};

// --- segment tasks (db/schema.sql, migration 9)
// The columns TaskAt reads.
constexpr const char* kTaskColumns =
    "t.id, t.segment_id, s.slug, t.kind::text, t.from_hundredths, (extract(epoch FROM t.at) * 1000000)::int8, "
    "t.after_user, t.count, t.finished_at IS NOT NULL, t.last_user, "
    "coalesce(t.to_hundredths, t.from_hundredths), coalesce(t.actor, '')";
// $1 segment, $2 kind, $3 from, $4 at, $5 now, $6 to, $7 actor ("": the system).
const Statement kStartTask{
    "start_segment_task",
    "INSERT INTO segment_tasks (segment_id, kind, from_hundredths, at, heartbeat_at, to_hundredths, actor) "
    "VALUES ($1, $2::segment_task_kind, $3, $4, $5, $6, nullif($7, '')) RETURNING id"};
// The tasks `where` picks, with their segments' slugs.
std::string TasksWhere(const char* where) {
  return absl::StrCat("SELECT ", kTaskColumns, " FROM segment_tasks t JOIN segments s ON s.id = t.segment_id WHERE ",
                      where);
}
const Statement kLockUnfinishedTask{"lock_unfinished_segment_task",
                                    TasksWhere("t.segment_id = $1 AND t.finished_at IS NULL FOR UPDATE OF t")};
const Statement kLockTask{"lock_segment_task", TasksWhere("t.id = $1 FOR UPDATE OF t")};
const Statement kTask{"segment_task", TasksWhere("t.id = $1")};
// The segment of task $1, deleted or not.
const Statement kSegmentOfTask{"segment_of_task",
                               absl::StrCat("SELECT ", kSegmentColumns,
                                            " FROM segment_tasks t JOIN segments ON segments.id = t.segment_id "
                                            "WHERE t.id = $1")};
const Statement kSetTaskLastUser{"set_segment_task_last_user", "UPDATE segment_tasks SET last_user = $2 WHERE id = $1"};
// $1 task, $2 after_user, $3 count, $4 now.
const Statement kRecordChunk{"record_segment_task_chunk",
                             "UPDATE segment_tasks SET after_user = $2, count = count + $3, heartbeat_at = $4 "
                             "WHERE id = $1"};
const Statement kFinishTask{"finish_segment_task",
                            "UPDATE segment_tasks SET finished_at = $2, heartbeat_at = $2 WHERE id = $1"};
// $1 heartbeat before, $2 limit.
const Statement kStaleTasks{
    "stale_segment_tasks",
    TasksWhere("t.finished_at IS NULL AND t.heartbeat_at < $1 ORDER BY t.heartbeat_at LIMIT $2")};

absl::StatusOr<SegmentTaskKind> TaskKindOf(const std::string& text) {
  if (text == "assign") return SegmentTaskKind::kAssign;
  if (text == "unassign") return SegmentTaskKind::kUnassign;
  if (text == "delete") return SegmentTaskKind::kDelete;
  return absl::InternalError(absl::StrCat("unknown segment task kind \"", text, "\""));
}

const char* TaskKindText(SegmentTaskKind kind) {
  switch (kind) {
    case SegmentTaskKind::kAssign:
      return "assign";
    case SegmentTaskKind::kUnassign:
      return "unassign";
    case SegmentTaskKind::kDelete:
      return "delete";
  }
  return "assign";
}

absl::StatusOr<SegmentTask> TaskAt(const PgResult& r, int i) {
  const PgRow row(r, i);
  SegmentTask t;
  ASSIGN_OR_RETURN(t.id, row.Int64(0));
  ASSIGN_OR_RETURN(t.segment_id, row.Int64(1));
  ASSIGN_OR_RETURN(t.slug, row.Text(2));
  ASSIGN_OR_RETURN(const std::string kind, row.Text(3));
  ASSIGN_OR_RETURN(t.kind, TaskKindOf(kind));
  ASSIGN_OR_RETURN(t.from_hundredths, row.Int32(4));
  ASSIGN_OR_RETURN(t.at, row.Micros(5));
  ASSIGN_OR_RETURN(t.after_user, row.Text(6));
  ASSIGN_OR_RETURN(t.count, row.Int64(7));
  ASSIGN_OR_RETURN(t.finished, row.Bool(8));
  if (!row.IsNull(9)) {
    ASSIGN_OR_RETURN(t.last_user, row.Text(9));
  }
  ASSIGN_OR_RETURN(t.actor, row.Text(11));
  ASSIGN_OR_RETURN(t.to_hundredths, row.Int32(10));
  return t;
}

absl::StatusOr<std::optional<SegmentTask>> OptionalTaskOf(const PgResult& r) {
  if (r.Rows() == 0) return std::nullopt;
  ASSIGN_OR_RETURN(SegmentTask task, TaskAt(r, 0));
  return task;
}

// $1 slug, $2 now: the live segment and its active memberships.
const Statement kFindSegmentWithCount{
    "find_segment_with_count", absl::StrCat("SELECT ", kSegmentColumns,
                                            ", (SELECT count(*) FROM memberships m WHERE m.segment_id = segments.id "
                                            "AND (m.expires_at IS NULL OR m.expires_at > $2)) AS members "
                                            "FROM segments WHERE slug = $1 AND deleted_at IS NULL")};
const Statement kFindSegment{
    "find_segment", absl::StrCat("SELECT ", kSegmentColumns, " FROM segments WHERE slug = $1 AND deleted_at IS NULL")};
// $1 the slug to continue after ('' for the first page), $2 limit.
const Statement kListSegments{"list_segments",
                              absl::StrCat("SELECT ", kSegmentColumns,
                                           " FROM segments WHERE deleted_at IS NULL AND slug COLLATE \"C\" > $1 "
                                           "ORDER BY slug COLLATE \"C\" LIMIT $2")};

absl::StatusOr<Segment> SegmentAt(const PgResult& r, int i) {
  const PgRow row(r, i);
  Segment s;
  ASSIGN_OR_RETURN(s.id, row.Int64(0));
  ASSIGN_OR_RETURN(s.slug, row.Text(1));
  ASSIGN_OR_RETURN(s.percent_hundredths, row.Int32(2));
  ASSIGN_OR_RETURN(s.description, row.Text(3));
  ASSIGN_OR_RETURN(s.salt, row.Text(4));
  ASSIGN_OR_RETURN(s.created_at, row.Micros(5));
  ASSIGN_OR_RETURN(s.auto_options.include_ids, row.Int64List(6));
  ASSIGN_OR_RETURN(s.auto_options.exclude_ids, row.Int64List(7));
  ASSIGN_OR_RETURN(s.auto_options.ttl_seconds, row.OptionalInt64(8));
  ASSIGN_OR_RETURN(s.include_slugs, row.TextList(9));
  ASSIGN_OR_RETURN(s.exclude_slugs, row.TextList(10));
  return s;
}

absl::StatusOr<std::vector<Segment>> SegmentsOf(const PgResult& r) {
  std::vector<Segment> out;
  out.reserve(static_cast<size_t>(r.Rows()));
  for (int i = 0; i < r.Rows(); ++i) {
    ASSIGN_OR_RETURN(Segment s, SegmentAt(r, i));
    out.push_back(std::move(s));
  }
  return out;
}

absl::StatusOr<std::optional<Segment>> FirstSegmentOf(const PgResult& r) {
  if (r.Rows() == 0) return std::nullopt;
  return SegmentAt(r, 0);
}

}  // namespace

absl::StatusOr<Segment> PgSegmentRepository::Insert(const domain::NewSegment& s, absl::Time now) {
  const domain::AutoOptions& options = s.auto_options;
  PgParams params;
  params.Text(s.slug)
      .Int(s.percent_hundredths)
      .Text(s.description)
      .Text(s.salt)
      .Time(now)
      .IntArray(options.include_ids)
      .IntArray(options.exclude_ids)
      .OptionalText(options.ttl_seconds ? std::optional(std::to_string(*options.ttl_seconds)) : std::nullopt);
  ASSIGN_OR_RETURN(PgResult r, tx_.conn().Execute(kInsertSegment, params));
  if (r.Rows() == 0) return absl::AlreadyExistsError("slug taken");
  return SegmentAt(r, 0);
}

absl::StatusOr<std::optional<Segment>> PgSegmentRepository::MarkDeleted(const std::string& slug, absl::Time now) {
  ASSIGN_OR_RETURN(PgResult r, tx_.conn().Execute(kMarkSegmentDeleted, PgParams().Text(slug).Time(now)));
  return FirstSegmentOf(r);
}

absl::StatusOr<std::vector<Segment>> PgSegmentRepository::LockLive(const std::vector<std::string>& slugs) {
  ASSIGN_OR_RETURN(PgResult r, tx_.conn().Execute(kLockLiveSegments, PgParams().TextArray(slugs)));
  return SegmentsOf(r);
}

absl::StatusOr<std::optional<Segment>> PgSegmentRepository::LockLiveExclusively(const std::string& slug) {
  ASSIGN_OR_RETURN(PgResult r, tx_.conn().Execute(kLockLiveSegmentExclusively, PgParams().Text(slug)));
  return FirstSegmentOf(r);
}

absl::StatusOr<std::vector<std::string>> PgSegmentRepository::Referring(SegmentId segment) {
  ASSIGN_OR_RETURN(PgResult r, tx_.conn().Execute(kSegmentsReferring, PgParams().Int(segment)));
  std::vector<std::string> slugs;
  for (int i = 0; i < r.Rows(); ++i) {
    ASSIGN_OR_RETURN(std::string slug, PgRow(r, i).Text(0));
    slugs.push_back(std::move(slug));
  }
  return slugs;
}

absl::StatusOr<std::vector<Segment>> PgSegmentRepository::Automatic() {
  ASSIGN_OR_RETURN(PgResult r, tx_.conn().Execute(kAutoSegments));
  return SegmentsOf(r);
}

absl::Status PgSegmentRepository::SetPercent(SegmentId segment, int32_t percent_hundredths) {
  return tx_.conn().Execute(kSetSegmentPercent, PgParams().Int(segment).Int(percent_hundredths)).status();
}

absl::StatusOr<int64_t> PgSegmentRepository::StartTask(const SegmentTask& task, absl::Time now) {
  PgParams params;
  params.Int(task.segment_id)
      .Text(TaskKindText(task.kind))
      .Int(task.from_hundredths)
      .Time(task.at)
      .Time(now)
      .Int(task.to_hundredths)
      .Text(task.actor);
  ASSIGN_OR_RETURN(PgResult r, tx_.conn().Execute(kStartTask, params));
  return PgRow(r, 0).Int64(0);
}

absl::StatusOr<std::optional<SegmentTask>> PgSegmentRepository::LockUnfinishedTask(SegmentId segment) {
  ASSIGN_OR_RETURN(PgResult r, tx_.conn().Execute(kLockUnfinishedTask, PgParams().Int(segment)));
  return OptionalTaskOf(r);
}

absl::StatusOr<std::optional<SegmentTask>> PgSegmentRepository::LockTask(int64_t id) {
  ASSIGN_OR_RETURN(PgResult r, tx_.conn().Execute(kLockTask, PgParams().Int(id)));
  return OptionalTaskOf(r);
}

absl::StatusOr<std::optional<SegmentTask>> PgSegmentRepository::Task(int64_t id) {
  ASSIGN_OR_RETURN(PgResult r, tx_.conn().Execute(kTask, PgParams().Int(id)));
  return OptionalTaskOf(r);
}

absl::StatusOr<std::optional<Segment>> PgSegmentRepository::SegmentOfTask(int64_t task) {
  ASSIGN_OR_RETURN(PgResult r, tx_.conn().Execute(kSegmentOfTask, PgParams().Int(task)));
  return FirstSegmentOf(r);
}

absl::Status PgSegmentRepository::SetTaskLastUser(int64_t task, const std::string& last_user) {
  return tx_.conn().Execute(kSetTaskLastUser, PgParams().Int(task).Text(last_user)).status();
}

absl::Status PgSegmentRepository::RecordChunk(int64_t task, const std::string& after_user, int64_t count,
                                              absl::Time now) {
  return tx_.conn().Execute(kRecordChunk, PgParams().Int(task).Text(after_user).Int(count).Time(now)).status();
}

absl::Status PgSegmentRepository::FinishTask(int64_t task, absl::Time now) {
  return tx_.conn().Execute(kFinishTask, PgParams().Int(task).Time(now)).status();
}

absl::StatusOr<std::vector<SegmentTask>> PgSegmentRepository::StaleTasks(absl::Time before, int limit) {
  ASSIGN_OR_RETURN(PgResult r, tx_.conn().Execute(kStaleTasks, PgParams().Time(before).Int(limit)));
  std::vector<SegmentTask> tasks;
  for (int i = 0; i < r.Rows(); ++i) {
    ASSIGN_OR_RETURN(SegmentTask task, TaskAt(r, i));
    tasks.push_back(std::move(task));
  }
  return tasks;
}

absl::StatusOr<std::optional<std::pair<Segment, int64_t>>> PgSegmentQueries::FindWithMemberCount(
    const std::string& slug, absl::Time now) {
  return WithPooledConnection(
      pool_, [&](PgPool::Lease& conn) -> absl::StatusOr<std::optional<std::pair<Segment, int64_t>>> {
        ASSIGN_OR_RETURN(PgResult r, conn->Execute(kFindSegmentWithCount, PgParams().Text(slug).Time(now)));
        if (r.Rows() == 0) return std::nullopt;
        ASSIGN_OR_RETURN(Segment segment, SegmentAt(r, 0));
        ASSIGN_OR_RETURN(int64_t members, PgRow(r, 0).Int64(kSegmentColumnCount));
        return std::make_pair(std::move(segment), members);
      });
}

absl::StatusOr<std::optional<Segment>> PgSegmentQueries::Find(const std::string& slug) {
  return WithPooledConnection(pool_, [&](PgPool::Lease& conn) -> absl::StatusOr<std::optional<Segment>> {
    ASSIGN_OR_RETURN(PgResult r, conn->Execute(kFindSegment, PgParams().Text(slug)));
    return FirstSegmentOf(r);
  });
}

absl::StatusOr<std::vector<Segment>> PgSegmentQueries::List(const std::string& after_slug, int limit) {
  return WithPooledConnection(pool_, [&](PgPool::Lease& conn) -> absl::StatusOr<std::vector<Segment>> {
    ASSIGN_OR_RETURN(PgResult r, conn->Execute(kListSegments, PgParams().Text(after_slug).Int(limit)));
    return SegmentsOf(r);
  });
}

}  // namespace segments::storage
