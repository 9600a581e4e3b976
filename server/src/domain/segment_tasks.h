// Changes of a whole segment in chunks of users (docs/writes.md, "Changes of
// a whole segment"). Filling a segment, changing its percentage and ending
// the memberships of a deleted one touch up to every user; done in one
// transaction, they would hold every other writer of the segment and every
// user event for as long. Instead the call first publishes the change (the
// new percentage, or the deletion) with a SegmentTask in a short
// transaction. From then on every user who is created or comes back is
// evaluated against the new percentage by their own transaction, and the
// task walks the users in id order, a chunk per transaction, doing to them
// what the one-transaction change would have done.
//
// Each chunk of an assign or unassign task holds the segment exclusively,
// so hand changes of it wait for the chunk. The first chunk also holds the
// automatic-assignment lock exclusively: it waits for the evaluations of
// users that may have read the segment before the change was published;
// every later evaluation sees the change, and runs beside the chunks. A
// user both paths reach gets one membership (the chunk's insert skips a
// row that exists) and one event (only inserted rows get one). A chunk
// locks the users of its range against deletion (FOR KEY SHARE). A chunk of
// a delete task holds none of these: nothing adds to a deleted segment, and
// every statement that ends memberships writes history only for the rows
// it deleted itself.
#pragma once

#include <absl/status/statusor.h>
#include <absl/time/time.h>

#include <functional>
#include <utility>

#include "domain/clock.h"
#include "domain/model.h"
#include "domain/repositories/unit_of_work.h"

namespace segments::domain {

struct SegmentTaskOptions {
  // Users of the first chunk (of every chunk, without chunk_time). Each
  // chunk's transaction holds the segment (and its users against deletion):
  // about 25 ms per 500 users of a 100% fill at 1M users on the 2-core bench
  // machine (bench/README.md, "Writes during a fill").
  int chunk_users = 500;
  // When not zero, later chunks are sized to take about this long each
  // (NextChunkUsers): a 10% fill picks a tenth of the users it looks at, so
  // it may look at ten times as many per chunk.
  absl::Duration chunk_time = absl::ZeroDuration();
  // Called after each chunk that left the task unfinished has committed
  // (tests pause a task there).
  std::function<void(const SegmentTask&)> after_chunk{};
  // Waited after each chunk but the last, so that the other writers' work
  // gets the database's CPU between chunks.
  absl::Duration pause = absl::ZeroDuration();
};

inline constexpr int kMinChunkUsers = 50;
inline constexpr int kMaxChunkUsers = 50'000;

// The size of the next chunk after one of `users` users took `took`, aiming
// at `target`: scaled by target / took, at most halved or doubled at once,
// within [kMinChunkUsers, kMaxChunkUsers]. `users` itself for a zero target.
int NextChunkUsers(int users, absl::Duration took, absl::Duration target);

// One chunk of `task` in `tx`: the next `chunk_users` users after where it
// stands, or, when none is left, the end of the task. Returns the task as
// it stands after the chunk.
absl::StatusOr<SegmentTask> RunSegmentTaskChunk(Transaction& tx, const SegmentTask& task, int chunk_users,
                                                absl::Time now);

class SegmentTasks {
 public:
  SegmentTasks(Store& store, const Clock& clock, SegmentTaskOptions options = {})
      : store_(store), clock_(clock), options_(std::move(options)) {}

  // Runs the chunks of `task`, each in a transaction of its own, until it is
  // finished (by this call or another), and returns it finished. Never part
  // of a keyed call's claim (KeyedCall::Suspend).
  absl::StatusOr<SegmentTask> Finish(const SegmentTask& task);
  // The same for the task `id` (INTERNAL if there is none).
  absl::StatusOr<SegmentTask> Finish(int64_t id);

  // Finishes the unfinished tasks no chunk has run for in `stale_after`:
  // those a stopped instance left behind. Returns how many it finished.
  absl::StatusOr<int> FinishStale(absl::Duration stale_after);

 private:
  absl::Time Now() const { return TruncateToMicros(clock_.Now()); }

  Store& store_;
  const Clock& clock_;
  const SegmentTaskOptions options_;
};

}  // namespace segments::domain
