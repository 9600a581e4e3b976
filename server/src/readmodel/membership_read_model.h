// The membership read model: every live membership held in memory
// (MembershipTable), answering "which segments is user X in?" without the
// database, and kept current by one thread that follows a ChangeFeed.
//
// Reads are answered from memory only while the model is serving and its
// last look at the database started at most `max_lag` ago; otherwise they go
// to the database, as with the model off. So an answer from memory is never
// older than `max_lag`, whatever happens to the connection.
//
// Read-your-writes: a writer on this instance calls AwaitCommitted() after
// its transaction commits; it returns once a look that started after the
// commit has been applied (or, at the latest, after `max_lag`, when reads of
// the model would go to the database anyway). WhenCommittedVisible() is the
// same without blocking: it runs a callback then.
#pragma once

#include <absl/base/thread_annotations.h>
#include <absl/container/flat_hash_map.h>
#include <absl/functional/any_invocable.h>
#include <absl/synchronization/mutex.h>
#include <absl/time/time.h>

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "domain/repositories/membership_repository.h"
#include "readmodel/change_feed.h"
#include "readmodel/membership_table.h"

namespace segments::readmodel {

struct ReadModelOptions {
  // Looks without an announcement this often (changes made by hand in SQL).
  absl::Duration poll_period = absl::Milliseconds(100);
  absl::Duration max_lag = absl::Seconds(1);
  // Wait between attempts to reach the database.
  absl::Duration reconnect_backoff = absl::Milliseconds(200);
  // Change notes older than this are dropped (by any instance); a model
  // whose last look is older than half of it loads everything again.
  absl::Duration keep_changes = absl::Minutes(10);
  absl::Duration prune_period = absl::Minutes(1);
  // Told when serving starts or ends (from the model's thread).
  std::function<void(bool serving)> on_serving_change;
};

class MembershipReadModel final : public domain::MembershipQueries {
 public:
  // `database` answers reads while the model cannot.
  MembershipReadModel(ChangeFeed& feed, domain::MembershipQueries& database, ReadModelOptions options);
  ~MembershipReadModel() override;
  MembershipReadModel(const MembershipReadModel&) = delete;
  MembershipReadModel& operator=(const MembershipReadModel&) = delete;

  // Starts following the feed: connects, loads everything, then serves.
  void Start();
  void Stop();

  absl::StatusOr<std::vector<std::string>> ActiveSegmentSlugs(const domain::UserId& user, absl::Time now) override;
  std::optional<std::vector<std::string>> ActiveSegmentSlugsAtOnce(const domain::UserId& user, absl::Time now) override;
  absl::StatusOr<std::vector<domain::SegmentMember>> Members(domain::SegmentId segment,
                                                             const std::optional<domain::UserId>& after_user, int limit,
                                                             absl::Time now) override {
    return database_.Members(segment, after_user, limit, now);
  }

  // For writers on this instance, after a commit that changed memberships
  // or segments: returns once reads from memory include it.
  void AwaitCommitted();
  // The same without blocking: `done` runs at that moment, on the model's
  // threads (or at once, on this one, when the model is down). It must be
  // quick: it delays the release of other writers.
  void WhenCommittedVisible(absl::AnyInvocable<void() &&> done);

  // Loaded, and following the database: reads come from memory.
  bool Serving() const { return epoch_.load(std::memory_order_acquire) % 2 == 1; }

  struct Stats {
    uint64_t memory_reads = 0;
    uint64_t database_reads = 0;
    uint64_t full_loads = 0;
    size_t users = 0;
    size_t memberships = 0;
    size_t memory_bytes = 0;
    // Since the start of the last look that was applied (infinite before
    // the first): how stale an answer from memory may be.
    absl::Duration look_age = absl::InfiniteDuration();
    // When the last look that found changes was applied (unix epoch before).
    absl::Time last_change_applied = absl::UnixEpoch();
  };
  Stats stats() const;

 private:
  enum class State {
    kDown,        // not following the database; writers do not wait
    kCatchingUp,  // loaded; the next look makes it serve; writers wait
    kServing,
  };

  void Run();
  // One connection's life: load (or continue), look until something fails.
  absl::Status Follow();
  absl::Status LoadAll();
  // Looks once and applies what it finds.
  absl::Status Look();
  absl::Status Apply(FeedChanges changes);
  void SetState(State state);
  void Wake() const;
  // Runs the callbacks of WhenCommittedVisible that are due: their look is
  // applied, their session ended, their deadline passed, or the model stops.
  void ReleaseWaiters();
  // Releases waiters whose deadline passed while the model's thread is busy.
  void RunReaper();
  // Drops the memberships of deleted segments from the table, off the
  // model's thread: that visits every user held (0.4 s at 2M), and writers
  // waiting for the next look should not wait for it. Reads leave a deleted
  // segment out from the look that found it gone (it is not in slugs_), and
  // no later look brings its rows back, since ids are never reused.
  void RunSweeper();
  bool FreshEnough() const;

  ChangeFeed& feed_;
  domain::MembershipQueries& database_;
  const ReadModelOptions options_;

  MembershipTable table_;
  mutable absl::Mutex catalog_mu_;
  absl::flat_hash_map<uint32_t, std::string> slugs_ ABSL_GUARDED_BY(catalog_mu_);

  // Odd while serving; changes on every start and end of serving, so a read
  // that saw the same odd value before and after used a serving table.
  std::atomic<uint64_t> epoch_{0};
  // steady_clock nanoseconds at the start of the last applied look.
  std::atomic<int64_t> look_started_ns_{0};
  std::atomic<int64_t> last_change_unix_ns_{0};

  absl::Mutex mu_;
  State state_ ABSL_GUARDED_BY(mu_) = State::kDown;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  // Writers' tickets: the last one taken, and the last one a finished look
  // covered. `session_` changes whenever serving ends, releasing waiters.
  uint64_t requested_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t applied_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t session_ ABSL_GUARDED_BY(mu_) = 0;
  // Tickets taken since the last announcement to other instances.
  bool announce_ ABSL_GUARDED_BY(mu_) = false;
  // Callbacks of WhenCommittedVisible, in ticket order (and so in deadline
  // order).
  struct Waiter {
    uint64_t ticket = 0;
    uint64_t session = 0;
    int64_t deadline_ns = 0;  // steady_clock
    absl::AnyInvocable<void() &&> done;
  };
  std::deque<Waiter> waiters_ ABSL_GUARDED_BY(mu_);
  std::thread reaper_;
  // Deleted segments whose memberships the sweeper has still to drop.
  std::vector<uint32_t> to_sweep_ ABSL_GUARDED_BY(mu_);
  std::thread sweeper_;

  int wake_fd_ = -1;
  std::thread thread_;
  // steady_clock nanoseconds of the last successful look (sync thread only).
  int64_t last_look_ok_ns_ = 0;

  std::atomic<uint64_t> memory_reads_{0};
  std::atomic<uint64_t> database_reads_{0};
  std::atomic<uint64_t> full_loads_{0};
};

}  // namespace segments::readmodel
