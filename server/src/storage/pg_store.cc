#include "storage/pg_store.h"

#include <absl/container/flat_hash_set.h>
#include <absl/random/random.h>
#include <absl/strings/numbers.h>
#include <absl/strings/str_split.h>
#include <absl/time/clock.h>
#include <fmt/format.h>

#include <endian.h>

#include <algorithm>
#include <cstring>
#include <optional>

#include "storage/pg_transaction.h"
#include "storage/queries.h"
#include "storage/sqlstate.h"

namespace segments::storage {
namespace {

using domain::HistoryEvent;
using domain::Membership;
using domain::NewMembership;
using domain::NewSegment;
using domain::Reason;
using domain::Segment;
using domain::SegmentId;
using domain::UserId;
using domain::UserState;

std::string TimeText(absl::Time t) { return absl::FormatTime("%Y-%m-%dT%H:%M:%E6SZ", t, absl::UTCTimeZone()); }

absl::Time TimeFromMicros(std::string_view text) {
  int64_t micros = 0;
  (void)absl::SimpleAtoi(absl::string_view(text.data(), text.size()), &micros);
  return absl::FromUnixMicros(micros);
}

int64_t ToInt64(std::string_view text) {
  int64_t value = 0;
  (void)absl::SimpleAtoi(absl::string_view(text.data(), text.size()), &value);
  return value;
}

// A PostgreSQL array literal; nullopt items become NULL.
std::string ArrayLiteral(const std::vector<std::optional<std::string>>& items) {
  std::string out = "{";
  for (size_t i = 0; i < items.size(); ++i) {
    if (i > 0) out += ',';
    if (!items[i]) {
      out += "NULL";
      continue;
    }
    out += '"';
    for (char c : *items[i]) {
      if (c == '"' || c == '\\') out += '\\';
      out += c;
    }
    out += '"';
  }
  return out + "}";
}

template <typename T, typename Fn>
std::string ArrayOf(const std::vector<T>& items, Fn to_text) {
  std::vector<std::optional<std::string>> texts;
  texts.reserve(items.size());
  for (const T& item : items) texts.push_back(to_text(item));
  return ArrayLiteral(texts);
}

std::vector<std::string> SplitCommas(std::string_view text) {
  std::vector<std::string> out;
  if (text.empty()) return out;
  for (absl::string_view part : absl::StrSplit(absl::string_view(text.data(), text.size()), ',')) {
    out.emplace_back(part);
  }
  return out;
}

// Reads the columns listed by SEGMENTS_SEGMENT_COLUMNS (kSegmentColumns of them).
constexpr int kSegmentColumns = 11;
Segment SegmentAt(const PgResult& r, int row) {
  Segment s;
  s.id = ToInt64(r.Get(row, 0));
  s.slug = r.Get(row, 1);
  s.percent_hundredths = static_cast<int32_t>(ToInt64(r.Get(row, 2)));
  s.description = r.Get(row, 3);
  s.salt = r.Get(row, 4);
  s.created_at = TimeFromMicros(r.Get(row, 5));
  for (const std::string& id : SplitCommas(r.Get(row, 6))) s.auto_options.include_ids.push_back(ToInt64(id));
  for (const std::string& id : SplitCommas(r.Get(row, 7))) s.auto_options.exclude_ids.push_back(ToInt64(id));
  if (!r.IsNull(row, 8)) s.auto_options.ttl_seconds = ToInt64(r.Get(row, 8));
  s.include_slugs = SplitCommas(r.Get(row, 9));
  s.exclude_slugs = SplitCommas(r.Get(row, 10));
  return s;
}

std::vector<Segment> SegmentsOf(const PgResult& r) {
  std::vector<Segment> out;
  out.reserve(static_cast<size_t>(r.Rows()));
  for (int i = 0; i < r.Rows(); ++i) out.push_back(SegmentAt(r, i));
  return out;
}

std::string IdArray(const std::vector<SegmentId>& ids) {
  return ArrayOf(ids, [](SegmentId id) { return std::to_string(id); });
}

std::string UserArray(const std::vector<UserId>& users) {
  // Canonical UUIDs need no quoting; built directly, as lists reach 100,000.
  std::string out;
  out.reserve(users.size() * 37 + 2);
  out += '{';
  for (size_t i = 0; i < users.size(); ++i) {
    if (i > 0) out += ',';
    out += users[i];
  }
  out += '}';
  return out;
}

std::optional<std::string> OptionalTime(const std::optional<absl::Time>& t) {
  if (!t) return std::nullopt;
  return TimeText(*t);
}

// domain::Transaction over one open transaction of a connection.
class PgTransactionOps final : public domain::Transaction {
 public:
  PgTransactionOps(PgConnection& conn, absl::Duration set_statement_timeout)
      : conn_(conn), set_statement_timeout_(set_statement_timeout) {}

  absl::Status LockAutoAssignment(domain::AutoAssignmentLock mode) override {
    return conn_.Execute(mode == domain::AutoAssignmentLock::kShared ? kLockAutoShared : kLockAutoExclusive, {})
        .status();
  }

  absl::StatusOr<std::optional<UserState>> LockUser(const UserId& user) override {
    auto r = conn_.Execute(kLockUser, {user});
    if (!r.ok()) return r.status();
    if (r->Rows() == 0) return std::nullopt;
    return domain::ParseUserState(r->Get(0, 0));
  }

  absl::Status InsertUser(const UserId& user, UserState state, absl::Time now) override {
    auto r = conn_.Execute(kInsertUser, {user, std::string(domain::ToString(state)), TimeText(now)});
    if (!r.ok()) return r.status();
    if (r->AffectedRows() == 0) return absl::AlreadyExistsError("user exists");
    return absl::OkStatus();
  }

  absl::Status SetUserState(const UserId& user, UserState state, absl::Time now) override {
    return conn_.Execute(kSetUserState, {user, std::string(domain::ToString(state)), TimeText(now)}).status();
  }

  absl::Status DeleteUser(const UserId& user) override { return conn_.Execute(kDeleteUser, {user}).status(); }

  absl::StatusOr<absl::flat_hash_map<UserId, UserState>> LockUsers(const std::vector<UserId>& users) override {
    absl::flat_hash_map<UserId, UserState> known;
    if (users.empty()) return known;
    auto r = conn_.Execute(kLockUsers, {UserArray(users)});
    if (!r.ok()) return r.status();
    for (int i = 0; i < r->Rows(); ++i) {
      auto state = domain::ParseUserState(r->Get(i, 1));
      if (!state) return absl::InternalError("users.state holds an unknown value: " + std::string(r->Get(i, 1)));
      known.emplace(r->Get(i, 0), *state);
    }
    return known;
  }

  absl::Status InsertUsers(const std::vector<std::pair<UserId, UserState>>& users, absl::Time now) override {
    if (users.empty()) return absl::OkStatus();
    auto r = conn_.Execute(
        kInsertUsers,
        {ArrayOf(users, [](const auto& u) { return u.first; }),
         ArrayOf(users, [](const auto& u) { return std::string(domain::ToString(u.second)); }), TimeText(now)});
    if (!r.ok()) return r.status();
    if (r->AffectedRows() != static_cast<int64_t>(users.size())) return absl::AlreadyExistsError("a user exists");
    return absl::OkStatus();
  }

  absl::Status SetUserStates(const std::vector<std::pair<UserId, UserState>>& users, absl::Time now) override {
    if (users.empty()) return absl::OkStatus();
    return conn_
        .Execute(kSetUserStates,
                 {ArrayOf(users, [](const auto& u) { return u.first; }),
                  ArrayOf(users, [](const auto& u) { return std::string(domain::ToString(u.second)); }), TimeText(now)})
        .status();
  }

  absl::StatusOr<Segment> InsertSegment(const NewSegment& s, absl::Time now) override {
    const domain::AutoOptions& options = s.auto_options;
    auto r = conn_.Execute(kInsertSegment,
                           {s.slug, std::to_string(s.percent_hundredths), s.description, s.salt, TimeText(now),
                            IdArray(options.include_ids), IdArray(options.exclude_ids),
                            options.ttl_seconds ? std::optional(std::to_string(*options.ttl_seconds)) : std::nullopt});
    if (!r.ok()) return r.status();
    if (r->Rows() == 0) return absl::AlreadyExistsError("slug taken");
    return SegmentAt(*r, 0);
  }

  absl::StatusOr<std::optional<Segment>> MarkSegmentDeleted(const std::string& slug, absl::Time now) override {
    auto r = conn_.Execute(kMarkSegmentDeleted, {slug, TimeText(now)});
    if (!r.ok()) return r.status();
    if (r->Rows() == 0) return std::nullopt;
    return SegmentAt(*r, 0);
  }

  absl::StatusOr<std::vector<Segment>> LockLiveSegments(const std::vector<std::string>& slugs) override {
    auto r = conn_.Execute(kLockLiveSegments, {ArrayOf(slugs, [](const std::string& s) { return s; })});
    if (!r.ok()) return r.status();
    return SegmentsOf(*r);
  }

  absl::StatusOr<std::vector<std::string>> SegmentsReferring(SegmentId segment) override {
    auto r = conn_.Execute(kSegmentsReferring, {std::to_string(segment)});
    if (!r.ok()) return r.status();
    std::vector<std::string> slugs;
    for (int i = 0; i < r->Rows(); ++i) slugs.emplace_back(r->Get(i, 0));
    return slugs;
  }

  absl::StatusOr<std::vector<Segment>> AutoSegments() override {
    auto r = conn_.Execute(kAutoSegments, {});
    if (!r.ok()) return r.status();
    return SegmentsOf(*r);
  }

  absl::Status SetSegmentPercent(SegmentId segment, int32_t percent_hundredths) override {
    return conn_.Execute(kSetSegmentPercent, {std::to_string(segment), std::to_string(percent_hundredths)}).status();
  }

  absl::StatusOr<int64_t> AssignByPercent(const Segment& segment, int32_t from_hundredths, absl::Time now) override {
    if (absl::Status st = PickByBucket(segment, kActiveUsers, from_hundredths, segment.percent_hundredths); !st.ok()) {
      return st;
    }
    auto ended = CountOf(kEndExpiredPicked, {std::to_string(segment.id), segment.slug, TimeText(now)});
    if (!ended.ok()) return ended.status();
    std::optional<absl::Time> expires_at;
    if (segment.auto_options.ttl_seconds) expires_at = now + absl::Seconds(*segment.auto_options.ttl_seconds);
    return CountOf(kAssignPicked,
                   {std::to_string(segment.id), segment.slug, TimeText(now), IdArray(segment.auto_options.include_ids),
                    IdArray(segment.auto_options.exclude_ids), OptionalTime(expires_at)});
  }

  absl::StatusOr<int64_t> UnassignByPercent(const Segment& segment, int32_t from_hundredths, absl::Time now) override {
    const std::string members = fmt::format(kAutomaticMembersOf, fmt::arg("segment", segment.id));
    if (absl::Status st = PickByBucket(segment, members, segment.percent_hundredths, from_hundredths); !st.ok()) {
      return st;
    }
    return CountOf(kUnassignPicked, {std::to_string(segment.id), segment.slug, TimeText(now)});
  }

  absl::StatusOr<std::vector<SegmentId>> OptedOutSegments(const UserId& user) override {
    auto r = conn_.Execute(kOptedOutSegments, {user});
    if (!r.ok()) return r.status();
    std::vector<SegmentId> ids;
    for (int i = 0; i < r->Rows(); ++i) ids.push_back(ToInt64(r->Get(i, 0)));
    return ids;
  }

  absl::Status RecordOptOuts(const UserId& user, const std::vector<SegmentId>& segments, Reason reason,
                             absl::Time now) override {
    return conn_
        .Execute(kRecordOptOuts, {user, IdArray(segments), std::string(domain::ToString(reason)), TimeText(now)})
        .status();
  }

  absl::StatusOr<std::vector<UserId>> UnknownUsers(const std::vector<UserId>& users) override {
    auto r = conn_.Execute(kKeyShareUsers, {UserArray(users)});
    if (!r.ok()) return r.status();
    absl::flat_hash_set<UserId> known;
    for (int i = 0; i < r->Rows(); ++i) known.insert(std::string(r->Get(i, 0)));
    std::vector<UserId> unknown;
    for (const UserId& user : users) {
      if (!known.contains(user)) unknown.push_back(user);
    }
    return unknown;
  }

  absl::StatusOr<int64_t> AddMembers(const Segment& segment, const std::vector<UserId>& users,
                                     std::optional<absl::Time> expires_at, absl::Time now) override {
    if (absl::Status st = PrepareSetBased(); !st.ok()) return st;
    const std::string ids = UserArray(users);
    auto ended = CountOf(kEndExpiredMembersOf, {std::to_string(segment.id), ids, segment.slug, TimeText(now)});
    if (!ended.ok()) return ended.status();
    return CountOf(kAddMembers,
                   {std::to_string(segment.id), ids, segment.slug, TimeText(now), OptionalTime(expires_at)});
  }

  absl::StatusOr<int64_t> RemoveMembers(const Segment& segment, const std::vector<UserId>& users,
                                        absl::Time now) override {
    if (absl::Status st = PrepareSetBased(); !st.ok()) return st;
    return CountOf(kRemoveMembers, {std::to_string(segment.id), UserArray(users), segment.slug, TimeText(now)});
  }

  absl::StatusOr<std::vector<Membership>> UserMemberships(const UserId& user) override {
    auto r = conn_.Execute(kUserMemberships, {user});
    if (!r.ok()) return r.status();
    std::vector<Membership> out;
    for (int i = 0; i < r->Rows(); ++i) {
      Membership m{ToInt64(r->Get(i, 0)), std::string(r->Get(i, 1)), TimeFromMicros(r->Get(i, 2)), std::nullopt,
                   r->Get(i, 4) == "t"};
      if (!r->IsNull(i, 3)) m.expires_at = TimeFromMicros(r->Get(i, 3));
      out.push_back(std::move(m));
    }
    return out;
  }

  absl::Status InsertMembershipsOfUsers(const std::vector<std::pair<UserId, NewMembership>>& rows,
                                        absl::Time now) override {
    if (rows.empty()) return absl::OkStatus();
    return conn_
        .Execute(kInsertMembershipsOfUsers,
                 {ArrayOf(rows, [](const auto& r) { return r.first; }),
                  ArrayOf(rows, [](const auto& r) { return std::to_string(r.second.segment_id); }), TimeText(now),
                  ArrayOf(rows, [](const auto& r) { return OptionalTime(r.second.expires_at); }),
                  ArrayOf(rows, [](const auto& r) { return r.second.automatic ? "t" : "f"; })})
        .status();
  }

  absl::Status DeleteMemberships(const UserId& user, const std::vector<SegmentId>& segments) override {
    return conn_.Execute(kDeleteMemberships, {user, ArrayOf(segments, [](SegmentId id) { return std::to_string(id); })})
        .status();
  }

  absl::Status AppendHistory(const std::vector<HistoryEvent>& events) override {
    if (events.empty()) return absl::OkStatus();
    return conn_
        .Execute(kAppendHistory,
                 {ArrayOf(events, [](const HistoryEvent& e) { return e.user_id; }),
                  ArrayOf(events, [](const HistoryEvent& e) { return std::to_string(e.segment_id); }),
                  ArrayOf(events, [](const HistoryEvent& e) { return e.slug; }),
                  ArrayOf(events, [](const HistoryEvent& e) { return std::string(domain::ToString(e.operation)); }),
                  ArrayOf(events, [](const HistoryEvent& e) { return std::string(domain::ToString(e.reason)); }),
                  ArrayOf(events, [](const HistoryEvent& e) { return TimeText(e.at); })})
        .status();
  }

  absl::StatusOr<int64_t> EndSegmentMemberships(const Segment& segment, Reason reason, absl::Time now) override {
    if (absl::Status st = PrepareSetBased(); !st.ok()) return st;
    return CountOf(kEndSegmentMemberships,
                   {std::to_string(segment.id), segment.slug, std::string(domain::ToString(reason)), TimeText(now)});
  }

  absl::StatusOr<int64_t> EndUserMemberships(const UserId& user, Reason reason, absl::Time now) override {
    return CountOf(kEndUserMemberships, {user, std::string(domain::ToString(reason)), TimeText(now)});
  }

 private:
  // Fills auto_picked with the ids `source` yields whose bucket for the
  // segment's salt is in [from, to) (queries.h).
  absl::Status PickByBucket(const Segment& segment, std::string_view source, int32_t from, int32_t to) {
    if (absl::Status st = PrepareSetBased(); !st.ok()) return st;
    for (const char* sql : {kAllowParallelPick, kDropPicked}) {
      if (auto done = conn_.ExecuteSimple(sql); !done.ok()) return done.status();
    }
    const std::string pick = fmt::format(kPickByBucket, fmt::arg("salt", conn_.Quote(segment.salt)),
                                         fmt::arg("source", source), fmt::arg("from", from), fmt::arg("to", to));
    return conn_.ExecuteSimple(pick.c_str()).status();
  }

  // Statements over whole segments or all users may outlast the statement
  // timeout of point queries; their plans are costly enough to be
  // JIT-compiled, which costs more than it saves here; they sort up to
  // millions of ids, which should not spill to disk; and the notices of
  // their temporary table are of no interest. Once per transaction.
  absl::Status PrepareSetBased() {
    if (set_based_prepared_) return absl::OkStatus();
    const std::string settings =
        "SET LOCAL jit = off; SET LOCAL client_min_messages = warning; SET LOCAL work_mem = '64MB'; "
        "SET LOCAL statement_timeout = " +
        std::to_string(absl::ToInt64Milliseconds(set_statement_timeout_));
    if (auto st = conn_.ExecuteSimple(settings.c_str()); !st.ok()) return st.status();
    set_based_prepared_ = true;
    return absl::OkStatus();
  }

  // Runs a statement answering one row with one count.
  absl::StatusOr<int64_t> CountOf(const Statement& statement, const PgParams& params) {
    auto r = conn_.Execute(statement, params);
    if (!r.ok()) return r.status();
    return ToInt64(r->Get(0, 0));
  }

  PgConnection& conn_;
  absl::Duration set_statement_timeout_;
  bool set_based_prepared_ = false;
};

// Rows [begin, end) of a report cursor's binary columns (queries.h): uuid
// (16 bytes), int8 and timestamptz (big-endian int64, microseconds since
// 2000-01-01), text and enums (their bytes). false if a value has the wrong size.
bool AppendReportEvents(const PgResult& r, int begin, int end, std::vector<HistoryEvent>& events) {
  constexpr int64_t kPostgresEpochMicros = int64_t{946'684'800} * 1'000'000;
  auto int64_at = [&](int row, int column, int64_t& out) {
    const std::string_view v = r.Get(row, column);
    if (v.size() != 8) return false;
    uint64_t raw = 0;
    std::memcpy(&raw, v.data(), 8);
    out = static_cast<int64_t>(be64toh(raw));
    return true;
  };
  events.reserve(events.size() + static_cast<size_t>(end - begin));
  for (int i = begin; i < end; ++i) {
    const std::string_view uuid = r.Get(i, 0);
    int64_t segment_id = 0, at = 0, id = 0;
    if (uuid.size() != 16 || !int64_at(i, 1, segment_id) || !int64_at(i, 5, at) || !int64_at(i, 6, id)) return false;
    static constexpr char kHex[] = "0123456789abcdef";
    std::string user(36, '-');
    for (size_t b = 0, o = 0; b < 16; ++b, ++o) {
      if (b == 4 || b == 6 || b == 8 || b == 10) ++o;
      const auto byte = static_cast<unsigned char>(uuid[b]);
      user[o] = kHex[byte >> 4];
      user[++o] = kHex[byte & 15];
    }
    events.push_back(HistoryEvent{std::move(user), segment_id, std::string(r.Get(i, 2)),
                                  domain::ParseOperation(r.Get(i, 3)).value_or(domain::Operation::kAdd),
                                  domain::ParseReason(r.Get(i, 4)).value_or(Reason::kManual),
                                  absl::FromUnixMicros(at + kPostgresEpochMicros), id});
  }
  return true;
}

// Reads the columns listed by SEGMENTS_HISTORY_COLUMNS.
std::vector<HistoryEvent> HistoryEventsOf(const PgResult& r) {
  std::vector<HistoryEvent> events;
  events.reserve(static_cast<size_t>(r.Rows()));
  for (int i = 0; i < r.Rows(); ++i) {
    events.push_back(HistoryEvent{std::string(r.Get(i, 0)), ToInt64(r.Get(i, 1)), std::string(r.Get(i, 2)),
                                  domain::ParseOperation(r.Get(i, 3)).value_or(domain::Operation::kAdd),
                                  domain::ParseReason(r.Get(i, 4)).value_or(Reason::kManual),
                                  TimeFromMicros(r.Get(i, 5)), ToInt64(r.Get(i, 6))});
  }
  return events;
}

// A report cursor inside a read-only transaction that it owns with its
// connection; both end when it is destroyed. It reads ahead: the next batch
// is asked for as soon as one arrives, so PostgreSQL reads it while the
// caller formats and sends the current one.
class PgHistoryCursor final : public domain::HistoryCursor {
 public:
  PgHistoryCursor(PgPool::Lease lease, PgTransaction tx) : lease_(std::move(lease)), tx_(std::move(tx)) {}

  ~PgHistoryCursor() override {
    // A batch asked for ahead must be taken before the transaction ends.
    if (in_flight_) (void)lease_->TakeResult(kReportCursor);
  }

  absl::StatusOr<std::vector<HistoryEvent>> Next(int max_rows) override {
    std::vector<HistoryEvent> events;
    while (static_cast<int>(events.size()) < max_rows) {
      if (!batch_ || offset_ == batch_->Rows()) {
        if (done_) break;
        if (auto taken = Take(max_rows); !taken.ok()) return taken;
        if (batch_->Rows() == 0) break;
      }
      const int end = std::min(batch_->Rows(), offset_ + max_rows - static_cast<int>(events.size()));
      if (!AppendReportEvents(*batch_, offset_, end, events)) {
        return absl::InternalError("unexpected binary value in the history report");
      }
      offset_ = end;
    }
    return events;
  }

 private:
  // The batch asked for (now, if nothing is in flight) into batch_, and the
  // next one asked for unless this one was the last.
  absl::Status Take(int max_rows) {
    if (!in_flight_) {
      if (auto sent = Ask(max_rows); !sent.ok()) return sent;
    }
    in_flight_ = false;
    auto r = lease_->TakeResult(kReportCursor);
    if (!r.ok()) {
      done_ = true;
      return r.status();
    }
    batch_.emplace(std::move(*r));
    offset_ = 0;
    if (batch_->Rows() < asked_) {
      done_ = true;  // a short batch is the last one
      return absl::OkStatus();
    }
    return Ask(max_rows);
  }

  absl::Status Ask(int max_rows) {
    const std::string fetch = "FETCH FORWARD " + std::to_string(max_rows) + " FROM " + kReportCursor;
    absl::Status sent = lease_->Send(fetch.c_str());
    in_flight_ = sent.ok();
    asked_ = max_rows;
    if (!sent.ok()) done_ = true;
    return sent;
  }

  PgPool::Lease lease_;
  PgTransaction tx_;  // declared after the lease: rolled back before it is returned
  std::optional<PgResult> batch_;
  int offset_ = 0;
  int asked_ = 0;
  bool in_flight_ = false;
  bool done_ = false;
};

void BackOff(int attempt) {
  // 1, 2, 4 ... ms with jitter, so colliding transactions drift apart.
  static thread_local absl::BitGen gen;
  const double ms = static_cast<double>(1 << std::min(attempt, 6));
  absl::SleepFor(absl::Milliseconds(ms * absl::Uniform(gen, 0.5, 1.5)));
}

}  // namespace

absl::Status PgStore::InTransaction(absl::FunctionRef<absl::Status(domain::Transaction&)> work) {
  bool stale_retry_left = true;
  for (int attempt = 0;; ++attempt) {
    auto lease = pool_.Acquire();
    if (!lease.ok()) return lease.status();
    auto tx = PgTransaction::Begin(**lease);
    if (!tx.ok()) {
      // A connection that idled through a database restart fails here first.
      if (absl::IsUnavailable(tx.status()) && lease->reused() && stale_retry_left) {
        stale_retry_left = false;
        pool_.DiscardIdle();
        continue;
      }
      return tx.status();
    }
    PgTransactionOps ops(**lease, set_statement_timeout_);
    absl::Status status = work(ops);
    if (status.ok()) {
      status = tx->Commit();
    } else {
      tx->Rollback();
    }
    if (IsRetryable(status) && attempt + 1 < kMaxAttempts) {
      BackOff(attempt);
      continue;
    }
    return status;
  }
}

template <typename Read>
auto PgStore::WithConnection(Read read) -> decltype(read(std::declval<PgPool::Lease&>())) {
  for (bool stale_retry_left = true;; stale_retry_left = false) {
    auto lease = pool_.Acquire();
    if (!lease.ok()) return lease.status();
    auto result = read(*lease);
    if (!result.ok() && absl::IsUnavailable(result.status()) && lease->reused() && stale_retry_left) {
      pool_.DiscardIdle();
      continue;
    }
    return result;
  }
}

absl::StatusOr<std::vector<std::string>> PgStore::ActiveSegmentSlugs(const UserId& user, absl::Time now) {
  return WithConnection([&](PgPool::Lease& conn) -> absl::StatusOr<std::vector<std::string>> {
    auto r = conn->Execute(kActiveSegmentSlugs, {user, TimeText(now)});
    if (!r.ok()) return r.status();
    std::vector<std::string> slugs;
    slugs.reserve(static_cast<size_t>(r->Rows()));
    for (int i = 0; i < r->Rows(); ++i) slugs.emplace_back(r->Get(i, 0));
    return slugs;
  });
}

absl::StatusOr<std::optional<std::pair<Segment, int64_t>>> PgStore::FindSegment(const std::string& slug,
                                                                                absl::Time now) {
  return WithConnection([&](PgPool::Lease& conn) -> absl::StatusOr<std::optional<std::pair<Segment, int64_t>>> {
    auto r = conn->Execute(kFindSegment, {slug, TimeText(now)});
    if (!r.ok()) return r.status();
    if (r->Rows() == 0) return std::nullopt;
    return std::make_pair(SegmentAt(*r, 0), ToInt64(r->Get(0, kSegmentColumns)));
  });
}

absl::StatusOr<std::optional<Segment>> PgStore::LookupSegment(const std::string& slug) {
  return WithConnection([&](PgPool::Lease& conn) -> absl::StatusOr<std::optional<Segment>> {
    auto r = conn->Execute(kLookupSegment, {slug});
    if (!r.ok()) return r.status();
    if (r->Rows() == 0) return std::nullopt;
    return SegmentAt(*r, 0);
  });
}

absl::StatusOr<std::vector<Segment>> PgStore::ListSegments(const std::string& after_slug, int limit) {
  return WithConnection([&](PgPool::Lease& conn) -> absl::StatusOr<std::vector<Segment>> {
    auto r = conn->Execute(kListSegments, {after_slug, std::to_string(limit)});
    if (!r.ok()) return r.status();
    return SegmentsOf(*r);
  });
}

absl::StatusOr<std::vector<domain::SegmentMember>> PgStore::SegmentMembers(SegmentId segment, const UserId& after_user,
                                                                           int limit, absl::Time now) {
  PgParams params{std::to_string(segment), TimeText(now), std::to_string(limit)};
  if (!after_user.empty()) params.push_back(after_user);
  return WithConnection([&](PgPool::Lease& conn) -> absl::StatusOr<std::vector<domain::SegmentMember>> {
    auto r = conn->Execute(after_user.empty() ? kFirstMembers : kNextMembers, params);
    if (!r.ok()) return r.status();
    std::vector<domain::SegmentMember> members;
    members.reserve(static_cast<size_t>(r->Rows()));
    for (int i = 0; i < r->Rows(); ++i) {
      domain::SegmentMember m{std::string(r->Get(i, 0)), TimeFromMicros(r->Get(i, 1)), std::nullopt,
                              r->Get(i, 3) == "t"};
      if (!r->IsNull(i, 2)) m.expires_at = TimeFromMicros(r->Get(i, 2));
      members.push_back(std::move(m));
    }
    return members;
  });
}

absl::StatusOr<std::unique_ptr<domain::HistoryCursor>> PgStore::OpenHistory(const std::optional<UserId>& user,
                                                                            absl::Time from, absl::Time to) {
  return WithConnection([&](PgPool::Lease& conn) -> absl::StatusOr<std::unique_ptr<domain::HistoryCursor>> {
    auto tx = PgTransaction::Begin(*conn, PgTransaction::Mode::kReadOnly);
    if (!tx.ok()) return tx.status();
    auto declared = user ? conn->Execute(kDeclareReportOneUser, {*user, TimeText(from), TimeText(to)})
                         : conn->Execute(kDeclareReportAllUsers, {TimeText(from), TimeText(to)});
    if (!declared.ok()) return declared.status();
    return std::unique_ptr<domain::HistoryCursor>(new PgHistoryCursor(std::move(conn), std::move(*tx)));
  });
}

absl::StatusOr<std::vector<HistoryEvent>> PgStore::UserHistory(const domain::UserHistoryQuery& query) {
  auto optional_time = [](const std::optional<absl::Time>& t) -> std::optional<std::string> {
    if (!t) return std::nullopt;
    return TimeText(*t);
  };
  PgParams params{query.user,
                  query.slug,
                  optional_time(query.from),
                  optional_time(query.to),
                  query.after ? std::optional(TimeText(query.after->at)) : std::nullopt,
                  query.after ? std::optional(std::to_string(query.after->id)) : std::nullopt,
                  std::to_string(query.limit)};
  return WithConnection([&](PgPool::Lease& conn) -> absl::StatusOr<std::vector<HistoryEvent>> {
    auto r = conn->Execute(kUserHistory, params);
    if (!r.ok()) return r.status();
    return HistoryEventsOf(*r);
  });
}

absl::StatusOr<int64_t> PgStore::EndExpiredMemberships(absl::Time now, int limit) {
  return WithConnection([&](PgPool::Lease& conn) -> absl::StatusOr<int64_t> {
    auto r = conn->Execute(kEndExpiredMemberships, {TimeText(now), std::to_string(limit)});
    if (!r.ok()) return r.status();
    return ToInt64(r->Get(0, 0));
  });
}

absl::Status PgStore::Ping() {
  return WithConnection([](PgPool::Lease& conn) { return conn->ExecuteSimple("SELECT 1"); }).status();
}

}  // namespace segments::storage
