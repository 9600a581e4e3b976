// The consumer of the user service's events (contract §6). Each event only
// names a user; the consumer asks the user service for that user's current
// state and applies it with UserUseCases::SyncUsers.
//
// Delivery is at least once: a batch's offsets are committed only after its
// database transaction committed, and applying the same state twice changes
// nothing, so redelivery after a crash is harmless. Per-user order needs no
// care beyond Kafka's: events are keyed by user id, so one user's events share
// a partition, and each batch is looked up after all its events were written.
//
// Failures never skip events: when the user service, the database or the
// broker fails, the batch is retried with backoff while the consumer's
// partitions stay paused (and the consumer stays in its group). A message
// that is not a user event is logged, counted, copied to the dead-letter
// topic, and committed with its batch.
#pragma once

#include <absl/base/thread_annotations.h>
#include <absl/status/statusor.h>
#include <absl/synchronization/mutex.h>
#include <absl/time/time.h>

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "domain/user_use_cases.h"
#include "ingest/user_directory.h"
#include "ingest/user_event.h"
#include "metrics/registry.h"

namespace RdKafka {
class KafkaConsumer;
class Producer;
}  // namespace RdKafka

namespace segments::ingest {

struct UserEventConsumerOptions {
  std::string brokers;  // bootstrap.servers
  std::string topic = "UserAction";
  std::string group = "segments";
  std::string dead_letter_topic = "UserAction.dlq";
  // Further librdkafka settings for the consumer and the dead-letter
  // producer (security.protocol, sasl.*, session.timeout.ms, ...).
  std::vector<std::pair<std::string, std::string>> kafka_settings;
  // Most events per batch (one user-service round trip and one transaction
  // per 1000 distinct users), and how long a started batch waits for more.
  int max_batch = 1000;
  absl::Duration batch_linger = absl::Milliseconds(5);
  // Backoff between attempts of a failing batch.
  absl::Duration retry_backoff_min = absl::Milliseconds(100);
  absl::Duration retry_backoff_max = absl::Seconds(5);
  // A batch failing for longer than this makes the consumer Stalled(); so
  // does a partition that has events waiting and whose committed offset has
  // not moved for this long (a consumer stuck in a call, or a partition
  // whose fetching stopped).
  absl::Duration stall_after = absl::Seconds(30);
  // How often each assigned partition's lag (end offset minus committed
  // offset) is asked of the broker; at most stall_after / 3.
  absl::Duration lag_check_period = absl::Seconds(5);
  // Tests only: called after a batch's transaction committed and before its
  // offsets are; returning true makes the consumer stop right there, as a
  // crash would, committing nothing.
  std::function<bool()> crash_after_apply;
};

// Totals since start, counting committed batches only.
struct UserEventStats {
  int64_t events = 0;
  int64_t batches = 0;
  int64_t dead_lettered = 0;
  int64_t retries = 0;  // failed attempts, of any step
  int64_t created = 0;
  int64_t state_changed = 0;
  int64_t deleted = 0;
  int64_t unchanged = 0;
  int64_t memberships_ended = 0;  // by deletions
};

// What the broker says of one assigned partition, at the last lag check.
struct PartitionLag {
  int32_t partition = 0;
  int64_t lag = 0;       // events after the committed offset
  bool stalled = false;  // events waiting, committed offset still for stall_after
};

class UserEventConsumer {
 public:
  // Connects (lazily: a broker that is down is retried in the background),
  // subscribes and starts consuming on its own thread. INVALID_ARGUMENT for
  // a setting librdkafka refuses.
  static absl::StatusOr<std::unique_ptr<UserEventConsumer>> Start(UserEventConsumerOptions options,
                                                                  UserDirectory& directory,
                                                                  domain::UserUseCases& users);
  ~UserEventConsumer();

  // Finishes the step under way, commits what was applied and nothing more,
  // leaves the group. Idempotent.
  void Stop();

  UserEventStats Stats() const;

  // True while a batch has been failing for longer than stall_after, or a
  // partition has had events waiting and no commit for that long: events
  // wait (none is skipped) until what blocks them is gone. Health reports it.
  bool Stalled() const;

  // Each assigned partition's lag, as of the last check (every
  // lag_check_period).
  std::vector<PartitionLag> Lags() const;

  // True once the consumer stopped because crash_after_apply asked it to.
  bool crashed() const { return crashed_.load(); }

 private:
  class Callbacks;
  enum class Step { kApply, kDeadLetter, kCommit };

  UserEventConsumer(UserEventConsumerOptions options, UserDirectory& directory, domain::UserUseCases& users);
  absl::Status Connect();
  void Run();
  // Fills pending_ with up to max_batch records (after overflow_'s).
  void CollectBatch();
  // Applies, dead-letters and commits pending_. False when stopping (or
  // crashing) left it unfinished.
  bool ProcessBatch();
  absl::Status Apply(const EventBatch& batch, domain::UserSyncResult& result);
  absl::Status PublishDeadLetters(const EventBatch& batch);
  absl::Status Commit(const EventBatch& batch);
  // Sleeps `delay` with the partitions paused, still polling the consumer so
  // that it keeps its group membership and sees rebalances.
  void WaitPolling(absl::Duration delay);
  void SetPaused(bool paused);
  // Rebalance handling, on the consumer thread (inside consume()).
  void OnAssigned(const std::vector<int32_t>& partitions);
  void OnRevoked(const std::vector<int32_t>& partitions);
  bool stopping() const { return stopping_.load(std::memory_order_relaxed); }
  // On a thread of its own: asks the broker for each assigned partition's
  // committed and end offsets every lag_check_period.
  void WatchLag();
  void CheckLag();
  // Metrics (segments_user_events_*), read at each scrape.
  void ExposeState();

  const UserEventConsumerOptions options_;
  UserDirectory& directory_;
  domain::UserUseCases& users_;
  std::unique_ptr<Callbacks> callbacks_;
  std::unique_ptr<RdKafka::KafkaConsumer> consumer_;
  std::unique_ptr<RdKafka::Producer> producer_;

  // Consumer-thread state.
  std::vector<EventRecord> pending_;   // the batch under way
  std::vector<EventRecord> overflow_;  // consumed while paused; next batch
  std::set<int32_t> assigned_;
  bool paused_ = false;

  std::atomic<bool> stopping_{false};
  std::atomic<bool> crashed_{false};
  std::atomic<int64_t> failing_since_unix_ns_{0};  // 0: the current batch has not failed
  std::thread thread_;
  std::atomic<int64_t> consumed_{0};
  std::atomic<int64_t> last_commit_unix_ns_{0};
  mutable absl::Mutex mu_;
  UserEventStats stats_ ABSL_GUARDED_BY(mu_);

  struct Progress {
    int64_t committed = 0;  // the next offset to apply
    int64_t lag = 0;
    absl::Time moved_at;  // when committed last moved, or lag was 0
  };
  std::map<int32_t, Progress> progress_ ABSL_GUARDED_BY(mu_);
  absl::Mutex watch_mu_;
  bool watch_stopping_ ABSL_GUARDED_BY(watch_mu_) = false;
  std::thread lag_watcher_;
  // Last: gone before what it reads.
  metrics::Registry::Registration metrics_;
};

}  // namespace segments::ingest
