// History reads and TTL expiry of PgStore against the real database:
//  - the monthly CSV report (HistoryQueries::OpenReport + domain::CsvReport) byte
//    for byte for a history written with SQL: order by time, user, segment,
//    id; header; microseconds; half-open UTC months; deleted users and
//    re-created slugs; one user; several chunks; the connection given back;
//  - the plans the report cursors get (index order, no sort of the month);
//  - UserHistory pages: newest first, limits, (at, id) continuation through
//    ties, slug and time filters;
//  - EndExpiredMemberships: events at the deadlines, limits, and races
//    between several expiry jobs, and between a job and users' updates, that
//    must end each membership exactly once.
#include <absl/strings/ascii.h>
#include <absl/strings/match.h>
#include <absl/strings/str_cat.h>
#include <absl/strings/str_split.h>
#include <absl/synchronization/barrier.h>
#include <absl/time/civil_time.h>
#include <fmt/format.h>
#include <libpq-fe.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <map>
#include <memory>
#include <random>
#include <thread>
#include <tuple>

#include "domain/history_report.h"
#include "domain/segment_use_cases.h"
#include "storage/pg_history_repository.h"
#include "storage/pg_store.h"
#include "support/domain_testing.h"
#include "support/fake_clock.h"
#include "support/store_testing.h"
#include "support/test_database.h"

using namespace segments::domain;
using segments::storage::PgPool;
using segments::storage::PgPoolOptions;
using segments::storage::PgStore;
using segments::testing::Id;
using segments::testing::Query;
using segments::testing::QueryValue;
using Rows = std::vector<std::vector<std::string>>;

namespace {

// UUIDs whose byte order is their text order.
const std::string kUa = "aaaaaaaa-0000-4000-8000-000000000001";
const std::string kUb = "bbbbbbbb-0000-4000-8000-000000000002";
const std::string kUd = "dddddddd-0000-4000-8000-000000000004";  // never in `users`: a deleted user

absl::Time Utc(int y, int mo, int d, int h, int mi, int s, int64_t micros = 0) {
  return absl::FromCivil(absl::CivilSecond(y, mo, d, h, mi, s), absl::UTCTimeZone()) + absl::Microseconds(micros);
}

// RFC 3339 with microseconds, as PostgreSQL and the test expectations read it.
std::string Rfc3339(absl::Time t) { return absl::FormatTime("%Y-%m-%dT%H:%M:%E6SZ", t, absl::UTCTimeZone()); }

std::string Micros(absl::Time t) { return std::to_string(absl::ToUnixMicros(t)); }

// SQL for a timestamptz column as microseconds since the epoch.
std::string MicrosOf(const std::string& column) { return "(extract(epoch FROM " + column + ") * 1000000)::int8"; }

// A CSV line as the contract describes it, built independently of the code
// under test.
std::string Line(const std::string& user, const std::string& slug, const std::string& op, absl::Time at) {
  return absl::StrCat(user, ";", slug, ";", op, ";", Rfc3339(at), "\n");
}

const std::string kHeader = "user_id;segment;operation;datetime\n";

// One history row to insert; `at` is any timestamptz literal PostgreSQL takes.
struct Row {
  std::string user;
  int64_t segment_id;
  std::string slug;
  std::string operation;
  std::string reason;
  std::string at;
  int64_t id = 0;  // 0: the next of the identity
};

// Inserts `rows` in the given order: that is their order in the table, and
// their ids follow it unless given.
void InsertHistory(const std::vector<Row>& rows) {
  std::string sql =
      "INSERT INTO history (id, user_id, segment_id, slug, operation, reason, at) OVERRIDING SYSTEM VALUE VALUES ";
  for (size_t i = 0; i < rows.size(); ++i) {
    const Row& r = rows[i];
    absl::StrAppend(&sql, i == 0 ? "" : ", ", "(", r.id == 0 ? "DEFAULT" : std::to_string(r.id), ", '", r.user, "', ",
                    r.segment_id, ", '", r.slug, "', '", r.operation, "', '", r.reason, "', '", r.at, "')");
  }
  Query(sql);
}

struct Fixture {
  PgPool pool{PgPoolOptions{segments::testing::TestDatabaseUrl(), 4}};
  PgStore store{pool};

  Fixture() { segments::testing::ResetDatabase(); }

  // Every chunk of the report of `query`, read to the end through CsvReport.
  std::vector<std::string> ReportChunks(const ReportQuery& query) {
    auto cursor = store.history().OpenReport(query.user ? std::optional(Id(*query.user)) : std::nullopt, query.From(),
                                             query.To());
    INFO(cursor.status().ToString());
    REQUIRE(cursor.ok());
    CsvReport report(std::move(*cursor), ReportFileName(query));
    std::vector<std::string> chunks;
    for (;;) {
      auto chunk = report.NextChunk();
      INFO(chunk.status().ToString());
      REQUIRE(chunk.ok());
      if (chunk->empty()) break;
      chunks.push_back(*std::move(chunk));
      REQUIRE(chunks.size() < 1000);  // a report that never ends
    }
    auto after_end = report.NextChunk();  // stays finished
    CHECK((after_end.ok() && after_end->empty()));
    return chunks;
  }

  std::string Report(const ReportQuery& query) {
    std::string out;
    for (const std::string& chunk : ReportChunks(query)) out += chunk;
    return out;
  }

  std::vector<HistoryEvent> History(UserHistoryQuery query) {
    auto events = store.history().OfUser(query);
    INFO(events.status().ToString());
    REQUIRE(events.ok());
    return *events;
  }

  Segment NewSegment(const std::string& slug, absl::Time at) {
    Segment out;
    REQUIRE(store
                .InTransaction([&](Transaction& tx) -> absl::Status {
                  auto s = tx.segments().Insert({slug, 0, "", "salt", {}}, at);
                  if (!s.ok()) return s.status();
                  out = *s;
                  return absl::OkStatus();
                })
                .ok());
    return out;
  }

  void NewUser(const std::string& id, absl::Time at) {
    REQUIRE(
        store.InTransaction([&](Transaction& tx) { return tx.users().Insert(Id(id), UserState::kActive, at); }).ok());
  }

  void AddMemberships(const std::string& user, const std::vector<NewMembership>& memberships, absl::Time at) {
    REQUIRE(segments::testing::InsertMemberships(store, Id(user), memberships, at).ok());
  }

  int64_t EndExpired(absl::Time now, int limit) {
    auto ended = segments::testing::EndExpiredMemberships(store, now, limit);
    INFO(ended.status().ToString());
    REQUIRE(ended.ok());
    return *ended;
  }
};

// --- the monthly report

// A month of history with every ordering key exercised, inserted out of
// order, plus events just outside the month on both sides.
void InsertKnownHistory() {
  InsertHistory({
      // Outside March 2024, UTC: the instants right before and at its ends,
      // and local times that look like March but are not, in UTC.
      {kUa, 1, "ALPHA", "add", "manual", "2024-02-29T23:59:59.999999Z"},
      {kUb, 1, "ALPHA", "remove", "manual", "2024-04-01T00:00:00Z"},
      {kUb, 2, "BETA", "add", "manual", "2024-03-01 02:00:00+03"},     // 2024-02-29T23:00:00Z
      {kUb, 2, "BETA", "remove", "manual", "2024-03-31 23:30:00-02"},  // 2024-04-01T01:30:00Z
      // Inside, latest first so that ids disagree with the report order.
      {kUa, 1, "ALPHA", "remove", "manual", "2024-03-31T23:59:59.999999Z"},
      // Same instant: user, then slug, then id decide.
      {kUb, 2, "BETA", "add", "manual", "2024-03-10T09:00:00.123456Z"},
      {kUa, 2, "BETA", "add", "manual", "2024-03-10T09:00:00.123456Z"},
      {kUa, 1, "ALPHA", "add", "manual", "2024-03-10T09:00:00.123456Z"},
      // Same instant, user and slug: only the id orders these. Each pair is
      // stored against its id order; ordered by operation the first pair, by
      // segment id the second would come out the other way round.
      {kUa, 4, "GAMMA", "add", "manual", "2024-03-20T00:00:00.000001Z", 1002},
      {kUa, 3, "GAMMA", "remove", "segment_deleted", "2024-03-20T00:00:00.000001Z", 1001},
      {kUb, 3, "GAMMA", "remove", "segment_deleted", "2024-03-20T00:00:00.000001Z", 1004},
      {kUb, 4, "GAMMA", "add", "manual", "2024-03-20T00:00:00.000001Z", 1003},
      // GAMMA deleted and created again: both segments report as GAMMA.
      {kUa, 4, "GAMMA", "remove", "manual", "2024-03-21T08:00:00Z"},
      {kUa, 3, "GAMMA", "add", "manual", "2024-03-02T10:00:00Z"},
      // A user since deleted: their events stay.
      {kUd, 1, "ALPHA", "remove", "user_deleted", "2024-03-04 12:00:00.5+02"},  // 10:00:00.5Z
      {kUd, 1, "ALPHA", "add", "manual", "2024-03-03T10:00:00.999999Z"},
      // The month's first instant.
      {kUb, 1, "ALPHA", "add", "manual", "2024-03-01T00:00:00Z"},
  });
}

const absl::Time kTie = Utc(2024, 3, 10, 9, 0, 0, 123456);
const absl::Time kGammaTie = Utc(2024, 3, 20, 0, 0, 0, 1);

// The whole file, spelled out.
const std::string kMarchAllUsers =
    "user_id;segment;operation;datetime\n"
    "bbbbbbbb-0000-4000-8000-000000000002;ALPHA;add;2024-03-01T00:00:00.000000Z\n"
    "aaaaaaaa-0000-4000-8000-000000000001;GAMMA;add;2024-03-02T10:00:00.000000Z\n"
    "dddddddd-0000-4000-8000-000000000004;ALPHA;add;2024-03-03T10:00:00.999999Z\n"
    "dddddddd-0000-4000-8000-000000000004;ALPHA;remove;2024-03-04T10:00:00.500000Z\n"
    "aaaaaaaa-0000-4000-8000-000000000001;ALPHA;add;2024-03-10T09:00:00.123456Z\n"
    "aaaaaaaa-0000-4000-8000-000000000001;BETA;add;2024-03-10T09:00:00.123456Z\n"
    "bbbbbbbb-0000-4000-8000-000000000002;BETA;add;2024-03-10T09:00:00.123456Z\n"
    "aaaaaaaa-0000-4000-8000-000000000001;GAMMA;remove;2024-03-20T00:00:00.000001Z\n"
    "aaaaaaaa-0000-4000-8000-000000000001;GAMMA;add;2024-03-20T00:00:00.000001Z\n"
    "bbbbbbbb-0000-4000-8000-000000000002;GAMMA;add;2024-03-20T00:00:00.000001Z\n"
    "bbbbbbbb-0000-4000-8000-000000000002;GAMMA;remove;2024-03-20T00:00:00.000001Z\n"
    "aaaaaaaa-0000-4000-8000-000000000001;GAMMA;remove;2024-03-21T08:00:00.000000Z\n"
    "aaaaaaaa-0000-4000-8000-000000000001;ALPHA;remove;2024-03-31T23:59:59.999999Z\n";

TEST_CASE_METHOD(Fixture, "the report of a month is its events in order, byte for byte", "[pg][history][report]") {
  InsertKnownHistory();
  const ReportQuery march{std::nullopt, 2024, 3};
  CHECK(march.From() == Utc(2024, 3, 1, 0, 0, 0));
  CHECK(march.To() == Utc(2024, 4, 1, 0, 0, 0));

  const auto chunks = ReportChunks(march);
  CHECK(chunks.size() == 1);  // a small report is one chunk, header included
  CHECK(Report(march) == kMarchAllUsers);

  // The neighbouring months get exactly the events just outside March.
  CHECK(Report({std::nullopt, 2024, 2}) == kHeader + Line(kUb, "BETA", "add", Utc(2024, 2, 29, 23, 0, 0)) +
                                               Line(kUa, "ALPHA", "add", Utc(2024, 2, 29, 23, 59, 59, 999999)));
  CHECK(Report({std::nullopt, 2024, 4}) == kHeader + Line(kUb, "ALPHA", "remove", Utc(2024, 4, 1, 0, 0, 0)) +
                                               Line(kUb, "BETA", "remove", Utc(2024, 4, 1, 1, 30, 0)));
}

TEST_CASE_METHOD(Fixture, "the report of one user has only that user's lines, in the same order",
                 "[pg][history][report]") {
  InsertKnownHistory();
  CHECK(Report({kUa, 2024, 3}) == kHeader + Line(kUa, "GAMMA", "add", Utc(2024, 3, 2, 10, 0, 0)) +
                                      Line(kUa, "ALPHA", "add", kTie) + Line(kUa, "BETA", "add", kTie) +
                                      Line(kUa, "GAMMA", "remove", kGammaTie) + Line(kUa, "GAMMA", "add", kGammaTie) +
                                      Line(kUa, "GAMMA", "remove", Utc(2024, 3, 21, 8, 0, 0)) +
                                      Line(kUa, "ALPHA", "remove", Utc(2024, 3, 31, 23, 59, 59, 999999)));
  CHECK(Report({kUb, 2024, 3}) == kHeader + Line(kUb, "ALPHA", "add", Utc(2024, 3, 1, 0, 0, 0)) +
                                      Line(kUb, "BETA", "add", kTie) + Line(kUb, "GAMMA", "add", kGammaTie) +
                                      Line(kUb, "GAMMA", "remove", kGammaTie));
  // A deleted user's history is still reportable.
  CHECK(Report({kUd, 2024, 3}) == kHeader + Line(kUd, "ALPHA", "add", Utc(2024, 3, 3, 10, 0, 0, 999999)) +
                                      Line(kUd, "ALPHA", "remove", Utc(2024, 3, 4, 10, 0, 0, 500000)));
  CHECK(Report({kUa, 2024, 2}) == kHeader + Line(kUa, "ALPHA", "add", Utc(2024, 2, 29, 23, 59, 59, 999999)));
  // A user with no events in the month, or none at all.
  CHECK(Report({kUd, 2024, 4}) == kHeader);
  CHECK(Report({"cccccccc-0000-4000-8000-000000000003", 2024, 3}) == kHeader);
}

TEST_CASE_METHOD(Fixture, "a month without events is the header alone", "[pg][history][report]") {
  InsertKnownHistory();
  for (const ReportQuery& query : {ReportQuery{std::nullopt, 2024, 6}, ReportQuery{std::nullopt, 2023, 3},
                                   ReportQuery{std::nullopt, 1970, 1}, ReportQuery{std::nullopt, 9999, 12}}) {
    INFO(query.year << "-" << query.month);
    CHECK(ReportChunks(query) == std::vector<std::string>{kHeader});
  }
  segments::testing::ResetDatabase();
  CHECK(ReportChunks({std::nullopt, 2024, 3}) == std::vector<std::string>{kHeader});
}

// 2,500 events: ties at every instant across users and slugs, inserted in a
// shuffled order. The report comes in chunks of kRowsPerChunk lines, each
// ending at a line end; also for 2,000 events, when the last chunk is full.
TEST_CASE_METHOD(Fixture, "a large report comes in several chunks that add up to the exact file",
                 "[pg][history][report]") {
  static_assert(CsvReport::kRowsPerChunk == 1000);
  for (const int count : {2500, 2000}) {
    INFO(count << " events");
    segments::testing::ResetDatabase();
    struct Event {
      absl::Time at;
      std::string user;
      std::string slug;
    };
    std::vector<Event> events;
    for (int k = 0; k < count; ++k) {
      // 21 events per instant: 7 users x 3 slugs.
      events.push_back({Utc(2024, 3, 5, 0, 0, 0) + absl::Seconds(k / 21) + absl::Microseconds(k / 21 % 997),
                        fmt::format("00000000-0000-4000-8000-{:012x}", k % 7), fmt::format("SLUG_{}", k / 7 % 3)});
    }
    std::shuffle(events.begin(), events.end(), std::mt19937(20240305));
    std::vector<Row> rows;
    for (const Event& e : events) rows.push_back({e.user, 1, e.slug, "add", "manual", Rfc3339(e.at)});
    InsertHistory(rows);

    // The report order: time, then user, then slug (unique here). UUIDs and
    // slugs are ASCII, so std::string order is PostgreSQL's byte order.
    std::sort(events.begin(), events.end(), [](const Event& x, const Event& y) {
      return std::tie(x.at, x.user, x.slug) < std::tie(y.at, y.user, y.slug);
    });
    std::vector<std::string> expected(1, kHeader);
    for (int k = 0; k < count; ++k) {
      if (k > 0 && k % CsvReport::kRowsPerChunk == 0) expected.emplace_back();
      const Event& e = events[static_cast<size_t>(k)];
      expected.back() += Line(e.user, e.slug, "add", e.at);
    }
    REQUIRE(expected.size() == static_cast<size_t>((count + 999) / 1000));
    const auto chunks = ReportChunks({std::nullopt, 2024, 3});
    REQUIRE(chunks.size() == expected.size());
    for (size_t i = 0; i < chunks.size(); ++i) {
      INFO("chunk " << i);
      CHECK(chunks[i] == expected[i]);
      CHECK(chunks[i].back() == '\n');
    }
    CHECK(QueryValue("SELECT count(*) FROM history") == std::to_string(count));
  }
}

// The cursor lives in a transaction on a pooled connection: a report read to
// its end, or dropped half way, must leave that connection clean for the next
// report (same cursor name) and for other work.
TEST_CASE_METHOD(Fixture, "a report gives its connection back, finished or abandoned", "[pg][history][report]") {
  std::vector<Row> rows;
  for (int i = 0; i < 1500; ++i) {
    rows.push_back({kUa, 1, "ALPHA", "add", "manual", Rfc3339(Utc(2024, 3, 1, 0, 0, 0) + absl::Seconds(i))});
  }
  InsertHistory(rows);
  PgPool one{PgPoolOptions{segments::testing::TestDatabaseUrl(), 1}};
  PgStore single{one};
  const ReportQuery march{std::nullopt, 2024, 3};

  for (int round = 0; round < 3; ++round) {
    INFO("round " << round);
    auto cursor = single.history().OpenReport(std::nullopt, march.From(), march.To());
    REQUIRE(cursor.ok());
    CsvReport report(std::move(*cursor), "r.csv");
    auto first = report.NextChunk();
    REQUIRE(first.ok());
    CHECK(first->size() > kHeader.size());
    // `report` is dropped here with 500 rows unread.
  }
  {
    auto cursor = single.history().OpenReport(Id(kUa), march.From(), march.To());
    REQUIRE(cursor.ok());
    CsvReport report(std::move(*cursor), "r.csv");
    size_t lines = 0;
    for (;;) {
      auto chunk = report.NextChunk();
      REQUIRE(chunk.ok());
      if (chunk->empty()) break;
      lines += static_cast<size_t>(std::count(chunk->begin(), chunk->end(), '\n'));
    }
    CHECK(lines == 1 + 1500);
    // Finished: the connection is back although `report` still exists.
    UserHistoryQuery query{Id(kUa)};
    query.limit = 1;
    auto newest = single.history().OfUser(query);
    INFO(newest.status().ToString());
    REQUIRE(newest.ok());
    CHECK(newest->size() == 1);
  }
  // Nothing of the read-only transactions is left open.
  auto ended = segments::testing::EndExpiredMemberships(single, Utc(2024, 3, 1, 0, 0, 0), 10);
  INFO(ended.status().ToString());
  CHECK(ended.ok());
}

// --- plans

// EXPLAIN of `statement` with `params` bound the way the server binds them,
// inside a read-only transaction like OpenReport's.
std::string Explain(const char* statement, const std::vector<std::string>& params) {
  std::unique_ptr<PGconn, decltype(&PQfinish)> conn(PQconnectdb(segments::testing::TestDatabaseUrl().c_str()),
                                                    &PQfinish);
  REQUIRE(PQstatus(conn.get()) == CONNECTION_OK);
  auto exec = [&](const std::string& sql, const std::vector<std::string>& values) {
    std::vector<const char*> raw;
    for (const std::string& v : values) raw.push_back(v.c_str());
    std::unique_ptr<PGresult, decltype(&PQclear)> result(
        PQexecParams(conn.get(), sql.c_str(), static_cast<int>(raw.size()), nullptr, raw.data(), nullptr, nullptr, 0),
        &PQclear);
    INFO(sql << ": " << PQresultErrorMessage(result.get()));
    REQUIRE((PQresultStatus(result.get()) == PGRES_TUPLES_OK || PQresultStatus(result.get()) == PGRES_COMMAND_OK));
    std::string text;
    for (int r = 0; r < PQntuples(result.get()); ++r) absl::StrAppend(&text, PQgetvalue(result.get(), r, 0), "\n");
    return text;
  };
  exec("BEGIN READ ONLY", {});
  std::string plan = exec(std::string("EXPLAIN ") + statement, params);
  exec("ROLLBACK", {});
  return plan;
}

// A plan node that sorts its whole input ("Sort", not "Incremental Sort").
bool HasFullSort(const std::string& plan) {
  for (absl::string_view line : absl::StrSplit(plan, '\n')) {
    line = absl::StripLeadingAsciiWhitespace(line);
    if (absl::StartsWith(line, "->")) line = absl::StripLeadingAsciiWhitespace(line.substr(2));
    if (absl::StartsWith(line, "Sort  (") || absl::StartsWith(line, "Sort (")) return true;
  }
  return false;
}

// 60,000 events over the 12 months of 2023 from 500 users, in time order as
// they are written, then ANALYZE; the plans of the statements OpenReport
// runs, for June, with the parameters it binds. Observed on PostgreSQL 15:
//
//   all users (kDeclareReportAllUsers):
//     Index Scan using history_report_order_idx on history  (cost=0.41..1393.31 rows=4919 width=62)
//       Index Cond: ((at >= '2023-06-01 00:00:00+00'::timestamp with time zone) AND (at < '2023-07-01 ...))
//
//   one user (kDeclareReportOneUser):
//     Incremental Sort  (cost=4.85..45.16 rows=10 width=62)
//       Sort Key: at, slug, id
//       Presorted Key: at
//       ->  Index Scan using history_user_order_idx on history  (cost=0.41..44.71 rows=10 width=62)
//             Index Cond: (((user_id)::text = '00000000-0000-4000-8000-000000000007'::text) AND (at >= ...) AND ...)
//
// The cursors matter, not the bare SELECTs: a cursor is planned for its first
// rows (cursor_tuple_fraction), while the bare SELECT of all users, planned
// for all of its rows, is a Bitmap Heap Scan + Sort of the month. The
// one-user order needs slugs in order among one user's events of one instant,
// which history_user_order_idx (user_id, at, id) does not give: the plan sorts
// each group of equal `at` (an Incremental Sort on the presorted `at`), which
// streams, instead of sorting the month.
TEST_CASE_METHOD(Fixture, "the report cursors read the month in index order", "[pg][history][plan]") {
  Query(
      "INSERT INTO history (user_id, segment_id, slug, operation, reason, at) "
      "SELECT ('00000000-0000-4000-8000-' || lpad(to_hex(g % 500), 12, '0'))::uuid, g % 20 + 1, 'SEG_' || (g % 20), "
      "CASE WHEN g % 2 = 0 THEN 'add' ELSE 'remove' END::history_operation, 'manual', "
      "'2023-01-01T00:00:00Z'::timestamptz + g * interval '525.6 seconds' FROM generate_series(0, 59999) AS g");
  Query("ANALYZE history");
  const ReportQuery june{std::nullopt, 2023, 6};
  const std::string from = Rfc3339(june.From());
  const std::string to = Rfc3339(june.To());

  const std::string all = Explain(segments::storage::ReportCursorSql(/*one_user=*/false).c_str(), {from, to});
  INFO(all);
  CHECK_THAT(all, Catch::Contains("Index Scan using history_report_order_idx"));
  CHECK_THAT(all, !Catch::Contains("Seq Scan"));
  CHECK_THAT(all, !Catch::Contains("Bitmap"));
  CHECK_THAT(all, !Catch::Contains("Sort"));

  const std::string one = Explain(segments::storage::ReportCursorSql(/*one_user=*/true).c_str(),
                                  {"00000000-0000-4000-8000-000000000007", from, to});
  INFO(one);
  CHECK_THAT(one, Catch::Contains("Index Scan using history_user_order_idx"));
  CHECK_THAT(one, !Catch::Contains("Seq Scan"));
  CHECK_THAT(one, !Catch::Contains("Bitmap"));
  CHECK_FALSE(HasFullSort(one));
  if (one.find("Incremental Sort") != std::string::npos) CHECK_THAT(one, Catch::Contains("Presorted Key: at"));

  // And the result is the month, in order.
  const std::string report = Report(june);
  CHECK(std::count(report.begin(), report.end(), '\n') ==
        1 + std::stoll(QueryValue("SELECT count(*) FROM history WHERE at >= '" + from + "' AND at < '" + to + "'")));
}

// --- a user's history pages

TEST_CASE_METHOD(Fixture, "UserHistory: newest first, limits, continuation through ties, filters",
                 "[pg][history][user_history]") {
  const absl::Time t1 = Utc(2024, 3, 1, 10, 0, 0, 1);
  const absl::Time t2 = Utc(2024, 3, 2, 10, 0, 0);
  const absl::Time t3 = Utc(2024, 3, 3, 10, 0, 0, 500000);  // five events at once
  const absl::Time t4 = Utc(2024, 4, 1, 0, 0, 0);
  // ALPHA was deleted and created again (segment 1, then 6): one slug.
  InsertHistory({
      {kUa, 1, "ALPHA", "add", "manual", Rfc3339(t1)},              // id 1
      {kUb, 1, "ALPHA", "add", "manual", Rfc3339(t2)},              // id 2, another user
      {kUa, 2, "BETA", "add", "manual", Rfc3339(t2)},               // id 3
      {kUa, 1, "ALPHA", "remove", "segment_deleted", Rfc3339(t3)},  // id 4
      {kUa, 2, "BETA", "remove", "ttl", Rfc3339(t3)},               // id 5
      {kUa, 3, "GAMMA", "add", "manual", Rfc3339(t3)},              // id 6
      {kUa, 4, "DELTA", "add", "manual", Rfc3339(t3)},              // id 7
      {kUa, 5, "EPSILON", "add", "manual", Rfc3339(t3)},            // id 8
      {kUb, 2, "BETA", "add", "manual", Rfc3339(t3)},               // id 9, another user
      {kUa, 6, "ALPHA", "add", "manual", Rfc3339(t4)},              // id 10
  });
  auto ids = [](const std::vector<HistoryEvent>& events) {
    std::vector<int64_t> out;
    for (const HistoryEvent& e : events) out.push_back(e.id);
    return out;
  };
  UserHistoryQuery query{Id(kUa)};

  const auto all = History(query);
  CHECK(ids(all) == std::vector<int64_t>{10, 8, 7, 6, 5, 4, 3, 1});
  REQUIRE(all.size() == 8);
  // Every field, as stored.
  CHECK(all[0].user_id == Id(kUa));
  CHECK(all[0].segment_id == 6);
  CHECK(all[0].slug == "ALPHA");
  CHECK(all[0].operation == Operation::kAdd);
  CHECK(all[0].reason == Reason::kManual);
  CHECK(all[0].at == t4);
  CHECK(all[4].operation == Operation::kRemove);
  CHECK(all[4].reason == Reason::kTtl);
  CHECK(all[4].at == t3);
  CHECK(all[5].reason == Reason::kSegmentDeleted);
  CHECK(all[7].at == t1);

  // Pages of three, each continuing below the (at, id) of the last one; the
  // second page starts and ends inside the five events at t3.
  query.limit = 3;
  std::vector<std::vector<int64_t>> pages;
  for (;;) {
    const auto page = History(query);
    if (page.empty()) break;
    pages.push_back(ids(page));
    query.after = HistoryPosition{page.back().at, page.back().id};
    REQUIRE(pages.size() < 10);
  }
  CHECK(pages == std::vector<std::vector<int64_t>>{{10, 8, 7}, {6, 5, 4}, {3, 1}});

  query = UserHistoryQuery{Id(kUa)};
  query.after = HistoryPosition{t3, 7};  // strictly below: same instant, smaller id, or older
  CHECK(ids(History(query)) == std::vector<int64_t>{6, 5, 4, 3, 1});
  query.after = HistoryPosition{t3 + absl::Microseconds(1), 0};
  CHECK(ids(History(query)) == std::vector<int64_t>{8, 7, 6, 5, 4, 3, 1});

  // Slug filter, with the deleted and the re-created ALPHA.
  query = UserHistoryQuery{Id(kUa)};
  query.slug = "ALPHA";
  CHECK(ids(History(query)) == std::vector<int64_t>{10, 4, 1});
  query.after = HistoryPosition{t4, 10};
  query.limit = 1;
  CHECK(ids(History(query)) == std::vector<int64_t>{4});
  query.slug = "alpha";  // slugs are case-sensitive
  query.after.reset();
  CHECK(History(query).empty());

  // `from` is inclusive, `to` exclusive.
  query = UserHistoryQuery{Id(kUa)};
  query.from = t2;
  CHECK(ids(History(query)) == std::vector<int64_t>{10, 8, 7, 6, 5, 4, 3});
  query.from = t2 + absl::Microseconds(1);
  CHECK(ids(History(query)) == std::vector<int64_t>{10, 8, 7, 6, 5, 4});
  query.from.reset();
  query.to = t3;
  CHECK(ids(History(query)) == std::vector<int64_t>{3, 1});
  query.to = t3 + absl::Microseconds(1);
  CHECK(ids(History(query)) == std::vector<int64_t>{8, 7, 6, 5, 4, 3, 1});
  query.from = t2;
  query.to = t4;
  query.slug = "BETA";
  CHECK(ids(History(query)) == std::vector<int64_t>{5, 3});

  // Another user's page; an unknown user's.
  query = UserHistoryQuery{Id(kUb)};
  CHECK(ids(History(query)) == std::vector<int64_t>{9, 2});
  query.user = Id(kUd);
  CHECK(History(query).empty());
}

TEST_CASE_METHOD(Fixture, "UserHistory reads and filters times of any year the API takes, 0001 to 9999",
                 "[pg][history][user_history]") {
  // Written as literals PostgreSQL cannot misread; the filters travel as
  // parameters, which once went as text that years below 100 broke.
  const absl::Time first = Utc(1, 1, 1, 0, 0, 0);
  const absl::Time twelve = Utc(12, 5, 6, 7, 8, 9, 1);
  const absl::Time eighty_seven = Utc(87, 8, 23, 0, 16, 0);
  const absl::Time last = Utc(9999, 12, 31, 23, 59, 59, 999999);
  InsertHistory({
      {kUa, 1, "ALPHA", "add", "manual", "0001-01-01 00:00:00+00"},            // id 1
      {kUa, 1, "ALPHA", "remove", "manual", "0012-05-06 07:08:09.000001+00"},  // id 2
      {kUa, 1, "ALPHA", "add", "manual", "0087-08-23 00:16:00+00"},            // id 3
      {kUa, 1, "ALPHA", "remove", "ttl", "9999-12-31 23:59:59.999999+00"},     // id 4
  });
  auto times = [](const std::vector<HistoryEvent>& events) {
    std::vector<absl::Time> out;
    for (const HistoryEvent& e : events) out.push_back(e.at);
    return out;
  };
  UserHistoryQuery query{Id(kUa)};
  CHECK(times(History(query)) == std::vector<absl::Time>{last, eighty_seven, twelve, first});

  query.to = eighty_seven;  // exclusive
  CHECK(times(History(query)) == std::vector<absl::Time>{twelve, first});
  query.to = twelve;
  CHECK(times(History(query)) == std::vector<absl::Time>{first});
  query.from = twelve;
  query.to = last;
  CHECK(times(History(query)) == std::vector<absl::Time>{eighty_seven, twelve});
  query.from = last;
  query.to.reset();
  CHECK(times(History(query)) == std::vector<absl::Time>{last});
  query.from = first;
  query.after = HistoryPosition{eighty_seven, 3};
  CHECK(times(History(query)) == std::vector<absl::Time>{twelve, first});
}

// --- TTL expiry

TEST_CASE_METHOD(Fixture, "EndExpiredMemberships ends due memberships with ttl events at their deadlines",
                 "[pg][history][expiry]") {
  const absl::Time t0 = Utc(2024, 3, 1, 12, 0, 0);
  const absl::Time now = t0 + absl::Hours(1);
  NewUser(kUa, t0);
  NewUser(kUb, t0);
  const Segment a = NewSegment("A", t0);
  const Segment b = NewSegment("B", t0);
  const Segment c = NewSegment("C", t0);
  const Segment d = NewSegment("D", t0);
  const absl::Time ua_a = t0 + absl::Seconds(10) + absl::Microseconds(123456);
  const absl::Time ub_a = t0 + absl::Seconds(20);
  AddMemberships(kUa, {{a.id, ua_a}, {b.id, now}, {c.id, now + absl::Microseconds(1)}, {d.id, std::nullopt}}, t0);
  AddMemberships(kUb, {{a.id, ub_a}, {b.id, std::nullopt}}, t0);

  CHECK(EndExpired(now, 100) == 3);
  // Due means at or before `now`; each event is stamped with its deadline.
  CHECK(Query("SELECT user_id, segment_id, slug, operation, reason, " + MicrosOf("at") +
              " FROM history ORDER BY at, user_id") ==
        Rows{{kUa, std::to_string(a.id), "A", "remove", "ttl", Micros(ua_a)},
             {kUb, std::to_string(a.id), "A", "remove", "ttl", Micros(ub_a)},
             {kUa, std::to_string(b.id), "B", "remove", "ttl", Micros(now)}});
  // The rest is untouched.
  CHECK(Query("SELECT user_id, segment_id, " + MicrosOf("added_at") + ", coalesce(" + MicrosOf("expires_at") +
              ", 0) FROM memberships ORDER BY 1, 2") ==
        Rows{{kUa, std::to_string(c.id), Micros(t0), Micros(now + absl::Microseconds(1))},
             {kUa, std::to_string(d.id), Micros(t0), "0"},
             {kUb, std::to_string(b.id), Micros(t0), "0"}});

  // Nothing more is due now; a microsecond later one more is.
  CHECK(EndExpired(now, 100) == 0);
  CHECK(QueryValue("SELECT count(*) FROM history") == "3");
  CHECK(EndExpired(now + absl::Microseconds(1), 100) == 1);
  CHECK(QueryValue("SELECT " + MicrosOf("at") + " FROM history WHERE segment_id = " + std::to_string(c.id)) ==
        Micros(now + absl::Microseconds(1)));
  CHECK(QueryValue("SELECT count(*) FROM memberships") == "2");
}

TEST_CASE_METHOD(Fixture, "EndExpiredMemberships ends at most `limit`, earliest deadlines first",
                 "[pg][history][expiry]") {
  const absl::Time t0 = Utc(2024, 3, 1, 12, 0, 0);
  NewUser(kUa, t0);
  NewUser(kUb, t0);
  std::vector<Segment> segments;
  for (const char* slug : {"S1", "S2", "S3"}) segments.push_back(NewSegment(slug, t0));
  // Deadlines interleaved across users and segments: 1..6 minutes.
  AddMemberships(kUa,
                 {{segments[0].id, t0 + absl::Minutes(5)},
                  {segments[1].id, t0 + absl::Minutes(1)},
                  {segments[2].id, t0 + absl::Minutes(4)}},
                 t0);
  AddMemberships(kUb,
                 {{segments[0].id, t0 + absl::Minutes(2)},
                  {segments[1].id, t0 + absl::Minutes(6)},
                  {segments[2].id, t0 + absl::Minutes(3)}},
                 t0);
  const absl::Time now = t0 + absl::Hours(1);
  auto remaining = [] {
    std::vector<std::string> out;
    for (const auto& row : Query("SELECT extract(epoch FROM expires_at - '2024-03-01T12:00:00Z')::int8 / 60 "
                                 "FROM memberships ORDER BY 1")) {
      out.push_back(row[0]);
    }
    return out;
  };
  CHECK(EndExpired(now, 2) == 2);
  CHECK(remaining() == std::vector<std::string>{"3", "4", "5", "6"});
  CHECK(EndExpired(now, 3) == 3);
  CHECK(remaining() == std::vector<std::string>{"6"});
  CHECK(EndExpired(now, 3) == 1);
  CHECK(EndExpired(now, 3) == 0);
  CHECK(QueryValue("SELECT count(*) FROM history WHERE operation = 'remove' AND reason = 'ttl'") == "6");
}

// Memberships as (user, segment) -> deadline in microseconds.
using Deadlines = std::map<std::pair<std::string, std::string>, std::string>;

Deadlines DueMemberships(absl::Time now) {
  Deadlines out;
  for (const auto& row : Query("SELECT user_id, segment_id, " + MicrosOf("expires_at") +
                               " FROM memberships WHERE expires_at <= '" + Rfc3339(now) + "'")) {
    out[{row[0], row[1]}] = row[2];
  }
  return out;
}

// Every ttl event as (user, segment) -> its time; fails on a second event of
// one membership.
Deadlines TtlEvents() {
  Deadlines out;
  std::vector<std::string> repeated;
  for (const auto& row : Query("SELECT user_id, segment_id, " + MicrosOf("at") +
                               " FROM history WHERE operation = 'remove' AND reason = 'ttl'")) {
    if (!out.emplace(std::make_pair(row[0], row[1]), row[2]).second) repeated.push_back(row[0] + "/" + row[1]);
  }
  CHECK_THAT(repeated, Catch::Matchers::Equals(std::vector<std::string>{}));
  return out;
}

// Calls EndExpiredMemberships on its own connection until it ends nothing.
struct ExpiryRacer {
  PgPool pool{PgPoolOptions{segments::testing::TestDatabaseUrl(), 1}};
  PgStore store{pool};
  int64_t ended = 0;
  int calls = 0;
  absl::Status error;

  void Run(absl::Time now, int batch) {
    for (; calls < 100000; ++calls) {
      auto n = segments::testing::EndExpiredMemberships(store, now, batch);
      if (!n.ok()) {
        error = n.status();
        return;
      }
      if (*n == 0) return;
      ended += *n;
    }
  }
};

TEST_CASE_METHOD(Fixture, "racing expiry jobs end every due membership exactly once", "[pg][history][expiry]") {
  constexpr int kUsers = 200;
  constexpr int kSegments = 10;
  constexpr int kRacers = 4;
  const absl::Time base = Utc(2024, 3, 1, 12, 0, 0);
  const absl::Time now = base + absl::Hours(1);
  Query(
      "INSERT INTO users (id, state, created_at, updated_at) SELECT ('00000000-0000-4000-8000-' || "
      "lpad(to_hex(u), 12, '0'))::uuid, 'active', now(), now() FROM generate_series(0, " +
      std::to_string(kUsers - 1) + ") AS u");
  Query("INSERT INTO segments (slug, salt, created_at) SELECT 'S' || s, 'salt', now() FROM generate_series(0, " +
        std::to_string(kSegments) + ") AS s");
  // Segments 1..10: due, every deadline different; segment 11 ('S10'): due
  // a second after `now`, so never ended here.
  Query("INSERT INTO memberships (user_id, segment_id, added_at, expires_at) SELECT u.id, s.id, '" + Rfc3339(base) +
        "', CASE WHEN s.id <= " + std::to_string(kSegments) + " THEN '" + Rfc3339(base) +
        "'::timestamptz + (row_number() OVER (ORDER BY u.id, s.id)) * interval '1 millisecond' ELSE '" +
        Rfc3339(now + absl::Seconds(1)) + "' END FROM users u CROSS JOIN segments s");
  const Deadlines due = DueMemberships(now);
  REQUIRE(due.size() == kUsers * kSegments);

  std::vector<std::unique_ptr<ExpiryRacer>> racers;
  for (int i = 0; i < kRacers; ++i) racers.push_back(std::make_unique<ExpiryRacer>());
  absl::Barrier* start = new absl::Barrier(kRacers);
  std::vector<std::thread> threads;
  for (auto& racer : racers) {
    threads.emplace_back([&, r = racer.get()] {
      if (start->Block()) delete start;
      r->Run(now, 25);
    });
  }
  for (auto& t : threads) t.join();

  int64_t total = 0;
  int busy = 0;
  for (const auto& racer : racers) {
    INFO(racer->error.ToString());
    CHECK(racer->error.ok());
    total += racer->ended;
    if (racer->ended > 0) ++busy;
  }
  INFO(busy << " of " << kRacers << " racers ended memberships");
  CHECK(total == kUsers * kSegments);
  CHECK(TtlEvents() == due);
  CHECK(QueryValue("SELECT count(*) FROM history") == std::to_string(kUsers * kSegments));
  CHECK(EndExpired(now, 1000) == 0);
  CHECK(QueryValue("SELECT count(*) FROM memberships") == std::to_string(kUsers));
  CHECK(QueryValue("SELECT count(*) FROM memberships WHERE expires_at <= '" + Rfc3339(now) + "'") == "0");
}

// A user's update ends their expired memberships itself (recorded as ttl at
// the deadline) while jobs may be ending the same rows: whoever locks a row
// first ends it, and nobody may write a second event for it. Each round
// releases two jobs (one row per batch) and one update of a user with five
// expired memberships at once, so they collide inside that user's rows;
// `now` moves an hour per round so that only that round's rows are due.
TEST_CASE_METHOD(Fixture, "expiry jobs racing users' updates end each membership exactly once",
                 "[pg][history][expiry]") {
  constexpr int kRounds = 40;
  constexpr int kPerUser = 5;
  const absl::Time base = Utc(2024, 3, 1, 12, 0, 0);
  auto now_of = [&](int round) { return base + absl::Hours(round) + absl::Minutes(30); };
  std::vector<std::string> users;
  std::vector<Segment> segments;
  for (int k = 0; k < kPerUser; ++k) segments.push_back(NewSegment(fmt::format("S{}", k), base));
  NewSegment("OTHER", base);
  for (int r = 0; r < kRounds; ++r) {
    users.push_back(fmt::format("00000000-0000-4000-8000-{:012x}", r));
    NewUser(users.back(), base);
    std::vector<NewMembership> memberships;
    for (int k = 0; k < kPerUser; ++k) {
      memberships.push_back({segments[static_cast<size_t>(k)].id, base + absl::Hours(r) + absl::Minutes(k + 1)});
    }
    AddMemberships(users.back(), memberships, base);
  }
  const Deadlines due = DueMemberships(now_of(kRounds));
  REQUIRE(due.size() == static_cast<size_t>(kRounds * kPerUser));

  std::vector<std::unique_ptr<ExpiryRacer>> jobs;
  for (int i = 0; i < 2; ++i) jobs.push_back(std::make_unique<ExpiryRacer>());
  PgPool updater_pool{PgPoolOptions{segments::testing::TestDatabaseUrl(), 1}};
  PgStore updater_store{updater_pool};
  segments::testing::FakeClock clock(base);
  SegmentUseCases use_cases(updater_store, clock);
  std::vector<std::pair<std::string, absl::Status>> failures;
  int64_t ended_by_jobs = 0;

  for (int r = 0; r < kRounds; ++r) {
    const absl::Time now = now_of(r);
    clock.Set(now);
    // Even rounds add a segment the user was not in, odd ones re-add one of
    // the expired ones.
    const UpdateUserSegmentsCommand command{
        users[static_cast<size_t>(r)], {{r % 2 == 0 ? "OTHER" : "S2", std::nullopt, std::nullopt}}, {}};
    absl::Barrier* start = new absl::Barrier(3);
    std::vector<std::thread> threads;
    for (auto& job : jobs) {
      job->calls = 0;
      job->ended = 0;
      threads.emplace_back([start, now, j = job.get()] {
        if (start->Block()) delete start;
        j->Run(now, 1);
      });
    }
    threads.emplace_back([&, start] {
      if (start->Block()) delete start;
      if (absl::Status st = use_cases.UpdateUserSegments(command); !st.ok()) {
        failures.push_back({command.user_id.value().ToString(), st});
      }
    });
    for (auto& t : threads) t.join();
    for (const auto& job : jobs) {
      INFO("round " << r << ": " << job->error.ToString());
      REQUIRE(job->error.ok());
      ended_by_jobs += job->ended;
    }
  }
  for (const auto& [user, status] : failures) {
    INFO(user << ": " << status.ToString());
    CHECK(status.ok());
  }
  // How the rows were shared out varies from run to run; shown with -s.
  INFO("jobs ended " << ended_by_jobs << " of " << kRounds * kPerUser << " memberships, updates the rest");
  CHECK(ended_by_jobs <= kRounds * kPerUser);

  CHECK(TtlEvents() == due);
  CHECK(EndExpired(now_of(kRounds + 100), 1000) == 0);
  CHECK(QueryValue("SELECT count(*) FROM history") == std::to_string(kRounds * (kPerUser + 1)));
  // Each user is in the one segment their update added, for good.
  Rows expected;
  for (int r = 0; r < kRounds; ++r) {
    expected.push_back({users[static_cast<size_t>(r)], r % 2 == 0 ? "OTHER" : "S2", Micros(now_of(r)), "t"});
  }
  CHECK(Query("SELECT m.user_id, s.slug, " + MicrosOf("m.added_at") +
              ", m.expires_at IS NULL FROM memberships m JOIN segments s ON s.id = m.segment_id ORDER BY 1") ==
        expected);
  CHECK(QueryValue("SELECT count(*) FROM history WHERE operation = 'add'") == std::to_string(kRounds));
}

}  // namespace
