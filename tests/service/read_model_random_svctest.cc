// The membership read model (docs/read-model.md) against a model of itself:
// the database. Two server instances share one database; thousands of random
// changes go through both of them (point, bulk and set-wise, percentages,
// segment and user deletion, TTLs that run out as the clocks move) and by
// hand in SQL, which nobody announces. Then each instance answers every user
// from memory, and the answers must be the database's at the same instant,
// at a few checkpoints and at the end; one case also kills one instance's
// read-model connection mid-run and keeps it down for a while.
//
// The seed is printed; SEGMENTS_TEST_SEED replays a run (the operations and
// their order; percentages pick by random salts, so who is picked differs),
// SEGMENTS_TEST_RANDOM_OPS sets the number of operations, and
// SEGMENTS_TEST_RANDOM_LOG names a file that receives every operation.
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <fstream>
#include <map>
#include <random>
#include <set>

#include "service/auto_fixture.h"

using namespace segments::testing;  // NOLINT(google-build-using-namespace)

namespace {

using Stats = segments::readmodel::MembershipReadModel::Stats;
using Rng = std::mt19937_64;
using Slugs = std::vector<std::string>;

// Sanitizer builds run several times slower: the same run, shorter.
#if defined(__SANITIZE_ADDRESS__)
constexpr int kDefaultOperations = 1000;
#else
constexpr int kDefaultOperations = 2500;
#endif
constexpr size_t kPoolSize = 200;
// Above the 10,000 rows from which a statement's changes are noted per
// segment (db/schema.sql, version 6), so fills and bulk changes of all of
// them take the set-wise path.
constexpr int kWideUsers = 12000;
// Wide users compared at the checkpoints within the run (all at the end).
constexpr size_t kCheckpointSample = 2000;

const std::string kSentinelSegment = "SENTINEL";
const std::string kSentinelUser = "5e471ae1-7e57-4000-8000-00000000cafe";
// Slugs the run creates, deletes, re-creates and renames to.
const Slugs kSlugs = {"A", "B", "C", "D", "E", "F", "exp.voice-1", "promo_30", "promo_50", "Z9"};
// Users that only transactions left open give memberships (not in the
// users table, so no operation of the service locks their rows).
const std::vector<std::string> kGhosts = {"8000000000000000001",
                                          "8000000000000000002",
                                          "8000000000000000003",
                                          "8000000000000000004",
                                          "0000000a-9405-4000-8000-000000000001",
                                          "0000000a-9405-4000-8000-000000000002"};
// Deadlines only a change by hand gives: far ahead, at the ends of 32-bit
// seconds, and before 1970.
const std::vector<std::string> kEdgeDeadlines = {"'200000-01-01 00:00:00+00'", "'2106-02-07 06:28:16+00'",
                                                 "'2038-01-19 03:14:08+00'", "'1969-12-31 23:59:59.999999+00'",
                                                 "'1900-01-01 00:00:00+00'"};

uint64_t EnvNumber(const char* name, uint64_t otherwise) {
  const char* text = std::getenv(name);
  if (text == nullptr || *text == '\0') return otherwise;
  return std::stoull(text);
}

segments::config::Config RandomRunConfig() {
  segments::config::Config config = TestConfig();
  // Reads come from memory only while the last look started within max lag.
  // This test asserts where every read came from, and the machines it runs
  // on are small and shared: a look delayed past the default second would
  // fail it without anything being wrong. Freshness is tested elsewhere
  // (read_model_svctest.cc); here each comparison waits for a positive sign
  // that both models have caught up.
  config.read_model_max_lag = absl::Seconds(5);
  return config;
}

// The pool of users for point operations: integer ids beside the UUIDs
// that hold the same 16 bytes (an integer is kept big-endian in the first 8
// bytes, domain/user_id.h), which a table keyed by those bytes alone would
// take for one user, and then UUIDs spread over the range.
std::vector<std::string> PoolUsers() {
  std::vector<std::string> users = {"0",
                                    "00000000-0000-0000-0000-000000000000",
                                    "1",
                                    "00000000-0000-0001-0000-000000000000",
                                    "1000",
                                    "00000000-0000-03e8-0000-000000000000",
                                    "1002",
                                    "00000000-0000-03ea-0000-000000000000",
                                    "9223372036854775807",
                                    "7fffffff-ffff-ffff-0000-000000000000",
                                    "00000000-0000-0000-0000-000000000001",
                                    "ffffffff-ffff-ffff-ffff-ffffffffffff"};
  Rng ids(20240301);  // the same pool in every run
  for (int i = 0; i < 10; ++i) users.push_back(std::to_string(ids() % 100000));
  while (users.size() < kPoolSize) {
    users.push_back(fmt::format("{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}", ids() & 0xffffffffU, ids() & 0xffffU,
                                ids() & 0xfffU, 0x8000U | (ids() & 0x3fffU), ids() & 0xffffffffffffULL));
  }
  std::sort(users.begin(), users.end());
  users.erase(std::unique(users.begin(), users.end()), users.end());
  return users;
}

int64_t Between(Rng& rng, int64_t low, int64_t high) { return std::uniform_int_distribution<int64_t>(low, high)(rng); }
bool Chance(Rng& rng, double p) { return std::uniform_real_distribution<double>(0, 1)(rng) < p; }
template <typename T>
const T& PickOne(Rng& rng, const std::vector<T>& from) {
  return from[static_cast<size_t>(Between(rng, 0, static_cast<int64_t>(from.size()) - 1))];
}
// Up to `n` distinct elements of `from`, in random order.
template <typename T>
std::vector<T> PickSome(Rng& rng, std::vector<T> from, size_t n) {
  std::shuffle(from.begin(), from.end(), rng);
  from.resize(std::min(n, from.size()));
  return from;
}
template <typename T>
std::vector<T> Without(const std::vector<T>& from, const std::vector<T>& these) {
  std::vector<T> out;
  for (const T& x : from) {
    if (std::find(these.begin(), these.end(), x) == these.end()) out.push_back(x);
  }
  return out;
}

std::string Join(const std::vector<std::string>& items) { return fmt::format("[{}]", fmt::join(items, ", ")); }

// `ids` as an SQL array of user ids (canonical text needs no quoting).
std::string UserArray(const std::vector<std::string>& ids) {
  return fmt::format("'{{{}}}'::user_id[]", fmt::join(ids, ","));
}

std::string SqlTime(absl::Time t) { return fmt::format("'{}'::timestamptz", Rfc3339Of(t)); }

std::string SegmentIdOf(const std::string& slug) {
  return fmt::format("(SELECT id FROM segments WHERE deleted_at IS NULL AND slug = {})", Literal(slug));
}

// A condition on `column` that about `per_mille` / 1000 of the users meet,
// by the hash of their id and a salt: set-wise changes by hand.
std::string SomeUsers(const std::string& column, int64_t salt, int64_t per_mille) {
  return fmt::format("(hashtext({} || '{}') & 1023) < {}", column, salt, per_mille * 1024 / 1000);
}

// Those up to kSetUserState go through an instance; the others are done by
// hand in SQL or move the clocks.
enum class Op {
  kAdd,
  kRemove,
  kAddAndRemove,
  kBulkAdd,
  kBulkRemove,
  kCreateSegment,
  kCreateAuto,
  kSetPercent,
  kDeleteSegment,
  kCreateUser,
  kDeleteUser,
  kSetUserState,
  kSqlInsert,
  kSqlInsertMany,
  kSqlDelete,
  kSqlDeleteMany,
  kSqlUpdate,
  kSqlExpire,
  kSqlRename,
  kSqlOpenTransaction,
  kAdvanceClocks,
  kClocksToDeadline,
  kCount,
};

struct OpKind {
  const char* name;
  int weight;  // relative
};

// Weights per operation, in the order of Op.
constexpr std::array<OpKind, static_cast<size_t>(Op::kCount)> kOps = {{
    {"add", 200},
    {"remove", 100},
    {"add+remove", 80},
    {"bulk add", 40},
    {"bulk remove", 30},
    {"create segment", 22},
    {"create with percent", 6},
    {"change percent", 8},
    {"delete segment", 18},
    {"create user", 30},
    {"delete user", 18},
    {"set user state", 35},
    {"sql insert", 60},
    {"sql insert many", 5},
    {"sql delete", 50},
    {"sql delete many", 4},
    {"sql update", 30},
    {"sql expire", 8},
    {"sql rename segment", 4},
    {"sql transaction left open", 12},
    {"advance clocks", 60},
    {"clocks to a deadline", 15},
}};

struct Difference {
  std::string where;
  std::string instance;
  std::string user;
  Slugs expected;
  Slugs got;
};

class RandomRun {
 public:
  RandomRun(uint64_t seed, int operations) : operations_(operations), rng_(seed), pool_(PoolUsers()) {
    if (const char* path = std::getenv("SEGMENTS_TEST_RANDOM_LOG"); path != nullptr && *path != '\0') {
      log_file_.open(path);
    }
    // A statement of the run that waits on a lock the run itself holds
    // fails rather than hangs.
    sql_.Exec("SET statement_timeout = '60s'");
  }

  // Starts both instances on a fresh database, with the fixed users and the
  // sentinel.
  void Start() {
    // Connections of an earlier test's instances are gone.
    REQUIRE(Eventually([] { return ReadModelPids().empty(); }, absl::Seconds(10)));
    instances_[0] = std::make_unique<AutoFixture>(RandomRunConfig());
    instances_[1] = std::make_unique<AutoFixture>(RandomRunConfig(), ServiceFixture::Database::kShared);
    RequireServing(0);
    RequireServing(1);

    wide_ = instance(0).InsertUsers(kWideUsers, "wide");
    REQUIRE(instance(0).CreateUser(kSentinelUser).ok());
    REQUIRE(instance(1).CreateSegment(kSentinelSegment).ok());
    for (size_t i = 0; i < pool_.size(); ++i) {
      if (Chance(rng_, 0.75)) REQUIRE(instance(i % 2).CreateUser(pool_[i]).ok());
    }
    for (const char* slug : {"A", "B", "C", "exp.voice-1"}) REQUIRE(instance(1).CreateSegment(slug).ok());
  }

  // Operation `i` of the run, then, if it went through an instance and
  // changed memberships, that instance's answers checked at once
  // (read-your-writes: it has seen everything committed before it).
  void Step(int i) {
    if (open_ && i >= open_->end_at) EndOpenTransaction();
    Rng rng(rng_());  // one draw per operation, so that the sequence of kinds holds
    const Op op = DrawOp(rng);
    const int via = static_cast<int>(Between(rng, 0, 1));
    op_ = fmt::format("op {} {} on {}", i, kOps[static_cast<size_t>(op)].name, Name(via));
    op_index_ = i;
    const bool through_instance = op <= Op::kSetUserState;
    if (through_instance && !notes_mark_) notes_mark_ = NotesMark();
    const uint64_t notes_before = notes_mark_.value_or(0);
    std::vector<std::string> touched;
    const absl::Time started = absl::Now();
    const std::string what = Run(op, via, rng, touched);
    Remember(fmt::format("{}: {} [{}]", op_, what, absl::FormatDuration(absl::Now() - started)));
    if (op == Op::kCreateSegment || op == Op::kCreateAuto || op == Op::kDeleteSegment || op == Op::kSqlRename) {
      live_.reset();
    }
    if (op == Op::kCreateUser || op == Op::kDeleteUser || op == Op::kSetUserState) pool_states_.reset();
    // Only this run writes, so a newer note is this operation's.
    notes_mark_.reset();
    if (!through_instance) return;
    notes_mark_ = NotesMark();
    if (touched.empty() || *notes_mark_ == notes_before) return;
    std::vector<std::string> check = PickSome(rng, touched, 2);
    check.push_back(PickOne(rng, pool_));
    check.push_back(PickOne(rng, wide_));
    CompareNow(fmt::format("{} (read-your-writes)", op_), via, check);
  }

  // A change set-wise for all the wide users (more than 10,000 rows): added
  // or removed through `via`.
  void WideChange(int i, bool add) {
    const int via = i % 2;
    notes_mark_.reset();
    live_.reset();
    Slugs live = LiveSlugs();
    if (live.empty()) {
      REQUIRE(instance(via).CreateSegment("A").ok());
      live_.reset();
      live = LiveSlugs();
    }
    const std::string slug = PickOne(rng_, live);
    op_ = fmt::format("op {} wide {} on {}", i, add ? "add" : "remove", Name(via));
    std::vector<std::string> users = add ? wide_ : PickSome(rng_, wide_, 11000);
    grpc::Status status;
    std::string what;
    if (add) {
      for (const std::string& user : ExistingPoolUsers()) users.push_back(user);
      std::optional<int64_t> seconds;
      if (Chance(rng_, 0.5)) seconds = Between(rng_, 1, 3600);
      v1::AddSegmentToUsersResponse response;
      status = instance(via).BulkAdd(slug, users, &response, seconds);
      what = fmt::format("{} users to {} ttl {}: added {}", users.size(), slug, seconds.value_or(0), response.added());
    } else {
      v1::RemoveSegmentFromUsersResponse response;
      status = instance(via).BulkRemove(slug, users, &response);
      what = fmt::format("{} users from {}: removed {}", users.size(), slug, response.removed());
    }
    Remember(fmt::format("{}: {}", op_, what));
    INFO(op_ << ": " << Describe(status));
    REQUIRE(status.ok());
    CompareNow(fmt::format("{} (read-your-writes)", op_), via, PickSome(rng_, users, 20));
  }

  // Both models serving and caught up, then every user's answer from each
  // compared with the database's, all from memory; of the wide users, a
  // sample of `wide_sample`. Every other checkpoint stands exactly on a
  // deadline, the others just before one.
  void Checkpoint(const std::string& name, size_t wide_sample = kWideUsers) {
    const absl::Time started = absl::Now();
    EndOpenTransaction();
    if (std::optional<absl::Time> deadline = NextDeadline()) {
      SetClocks(checkpoints_ % 2 == 0 ? *deadline : *deadline - absl::Microseconds(1));
    }
    ++checkpoints_;
    RequireServing(0);
    RequireServing(1);
    // A change on each instance, seen from memory by the other: each has
    // then looked after everything the run did (its own change returned
    // after its model applied it, read-your-writes), and the other's
    // announcements reach it.
    AwaitSentinelSeen(0, 1);
    AwaitSentinelSeen(1, 0);
    const absl::Time now = Now();
    const std::vector<std::string> sample = PickSome(rng_, wide_, wide_sample);
    const std::set<std::string> left_out = [&] {
      std::set<std::string> out(wide_.begin(), wide_.end());
      for (const std::string& user : sample) out.erase(user);
      return out;
    }();
    std::set<std::string> everyone(pool_.begin(), pool_.end());
    for (const auto& row : sql_.Rows("SELECT id FROM users UNION SELECT user_id FROM memberships")) {
      if (!left_out.contains(row[0])) everyone.insert(row[0]);
    }
    const std::vector<std::string> users(everyone.begin(), everyone.end());
    const std::map<std::string, Slugs> expected = SqlAnswers(now, "true");
    for (int x = 0; x < 2; ++x) {
      const Stats before = StatsOf(x);
      for (const std::string& user : users) {
        const Slugs got = instance(x).SegmentsOf(user);
        auto it = expected.find(user);
        Note(name, x, user, it == expected.end() ? Slugs{} : it->second, got);
      }
      const Stats after = StatsOf(x);
      INFO(name << " on " << Name(x));
      CHECK(after.memory_reads - before.memory_reads == users.size());
      CHECK(after.database_reads == before.database_reads);
    }
    fmt::print("  {}: {} users x 2 instances compared at {} ({} memberships live) in {}; {} differences so far\n", name,
               users.size(), Rfc3339Of(now),
               Count(fmt::format("SELECT count(*) FROM memberships WHERE expires_at IS NULL OR expires_at > {}",
                                 SqlTime(now))),
               absl::FormatDuration(absl::Trunc(absl::Now() - started, absl::Milliseconds(10))), differences_.size());
  }

  // Every membership removed by hand at once: each model is told to load
  // everything again.
  void Truncate(int i) {
    EndOpenTransaction();
    op_ = fmt::format("op {} sql truncate", i);
    sql_.Exec("TRUNCATE memberships");
    notes_mark_.reset();
    Remember(op_);
  }

  // --- killing one instance's read-model connection

  // Starts an outage of one instance's model: one of the two read-model
  // connections (the older or the newer by pid) is killed, and the instance
  // whose model stops serving is the victim. Its connections are killed
  // again at every KeepDown, until the run stops calling it; the other's
  // connection is left alone.
  void BeginOutage(bool lower_pid) {
    RequireServing(0);
    RequireServing(1);
    const std::set<int> pids = ReadModelPids();
    REQUIRE(pids.size() == 2);
    const int killed = lower_pid ? *pids.begin() : *pids.rbegin();
    survivor_pid_ = lower_pid ? *pids.rbegin() : *pids.begin();
    sql_.Exec(fmt::format("SELECT pg_terminate_backend({})", killed));
    ++kills_;
    REQUIRE(Eventually(
        [&] {
          for (int x = 0; x < 2; ++x) {
            if (!Serving(x)) victim_ = x;
          }
          return victim_.has_value();
        },
        absl::Seconds(5), absl::Microseconds(200)));
    // The other one did not notice.
    CHECK(Serving(1 - *victim_));
    CHECK(ReadModelPids().contains(survivor_pid_));
    Remember(fmt::format("outage of {} begins ({} full loads so far)", Name(*victim_), StatsOf(*victim_).full_loads));
  }

  void KeepDown() {
    kills_ += std::stoi(
        sql_.Exec(fmt::format("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = "
                              "'segments-read-model' AND datname = current_database() AND pid <> {}",
                              survivor_pid_)));
  }

  // During the outage: a read on the victim; when it came from the
  // database (the model not serving), it must be the database's answer.
  void ReadFromVictim() {
    const std::string user = PickOne(rng_, Chance(rng_, 0.8) ? pool_ : wide_);
    const Stats before = StatsOf(*victim_);
    const Slugs got = instance(*victim_).SegmentsOf(user);
    if (StatsOf(*victim_).database_reads == before.database_reads + 1) {
      ++outage_database_reads_;
      Note(fmt::format("{} (outage, read from the database)", op_), *victim_, user, ActiveSlugsOf(user), got);
    }
  }

  void EndOutage() {
    INFO("kills " << kills_ << ", reads from the database while down " << outage_database_reads_);
    CHECK(kills_ >= 1);
    CHECK(outage_database_reads_ >= 1);
    Remember(fmt::format("outage of {} ends after {} kills", Name(*victim_), kills_));
    fmt::print("  outage of {}: {} connections killed, {} reads from the database checked\n", Name(*victim_), kills_,
               outage_database_reads_);
    victim_.reset();
  }

  // --- results

  void Finish() {
    std::string outcomes;
    for (const auto& [name, counts] : outcomes_) {
      outcomes += fmt::format(" {} {}/{};", name, counts.first, counts.first + counts.second);
    }
    fmt::print("  operations (name ok/tried):{}\n  largest cross-instance lag {}; full loads {} and {}\n", outcomes,
               absl::FormatDuration(max_lag_), StatsOf(0).full_loads, StatsOf(1).full_loads);
    // Every kind of operation took effect at least once (in a run long
    // enough for the rarest).
    for (const OpKind& kind : kOps) {
      INFO(kind.name);
      if (operations_ >= 2000) CHECK(outcomes_[kind.name].first >= 1);
    }
    std::string summary;
    for (size_t i = 0; i < differences_.size() && i < 20; ++i) {
      const Difference& d = differences_[i];
      summary += fmt::format("\n  {}: user {} on {}: expected {}, got {}", d.where, d.user, d.instance,
                             Join(d.expected), Join(d.got));
    }
    if (!differences_.empty()) {
      // What the run did to the first user that differs (set-wise changes
      // do not name their users), and the last operations before.
      const std::string& user = differences_.front().user;
      summary += fmt::format("\n  ({} in all; operations naming user {}:)", differences_.size(), user);
      for (const std::string& line : done_) {
        if (line.find(user) != std::string::npos) summary += "\n    " + line;
      }
      summary += "\n  (the last operations before the first difference:)";
      for (const std::string& line : first_difference_context_) summary += "\n    " + line;
    }
    INFO("differences:" << summary);
    CHECK(differences_.empty());
  }

 private:
  AutoFixture& instance(size_t i) { return *instances_[i]; }
  static const char* Name(size_t i) { return i == 0 ? "instance A" : "instance B"; }
  Stats StatsOf(size_t i) { return instance(i).app->read_model().stats(); }
  bool Serving(size_t i) { return instance(i).app->read_model().Serving(); }
  absl::Time Now() { return instance(0).Now(); }

  void RequireServing(size_t i) {
    INFO(Name(i));
    REQUIRE(Eventually([&] { return Serving(i); }, absl::Seconds(20), absl::Milliseconds(2)));
  }

  static std::set<int> ReadModelPids() {
    std::set<int> pids;
    for (const auto& row : Query("SELECT pid FROM pg_stat_activity WHERE application_name = 'segments-read-model' "
                                 "AND datname = current_database()")) {
      pids.insert(std::stoi(row[0]));
    }
    return pids;
  }

  void SetClocks(absl::Time t) {
    instance(0).clock.Set(t);
    instance(1).clock.Set(t);
  }

  static Op DrawOp(Rng& rng) {
    static const std::vector<int> weights = [] {
      std::vector<int> w;
      w.reserve(kOps.size());
      for (const OpKind& kind : kOps) w.push_back(kind.weight);
      return w;
    }();
    std::discrete_distribution<int> pick(weights.begin(), weights.end());
    return static_cast<Op>(pick(rng));
  }

  // Ends the transaction left open by kSqlOpenTransaction, if any: commits
  // it (unless it was drawn to roll back, or its segment was deleted
  // meanwhile, which would leave memberships the service never leaves).
  void EndOpenTransaction() {
    if (!open_) return;
    const bool live = Count(fmt::format("SELECT count(*) FROM segments WHERE id = {} AND deleted_at IS NULL",
                                        open_->segment_id)) == 1;
    const bool commit = open_->commit && live;
    open_session_.Exec(commit ? "COMMIT" : "ROLLBACK");
    notes_mark_.reset();
    Remember(fmt::format("  {} {}", commit ? "committed" : "rolled back", open_->what));
    open_.reset();
  }

  // The newest membership change note (of users or segments) as an xid.
  uint64_t NotesMark() {
    return std::stoull(
        sql_.Exec("SELECT coalesce((SELECT xid FROM membership_changes WHERE kind IN ('u', 's') "
                  "ORDER BY xid DESC LIMIT 1)::text, '0')"));
  }

  void Remember(std::string line) {
    if (log_file_.is_open()) log_file_ << line << '\n';
    recent_.push_back(line);
    if (recent_.size() > 15) recent_.pop_front();
    done_.push_back(std::move(line));
  }

  void Note(const std::string& where, size_t x, const std::string& user, const Slugs& expected, const Slugs& got) {
    if (expected == got) return;
    if (differences_.empty()) first_difference_context_.assign(recent_.begin(), recent_.end());
    differences_.push_back({where, Name(x), user, expected, got});
  }

  // The active memberships at `now` of users matching `condition` (on m),
  // sorted as the server sorts them.
  std::map<std::string, Slugs> SqlAnswers(absl::Time now, const std::string& condition) {
    std::map<std::string, Slugs> out;
    for (const auto& row :
         sql_.Rows(fmt::format("SELECT m.user_id, s.slug FROM memberships m JOIN segments s ON s.id = m.segment_id "
                               "WHERE (m.expires_at IS NULL OR m.expires_at > {}) AND {}",
                               SqlTime(now), condition))) {
      out[row[0]].push_back(row[1]);
    }
    for (auto& [user, slugs] : out) std::sort(slugs.begin(), slugs.end());
    return out;
  }

  // `users` read through instance `x` now, against the database.
  void CompareNow(const std::string& where, size_t x, const std::vector<std::string>& users) {
    const std::map<std::string, Slugs> expected = SqlAnswers(Now(), "m.user_id = ANY(" + UserArray(users) + ")");
    for (const std::string& user : users) {
      auto it = expected.find(user);
      Note(where, x, user, it == expected.end() ? Slugs{} : it->second, instance(x).SegmentsOf(user));
    }
  }

  // Toggles the sentinel's membership through `writer`, then waits until
  // `reader` answers it from memory.
  void AwaitSentinelSeen(size_t writer, size_t reader) {
    const bool in = Count(fmt::format("SELECT count(*) FROM memberships WHERE user_id = {} AND segment_id = {}",
                                      Literal(kSentinelUser), SegmentIdOf(kSentinelSegment))) == 0;
    REQUIRE(
        instance(writer)
            .Update(in ? Change(kSentinelUser, {{kSentinelSegment}}) : Change(kSentinelUser, {}, {kSentinelSegment}))
            .ok());
    notes_mark_.reset();
    const absl::Time written = absl::Now();
    auto seen = [&] {
      const Stats before = StatsOf(reader);
      const Slugs got = instance(reader).SegmentsOf(kSentinelUser);
      const bool has = std::find(got.begin(), got.end(), kSentinelSegment) != got.end();
      return StatsOf(reader).memory_reads == before.memory_reads + 1 && has == in;
    };
    INFO(Name(reader) << " sees the change made through " << Name(writer));
    REQUIRE(Eventually(seen, absl::Seconds(10), absl::Microseconds(200)));
    max_lag_ = std::max(max_lag_, absl::Now() - written);
  }

  // The first deadline ahead, if one is within a day.
  std::optional<absl::Time> NextDeadline() {
    const std::string micros =
        sql_.Exec(fmt::format("SELECT min({}) FROM memberships WHERE expires_at > {} AND expires_at < {}",
                              MicrosOf("expires_at"), SqlTime(Now()), SqlTime(Now() + absl::Hours(24))));
    if (micros.empty()) return std::nullopt;
    return absl::FromUnixMicros(std::stoll(micros));
  }

  // Live segments but the sentinel, oldest first (kept until an operation
  // may have changed them).
  Slugs LiveSlugs() {
    if (!live_) {
      live_.emplace();
      for (const auto& row : sql_.Rows(fmt::format("SELECT slug FROM segments WHERE deleted_at IS NULL AND slug <> {} "
                                                   "ORDER BY id",
                                                   Literal(kSentinelSegment)))) {
        live_->push_back(row[0]);
      }
    }
    return *live_;
  }

  // Pool users that exist, with their state (kept likewise).
  std::vector<std::pair<std::string, std::string>> PoolUserStates() {
    if (!pool_states_) {
      pool_states_.emplace();
      for (const auto& row :
           sql_.Rows(fmt::format("SELECT id, state FROM users WHERE id = ANY({}) ORDER BY id", UserArray(pool_)))) {
        pool_states_->emplace_back(row[0], row[1]);
      }
    }
    return *pool_states_;
  }

  std::vector<std::string> ExistingPoolUsers() {
    std::vector<std::string> out;
    for (const auto& [id, state] : PoolUserStates()) out.push_back(id);
    return out;
  }

  // A pool user that exists (mostly) or any pool user.
  std::string SomeUser(Rng& rng) {
    const std::vector<std::string> existing = ExistingPoolUsers();
    if (existing.empty() || Chance(rng, 0.05)) return PickOne(rng, pool_);
    return PickOne(rng, existing);
  }

  // The user's segments active now, in the database.
  Slugs ActiveSlugsOf(const std::string& user) { return SqlAnswers(Now(), "m.user_id = " + Literal(user))[user]; }

  AddItem RandomAdd(Rng& rng, const std::string& slug) {
    AddItem item{slug};
    switch (Between(rng, 0, 4)) {
      case 0:
      case 1:
        break;  // permanent
      case 2:
        item.seconds = Chance(rng, 0.5) ? Between(rng, 1, 90) : Between(rng, 91, 86400);
        break;
      default:
        item.deadline = Now() + absl::Microseconds(Chance(rng, 0.5) ? Between(rng, 1, 90'000'000)
                                                                    : Between(rng, 90'000'001, 7'200'000'000));
    }
    return item;
  }

  static std::string Show(const AddItem& item) {
    if (item.seconds) return fmt::format("{} {}s", item.slug, *item.seconds);
    if (item.deadline) return fmt::format("{} until {}", item.slug, Rfc3339Of(*item.deadline));
    return item.slug;
  }

  // A deadline for a change by hand: NULL, or soon, or later, or now and
  // then one that the API never gives; 'infinity' only if `infinity` (the
  // server's own queries of a user's memberships cannot read it back).
  std::string RandomExpiry(Rng& rng, bool infinity = false) {
    if (Chance(rng, 0.4)) return "NULL";
    if (Chance(rng, 0.04)) return infinity && Chance(rng, 0.3) ? "'infinity'" : PickOne(rng, kEdgeDeadlines);
    return SqlTime(Now() + absl::Microseconds(Chance(rng, 0.5) ? Between(rng, 1, 60'000'000)
                                                               : Between(rng, 60'000'001, 7'200'000'000)));
  }

  // added_at and expires_at of a row made by hand with deadline `expiry`:
  // added now, or just before a deadline already past.
  std::string HandTimes(const std::string& expiry) {
    return fmt::format("least({0}, {1}::timestamptz - interval '1 microsecond'), {1}::timestamptz", SqlTime(Now()),
                       expiry);
  }

  // Whether `status` is a success or a refusal the run may cause (its
  // choices can be stale or deliberately wrong); anything else fails.
  void Tally(Op op, const grpc::Status& status) {
    const grpc::StatusCode code = status.error_code();
    INFO(op_ << ": " << Describe(status));
    CHECK((code == grpc::StatusCode::OK || code == grpc::StatusCode::NOT_FOUND ||
           code == grpc::StatusCode::ALREADY_EXISTS || code == grpc::StatusCode::INVALID_ARGUMENT ||
           code == grpc::StatusCode::FAILED_PRECONDITION));
    auto& counts = outcomes_[kOps[static_cast<size_t>(op)].name];
    (status.ok() ? counts.first : counts.second) += 1;
  }
  void TallyDone(Op op) { outcomes_[kOps[static_cast<size_t>(op)].name].first += 1; }

  std::string Run(Op op, int via, Rng& rng, std::vector<std::string>& touched) {
    AutoFixture& f = instance(static_cast<size_t>(via));
    const Slugs live = LiveSlugs();
    switch (op) {
      case Op::kAdd:
      case Op::kRemove:
      case Op::kAddAndRemove: {
        const std::string user = SomeUser(rng);
        const Slugs active = ActiveSlugsOf(user);
        std::vector<AddItem> adds;
        Slugs removes;
        if (op != Op::kRemove) {
          Slugs candidates = Without(live, active);
          // Now and then one the user is in already: refused.
          if (candidates.empty() || Chance(rng, 0.03)) candidates = live;
          for (const std::string& slug : PickSome(rng, candidates, static_cast<size_t>(Between(rng, 1, 3)))) {
            adds.push_back(RandomAdd(rng, slug));
          }
        }
        if (op != Op::kAdd) {
          Slugs candidates = Without(active, [&] {
            Slugs added;
            for (const AddItem& a : adds) added.push_back(a.slug);
            return added;
          }());
          removes = PickSome(rng, candidates, static_cast<size_t>(Between(rng, 1, 2)));
          // Sometimes one the user is not in: accepted, changes nothing.
          if (Chance(rng, 0.2) && !live.empty()) {
            const std::string other = PickOne(rng, live);
            if (std::find(removes.begin(), removes.end(), other) == removes.end() &&
                std::none_of(adds.begin(), adds.end(), [&](const AddItem& a) { return a.slug == other; })) {
              removes.push_back(other);
            }
          }
        }
        Tally(op, f.Update(Change(user, adds, removes)));
        touched.push_back(user);
        Slugs added;
        for (const AddItem& a : adds) added.push_back(Show(a));
        return fmt::format("user {} add {} remove {}", user, Join(added), Join(removes));
      }
      case Op::kBulkAdd:
      case Op::kBulkRemove: {
        if (live.empty()) return "no segment";
        const std::string slug = PickOne(rng, live);
        std::vector<std::string> users = PickSome(rng, ExistingPoolUsers(), static_cast<size_t>(Between(rng, 1, 60)));
        if (Chance(rng, 0.3)) {
          for (const std::string& user : PickSome(rng, wide_, static_cast<size_t>(Between(rng, 1, 200)))) {
            users.push_back(user);
          }
        }
        touched = users;
        if (op == Op::kBulkRemove) {
          Tally(op, f.BulkRemove(slug, users));
          return fmt::format("{} users from {}", users.size(), slug);
        }
        v1::AddSegmentToUsersRequest request;
        request.set_slug(slug);
        for (const std::string& user : users) request.add_user_ids(user);
        const AddItem ttl = RandomAdd(rng, slug);
        if (ttl.seconds) request.set_seconds_to_be_in_segment(*ttl.seconds);
        if (ttl.deadline) *request.mutable_deadline_for_staying_in_segment() = ToTimestamp(*ttl.deadline);
        v1::AddSegmentToUsersResponse response;
        Tally(op, f.segments->AddSegmentToUsers(NewContext(std::chrono::seconds(60)).get(), request, &response));
        return fmt::format("{} users to {}: added {}", users.size(), Show(ttl), response.added());
      }
      case Op::kCreateSegment:
      case Op::kCreateAuto: {
        Slugs free = Without(kSlugs, live);
        std::string slug = free.empty() || Chance(rng, 0.03) ? PickOne(rng, kSlugs) : PickOne(rng, free);
        if (op == Op::kCreateSegment) {
          Tally(op, f.CreateSegment(slug));
          return slug;
        }
        const double percent = static_cast<double>(Between(rng, 0, 10000)) / 100;
        std::optional<int64_t> ttl;
        if (Chance(rng, 0.3)) ttl = Between(rng, 1, 7200);
        Slugs include, exclude;
        if (!live.empty() && Chance(rng, 0.15)) (Chance(rng, 0.5) ? include : exclude).push_back(PickOne(rng, live));
        v1::CreateSegmentResponse response;
        Tally(op, f.CreateAuto(slug, percent, include, exclude, ttl, &response));
        touched = PickSome(rng, wide_, 3);
        return fmt::format("{} at {}% ttl {} include {} exclude {}", slug, percent, ttl.value_or(0), Join(include),
                           Join(exclude));
      }
      case Op::kSetPercent: {
        if (live.empty()) return "no segment";
        const std::string slug = PickOne(rng, live);
        std::optional<double> percent = static_cast<double>(Between(rng, 0, 10000)) / 100;
        if (Chance(rng, 0.1)) percent.reset();
        v1::UpdateSegmentPercentResponse response;
        Tally(op, f.SetPercent(slug, percent, &response));
        touched = PickSome(rng, wide_, 3);
        return fmt::format("{} to {}: +{} -{}", slug, percent ? fmt::format("{}%", *percent) : "none",
                           response.members_added(), response.members_removed());
      }
      case Op::kDeleteSegment: {
        if (live.empty()) return "no segment";
        const std::string slug = PickOne(rng, live);
        v1::DeleteSegmentResponse response;
        Tally(op, f.DeleteSegment(slug, &response));
        touched = PickSome(rng, pool_, 3);
        return fmt::format("{}: {} memberships ended", slug, response.memberships_ended());
      }
      case Op::kCreateUser: {
        const std::vector<std::string> absent = Without(pool_, ExistingPoolUsers());
        std::string user = absent.empty() || Chance(rng, 0.03) ? PickOne(rng, pool_) : PickOne(rng, absent);
        Tally(op, f.CreateUser(user));
        touched.push_back(user);
        return user;
      }
      case Op::kDeleteUser: {
        std::string user = SomeUser(rng);
        Tally(op, f.DeleteUser(user));
        touched.push_back(user);
        return user;
      }
      case Op::kSetUserState: {
        const auto states = PoolUserStates();
        if (states.empty()) return "no user";
        const auto& [user, state] = PickOne(rng, states);
        const std::string next = state == "active" ? "excluded" : "active";
        Tally(op, f.UpdateUser(user, next));
        touched.push_back(user);
        return fmt::format("{} to {}", user, next);
      }
      case Op::kSqlInsert: {
        const std::string user = SomeUser(rng);
        const Slugs to = PickSome(rng, live, static_cast<size_t>(Between(rng, 1, 3)));
        if (to.empty()) return "no segment";
        std::vector<std::string> rows;
        for (const std::string& slug : to) {
          rows.push_back(fmt::format("SELECT {}::user_id, {}, {}", Literal(user), SegmentIdOf(slug),
                                     HandTimes(RandomExpiry(rng))));
        }
        // An existing row (expired, or not) gets the new deadline: INSERT
        // and UPDATE in one statement.
        sql_.Exec(
            fmt::format("INSERT INTO memberships (user_id, segment_id, added_at, expires_at) {} ON CONFLICT "
                        "(user_id, segment_id) DO UPDATE SET added_at = EXCLUDED.added_at, expires_at = "
                        "EXCLUDED.expires_at",
                        fmt::join(rows, " UNION ALL ")));
        TallyDone(op);
        return fmt::format("{} into {}", user, Join(to));
      }
      case Op::kSqlInsertMany: {
        if (live.empty()) return "no segment";
        const std::string slug = PickOne(rng, live);
        const int64_t per_mille = PickOne(rng, std::vector<int64_t>{20, 300, 950});
        const std::string rows = sql_.Exec(fmt::format(
            "WITH added AS (INSERT INTO memberships (user_id, segment_id, added_at, expires_at) SELECT id, {}, {} "
            "FROM users WHERE state = 'active' AND {} ON CONFLICT DO NOTHING RETURNING 1) SELECT count(*) FROM added",
            SegmentIdOf(slug), HandTimes(RandomExpiry(rng)), SomeUsers("id", Between(rng, 0, 1 << 30), per_mille)));
        TallyDone(op);
        return fmt::format("{} rows into {}", rows, slug);
      }
      case Op::kSqlDelete: {
        const std::string user = SomeUser(rng);
        const std::string rows = sql_.Exec(fmt::format(
            "WITH gone AS (DELETE FROM memberships WHERE user_id = {} AND {} RETURNING 1) SELECT count(*) FROM gone",
            Literal(user), Chance(rng, 0.3) ? "true" : SomeUsers("segment_id::text", Between(rng, 0, 1 << 30), 500)));
        TallyDone(op);
        return fmt::format("{} rows of {}", rows, user);
      }
      case Op::kSqlDeleteMany: {
        if (live.empty()) return "no segment";
        const std::string slug = PickOne(rng, live);
        const std::string rows = sql_.Exec(fmt::format(
            "WITH gone AS (DELETE FROM memberships WHERE segment_id = {} AND {} RETURNING 1) SELECT count(*) FROM gone",
            SegmentIdOf(slug),
            SomeUsers("user_id", Between(rng, 0, 1 << 30), PickOne(rng, std::vector<int64_t>{100, 950}))));
        TallyDone(op);
        return fmt::format("{} rows of {}", rows, slug);
      }
      case Op::kSqlUpdate: {
        const int64_t kind = Between(rng, 0, 3);
        std::string statement, what;
        if (kind == 0) {
          const std::string user = SomeUser(rng);
          const std::string expiry = RandomExpiry(rng);
          statement = fmt::format(
              "UPDATE memberships SET expires_at = CASE WHEN {0} IS NULL THEN NULL ELSE "
              "greatest(added_at + interval '1 microsecond', {0}) END WHERE user_id = {1}",
              expiry + "::timestamptz", Literal(user));
          what = fmt::format("deadlines of {} to {}", user, expiry);
        } else if (kind == 1 && !live.empty()) {
          const std::string slug = PickOne(rng, live);
          const std::string expiry = RandomExpiry(rng);
          statement = fmt::format(
              "UPDATE memberships SET expires_at = CASE WHEN {0} IS NULL THEN NULL ELSE "
              "greatest(added_at + interval '1 microsecond', {0}) END WHERE segment_id = {1} AND {2}",
              expiry + "::timestamptz", SegmentIdOf(slug),
              SomeUsers("user_id", Between(rng, 0, 1 << 30), PickOne(rng, std::vector<int64_t>{50, 900})));
          what = fmt::format("deadlines in {} to {}", slug, expiry);
        } else if (kind == 2 && live.size() >= 2) {
          // Memberships move from one segment to another.
          const Slugs two = PickSome(rng, live, 2);
          // Not the ghosts: a row of theirs that a transaction left open
          // inserted would make this wait for it, and so for this thread.
          statement = fmt::format(
              "UPDATE memberships m SET segment_id = {1} WHERE segment_id = {0} AND {2} AND user_id <> ALL({3}) AND "
              "NOT EXISTS (SELECT FROM memberships o WHERE o.user_id = m.user_id AND o.segment_id = {1})",
              SegmentIdOf(two[0]), SegmentIdOf(two[1]),
              SomeUsers("user_id", Between(rng, 0, 1 << 30), PickOne(rng, std::vector<int64_t>{50, 900})),
              UserArray(kGhosts));
          what = fmt::format("memberships in {} moved to {}", two[0], two[1]);
        } else {
          // Memberships move from one user to another.
          const std::string from = SomeUser(rng);
          const std::string to = SomeUser(rng);
          statement = fmt::format(
              "UPDATE memberships m SET user_id = {1} WHERE user_id = {0} AND NOT EXISTS (SELECT FROM memberships o "
              "WHERE o.user_id = {1} AND o.segment_id = m.segment_id)",
              Literal(from), Literal(to));
          what = fmt::format("memberships of {} moved to {}", from, to);
        }
        sql_.Exec(statement);
        TallyDone(op);
        return what;
      }
      case Op::kSqlExpire: {
        // What the expiry job does, without the history.
        const std::string rows = sql_.Exec(fmt::format(
            "WITH gone AS (DELETE FROM memberships WHERE expires_at <= {} RETURNING 1) SELECT count(*) FROM gone",
            SqlTime(Now())));
        TallyDone(op);
        return fmt::format("{} rows", rows);
      }
      case Op::kSqlRename: {
        if (live.empty()) return "nothing to rename";
        const Slugs free = Without(kSlugs, live);
        const std::string from = PickOne(rng, live);
        // Renamed out of kSlugs, the segment lives on until deleted.
        const std::string to = free.empty() || Chance(rng, 0.2) ? from.substr(0, 100) + ".r" : PickOne(rng, free);
        if (std::find(live.begin(), live.end(), to) != live.end()) return "nothing to rename";
        sql_.Exec(fmt::format("UPDATE segments SET slug = {} WHERE deleted_at IS NULL AND slug = {}", Literal(to),
                              Literal(from)));
        TallyDone(op);
        return fmt::format("{} to {}", from, to);
      }
      case Op::kSqlOpenTransaction: {
        // Its id comes before those of the operations that commit while it
        // is open: a reader that took "everything after the last id seen"
        // would miss it.
        if (open_ || live.empty()) return "one is open already";
        const std::string slug = PickOne(rng, live);
        const std::string segment_id = sql_.Exec(fmt::format("SELECT {}", SegmentIdOf(slug)));
        std::vector<std::string> rows;
        for (const std::string& ghost : PickSome(rng, kGhosts, static_cast<size_t>(Between(rng, 1, 3)))) {
          rows.push_back(
              fmt::format("({}, {}, {})", Literal(ghost), segment_id, HandTimes(RandomExpiry(rng, /*infinity=*/true))));
        }
        open_session_.Exec("BEGIN");
        open_session_.Exec(
            fmt::format("INSERT INTO memberships (user_id, segment_id, added_at, expires_at) VALUES {} "
                        "ON CONFLICT DO NOTHING",
                        fmt::join(rows, ", ")));
        const int end_at = op_index_ + static_cast<int>(Between(rng, 1, 40));
        open_ = OpenTransaction{segment_id, end_at, Chance(rng, 0.9),
                                fmt::format("{}: {} into {} (until op {})", op_, Join(rows), slug, end_at)};
        TallyDone(op);
        return fmt::format("{} into {} until op {}", Join(rows), slug, end_at);
      }
      case Op::kAdvanceClocks: {
        const absl::Duration step = absl::Microseconds(Between(rng, 0, 40'000'000));
        SetClocks(Now() + step);
        TallyDone(op);
        return fmt::format("by {} to {}", absl::FormatDuration(step), Rfc3339Of(Now()));
      }
      case Op::kClocksToDeadline: {
        const std::optional<absl::Time> deadline = NextDeadline();
        if (!deadline) return "no deadline ahead";
        SetClocks(Chance(rng, 0.5) ? *deadline : *deadline - absl::Microseconds(1));
        TallyDone(op);
        return fmt::format("to {} (a deadline is {})", Rfc3339Of(Now()), Rfc3339Of(*deadline));
      }
      case Op::kCount:
        break;
    }
    return "";
  }

  const int operations_;
  Rng rng_;
  const std::vector<std::string> pool_;
  std::vector<std::string> wide_;
  std::array<std::unique_ptr<AutoFixture>, 2> instances_;
  PgSession sql_;

  std::string op_;
  int op_index_ = 0;
  // A transaction by hand, left open across operations.
  struct OpenTransaction {
    std::string segment_id;
    int end_at = 0;
    bool commit = true;
    std::string what;
  };
  std::optional<OpenTransaction> open_;
  PgSession open_session_;
  // Caches of the database's state between operations that change it.
  std::optional<uint64_t> notes_mark_;
  std::optional<Slugs> live_;
  std::optional<std::vector<std::pair<std::string, std::string>>> pool_states_;
  std::deque<std::string> recent_;
  std::vector<std::string> done_;
  std::ofstream log_file_;
  std::map<std::string, std::pair<int, int>> outcomes_;
  std::vector<Difference> differences_;
  std::vector<std::string> first_difference_context_;
  absl::Duration max_lag_;
  int checkpoints_ = 0;

  std::optional<int> victim_;
  int survivor_pid_ = 0;
  int kills_ = 0;
  int outage_database_reads_ = 0;
};

void RunRandom(bool outage) {
  const uint64_t seed = EnvNumber("SEGMENTS_TEST_SEED", std::random_device{}());
  const int operations = static_cast<int>(EnvNumber("SEGMENTS_TEST_RANDOM_OPS", kDefaultOperations));
  fmt::print("read model random run{}: seed {} (SEGMENTS_TEST_SEED), {} operations (SEGMENTS_TEST_RANDOM_OPS)\n",
             outage ? " with an outage" : "", seed, operations);
  std::fflush(stdout);
  INFO("seed " << seed);
  const absl::Time started = absl::Now();
  RandomRun run(seed, operations);
  run.Start();
  for (int i = 0; i < operations; ++i) {
    if (i == operations / 4) run.Checkpoint("checkpoint 1", kCheckpointSample);
    if (i == operations / 2) run.Checkpoint("checkpoint 2", kCheckpointSample);
    if (i == operations * 3 / 4) run.Checkpoint("checkpoint 3", kCheckpointSample);
    if (i == operations / 5 || i == operations * 4 / 5) run.WideChange(i, /*add=*/true);
    if (i == operations * 35 / 100) run.WideChange(i, /*add=*/false);
    if (i == operations * 45 / 100) run.Truncate(i);
    const bool down = outage && i >= operations * 55 / 100 && i < operations * 70 / 100;
    if (down && i == operations * 55 / 100) run.BeginOutage(/*lower_pid=*/seed % 2 == 0);
    if (down) run.KeepDown();
    run.Step(i);
    if (down) run.ReadFromVictim();
    if (outage && i + 1 == operations * 70 / 100) run.EndOutage();
  }
  run.Checkpoint("end");
  run.Finish();
  fmt::print("  took {}\n", absl::FormatDuration(absl::Trunc(absl::Now() - started, absl::Milliseconds(100))));
}

}  // namespace

TEST_CASE("random changes through two instances and by hand: both models answer every user as the database does",
          "[read_model_random]") {
  RunRandom(/*outage=*/false);
}

TEST_CASE("the same with one instance's read-model connection killed mid-run and kept down for a while",
          "[read_model_random]") {
  RunRandom(/*outage=*/true);
}
