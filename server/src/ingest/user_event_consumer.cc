#include "ingest/user_event_consumer.h"

#include <fmt/format.h>
#include <librdkafka/rdkafkacpp.h>

#include <algorithm>

#include "common/log.h"
#include "common/status_macros.h"

namespace segments::ingest {
namespace {

constexpr int kIdlePollMs = 200;
constexpr int kDeadLetterFlushMs = 10000;

EventRecord ToRecord(const RdKafka::Message& message) {
  EventRecord record;
  record.partition = message.partition();
  record.offset = message.offset();
  if (const std::string* key = message.key()) record.key = *key;
  if (message.payload() != nullptr) record.value.assign(static_cast<const char*>(message.payload()), message.len());
  return record;
}

std::vector<int32_t> PartitionsOf(const std::vector<RdKafka::TopicPartition*>& partitions) {
  std::vector<int32_t> ids;
  ids.reserve(partitions.size());
  for (const RdKafka::TopicPartition* p : partitions) ids.push_back(p->partition());
  return ids;
}

// Sets every option on `conf`; INVALID_ARGUMENT naming the first refused one.
absl::Status Configure(RdKafka::Conf& conf, const std::vector<std::pair<std::string, std::string>>& settings) {
  std::string error;
  for (const auto& [name, value] : settings) {
    if (conf.set(name, value, error) != RdKafka::Conf::CONF_OK) {
      return absl::InvalidArgumentError(fmt::format("kafka setting {}={}: {}", name, value, error));
    }
  }
  return absl::OkStatus();
}

metrics::Histogram& BatchSeconds() {
  static metrics::Histogram& seconds = metrics::Default().AddHistogram(
      "segments_user_events_batch_seconds",
      "Time from a batch's first attempt to its offsets' commit, in seconds (retries included).",
      metrics::TaskBuckets());
  return seconds;
}

}  // namespace

// librdkafka's callbacks. Rebalances and delivery reports arrive on the
// consumer thread (inside consume(), close() and flush()); log events may
// come from librdkafka's own threads, so event_cb keeps no state.
class UserEventConsumer::Callbacks final : public RdKafka::RebalanceCb,
                                           public RdKafka::EventCb,
                                           public RdKafka::DeliveryReportCb {
 public:
  explicit Callbacks(UserEventConsumer& owner) : owner_(owner) {}

  void rebalance_cb(RdKafka::KafkaConsumer* consumer, RdKafka::ErrorCode err,
                    std::vector<RdKafka::TopicPartition*>& partitions) override {
    const bool cooperative = consumer->rebalance_protocol() == "COOPERATIVE";
    if (err == RdKafka::ERR__ASSIGN_PARTITIONS) {
      if (cooperative) {
        delete consumer->incremental_assign(partitions);
      } else {
        consumer->assign(partitions);
      }
      owner_.OnAssigned(PartitionsOf(partitions));
      // librdkafka keeps a partition's pause flag across unassign and assign:
      // one paused during an earlier ownership would never fetch again.
      if (owner_.paused_) {
        consumer->pause(partitions);
      } else {
        consumer->resume(partitions);
      }
      return;
    }
    if (err == RdKafka::ERR__REVOKE_PARTITIONS) {
      owner_.OnRevoked(PartitionsOf(partitions));
    } else {
      log::Error("user events: rebalance failed: {}", RdKafka::err2str(err));
      owner_.OnRevoked(std::vector<int32_t>(owner_.assigned_.begin(), owner_.assigned_.end()));
    }
    if (cooperative && err == RdKafka::ERR__REVOKE_PARTITIONS) {
      delete consumer->incremental_unassign(partitions);
    } else {
      consumer->unassign();
    }
  }

  void event_cb(RdKafka::Event& event) override {
    switch (event.type()) {
      case RdKafka::Event::EVENT_ERROR:
        if (event.fatal()) {
          log::Error("user events: kafka fatal error: {}", event.str());
        } else {
          log::Warning("user events: kafka: {} ({})", event.str(), RdKafka::err2str(event.err()));
        }
        break;
      case RdKafka::Event::EVENT_LOG:
        // The shared --kafka-settings may hold consumer-only ones, which the
        // dead-letter producer ignores, as it should.
        if (event.fac() == "CONFWARN" && event.str().find("consumer property") != std::string::npos) break;
        if (event.severity() <= RdKafka::Event::EVENT_SEVERITY_ERROR) {
          log::Error("user events: kafka {}: {}", event.fac(), event.str());
        } else if (event.severity() <= RdKafka::Event::EVENT_SEVERITY_WARNING) {
          log::Warning("user events: kafka {}: {}", event.fac(), event.str());
        }
        break;
      default:
        break;
    }
  }

  void dr_cb(RdKafka::Message& message) override {
    if (message.err() != RdKafka::ERR_NO_ERROR) {
      ++failed_deliveries;
      log::Warning("user events: dead letter not delivered: {}", message.errstr());
    }
  }

  int failed_deliveries = 0;  // on the consumer thread, via flush()

 private:
  UserEventConsumer& owner_;
};

UserEventConsumer::UserEventConsumer(UserEventConsumerOptions options, UserDirectory& directory,
                                     domain::UserUseCases& users)
    : options_(std::move(options)), directory_(directory), users_(users), callbacks_(new Callbacks(*this)) {}

absl::StatusOr<std::unique_ptr<UserEventConsumer>> UserEventConsumer::Start(UserEventConsumerOptions options,
                                                                            UserDirectory& directory,
                                                                            domain::UserUseCases& users) {
  std::unique_ptr<UserEventConsumer> consumer(new UserEventConsumer(std::move(options), directory, users));
  RETURN_IF_ERROR(consumer->Connect());
  consumer->thread_ = std::thread([raw = consumer.get()] { raw->Run(); });
  consumer->lag_watcher_ = std::thread([raw = consumer.get()] { raw->WatchLag(); });
  consumer->ExposeState();
  log::Info("user events: consuming {} as group {} from {}", consumer->options_.topic, consumer->options_.group,
            consumer->options_.brokers);
  return consumer;
}

absl::Status UserEventConsumer::Connect() {
  std::string error;
  std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
  RETURN_IF_ERROR(Configure(*conf, {{"bootstrap.servers", options_.brokers},
                                    {"client.id", "segments-server"},
                                    {"group.id", options_.group},
                                    // Offsets are committed by hand, after the database commit.
                                    {"enable.auto.commit", "false"},
                                    {"enable.auto.offset.store", "false"},
                                    // A new group starts from the oldest event: replaying is harmless.
                                    {"auto.offset.reset", "earliest"}}));
  RETURN_IF_ERROR(Configure(*conf, options_.kafka_settings));
  conf->set("rebalance_cb", static_cast<RdKafka::RebalanceCb*>(callbacks_.get()), error);
  conf->set("event_cb", static_cast<RdKafka::EventCb*>(callbacks_.get()), error);
  consumer_.reset(RdKafka::KafkaConsumer::create(conf.get(), error));
  if (!consumer_) return absl::InvalidArgumentError("kafka consumer: " + error);

  // The dead-letter producer shares the extra settings (librdkafka ignores
  // consumer-only ones there, with a warning).
  std::unique_ptr<RdKafka::Conf> dead_letter_conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
  RETURN_IF_ERROR(Configure(*dead_letter_conf, {{"bootstrap.servers", options_.brokers},
                                                {"client.id", "segments-server-dlq"},
                                                {"enable.idempotence", "true"},
                                                {"acks", "all"},
                                                {"linger.ms", "5"}}));
  RETURN_IF_ERROR(Configure(*dead_letter_conf, options_.kafka_settings));
  dead_letter_conf->set("dr_cb", static_cast<RdKafka::DeliveryReportCb*>(callbacks_.get()), error);
  dead_letter_conf->set("event_cb", static_cast<RdKafka::EventCb*>(callbacks_.get()), error);
  producer_.reset(RdKafka::Producer::create(dead_letter_conf.get(), error));
  if (!producer_) return absl::InvalidArgumentError("kafka dead-letter producer: " + error);

  if (RdKafka::ErrorCode err = consumer_->subscribe({options_.topic}); err != RdKafka::ERR_NO_ERROR) {
    return absl::InvalidArgumentError(fmt::format("kafka subscribe {}: {}", options_.topic, RdKafka::err2str(err)));
  }
  return absl::OkStatus();
}

UserEventConsumer::~UserEventConsumer() { Stop(); }

void UserEventConsumer::Stop() {
  {
    absl::MutexLock lock(&watch_mu_);
    watch_stopping_ = true;
  }
  if (lag_watcher_.joinable()) lag_watcher_.join();  // before close(): it asks the broker through consumer_
  stopping_.store(true);
  if (thread_.joinable()) thread_.join();
}

UserEventStats UserEventConsumer::Stats() const {
  absl::MutexLock lock(&mu_);
  return stats_;
}

void UserEventConsumer::Run() {
  while (!stopping()) {
    CollectBatch();
    if (pending_.empty()) continue;
    if (!ProcessBatch()) break;
  }
  // Leaves the group; the revocation this causes drops any unfinished batch.
  // Nothing is committed here: finished batches were committed already.
  consumer_->close();
  producer_->flush(kDeadLetterFlushMs);
  const UserEventStats totals = Stats();
  log::Info(
      "user events: stopped after {} events in {} batches: {} users created, {} changed state, {} deleted "
      "({} memberships ended), {} unchanged; {} dead-lettered; {} retries",
      totals.events, totals.batches, totals.created, totals.state_changed, totals.deleted, totals.memberships_ended,
      totals.unchanged, totals.dead_lettered, totals.retries);
}

void UserEventConsumer::CollectBatch() {
  pending_ = std::move(overflow_);
  overflow_.clear();
  absl::Time linger_until = absl::Now() + options_.batch_linger;
  while (!stopping() && pending_.size() < static_cast<size_t>(options_.max_batch)) {
    int timeout_ms = kIdlePollMs;
    if (!pending_.empty()) {
      const absl::Duration left = linger_until - absl::Now();
      if (left <= absl::ZeroDuration()) return;
      timeout_ms = static_cast<int>(std::max<int64_t>(1, absl::ToInt64Milliseconds(left)));
    }
    std::unique_ptr<RdKafka::Message> message(consumer_->consume(timeout_ms));
    switch (message->err()) {
      case RdKafka::ERR_NO_ERROR:
        if (pending_.empty()) linger_until = absl::Now() + options_.batch_linger;
        pending_.push_back(ToRecord(*message));
        consumed_.fetch_add(1, std::memory_order_relaxed);
        break;
      case RdKafka::ERR__TIMED_OUT:
      case RdKafka::ERR__PARTITION_EOF:
        if (!pending_.empty()) return;
        break;
      default:
        log::Warning("user events: consume: {}", message->errstr());
        if (!pending_.empty()) return;
        break;
    }
  }
}

bool UserEventConsumer::ProcessBatch() {
  Step step = Step::kApply;
  const absl::Time started = absl::Now();
  domain::UserSyncResult applied;
  absl::Duration backoff = options_.retry_backoff_min;
  for (;;) {
    // Planned again after every wait: a rebalance may have taken partitions.
    const EventBatch batch = PlanBatch(pending_);
    if (batch.events == 0) break;
    absl::Status status;
    switch (step) {
      case Step::kApply:
        status = Apply(batch, applied);
        if (status.ok()) {
          step = Step::kDeadLetter;
          if (options_.crash_after_apply && options_.crash_after_apply()) {
            crashed_.store(true);
            stopping_.store(true);
            return false;
          }
          continue;
        }
        break;
      case Step::kDeadLetter:
        status = PublishDeadLetters(batch);
        if (status.ok()) {
          step = Step::kCommit;
          continue;
        }
        break;
      case Step::kCommit:
        status = Commit(batch);
        if (status.ok()) {
          BatchSeconds().Observe(absl::ToDoubleSeconds(absl::Now() - started));
          last_commit_unix_ns_.store(absl::ToUnixNanos(absl::Now()), std::memory_order_relaxed);
          absl::MutexLock lock(&mu_);
          stats_.events += static_cast<int64_t>(batch.events);
          stats_.batches += 1;
          stats_.dead_lettered += static_cast<int64_t>(batch.dead_letters.size());
          stats_.created += applied.created;
          stats_.state_changed += applied.state_changed;
          stats_.deleted += applied.deleted;
          stats_.unchanged += applied.unchanged;
          stats_.memberships_ended += applied.memberships_ended;
        }
        break;
    }
    if (status.ok()) break;
    {
      absl::MutexLock lock(&mu_);
      ++stats_.retries;
    }
    int64_t not_failing = 0;
    failing_since_unix_ns_.compare_exchange_strong(not_failing, absl::ToUnixNanos(absl::Now()));
    // Retried whatever the error: skipping would lose events. An error that
    // waiting cannot fix needs an operator, so it is logged as an error.
    const bool transient = absl::IsUnavailable(status) || absl::IsDeadlineExceeded(status) || absl::IsAborted(status) ||
                           absl::IsResourceExhausted(status);
    log::Write(transient ? log::Level::kWarning : log::Level::kError,
               fmt::format("user events: {} events from {} partition(s) not done, retrying in {}: {}", batch.events,
                           batch.commit_offsets.size(), absl::FormatDuration(backoff), std::string(status.message())));
    WaitPolling(backoff);
    if (stopping()) return false;
    backoff = std::min(backoff * 2, options_.retry_backoff_max);
  }
  pending_.clear();
  SetPaused(false);
  failing_since_unix_ns_.store(0);
  return true;
}

bool UserEventConsumer::Stalled() const {
  const int64_t since = failing_since_unix_ns_.load();
  if (since != 0 && absl::Now() - absl::FromUnixNanos(since) > options_.stall_after) return true;
  for (const PartitionLag& partition : Lags()) {
    if (partition.stalled) return true;
  }
  return false;
}

std::vector<PartitionLag> UserEventConsumer::Lags() const {
  const absl::Time now = absl::Now();
  std::vector<PartitionLag> lags;
  absl::MutexLock lock(&mu_);
  for (const auto& [partition, progress] : progress_) {
    lags.push_back({partition, progress.lag, progress.lag > 0 && now - progress.moved_at > options_.stall_after});
  }
  return lags;
}

void UserEventConsumer::WatchLag() {
  const absl::Duration period = std::min(options_.lag_check_period, options_.stall_after / 3);
  for (;;) {
    CheckLag();
    absl::MutexLock lock(&watch_mu_);
    if (watch_mu_.AwaitWithTimeout(absl::Condition(&watch_stopping_), period)) return;
  }
}

void UserEventConsumer::CheckLag() {
  constexpr int kBrokerTimeoutMs = 2000;
  std::vector<RdKafka::TopicPartition*> partitions;
  if (consumer_->assignment(partitions) != RdKafka::ERR_NO_ERROR) return;
  const bool committed_known =
      partitions.empty() || consumer_->committed(partitions, kBrokerTimeoutMs) == RdKafka::ERR_NO_ERROR;
  std::map<int32_t, Progress> seen;
  const absl::Time now = absl::Now();
  for (const RdKafka::TopicPartition* p : partitions) {
    int64_t low = 0, high = 0;
    if (!committed_known || consumer_->query_watermark_offsets(p->topic(), p->partition(), &low, &high,
                                                               kBrokerTimeoutMs) != RdKafka::ERR_NO_ERROR) {
      continue;  // the broker cannot say now: the last answer stands
    }
    // No commit yet: the group starts from the oldest event.
    const int64_t committed = p->offset() >= 0 ? p->offset() : low;
    seen[p->partition()] = Progress{committed, std::max<int64_t>(0, high - committed), now};
  }
  RdKafka::TopicPartition::destroy(partitions);

  absl::MutexLock lock(&mu_);
  for (auto& [partition, progress] : seen) {
    auto before = progress_.find(partition);
    // Still where it was, with events waiting: the clock keeps running.
    if (before != progress_.end() && before->second.committed == progress.committed && progress.lag > 0) {
      progress.moved_at = before->second.moved_at;
    }
  }
  // Partitions the broker did not answer for keep their last state.
  for (const auto& [partition, progress] : progress_) {
    if (!seen.contains(partition) && !committed_known) seen.emplace(partition, progress);
  }
  progress_ = std::move(seen);
}

void UserEventConsumer::ExposeState() {
  metrics::Registry& registry = metrics::Default();
  BatchSeconds();
  metrics::Gauge& consumed =
      registry.AddCopiedCounter("segments_user_events_consumed_total", "User events read from Kafka.");
  metrics::Gauge& applied = registry.AddCopiedCounter("segments_user_events_applied_total",
                                                      "User events applied and committed (batches done).");
  metrics::Gauge& retries =
      registry.AddCopiedCounter("segments_user_events_retries_total",
                                "Failed attempts at a batch step (lookup, database, dead letters, commit).");
  metrics::Gauge& dead_lettered =
      registry.AddCopiedCounter("segments_user_events_dead_lettered_total",
                                "Messages that were not user events, copied to the dead-letter topic.");
  metrics::Family<metrics::Gauge>& users = registry.AddCopiedCounterFamily(
      "segments_user_events_users_total", "Users the applied events changed, by outcome.", {"outcome"});
  metrics::Family<metrics::Gauge>& lag = registry.AddGaugeFamily(
      "segments_user_events_lag",
      "Events after the group's committed offset, per assigned partition (as of the last check).",
      {"topic", "partition"});
  metrics::Gauge& assigned = registry.AddGauge("segments_user_events_assigned_partitions",
                                               "Partitions of the user event topic assigned to this instance.");
  metrics::Gauge& last_commit = registry.AddGauge("segments_user_events_last_commit_timestamp_seconds",
                                                  "When this instance last committed offsets (Unix time; 0: never).");
  metrics::Gauge& stalled = registry.AddGauge(
      "segments_user_events_stalled", "1 while events are stalled (health of segmentation.v1.UserEvents NOT_SERVING).");
  metrics_ = registry.OnScrape([=, this, &consumed, &applied, &retries, &dead_lettered, &users, &lag, &assigned,
                                &last_commit, &stalled] {
    const UserEventStats totals = Stats();
    consumed.Set(static_cast<double>(consumed_.load(std::memory_order_relaxed)));
    applied.Set(static_cast<double>(totals.events));
    retries.Set(static_cast<double>(totals.retries));
    dead_lettered.Set(static_cast<double>(totals.dead_lettered));
    users.With({"created"}).Set(static_cast<double>(totals.created));
    users.With({"state_changed"}).Set(static_cast<double>(totals.state_changed));
    users.With({"deleted"}).Set(static_cast<double>(totals.deleted));
    users.With({"unchanged"}).Set(static_cast<double>(totals.unchanged));
    const std::vector<PartitionLag> lags = Lags();
    lag.Clear();
    for (const PartitionLag& partition : lags) {
      lag.With({options_.topic, std::to_string(partition.partition)}).Set(static_cast<double>(partition.lag));
    }
    assigned.Set(static_cast<double>(lags.size()));
    const int64_t committed_at = last_commit_unix_ns_.load(std::memory_order_relaxed);
    last_commit.Set(committed_at == 0 ? 0
                                      : absl::ToDoubleSeconds(absl::FromUnixNanos(committed_at) - absl::UnixEpoch()));
    stalled.Set(Stalled() ? 1 : 0);
  });
}

absl::Status UserEventConsumer::Apply(const EventBatch& batch, domain::UserSyncResult& result) {
  if (batch.users.empty()) return absl::OkStatus();
  ASSIGN_OR_RETURN(const std::vector<domain::ObservedUser> observed, directory_.Lookup(batch.users));
  ASSIGN_OR_RETURN(result, users_.SyncUsers(observed));
  return absl::OkStatus();
}

absl::Status UserEventConsumer::PublishDeadLetters(const EventBatch& batch) {
  if (batch.dead_letters.empty()) return absl::OkStatus();
  callbacks_->failed_deliveries = 0;
  for (const DeadLetter& letter : batch.dead_letters) {
    log::Warning("user events: partition {} offset {} is not a user event, dead-lettered to {}: {}",
                 letter.record.partition, letter.record.offset, options_.dead_letter_topic, letter.error);
    RdKafka::Headers* headers = RdKafka::Headers::create();
    headers->add("segments-error", letter.error);
    headers->add("segments-source-topic", options_.topic);
    headers->add("segments-source-partition", std::to_string(letter.record.partition));
    headers->add("segments-source-offset", std::to_string(letter.record.offset));
    const std::string& key = letter.record.key;
    RdKafka::ErrorCode err =
        producer_->produce(options_.dead_letter_topic, RdKafka::Topic::PARTITION_UA, RdKafka::Producer::RK_MSG_COPY,
                           const_cast<char*>(letter.record.value.data()), letter.record.value.size(),
                           key.empty() ? nullptr : key.data(), key.size(), 0, headers, nullptr);
    if (err != RdKafka::ERR_NO_ERROR) {
      delete headers;  // owned by librdkafka only on success
      return absl::UnavailableError(fmt::format("dead-letter produce: {}", RdKafka::err2str(err)));
    }
  }
  producer_->flush(kDeadLetterFlushMs);
  if (producer_->outq_len() > 0 || callbacks_->failed_deliveries > 0) {
    return absl::UnavailableError(
        fmt::format("{} dead letter(s) not delivered to {}", batch.dead_letters.size(), options_.dead_letter_topic));
  }
  return absl::OkStatus();
}

absl::Status UserEventConsumer::Commit(const EventBatch& batch) {
  std::vector<RdKafka::TopicPartition*> offsets;
  for (const auto& [partition, next] : batch.commit_offsets) {
    if (assigned_.contains(partition))
      offsets.push_back(RdKafka::TopicPartition::create(options_.topic, partition, next));
  }
  if (offsets.empty()) return absl::OkStatus();
  RdKafka::ErrorCode err = consumer_->commitSync(offsets);
  for (const RdKafka::TopicPartition* p : offsets) {
    if (err == RdKafka::ERR_NO_ERROR && p->err() != RdKafka::ERR_NO_ERROR) err = p->err();
  }
  RdKafka::TopicPartition::destroy(offsets);
  if (err != RdKafka::ERR_NO_ERROR) return absl::UnavailableError("offset commit: " + RdKafka::err2str(err));
  return absl::OkStatus();
}

void UserEventConsumer::WaitPolling(absl::Duration delay) {
  SetPaused(true);
  const absl::Time until = absl::Now() + delay;
  for (absl::Duration left = delay; !stopping() && left > absl::ZeroDuration(); left = until - absl::Now()) {
    const int timeout_ms = static_cast<int>(std::clamp<int64_t>(absl::ToInt64Milliseconds(left), 1, kIdlePollMs));
    std::unique_ptr<RdKafka::Message> message(consumer_->consume(timeout_ms));
    // Paused partitions return nothing; a partition assigned meanwhile is
    // paused in the rebalance callback. Kept, in order, just in case.
    if (message->err() == RdKafka::ERR_NO_ERROR) overflow_.push_back(ToRecord(*message));
  }
}

void UserEventConsumer::SetPaused(bool paused) {
  if (paused == paused_) return;
  paused_ = paused;
  std::vector<RdKafka::TopicPartition*> partitions;
  consumer_->assignment(partitions);
  if (paused) {
    consumer_->pause(partitions);
  } else {
    consumer_->resume(partitions);
  }
  RdKafka::TopicPartition::destroy(partitions);
}

void UserEventConsumer::OnAssigned(const std::vector<int32_t>& partitions) {
  assigned_.insert(partitions.begin(), partitions.end());
  log::Info("user events: assigned partitions [{}] of {}", fmt::join(partitions, ","), options_.topic);
}

void UserEventConsumer::OnRevoked(const std::vector<int32_t>& partitions) {
  const std::set<int32_t> revoked(partitions.begin(), partitions.end());
  for (int32_t p : revoked) assigned_.erase(p);
  // Unfinished work of those partitions is left to their next owner, which
  // starts from the last committed offset.
  auto of_revoked = [&](const EventRecord& r) { return revoked.contains(r.partition); };
  pending_.erase(std::remove_if(pending_.begin(), pending_.end(), of_revoked), pending_.end());
  overflow_.erase(std::remove_if(overflow_.begin(), overflow_.end(), of_revoked), overflow_.end());
  log::Info("user events: revoked partitions [{}] of {}", fmt::join(partitions, ","), options_.topic);
}

}  // namespace segments::ingest
