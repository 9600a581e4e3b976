#include "storage/pg_history_repository.h"

#include <absl/strings/str_cat.h>
#include <endian.h>
#include <fmt/format.h>

#include <algorithm>
#include <cstring>

#include "common/status_macros.h"
#include "storage/pg_row.h"

namespace segments::storage {
namespace {

using domain::HistoryEvent;

// $1..$7: users, segment ids, slugs, operations, reasons, times, deadlines
// (parallel arrays).
const Statement kAppendHistory{
    "append_history",
    "INSERT INTO history (user_id, segment_id, slug, operation, reason, at, expires_at) "
    "SELECT * FROM unnest($1::user_id[], $2::int8[], $3::text[], $4::history_operation[], $5::history_reason[], "
    "$6::timestamptz[], $7::timestamptz[])"};

// A page of one user's history, newest first: $1 user, $2 slug or NULL,
// $3 from or NULL, $4 to or NULL, $5 and $6 the (at, id) to continue below or
// NULL, $7 limit. Columns as HistoryEventAt reads them; rows written before
// actors were recorded (migration 14) read as "unknown".
const Statement kUserHistory{
    "user_history",
    "SELECT user_id, segment_id, slug, operation, reason, (extract(epoch FROM at) * 1000000)::int8 AS at, id, "
    "coalesce(actor, 'unknown') "
    "FROM history WHERE user_id = $1::user_id "
    "AND ($2::text IS NULL OR slug = $2) AND ($3::timestamptz IS NULL OR at >= $3) "
    "AND ($4::timestamptz IS NULL OR at < $4) AND ($5::timestamptz IS NULL OR (at, id) < ($5, $6::int8)) "
    "ORDER BY at DESC, id DESC LIMIT $7"};

// A report's rows in the order of history_report_order_idx, read with FETCH
// inside one transaction, so the whole report is one snapshot: the month
// [$1, $2) for everyone, or [$2, $3) for user $1. A BINARY cursor: the rows
// come in PostgreSQL's binary format (no output functions there, no number
// parsing here), decoded by AppendReportEvents.
constexpr const char* kReportCursor = "history_report";
const Statement kDeclareReportAllUsers{"declare_report_all_users",
                                       "DECLARE history_report BINARY NO SCROLL CURSOR FOR "
                                       "SELECT user_id, segment_id, slug, operation, reason, at, id FROM history "
                                       "WHERE at >= $1 AND at < $2 ORDER BY at, user_id, slug, id"};
const Statement kDeclareReportOneUser{"declare_report_one_user",
                                      "DECLARE history_report BINARY NO SCROLL CURSOR FOR "
                                      "SELECT user_id, segment_id, slug, operation, reason, at, id FROM history "
                                      "WHERE user_id = $1::user_id AND at >= $2 AND at < $3 "
                                      "ORDER BY at, user_id, slug, id"};

}  // namespace

absl::StatusOr<HistoryEvent> HistoryEventAt(const PgResult& r, int i) {
  const PgRow row(r, i);
  ASSIGN_OR_RETURN(domain::UserId user, row.User(0));
  HistoryEvent e{user};
  ASSIGN_OR_RETURN(e.segment_id, row.Int64(1));
  ASSIGN_OR_RETURN(e.slug, row.Text(2));
  ASSIGN_OR_RETURN(e.operation, row.Enum(3, &domain::ParseOperation));
  ASSIGN_OR_RETURN(e.reason, row.Enum(4, &domain::ParseReason));
  ASSIGN_OR_RETURN(e.at, row.Micros(5));
  ASSIGN_OR_RETURN(e.id, row.Int64(6));
  ASSIGN_OR_RETURN(e.actor, row.Text(7));
  return e;
}

namespace {

// A binary int8 or timestamptz: big-endian, 8 bytes.
absl::StatusOr<int64_t> BinaryInt64(const PgResult& r, int row, int column) {
  const std::string_view v = r.Get(row, column);
  if (v.size() != 8 || r.IsNull(row, column)) {
    return absl::InternalError(fmt::format("history report: column \"{}\" is not 8 bytes", r.ColumnName(column)));
  }
  uint64_t raw = 0;
  std::memcpy(&raw, v.data(), 8);
  return static_cast<int64_t>(be64toh(raw));
}

// Rows [begin, end) of a report cursor's binary columns: int8 and
// timestamptz (microseconds since 2000-01-01), text (the user id too) and
// enums (their bytes).
absl::Status AppendReportEvents(const PgResult& r, int begin, int end, std::vector<HistoryEvent>& events) {
  constexpr int64_t kPostgresEpochMicros = int64_t{946'684'800} * 1'000'000;
  events.reserve(events.size() + static_cast<size_t>(end - begin));
  for (int i = begin; i < end; ++i) {
    ASSIGN_OR_RETURN(domain::UserId user, PgRow(r, i).User(0));
    HistoryEvent e{user};
    ASSIGN_OR_RETURN(e.segment_id, BinaryInt64(r, i, 1));
    e.slug = std::string(r.Get(i, 2));
    ASSIGN_OR_RETURN(e.operation, PgRow(r, i).Enum(3, &domain::ParseOperation));
    ASSIGN_OR_RETURN(e.reason, PgRow(r, i).Enum(4, &domain::ParseReason));
    ASSIGN_OR_RETURN(int64_t at, BinaryInt64(r, i, 5));
    e.at = absl::FromUnixMicros(at + kPostgresEpochMicros);
    ASSIGN_OR_RETURN(e.id, BinaryInt64(r, i, 6));
    events.push_back(std::move(e));
  }
  return absl::OkStatus();
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
    if (in_flight_) lease_->TakeResult(kReportCursor).IgnoreError();
  }

  absl::StatusOr<std::vector<HistoryEvent>> Next(int max_rows) override {
    std::vector<HistoryEvent> events;
    while (static_cast<int>(events.size()) < max_rows) {
      if (!batch_ || offset_ == batch_->Rows()) {
        if (done_) break;
        RETURN_IF_ERROR(Take(max_rows));
        if (batch_->Rows() == 0) break;
      }
      const int end = std::min(batch_->Rows(), offset_ + max_rows - static_cast<int>(events.size()));
      RETURN_IF_ERROR(AppendReportEvents(*batch_, offset_, end, events));
      offset_ = end;
    }
    return events;
  }

 private:
  // The batch asked for (now, if nothing is in flight) into batch_, and the
  // next one asked for unless this one was the last.
  absl::Status Take(int max_rows) {
    if (!in_flight_) RETURN_IF_ERROR(Ask(max_rows));
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
    const std::string fetch = absl::StrCat("FETCH FORWARD ", max_rows, " FROM ", kReportCursor);
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

}  // namespace

const std::string& ReportCursorSql(bool one_user) {
  return one_user ? kDeclareReportOneUser.sql : kDeclareReportAllUsers.sql;
}

absl::Status PgHistoryRepository::Append(const std::vector<HistoryEvent>& events) {
  if (events.empty()) return absl::OkStatus();
  std::vector<domain::UserId> users;
  std::vector<int64_t> segments;
  std::vector<std::string> slugs, operations, reasons;
  std::vector<std::optional<absl::Time>> times, deadlines;
  for (const HistoryEvent& e : events) {
    users.push_back(e.user_id);
    segments.push_back(e.segment_id);
    slugs.push_back(e.slug);
    operations.emplace_back(domain::ToString(e.operation));
    reasons.emplace_back(domain::ToString(e.reason));
    times.emplace_back(e.at);
    deadlines.push_back(e.expires_at);
  }
  PgParams params;
  params.Users(users)
      .IntArray(segments)
      .TextArray(slugs)
      .TextArray(operations)
      .TextArray(reasons)
      .OptionalTimeArray(times)
      .OptionalTimeArray(deadlines);
  return tx_.conn().Execute(kAppendHistory, params).status();
}

absl::StatusOr<std::unique_ptr<domain::HistoryCursor>> PgHistoryQueries::OpenReport(
    const std::optional<domain::UserId>& user, absl::Time from, absl::Time to) {
  return WithPooledConnection(
      pool_, [&](PgPool::Lease& conn) -> absl::StatusOr<std::unique_ptr<domain::HistoryCursor>> {
        ASSIGN_OR_RETURN(PgTransaction tx, PgTransaction::Begin(*conn, PgTransaction::Mode::kReadOnly));
        if (user) {
          RETURN_IF_ERROR(conn->Execute(kDeclareReportOneUser, PgParams().User(*user).Time(from).Time(to)));
        } else {
          RETURN_IF_ERROR(conn->Execute(kDeclareReportAllUsers, PgParams().Time(from).Time(to)));
        }
        return std::unique_ptr<domain::HistoryCursor>(new PgHistoryCursor(std::move(conn), std::move(tx)));
      });
}

absl::StatusOr<std::vector<HistoryEvent>> PgHistoryQueries::OfUser(const domain::UserHistoryQuery& query) {
  PgParams params;
  params.User(query.user)
      .OptionalText(query.slug)
      .OptionalTime(query.from)
      .OptionalTime(query.to)
      .OptionalTime(query.after ? std::optional(query.after->at) : std::nullopt)
      .OptionalText(query.after ? std::optional(std::to_string(query.after->id)) : std::nullopt)
      .Int(query.limit);
  return WithPooledConnection(pool_, [&](PgPool::Lease& conn) -> absl::StatusOr<std::vector<HistoryEvent>> {
    ASSIGN_OR_RETURN(PgResult r, conn->Execute(kUserHistory, params));
    std::vector<HistoryEvent> events;
    events.reserve(static_cast<size_t>(r.Rows()));
    for (int i = 0; i < r.Rows(); ++i) {
      ASSIGN_OR_RETURN(HistoryEvent e, HistoryEventAt(r, i));
      events.push_back(std::move(e));
    }
    return events;
  });
}

}  // namespace segments::storage
