#include "domain/segment_tasks.h"

#include <absl/strings/str_cat.h>
#include <absl/time/clock.h>

#include <algorithm>
#include <optional>
#include <string>
#include <vector>

#include "common/status_macros.h"
#include "domain/acting_as.h"
#include "domain/repositories/idempotency_store.h"
#include "domain/work_metrics.h"

namespace segments::domain {

absl::StatusOr<SegmentTask> RunSegmentTaskChunk(Transaction& tx, const SegmentTask& task, int chunk_users,
                                                absl::Time now) {
  std::optional<Segment> live;
  if (task.kind != SegmentTaskKind::kDelete) {
    // In the order every writer takes them: the automatic-assignment lock,
    // then the segment, then the task's row. The first chunk takes the lock
    // exclusively, once: it waits for every user's evaluation that may have
    // read the segment before the change was published, and every later
    // evaluation reads the change. Later chunks run beside evaluations.
    if (!task.last_user) RETURN_IF_ERROR(tx.memberships().LockAutoAssignment(AutoAssignmentLock::kExclusive));
    ASSIGN_OR_RETURN(live, tx.segments().LockLiveExclusively(task.slug));
  }
  ASSIGN_OR_RETURN(std::optional<SegmentTask> locked, tx.segments().LockTask(task.id));
  if (!locked) return absl::InternalError(absl::StrCat("segment task ", task.id, " does not exist"));
  SegmentTask current = *std::move(locked);
  if (current.finished) return current;
  // A deletion finishes the segment's task when it publishes; a task whose
  // segment is gone has nothing left to do either way.
  const bool segment_gone = task.kind != SegmentTaskKind::kDelete && (!live || live->id != current.segment_id);
  if (!segment_gone && !current.last_user) {
    // The first chunk (it holds the automatic-assignment lock exclusively):
    // every user created before the change was published is committed, and
    // every later one is evaluated against it by their own transaction.
    ASSIGN_OR_RETURN(current.last_user, tx.memberships().LastTaskUser(current));
    if (current.last_user) RETURN_IF_ERROR(tx.segments().SetTaskLastUser(current.id, *current.last_user));
  }
  std::optional<std::string> last;
  if (!segment_gone && current.last_user) {
    ASSIGN_OR_RETURN(last, tx.memberships().ChunkEnd(current, chunk_users));
  }
  if (!last) {
    RETURN_IF_ERROR(tx.segments().FinishTask(current.id, now));
    current.finished = true;
    return current;
  }
  const UserRange users{current.after_user, *last};
  int64_t count = 0;
  switch (current.kind) {
    case SegmentTaskKind::kAssign: {
      ASSIGN_OR_RETURN(count, tx.memberships().AssignByPercent(*live, users, current.from_hundredths, current.at));
      break;
    }
    case SegmentTaskKind::kUnassign: {
      ASSIGN_OR_RETURN(count, tx.memberships().UnassignByPercent(*live, users, current.from_hundredths, current.at));
      break;
    }
    case SegmentTaskKind::kDelete: {
      Segment deleted;
      deleted.id = current.segment_id;
      deleted.slug = current.slug;
      ASSIGN_OR_RETURN(count, tx.memberships().EndAllOfSegment(deleted, users, Reason::kSegmentDeleted, current.at));
      break;
    }
  }
  RETURN_IF_ERROR(tx.segments().RecordChunk(current.id, *last, count, now));
  current.after_user = *last;
  current.count += count;
  return current;
}

namespace {

std::string_view WorkKind(const SegmentTask& task) {
  switch (task.kind) {
    case SegmentTaskKind::kAssign:
      return task.from_hundredths == 0 ? "fill" : "percent_change";
    case SegmentTaskKind::kUnassign:
      return "percent_change";
    case SegmentTaskKind::kDelete:
      return "segment_deletion";
  }
  return "unknown";
}

}  // namespace

int NextChunkUsers(int users, absl::Duration took, absl::Duration target) {
  if (target <= absl::ZeroDuration()) return users;
  double scaled = 2.0 * users;
  if (took > absl::ZeroDuration()) scaled = users * absl::FDivDuration(target, took);
  scaled = std::clamp(scaled, users / 2.0, users * 2.0);
  return static_cast<int>(std::clamp(scaled, double{kMinChunkUsers}, double{kMaxChunkUsers}));
}

absl::StatusOr<SegmentTask> SegmentTasks::Finish(const SegmentTask& task) {
  const KeyedCall::Suspend unkeyed;
  // A deletion's removals are its actor's; what a fill or a percentage
  // change writes is automatic assignment, the system's.
  const ActingAs acting_as(task.kind == SegmentTaskKind::kDelete ? task.actor : std::string());
  SegmentTask current = task;
  const absl::Time began = absl::Now();
  int chunk_users = options_.chunk_users;
  while (!current.finished) {
    // Wall time of the chunk's transaction, commit included (not the
    // domain clock, which tests stop).
    const absl::Time started = absl::Now();
    RETURN_IF_ERROR(store_.InTransaction([&](Transaction& tx) -> absl::Status {
      ASSIGN_OR_RETURN(current, RunSegmentTaskChunk(tx, current, chunk_users, Now()));
      return absl::OkStatus();
    }));
    chunk_users = NextChunkUsers(chunk_users, absl::Now() - started, options_.chunk_time);
    if (current.finished) break;
    if (options_.after_chunk) options_.after_chunk(current);
    if (options_.pause > absl::ZeroDuration()) absl::SleepFor(options_.pause);
  }
  ObserveMembershipWork(WorkKind(task), absl::Now() - began, current.count - task.count);
  return current;
}

absl::StatusOr<SegmentTask> SegmentTasks::Finish(int64_t id) {
  std::optional<SegmentTask> task;
  {
    const KeyedCall::Suspend unkeyed;
    RETURN_IF_ERROR(store_.InTransaction([&](Transaction& tx) -> absl::Status {
      ASSIGN_OR_RETURN(task, tx.segments().Task(id));
      return absl::OkStatus();
    }));
  }
  if (!task) return absl::InternalError(absl::StrCat("segment task ", id, " does not exist"));
  return Finish(*task);
}

absl::StatusOr<int> SegmentTasks::FinishStale(absl::Duration stale_after) {
  std::vector<SegmentTask> stale;
  RETURN_IF_ERROR(store_.InTransaction([&](Transaction& tx) -> absl::Status {
    ASSIGN_OR_RETURN(stale, tx.segments().StaleTasks(Now() - stale_after, 100));
    return absl::OkStatus();
  }));
  for (const SegmentTask& task : stale) RETURN_IF_ERROR(Finish(task).status());
  return static_cast<int>(stale.size());
}

}  // namespace segments::domain
