#include "readmodel/membership_read_model.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <chrono>
#include <optional>
#include <utility>

#include "common/log.h"
#include "common/status_macros.h"

namespace segments::readmodel {
namespace {

int64_t SteadyNanos() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

MembershipReadModel::MembershipReadModel(ChangeFeed& feed, domain::MembershipQueries& database,
                                         ReadModelOptions options)
    : feed_(feed),
      database_(database),
      options_(std::move(options)),
      wake_fd_(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {}

MembershipReadModel::~MembershipReadModel() {
  Stop();
  if (wake_fd_ >= 0) close(wake_fd_);
}

void MembershipReadModel::Start() {
  thread_ = std::thread([this] { Run(); });
  reaper_ = std::thread([this] { RunReaper(); });
  sweeper_ = std::thread([this] { RunSweeper(); });
}

void MembershipReadModel::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  Wake();
  if (thread_.joinable()) thread_.join();
  if (reaper_.joinable()) reaper_.join();
  if (sweeper_.joinable()) sweeper_.join();
  SetState(State::kDown);
  ReleaseWaiters();
}

void MembershipReadModel::Wake() const {
  const uint64_t one = 1;
  // A full counter (never, in practice) already wakes the thread.
  (void)!write(wake_fd_, &one, sizeof one);
}

bool MembershipReadModel::FreshEnough() const {
  return SteadyNanos() - look_started_ns_.load(std::memory_order_acquire) <= absl::ToInt64Nanoseconds(options_.max_lag);
}

std::optional<std::vector<std::string>> MembershipReadModel::ActiveSegmentSlugsAtOnce(const domain::UserId& user,
                                                                                      absl::Time now) {
  const uint64_t epoch = epoch_.load(std::memory_order_acquire);
  if (epoch % 2 == 0 || !FreshEnough()) return std::nullopt;
  thread_local std::vector<uint32_t> ids;
  ids.clear();
  table_.LiveSegments(user, absl::ToUnixMicros(now), ids);
  std::vector<std::string> slugs;
  slugs.reserve(ids.size());
  {
    absl::ReaderMutexLock lock(&catalog_mu_);
    for (uint32_t id : ids) {
      // A segment the catalog lacks is being created or deleted in the
      // look being applied: left out, as before that look.
      if (auto it = slugs_.find(id); it != slugs_.end()) slugs.push_back(it->second);
    }
  }
  // Serving all along: the table was not being reloaded meanwhile.
  if (epoch_.load(std::memory_order_acquire) != epoch) return std::nullopt;
  memory_reads_.fetch_add(1, std::memory_order_relaxed);
  return slugs;
}

absl::StatusOr<std::vector<std::string>> MembershipReadModel::ActiveSegmentSlugs(const domain::UserId& user,
                                                                                 absl::Time now) {
  if (std::optional<std::vector<std::string>> slugs = ActiveSegmentSlugsAtOnce(user, now)) return *std::move(slugs);
  database_reads_.fetch_add(1, std::memory_order_relaxed);
  return database_.ActiveSegmentSlugs(user, now);
}

void MembershipReadModel::AwaitCommitted() {
  absl::MutexLock lock(&mu_);
  // Down: reads go to the database, and serving starts only with a look
  // begun after this (SetState).
  if (state_ == State::kDown || stopping_) return;
  const uint64_t ticket = ++requested_;
  const uint64_t session = session_;
  announce_ = true;
  Wake();
  auto done = [&]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return applied_ >= ticket || session_ != session || stopping_; };
  // After max_lag, a read would not use a look older than this commit.
  mu_.AwaitWithTimeout(absl::Condition(&done), options_.max_lag);
}

void MembershipReadModel::WhenCommittedVisible(absl::AnyInvocable<void() &&> done) {
  {
    absl::MutexLock lock(&mu_);
    if (state_ != State::kDown && !stopping_) {
      waiters_.push_back(
          {++requested_, session_, SteadyNanos() + absl::ToInt64Nanoseconds(options_.max_lag), std::move(done)});
      announce_ = true;
      Wake();
      return;
    }
  }
  std::move(done)();
}

void MembershipReadModel::ReleaseWaiters() {
  std::vector<absl::AnyInvocable<void() &&>> due;
  {
    absl::MutexLock lock(&mu_);
    const int64_t now = SteadyNanos();
    while (!waiters_.empty()) {
      Waiter& first = waiters_.front();
      if (first.ticket > applied_ && first.session == session_ && first.deadline_ns > now && !stopping_) {
        // Later tickets are not applied either, and their deadlines are later.
        break;
      }
      due.push_back(std::move(first.done));
      waiters_.pop_front();
    }
  }
  for (auto& done : due) std::move(done)();
}

void MembershipReadModel::RunReaper() {
  // A look normally releases its writers; this catches those whose look is
  // late, a tenth of max_lag after their deadline at most.
  const absl::Duration period = options_.max_lag / 10;
  for (;;) {
    {
      absl::MutexLock lock(&mu_);
      if (mu_.AwaitWithTimeout(absl::Condition(&stopping_), period)) return;
    }
    ReleaseWaiters();
  }
}

void MembershipReadModel::RunSweeper() {
  for (;;) {
    std::vector<uint32_t> gone;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return stopping_ || !to_sweep_.empty(); };
      mu_.Await(absl::Condition(&ready));
      if (stopping_) return;
      gone.swap(to_sweep_);
    }
    table_.ReplaceSegments(gone, {});
  }
}

void MembershipReadModel::SetState(State state) {
  bool serving_changed = false;
  bool stopping = false;
  {
    absl::MutexLock lock(&mu_);
    stopping = stopping_;
    if (state_ == state) return;
    serving_changed = state_ == State::kServing || state == State::kServing;
    if (serving_changed) epoch_.fetch_add(1, std::memory_order_acq_rel);
    if (state == State::kDown) ++session_;
    state_ = state;
  }
  if (state == State::kDown) ReleaseWaiters();
  if (!serving_changed) return;
  if (state == State::kServing) {
    log::Info("membership read model is serving: reads come from memory");
  } else if (!stopping) {
    log::Warning("membership read model stopped serving: reads go to the database");
  }
  if (options_.on_serving_change) options_.on_serving_change(state == State::kServing);
}

void MembershipReadModel::Run() {
  for (;;) {
    absl::Status status = Follow();
    SetState(State::kDown);
    feed_.Disconnect();
    absl::MutexLock lock(&mu_);
    if (stopping_) return;
    log::Warning("membership read model lost the database ({}); trying again", status.ToString());
    mu_.AwaitWithTimeout(absl::Condition(&stopping_), options_.reconnect_backoff);
    if (stopping_) return;
  }
}

absl::Status MembershipReadModel::Follow() {
  RETURN_IF_ERROR(feed_.Connect());
  bool continues =
      last_look_ok_ns_ != 0 && SteadyNanos() - last_look_ok_ns_ < absl::ToInt64Nanoseconds(options_.keep_changes / 2);
  if (continues) {
    ASSIGN_OR_RETURN(continues, feed_.CanContinue());
  }
  if (!continues) RETURN_IF_ERROR(LoadAll());
  // Writers wait from here on; those that did not wait committed before
  // the next look starts, which is the one that makes the model serve.
  SetState(State::kCatchingUp);
  absl::Time next_prune = absl::Now() + options_.prune_period;
  for (;;) {
    RETURN_IF_ERROR(Look());
    ASSIGN_OR_RETURN(bool announced, feed_.AwaitAnnouncement(options_.poll_period, wake_fd_));
    (void)announced;  // every wake-up leads to a look
    uint64_t drained = 0;
    (void)!read(wake_fd_, &drained, sizeof drained);
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) return absl::OkStatus();
    }
    if (absl::Now() >= next_prune) {
      next_prune = absl::Now() + options_.prune_period;
      RETURN_IF_ERROR(feed_.Prune(options_.keep_changes));
    }
  }
}

absl::Status MembershipReadModel::LoadAll() {
  const absl::Time started = absl::Now();
  table_.Clear();
  std::optional<domain::UserId> current;
  std::vector<HeldMembership> held;
  ASSIGN_OR_RETURN(SegmentCatalog catalog, feed_.LoadAll([&](const domain::UserId& user, HeldMembership m) {
    if (current && *current != user) {
      table_.Replace(*current, held);
      held.clear();
    }
    current.emplace(user);
    held.push_back(m);
  }));
  if (current) table_.Replace(*current, held);
  {
    absl::MutexLock lock(&catalog_mu_);
    slugs_ = {catalog.begin(), catalog.end()};
  }
  full_loads_.fetch_add(1, std::memory_order_relaxed);
  log::Info("membership read model loaded {} memberships of {} users in {}", table_.memberships(), table_.users(),
            absl::FormatDuration(absl::Now() - started));
  return absl::OkStatus();
}

absl::Status MembershipReadModel::Look() {
  uint64_t covers = 0;
  bool announce = false;
  {
    absl::MutexLock lock(&mu_);
    covers = requested_;
    announce = announce_;
    announce_ = false;
  }
  // Everything the covered writers committed is in the database already:
  // other instances may look at once, beside this one.
  if (announce) RETURN_IF_ERROR(feed_.Announce());
  const int64_t started = SteadyNanos();
  ASSIGN_OR_RETURN(FeedChanges changes, feed_.Poll());
  if (changes.reload_all) {
    // Memberships were truncated (or the server changed): stop serving,
    // load everything, and serve again after the next look.
    log::Info("membership read model: everything changed at once; loading everything again");
    SetState(State::kDown);
    RETURN_IF_ERROR(LoadAll());
    SetState(State::kCatchingUp);
    return absl::OkStatus();
  }
  RETURN_IF_ERROR(Apply(std::move(changes)));
  look_started_ns_.store(started, std::memory_order_release);
  last_look_ok_ns_ = SteadyNanos();
  {
    absl::MutexLock lock(&mu_);
    applied_ = std::max(applied_, covers);
  }
  SetState(State::kServing);
  ReleaseWaiters();
  return absl::OkStatus();
}

absl::Status MembershipReadModel::Apply(FeedChanges changes) {
  if (!changes.empty()) {
    last_change_unix_ns_.store(absl::ToUnixNanos(absl::Now()), std::memory_order_relaxed);
  }
  if (!changes.segments.empty()) table_.ReplaceSegments(changes.segments, std::move(changes.segment_rows));
  for (const auto& [user, m] : changes.range_rows) table_.Put(user, m);
  if (!changes.users.empty()) {
    absl::flat_hash_map<domain::UserId, std::vector<HeldMembership>> now_held;
    for (const auto& [user, m] : changes.user_rows) now_held[user].push_back(m);
    for (const domain::UserId& user : changes.users) {
      auto it = now_held.find(user);
      table_.Replace(user, it == now_held.end() ? absl::Span<const HeldMembership>() : absl::MakeConstSpan(it->second));
    }
  }
  if (changes.catalog) {
    absl::flat_hash_map<uint32_t, std::string> slugs(changes.catalog->begin(), changes.catalog->end());
    std::vector<uint32_t> gone;  // deleted: no note tells of their memberships' end (db/schema.sql, migration 9)
    {
      absl::MutexLock lock(&catalog_mu_);
      for (const auto& [id, slug] : slugs_) {
        if (!slugs.contains(id)) gone.push_back(id);
      }
      slugs_ = std::move(slugs);
    }
    if (!gone.empty()) {
      absl::MutexLock lock(&mu_);
      to_sweep_.insert(to_sweep_.end(), gone.begin(), gone.end());
    }
  }
  return absl::OkStatus();
}

MembershipReadModel::Stats MembershipReadModel::stats() const {
  Stats s;
  s.memory_reads = memory_reads_.load(std::memory_order_relaxed);
  s.database_reads = database_reads_.load(std::memory_order_relaxed);
  s.full_loads = full_loads_.load(std::memory_order_relaxed);
  s.users = table_.users();
  s.memberships = table_.memberships();
  s.memory_bytes = table_.MemoryBytes();
  if (const int64_t started = look_started_ns_.load(std::memory_order_acquire); started != 0) {
    s.look_age = absl::Nanoseconds(SteadyNanos() - started);
  }
  s.last_change_applied = absl::FromUnixNanos(last_change_unix_ns_.load(std::memory_order_relaxed));
  return s;
}

}  // namespace segments::readmodel
