// segments-grpc-load: a gRPC load generator for segments-server.
//
// Keeps --concurrency calls in flight over --channels connections with the
// callback client API: each in-flight "slot" issues its next call from the
// completion callback of the previous one (closed loop). With --rate=R it
// runs open loop instead: calls are due at R per second whatever the server
// does, each goes to a free slot (at most --concurrency in flight) or waits
// for one, and its latency counts from when it was due, so a stall of the
// server shows in every call due meanwhile (not only in the few in flight).
// Every mode runs --warmup, then --duration; calls that *start* (are due)
// inside the measured window are recorded (all of them, including those
// that finish during the drain), and every latency sample is kept, so
// percentiles are exact. --latency-log writes every measured call (start,
// latency, status) for windows of the caller's choosing. SIGINT or SIGTERM
// ends the measured window of the running mode early (the summary is still
// printed; later modes are skipped); a second one kills.
//
// Modes (--mode, comma-separated list, run in order):
//   health  grpc.health.v1.Health/Check through a generic stub (empty request)
//   get     GetUserSegments for uniformly random seeded users
//   update  UpdateUserSegments: each slot owns a disjoint stripe of users
//           (--update-stripe of them, default 100) and walks it, adding the
//           toggle segment on the first pass, removing it on the next, and so
//           on; no two in-flight calls touch the same user and every call is
//           expected to succeed on a freshly seeded database. Short stripes
//           give a run both adds and removes. With --update-users=random
//           each call picks a uniformly random seeded user that no call in
//           flight has, and adds the toggle segment if the loader believes
//           the user is not in it (nobody is at the start), removes it
//           otherwise.
//   create-user  UserAdminService.CreateUser of a new user each call (decimal
//           ids from --new-user-base up, one stripe per slot): the write a
//           user event makes, evaluated against every automatic segment.
//
// Seeded users are derived from their index i in [0, --users):
//   00000000-0000-4000-8000-%012x
// so the loader needs no database access (see bench/seed.sql).
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <sys/resource.h>

#include <signal.h>

#include <absl/strings/str_split.h>
#include <absl/synchronization/mutex.h>
#include <absl/time/time.h>
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <deque>
#include <fstream>
#include <future>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "bearer_token.h"
#include "flags.h"
#include "segmentation/v1/segment_service.grpc.pb.h"
#include "segmentation/v1/user_admin_service.grpc.pb.h"

namespace {

namespace v1 = segmentation::v1;
using Clock = std::chrono::steady_clock;

constexpr char kHealthMethod[] = "/grpc.health.v1.Health/Check";
constexpr int kStatusCodes = 17;  // grpc::StatusCode 0..16

// Set by SIGINT/SIGTERM: end the running mode's measured window now.
std::atomic<bool> g_stop{false};
static_assert(std::atomic<bool>::is_always_lock_free);
extern "C" void OnStopSignal(int /*signal*/) { g_stop.store(true); }

enum class Mode { kHealth, kGet, kUpdate, kCreateUser };

std::string_view ModeName(Mode m) {
  switch (m) {
    case Mode::kHealth:
      return "health";
    case Mode::kGet:
      return "get";
    case Mode::kUpdate:
      return "update";
    case Mode::kCreateUser:
      return "create-user";
  }
  return "?";
}

std::string_view CodeName(int code) {
  static constexpr std::array<std::string_view, kStatusCodes> kNames = {
      "OK",        "CANCELLED",       "UNKNOWN",           "INVALID_ARGUMENT",   "DEADLINE_EXCEEDED",
      "NOT_FOUND", "ALREADY_EXISTS",  "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
      "ABORTED",   "OUT_OF_RANGE",    "UNIMPLEMENTED",     "INTERNAL",           "UNAVAILABLE",
      "DATA_LOSS", "UNAUTHENTICATED",
  };
  return code >= 0 && code < kStatusCodes ? kNames[static_cast<size_t>(code)] : "?";
}

struct Options {
  std::string target = "127.0.0.1:50051";
  std::vector<Mode> modes;
  int concurrency = 64;
  int channels = 2;
  absl::Duration duration = absl::Seconds(10);
  absl::Duration warmup = absl::Seconds(2);
  absl::Duration timeout = absl::Seconds(10);
  absl::Duration wait_serving = absl::ZeroDuration();
  uint64_t users = 100'000;
  uint64_t update_stripe = 100;
  bool random_users = false;
  double rate = 0;  // calls due per second; 0: closed loop
  std::string latency_log;
  std::string toggle_slug = "BENCH_TOGGLE";
  std::string segment_prefix = "BENCH_";
  int expect_segments = 5;
  int64_t toggle_ttl_seconds = 3600;
  double max_error_rate = 0.001;
  std::string csv;
  uint64_t seed = 1;
  uint64_t new_user_base = 900'000'000'000;
};

constexpr char kUsage[] = R"(Usage: segments-grpc-load [--flag=value ...]

  --target=HOST:PORT        server address (default 127.0.0.1:50051)
  --mode=LIST               comma-separated modes run in order: health, get, update,
                            create-user (default health,get,update)
  --concurrency=N           calls in flight (default 64)
  --channels=N              gRPC channels, each its own connection (default 2)
  --warmup=DUR              unmeasured time before each mode (default 2s)
  --duration=DUR            measured time of each mode (default 10s)
  --timeout=DUR             deadline of each call (default 10s)
  --wait-serving=DUR        first wait up to DUR for health SERVING (default: don't)
  --users=N                 seeded users 0..N-1 (default 100000)
  --expect-segments=N       get: BENCH_1..BENCH_N must be returned; 0 = don't check (default 5)
  --update-stripe=N         update: users each in-flight slot walks, adding BENCH_TOGGLE on the
                            first pass and removing it on the next (default 100; 0 = all
                            users split between the slots)
  --update-users=HOW        update: stripes (default, as above) or random (a random user not in
                            flight each call, toggled by what the loader knows of it)
  --rate=R                  open loop: R calls due per second, at most --concurrency in flight,
                            latency counted from when a call was due (default 0: closed loop)
  --latency-log=FILE        append one line per measured call to FILE: mode, start (Unix time,
                            us; when due with --rate), latency (us), status (OK, a gRPC code
                            name, or BAD_RESPONSE)
  --toggle-slug=SLUG        update: segment added and removed (default BENCH_TOGGLE)
  --toggle-ttl=SECONDS      update: secondsToBeInSegment on add (default 3600)
  --max-error-rate=F        exit 1 if errors exceed this share of calls (default 0.001)
  --csv=FILE                also append one CSV row per mode to FILE: mode,calls,errors,rps,
                            p50_us,p90_us,p99_us,max_us,client_cpu_cores,errors_by_code
  --seed=N                  random seed for get (default 1)
  --new-user-base=N         create-user: new users' decimal ids start here, slot k creating
                            N + k, N + k + concurrency, ... (default 900000000000)

Exit status: 0 ok, 1 too many errors (or no call measured), 2 bad usage or server not reachable.
)";

std::optional<Options> ParseOptions(int argc, char** argv) {
  Options o;
  std::string modes = "health,get,update";
  std::string update_users = "stripes";
  auto positive = [](int v) { return v > 0; };
  auto not_negative = [](absl::Duration d) { return d >= absl::ZeroDuration(); };
  auto above_zero = [](absl::Duration d) { return d > absl::ZeroDuration(); };
  segments::bench::Flags flags("segments-grpc-load", kUsage);
  flags.String("target", &o.target)
      .String("mode", &modes)
      .Int("concurrency", &o.concurrency, positive)
      .Int("channels", &o.channels, positive)
      .Duration("duration", &o.duration, above_zero)
      .Duration("warmup", &o.warmup, not_negative)
      .Duration("timeout", &o.timeout, above_zero)
      .Duration("wait-serving", &o.wait_serving, not_negative)
      .Int("users", &o.users, [](uint64_t v) { return v > 0 && v <= (uint64_t{1} << 48); })
      .Int("update-stripe", &o.update_stripe)
      .String("update-users", &update_users, [](const std::string& v) { return v == "stripes" || v == "random"; })
      .Double("rate", &o.rate, [](double v) { return v >= 0 && v <= 1e6; })
      .String("latency-log", &o.latency_log)
      .Int("expect-segments", &o.expect_segments, [](int v) { return v >= 0; })
      .String("toggle-slug", &o.toggle_slug, [](const std::string& v) { return !v.empty(); })
      .Int("toggle-ttl", &o.toggle_ttl_seconds, [](int64_t v) { return v > 0; })
      .Double("max-error-rate", &o.max_error_rate, [](double v) { return v >= 0; })
      .String("csv", &o.csv)
      .Int("seed", &o.seed)
      .Int("new-user-base", &o.new_user_base);
  if (!flags.Parse(argc, argv)) return std::nullopt;
  o.random_users = update_users == "random";
  for (absl::string_view m : absl::StrSplit(modes, ',', absl::SkipEmpty())) {
    if (m == "health") {
      o.modes.push_back(Mode::kHealth);
    } else if (m == "get") {
      o.modes.push_back(Mode::kGet);
    } else if (m == "create-user") {
      o.modes.push_back(Mode::kCreateUser);
    } else if (m == "update") {
      o.modes.push_back(Mode::kUpdate);
    } else {
      std::fprintf(stderr, "segments-grpc-load: unknown mode '%s'\n", std::string(m).c_str());
      return std::nullopt;
    }
  }
  if (o.modes.empty()) {
    std::fprintf(stderr, "segments-grpc-load: --mode lists no mode\n");
    return std::nullopt;
  }
  const bool updates = std::find(o.modes.begin(), o.modes.end(), Mode::kUpdate) != o.modes.end();
  if (updates && o.random_users && static_cast<uint64_t>(o.concurrency) * 2 > o.users) {
    std::fprintf(stderr, "segments-grpc-load: update with random users needs --concurrency x 2 <= --users\n");
    return std::nullopt;
  }
  if (updates && !o.random_users &&
      (static_cast<uint64_t>(o.concurrency) > o.users ||
       o.update_stripe * static_cast<uint64_t>(o.concurrency) > o.users)) {
    std::fprintf(stderr, "segments-grpc-load: update needs --concurrency x --update-stripe <= --users\n");
    return std::nullopt;
  }
  return o;
}

std::string UserId(uint64_t index) { return fmt::format("00000000-0000-4000-8000-{:012x}", index); }

// A valid zero-length message: HealthCheckRequest{service: ""} serializes to
// no bytes. (A default-constructed ByteBuffer holds no buffer at all.)
grpc::ByteBuffer EmptyMessage() {
  grpc::Slice empty;
  return grpc::ByteBuffer(&empty, 1);
}

// HealthCheckResponse{status: SERVING} is field 1 varint 1.
bool IsServing(const grpc::ByteBuffer& response) {
  std::vector<grpc::Slice> slices;
  if (!response.Dump(&slices).ok()) return false;
  std::string bytes;
  for (const grpc::Slice& s : slices) bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  return bytes == std::string_view("\x08\x01", 2);
}

double CpuSeconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  auto secs = [](const timeval& t) { return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6; };
  return secs(u.ru_utime) + secs(u.ru_stime);
}

// One measured call, for --latency-log.
struct CallRecord {
  Clock::time_point start;  // when it was due with --rate
  int64_t latency_ns = 0;
  int code = 0;  // grpc::StatusCode, or kStatusCodes: OK but a wrong answer
};

// What one slot saw in the measured window.
struct Stats {
  std::vector<int64_t> latencies_ns;  // one per measured call, OK or not
  std::vector<CallRecord> calls;      // the same calls, with --latency-log only
  std::array<uint64_t, kStatusCodes> by_code{};
  uint64_t bad_responses = 0;  // OK status, wrong content (health not SERVING, wrong segments)
  uint64_t adds = 0;           // update: measured calls that added / removed the toggle
  uint64_t removes = 0;

  void Merge(const Stats& other) {
    latencies_ns.insert(latencies_ns.end(), other.latencies_ns.begin(), other.latencies_ns.end());
    calls.insert(calls.end(), other.calls.begin(), other.calls.end());
    for (size_t i = 0; i < by_code.size(); ++i) by_code[i] += other.by_code[i];
    bad_responses += other.bad_responses;
    adds += other.adds;
    removes += other.removes;
  }
};

struct Connection {
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<v1::SegmentService::Stub> segments;
  std::unique_ptr<v1::UserAdminService::Stub> users;
  std::unique_ptr<grpc::GenericStub> generic;
};

class ModeRun;

// One call in flight at a time; its callback issues the next one, so the
// slot's state is only ever touched by one thread at a time.
class Slot {
 public:
  Slot(ModeRun& run, int index);
  // The next call; `due`: when it was due (--rate), else it starts now.
  void Issue(std::optional<Clock::time_point> due = std::nullopt);
  Stats& stats() { return stats_; }

 private:
  void OnDone(const grpc::Status& status);
  bool ResponseOk() const;

  ModeRun& run_;
  const Connection& conn_;
  std::unique_ptr<grpc::ClientContext> ctx_;
  Clock::time_point started_;
  Stats stats_;

  grpc::ByteBuffer health_request_ = EmptyMessage();
  grpc::ByteBuffer health_response_;
  v1::GetUserSegmentsRequest get_request_;
  v1::GetUserSegmentsResponse get_response_;
  v1::UpdateUserSegmentsRequest update_request_;
  v1::UpdateUserSegmentsResponse update_response_;
  v1::CreateUserRequest create_user_request_;
  v1::CreateUserResponse create_user_response_;

  std::mt19937_64 rng_;
  // update: this slot's users are [stripe_begin_, stripe_end_).
  uint64_t stripe_begin_ = 0;
  uint64_t stripe_end_ = 0;
  uint64_t next_user_ = 0;
  bool adding_ = true;
  uint64_t user_ = 0;     // update: the user of the call in flight
  uint64_t created_ = 0;  // create-user: users this slot created
  int index_ = 0;
};

class ModeRun {
 public:
  ModeRun(const Options& options, Mode mode, const std::vector<Connection>& conns)
      : options_(options), mode_(mode), conns_(conns) {
    for (int k = 1; k <= options.expect_segments; ++k) {
      expected_.push_back(fmt::format("{}{}", options.segment_prefix, k));
    }
    if (mode == Mode::kUpdate && options.random_users) user_state_.assign(options.users, 0);
  }

  struct Result {
    Stats stats;
    double measured_seconds = 0;
    double client_cpu = 0;  // loader CPU seconds per wall second, whole mode
    bool stopped = false;   // a signal ended the measured window early
    // --rate: the most calls that were due and waited for a free slot at
    // once, and those never sent because a signal came first.
    uint64_t max_waiting = 0;
    uint64_t dropped = 0;
    // To convert Clock times to Unix time: the same instant on both clocks.
    Clock::time_point clock_at;
    std::chrono::system_clock::time_point system_at;
  };

  Result Run() {
    Result result;
    const double cpu_before = CpuSeconds();
    const Clock::time_point begin = Clock::now();
    result.clock_at = begin;
    result.system_at = std::chrono::system_clock::now();
    measure_start_ = begin + absl::ToChronoNanoseconds(options_.warmup);
    measure_end_ = measure_start_ + absl::ToChronoNanoseconds(options_.duration);
    for (int i = 0; i < options_.concurrency; ++i) slots_.push_back(std::make_unique<Slot>(*this, i));
    std::optional<Clock::time_point> stopped_at;
    if (options_.rate > 0) {
      stopped_at = Pace(begin);
    } else {
      active_.store(options_.concurrency);
      for (auto& slot : slots_) slot->Issue();
    }
    {
      absl::MutexLock lock(&mu_);
      while (!mu_.AwaitWithTimeout(absl::Condition(&all_done_), absl::Milliseconds(10))) {
        if (!g_stop.load() || stopped_at) continue;
        // Closed loop: each slot stops after its call in flight. Open loop:
        // calls still waiting for a slot are not sent.
        stopped_at = Clock::now();
        dropped_ += backlog_.size();
        backlog_.clear();
      }
      result.max_waiting = max_waiting_;
      result.dropped = dropped_;
    }
    const Clock::time_point end = Clock::now();
    for (auto& slot : slots_) result.stats.Merge(slot->stats());
    result.measured_seconds = absl::ToDoubleSeconds(options_.duration);
    if (stopped_at && *stopped_at < measure_end_) {
      result.stopped = true;
      result.measured_seconds = std::max(0.0, std::chrono::duration<double>(*stopped_at - measure_start_).count());
    }
    result.client_cpu = (CpuSeconds() - cpu_before) / std::chrono::duration<double>(end - begin).count();
    return result;
  }

  // Closed loop: a slot is done.
  void SlotFinished() {
    if (active_.fetch_sub(1) == 1) {
      absl::MutexLock lock(&mu_);
      all_done_ = true;
    }
  }

  // Open loop: when the call due next on `slot` was due, or nullopt when
  // none waits (the slot is then free, and `slot` may be in use by another
  // thread as soon as this returns).
  std::optional<Clock::time_point> NextDue(Slot* slot) {
    absl::MutexLock lock(&mu_);
    if (!backlog_.empty()) {
      const Clock::time_point due = backlog_.front();
      backlog_.pop_front();
      return due;
    }
    free_.push_back(slot);
    if (!pacing_ && free_.size() == slots_.size()) all_done_ = true;
    return std::nullopt;
  }

  // update with random users: a user no call in flight has, and whether to
  // add the toggle segment (else remove it).
  uint64_t PickUser(std::mt19937_64& rng, bool* adding) {
    std::uniform_int_distribution<uint64_t> pick(0, options_.users - 1);
    absl::MutexLock lock(&users_mu_);
    for (;;) {
      const uint64_t user = pick(rng);
      uint8_t& state = user_state_[user];
      if ((state & kBusy) != 0) continue;
      state |= kBusy;
      *adding = (state & kMember) == 0;
      return user;
    }
  }
  // ... and what the call did to it: an add refused as "already in the
  // segment" tells that the user is a member; any other failure leaves the
  // loader's belief as it was.
  void UserDone(uint64_t user, bool adding, const grpc::Status& status) {
    absl::MutexLock lock(&users_mu_);
    uint8_t& state = user_state_[user];
    if (status.ok()) {
      state = adding ? kMember : 0;
    } else if (adding && status.error_code() == grpc::StatusCode::FAILED_PRECONDITION) {
      state = kMember;
    } else {
      state &= static_cast<uint8_t>(~kBusy);
    }
  }

  // True once per status code (kStatusCodes: bad response) and run, so only
  // the first problem of each kind is printed.
  bool FirstOf(int code) { return !reported_[static_cast<size_t>(code)].exchange(true); }

  const Options& options() const { return options_; }
  Mode mode() const { return mode_; }
  // get: the slugs every seeded user must have, in order.
  const std::vector<std::string>& expected() const { return expected_; }
  const Connection& connection(int slot) const { return conns_[static_cast<size_t>(slot) % conns_.size()]; }
  Clock::time_point measure_start() const { return measure_start_; }
  Clock::time_point measure_end() const { return measure_end_; }

 private:
  static constexpr uint8_t kMember = 1;
  static constexpr uint8_t kBusy = 2;

  // Open loop: makes calls due at --rate from `begin` to the end of the
  // measured window (or a signal, whose time it returns), each on a free
  // slot or, if none is, queued for the next slot that finishes.
  std::optional<Clock::time_point> Pace(Clock::time_point begin) {
    {
      absl::MutexLock lock(&mu_);
      for (auto& slot : slots_) free_.push_back(slot.get());
      pacing_ = true;
    }
    const auto interval =
        std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(1.0 / options_.rate));
    std::optional<Clock::time_point> stopped_at;
    for (Clock::time_point due = begin; due < measure_end_; due += interval) {
      // Short sleeps, so that a signal is seen within 10 ms.
      Clock::time_point now = Clock::now();
      while (due > now && !g_stop.load()) {
        std::this_thread::sleep_until(std::min(due, now + std::chrono::milliseconds(10)));
        now = Clock::now();
      }
      if (g_stop.load()) {
        stopped_at = now;
        break;
      }
      Slot* slot = nullptr;
      {
        absl::MutexLock lock(&mu_);
        if (free_.empty()) {
          backlog_.push_back(due);
          max_waiting_ = std::max<uint64_t>(max_waiting_, backlog_.size());
        } else {
          slot = free_.back();
          free_.pop_back();
        }
      }
      if (slot != nullptr) slot->Issue(due);
    }
    absl::MutexLock lock(&mu_);
    pacing_ = false;
    if (stopped_at) {
      dropped_ += backlog_.size();
      backlog_.clear();
    }
    if (backlog_.empty() && free_.size() == slots_.size()) all_done_ = true;
    return stopped_at;
  }

  const Options& options_;
  const Mode mode_;
  const std::vector<Connection>& conns_;
  std::vector<std::string> expected_;
  Clock::time_point measure_start_;
  Clock::time_point measure_end_;
  std::vector<std::unique_ptr<Slot>> slots_;
  std::atomic<int> active_{0};
  std::array<std::atomic<bool>, kStatusCodes + 1> reported_{};
  absl::Mutex mu_;
  bool all_done_ ABSL_GUARDED_BY(mu_) = false;
  // Open loop.
  bool pacing_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<Slot*> free_ ABSL_GUARDED_BY(mu_);
  std::deque<Clock::time_point> backlog_ ABSL_GUARDED_BY(mu_);
  uint64_t max_waiting_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t dropped_ ABSL_GUARDED_BY(mu_) = 0;
  // update with random users: kMember | kBusy per user.
  absl::Mutex users_mu_;
  std::vector<uint8_t> user_state_ ABSL_GUARDED_BY(users_mu_);
};

Slot::Slot(ModeRun& run, int index)
    : run_(run),
      conn_(run.connection(index)),
      rng_(run.options().seed * 1'000'003 + static_cast<uint64_t>(index)),
      index_(index) {
  const Options& o = run.options();
  const auto slots = static_cast<uint64_t>(o.concurrency);
  const auto i = static_cast<uint64_t>(index);
  if (o.update_stripe == 0) {
    stripe_begin_ = o.users * i / slots;
    stripe_end_ = o.users * (i + 1) / slots;
  } else {
    stripe_begin_ = o.update_stripe * i;
    stripe_end_ = stripe_begin_ + o.update_stripe;
  }
  next_user_ = stripe_begin_;
}

void Slot::Issue(std::optional<Clock::time_point> due) {
  const Options& o = run_.options();
  ctx_ = std::make_unique<grpc::ClientContext>();
  ctx_->set_deadline(std::chrono::system_clock::now() + absl::ToChronoNanoseconds(o.timeout));
  segments::bench::AddBearerToken(*ctx_);
  auto done = [this](const grpc::Status& status) { OnDone(status); };
  switch (run_.mode()) {
    case Mode::kHealth:
      health_response_.Clear();
      started_ = due.value_or(Clock::now());
      conn_.generic->UnaryCall(ctx_.get(), kHealthMethod, grpc::StubOptions(), &health_request_, &health_response_,
                               std::move(done));
      break;
    case Mode::kGet: {
      std::uniform_int_distribution<uint64_t> pick(0, o.users - 1);
      get_request_.set_user_id(UserId(pick(rng_)));
      get_response_.Clear();
      started_ = due.value_or(Clock::now());
      conn_.segments->async()->GetUserSegments(ctx_.get(), &get_request_, &get_response_, std::move(done));
      break;
    }
    case Mode::kUpdate: {
      user_ = o.random_users ? run_.PickUser(rng_, &adding_) : next_user_;
      update_request_.set_user_id(UserId(user_));
      update_request_.clear_segments_to_add();
      update_request_.clear_segments_to_remove();
      if (adding_) {
        auto* add = update_request_.add_segments_to_add();
        add->set_segment_slug(o.toggle_slug);
        add->set_seconds_to_be_in_segment(o.toggle_ttl_seconds);
      } else {
        update_request_.add_segments_to_remove()->set_segment_slug(o.toggle_slug);
      }
      update_response_.Clear();
      started_ = due.value_or(Clock::now());
      conn_.segments->async()->UpdateUserSegments(ctx_.get(), &update_request_, &update_response_, std::move(done));
      break;
    }
    case Mode::kCreateUser: {
      const uint64_t id =
          o.new_user_base + static_cast<uint64_t>(index_) + created_++ * static_cast<uint64_t>(o.concurrency);
      create_user_request_.set_user_id(fmt::format("{}", id));
      create_user_response_.Clear();
      started_ = due.value_or(Clock::now());
      conn_.users->async()->CreateUser(ctx_.get(), &create_user_request_, &create_user_response_, std::move(done));
      break;
    }
  }
}

bool Slot::ResponseOk() const {
  const Options& o = run_.options();
  switch (run_.mode()) {
    case Mode::kHealth:
      return IsServing(health_response_);
    case Mode::kGet: {
      if (o.expect_segments == 0) return true;
      // Sorted by bytes: BENCH_1..BENCH_N, then BENCH_TOGGLE if the user has it.
      const int n = get_response_.segments_size();
      if (n != o.expect_segments && n != o.expect_segments + 1) return false;
      for (int k = 0; k < o.expect_segments; ++k) {
        if (get_response_.segments(k) != run_.expected()[static_cast<size_t>(k)]) return false;
      }
      return n == o.expect_segments || get_response_.segments(n - 1) == o.toggle_slug;
    }
    case Mode::kUpdate:
    case Mode::kCreateUser:
      return true;
  }
  return false;
}

void Slot::OnDone(const grpc::Status& status) {
  const Clock::time_point now = Clock::now();
  if (started_ >= run_.measure_start()) {
    if (run_.mode() == Mode::kUpdate) ++(adding_ ? stats_.adds : stats_.removes);
    const int64_t latency_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(now - started_).count();
    stats_.latencies_ns.push_back(latency_ns);
    int code = 0;
    if (!status.ok()) {
      code = static_cast<int>(status.error_code());
      if (code <= 0 || code >= kStatusCodes) code = static_cast<int>(grpc::StatusCode::UNKNOWN);
      ++stats_.by_code[static_cast<size_t>(code)];
      if (run_.FirstOf(code)) {
        std::fprintf(stderr, "segments-grpc-load: %s: first %s: %s\n", std::string(ModeName(run_.mode())).c_str(),
                     std::string(CodeName(code)).c_str(), status.error_message().c_str());
      }
    } else if (!ResponseOk()) {
      code = kStatusCodes;
      ++stats_.bad_responses;
      if (run_.FirstOf(kStatusCodes)) {
        const std::string what =
            run_.mode() == Mode::kGet ? "{" + get_response_.ShortDebugString() + "}" : "not SERVING";
        std::fprintf(stderr, "segments-grpc-load: %s: first unexpected response: %s\n",
                     std::string(ModeName(run_.mode())).c_str(), what.c_str());
      }
    } else {
      ++stats_.by_code[0];
    }
    if (!run_.options().latency_log.empty()) stats_.calls.push_back({started_, latency_ns, code});
  }
  if (run_.mode() == Mode::kUpdate) {
    if (run_.options().random_users) {
      run_.UserDone(user_, adding_, status);
    } else if (++next_user_ == stripe_end_) {
      // Advance even after a failure: the user's state is then unknown, and
      // a wrong guess shows up as FAILED_PRECONDITION on the next pass.
      next_user_ = stripe_begin_;
      adding_ = !adding_;
    }
  }
  if (run_.options().rate > 0) {
    // Open loop: the next call that is due already, or none (`this` may then
    // be in use by another thread).
    if (std::optional<Clock::time_point> due = run_.NextDue(this)) Issue(due);
    return;
  }
  if (now >= run_.measure_end() || g_stop.load()) {
    ctx_.reset();
    run_.SlotFinished();  // `this` may be gone after this call
    return;
  }
  Issue();
}

std::vector<Connection> Connect(const Options& o) {
  std::vector<Connection> conns;
  for (int i = 0; i < o.channels; ++i) {
    grpc::ChannelArguments args;
    // Distinct arguments and a local subchannel pool: one TCP connection each.
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    args.SetInt("segments.bench.channel", i);
    Connection c;
    c.channel = grpc::CreateCustomChannel(o.target, grpc::InsecureChannelCredentials(), args);
    c.segments = v1::SegmentService::NewStub(c.channel);
    c.users = v1::UserAdminService::NewStub(c.channel);
    c.generic = std::make_unique<grpc::GenericStub>(c.channel);
    conns.push_back(std::move(c));
  }
  return conns;
}

// One health check; nullopt when the call itself failed.
std::optional<bool> CheckHealth(const Connection& conn, absl::Duration timeout, std::string* error) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + absl::ToChronoNanoseconds(timeout));
  grpc::ByteBuffer request = EmptyMessage();
  grpc::ByteBuffer response;
  std::promise<grpc::Status> promise;
  std::future<grpc::Status> future = promise.get_future();
  conn.generic->UnaryCall(&ctx, kHealthMethod, grpc::StubOptions(), &request, &response,
                          [&promise](const grpc::Status& status) { promise.set_value(status); });
  const grpc::Status result = future.get();
  if (!result.ok()) {
    *error = fmt::format("{}: {}", CodeName(static_cast<int>(result.error_code())), result.error_message());
    return std::nullopt;
  }
  return IsServing(response);
}

bool WaitServing(const Connection& conn, absl::Duration limit) {
  const absl::Time deadline = absl::Now() + limit;
  std::string last = "no answer";
  for (;;) {
    std::string error;
    auto serving = CheckHealth(conn, absl::Seconds(1), &error);
    if (serving && *serving) return true;
    last = serving ? "NOT_SERVING" : error;
    if (absl::Now() >= deadline) break;
    absl::SleepFor(absl::Milliseconds(200));
  }
  std::fprintf(stderr, "segments-grpc-load: server not SERVING after %s (last: %s)\n",
               absl::FormatDuration(limit).c_str(), last.c_str());
  return false;
}

// Nearest-rank percentile of sorted samples, in microseconds.
double PercentileUs(const std::vector<int64_t>& sorted, double p) {
  if (sorted.empty()) return 0;
  const double rank = std::ceil(p / 100.0 * static_cast<double>(sorted.size()));
  const size_t idx = std::min(sorted.size() - 1, static_cast<size_t>(std::max(1.0, rank)) - 1);
  return static_cast<double>(sorted[idx]) / 1000.0;
}

}  // namespace

int main(int argc, char** argv) {
  auto parsed = ParseOptions(argc, argv);
  if (!parsed) return 2;
  // Debian's abseil is built without NDEBUG, so absl::Mutex deadlock
  // detection is on: every lock (gRPC's included) also updates a process-wide
  // graph under a global lock. A few percent of CPU the loader does not need.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  const Options& o = *parsed;
  // The first SIGINT/SIGTERM ends the running mode's window; a second one
  // kills as usual.
  struct sigaction stop {};
  stop.sa_handler = OnStopSignal;
  stop.sa_flags = SA_RESETHAND;
  sigemptyset(&stop.sa_mask);
  sigaction(SIGINT, &stop, nullptr);
  sigaction(SIGTERM, &stop, nullptr);

  std::vector<Connection> conns = Connect(o);
  for (const Connection& c : conns) {
    if (!c.channel->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(10))) {
      std::fprintf(stderr, "segments-grpc-load: cannot connect to %s\n", o.target.c_str());
      return 2;
    }
  }
  if (o.wait_serving > absl::ZeroDuration() && !WaitServing(conns.front(), o.wait_serving)) return 2;

  std::printf("target %s, concurrency %d, channels %d, warmup %s, duration %s, users %llu%s\n", o.target.c_str(),
              o.concurrency, o.channels, absl::FormatDuration(o.warmup).c_str(),
              absl::FormatDuration(o.duration).c_str(), static_cast<unsigned long long>(o.users),
              o.rate > 0 ? fmt::format(", open loop at {:g} calls/s", o.rate).c_str() : "");
  std::printf("%-7s %9s %7s %10s %9s %9s %9s %9s %8s  %s\n", "mode", "calls", "errors", "rps", "p50_us", "p90_us",
              "p99_us", "max_us", "cli_cpu", "errors_by_code");
  std::fflush(stdout);

  std::ofstream csv;
  if (!o.csv.empty()) {
    csv.open(o.csv, std::ios::app);
    if (!csv) {
      std::fprintf(stderr, "segments-grpc-load: cannot open %s\n", o.csv.c_str());
      return 2;
    }
  }
  std::ofstream latency_log;
  if (!o.latency_log.empty()) {
    latency_log.open(o.latency_log, std::ios::app);
    if (!latency_log) {
      std::fprintf(stderr, "segments-grpc-load: cannot open %s\n", o.latency_log.c_str());
      return 2;
    }
  }

  bool failed = false;
  // Kept until exit: a completion callback may still be returning (through
  // ModeRun::SlotFinished) when Run() does.
  std::vector<std::unique_ptr<ModeRun>> runs;
  for (Mode mode : o.modes) {
    runs.push_back(std::make_unique<ModeRun>(o, mode, conns));
    ModeRun::Result r = runs.back()->Run();
    const std::string name(ModeName(mode));
    if (latency_log) {
      std::vector<CallRecord>& records = r.stats.calls;
      std::sort(records.begin(), records.end(),
                [](const CallRecord& a, const CallRecord& b) { return a.start < b.start; });
      for (const CallRecord& c : records) {
        const auto since_begin = std::chrono::duration_cast<std::chrono::system_clock::duration>(c.start - r.clock_at);
        const int64_t unix_us =
            std::chrono::duration_cast<std::chrono::microseconds>((r.system_at + since_begin).time_since_epoch())
                .count();
        latency_log << fmt::format("{} {} {} {}\n", name, unix_us, c.latency_ns / 1000,
                                   c.code == kStatusCodes ? std::string_view("BAD_RESPONSE") : CodeName(c.code));
      }
      latency_log.flush();
    }
    std::vector<int64_t>& lat = r.stats.latencies_ns;
    std::sort(lat.begin(), lat.end());
    const uint64_t calls = lat.size();
    uint64_t errors = r.stats.bad_responses;
    std::string by_code;
    for (int code = 1; code < kStatusCodes; ++code) {
      const uint64_t n = r.stats.by_code[static_cast<size_t>(code)];
      if (n == 0) continue;
      errors += n;
      by_code += fmt::format("{}{}={}", by_code.empty() ? "" : " ", CodeName(code), n);
    }
    if (r.stats.bad_responses > 0) {
      by_code += fmt::format("{}BAD_RESPONSE={}", by_code.empty() ? "" : " ", r.stats.bad_responses);
    }
    if (by_code.empty()) by_code.push_back('-');  // (operator= trips GCC 12 -Wrestrict)
    const double rps = r.measured_seconds > 0 ? static_cast<double>(calls) / r.measured_seconds : 0;
    const double p50 = PercentileUs(lat, 50), p90 = PercentileUs(lat, 90), p99 = PercentileUs(lat, 99);
    const double max = lat.empty() ? 0 : static_cast<double>(lat.back()) / 1000.0;
    std::printf("%-7s %9llu %7llu %10.0f %9.0f %9.0f %9.0f %9.0f %7.0f%%  %s\n", name.c_str(),
                static_cast<unsigned long long>(calls), static_cast<unsigned long long>(errors), rps, p50, p90, p99,
                max, r.client_cpu * 100, by_code.c_str());
    if (mode == Mode::kUpdate) {
      std::printf("        (update: %llu adds, %llu removes)\n", static_cast<unsigned long long>(r.stats.adds),
                  static_cast<unsigned long long>(r.stats.removes));
    }
    if (o.rate > 0) {
      std::printf("        (open loop: at most %llu calls waited for a free slot at once; %llu not sent)\n",
                  static_cast<unsigned long long>(r.max_waiting), static_cast<unsigned long long>(r.dropped));
    }
    if (r.stopped) std::printf("        (stopped by a signal after %.1f s measured)\n", r.measured_seconds);
    std::fflush(stdout);
    if (csv) {
      csv << fmt::format("{},{},{},{:.1f},{:.1f},{:.1f},{:.1f},{:.1f},{:.2f},{}\n", name, calls, errors, rps, p50, p90,
                         p99, max, r.client_cpu, by_code);
      csv.flush();
    }
    if (calls == 0 || static_cast<double>(errors) > o.max_error_rate * static_cast<double>(calls)) failed = true;
    if (r.stopped) break;
  }
  return failed ? 1 : 0;
}
