#include "domain/history_report.h"

#include <absl/strings/str_cat.h>

#include <catch2/catch.hpp>

#include <algorithm>

#include "domain/clock.h"
#include "support/domain_testing.h"
#include "support/fake_store.h"

using namespace segments::domain;
using segments::testing::FakeStore;

namespace {

constexpr const char* kUser = "0b7f9f5e-1c2d-4e3f-8a9b-0c1d2e3f4a5b";

absl::Time Utc(int y, int m, int d, int hh = 0, int mm = 0, int ss = 0) {
  return absl::FromCivil(absl::CivilSecond(y, m, d, hh, mm, ss), absl::UTCTimeZone());
}

std::string Micros(absl::Time t) {
  std::string out;
  AppendUtcMicros(out, t);
  return out;
}

HistoryEvent Event(std::string slug, Operation operation, absl::Time at, std::string user = kUser) {
  return {segments::testing::Id(user), 1, std::move(slug), operation, Reason::kManual, at};
}

int Lines(const std::string& text) { return static_cast<int>(std::count(text.begin(), text.end(), '\n')); }

// A cursor that plays back a script of batches and errors, and records what
// it was asked for.
class ScriptedCursor final : public HistoryCursor {
 public:
  ScriptedCursor(std::vector<absl::StatusOr<std::vector<HistoryEvent>>> script, std::vector<int>& asked, int& alive)
      : script_(std::move(script)), asked_(asked), alive_(alive) {
    ++alive_;
  }
  ~ScriptedCursor() override { --alive_; }

  absl::StatusOr<std::vector<HistoryEvent>> Next(int max_rows) override {
    asked_.push_back(max_rows);
    if (next_ == script_.size()) return std::vector<HistoryEvent>{};
    return script_[next_++];
  }

 private:
  std::vector<absl::StatusOr<std::vector<HistoryEvent>>> script_;
  size_t next_ = 0;
  std::vector<int>& asked_;
  int& alive_;
};

std::unique_ptr<CsvReport> OpenAll(FakeStore& store) {
  auto cursor = store.history().OpenReport(std::nullopt, absl::InfinitePast(), absl::InfiniteFuture());
  REQUIRE(cursor.ok());
  return std::make_unique<CsvReport>(std::move(*cursor), "report.csv");
}

}  // namespace

TEST_CASE("UTC times are written with a fixed width and six fractional digits", "[csv]") {
  CHECK(Micros(absl::UnixEpoch()) == "1970-01-01T00:00:00.000000Z");
  CHECK(Micros(Utc(2023, 8, 29, 10, 13, 42)) == "2023-08-29T10:13:42.000000Z");
  CHECK(Micros(Utc(2023, 1, 2, 3, 4, 5) + absl::Microseconds(7)) == "2023-01-02T03:04:05.000007Z");
  CHECK(Micros(Utc(2024, 2, 29, 23, 59, 59) + absl::Microseconds(123456)) == "2024-02-29T23:59:59.123456Z");
  CHECK(Micros(Utc(9999, 12, 31, 23, 59, 59) + absl::Microseconds(999999)) == "9999-12-31T23:59:59.999999Z");
  CHECK(Micros(Utc(1, 1, 1)) == "0001-01-01T00:00:00.000000Z");
  CHECK(Micros(Utc(0, 1, 1)) == "0000-01-01T00:00:00.000000Z");
  CHECK(Micros(Utc(999, 12, 31, 23, 59, 59)) == "0999-12-31T23:59:59.000000Z");
  // Before the epoch the fraction still counts forward from the whole second.
  CHECK(Micros(absl::UnixEpoch() - absl::Milliseconds(500)) == "1969-12-31T23:59:59.500000Z");
  CHECK(Micros(absl::UnixEpoch() - absl::Microseconds(1)) == "1969-12-31T23:59:59.999999Z");
  // Any time zone of the input is irrelevant: an absl::Time is an instant.
  CHECK(Micros(absl::FromCivil(absl::CivilSecond(2024, 1, 1, 3, 0, 0), absl::FixedTimeZone(3 * 3600))) ==
        "2024-01-01T00:00:00.000000Z");

  for (absl::Time t : {absl::UnixEpoch(), Utc(1, 1, 1), Utc(2024, 2, 29, 1, 2, 3) + absl::Microseconds(45),
                       Utc(9999, 12, 31, 23, 59, 59)}) {
    CHECK(Micros(t).size() == std::string_view("2023-08-29T10:13:42.123456Z").size());
  }
}

TEST_CASE("sub-microsecond parts are cut off, never rounded up into the next second", "[csv]") {
  // Callers truncate times to microseconds (TruncateToMicros), as PostgreSQL
  // stores them. Were finer input to arrive anyway, the fraction is truncated
  // toward the past, like TruncateToMicros: .9999999 stays in its second
  // instead of becoming a seventh digit or a "1000000" that overflows.
  CHECK(Micros(absl::UnixEpoch() + absl::Nanoseconds(999)) == "1970-01-01T00:00:00.000000Z");
  CHECK(Micros(absl::UnixEpoch() + absl::Nanoseconds(1999)) == "1970-01-01T00:00:00.000001Z");
  CHECK(Micros(absl::UnixEpoch() + absl::Seconds(1) - absl::Nanoseconds(1)) == "1970-01-01T00:00:00.999999Z");
  CHECK(Micros(Utc(2023, 12, 31, 23, 59, 59) + absl::Nanoseconds(999'999'999)) == "2023-12-31T23:59:59.999999Z");
  CHECK(Micros(absl::UnixEpoch() - absl::Nanoseconds(1)) == "1969-12-31T23:59:59.999999Z");
  for (absl::Time t : {absl::UnixEpoch() + absl::Nanoseconds(1500), Utc(2024, 2, 29) - absl::Nanoseconds(1),
                       absl::UnixEpoch() - absl::Nanoseconds(2500)}) {
    CHECK(Micros(t) == Micros(TruncateToMicros(t)));
  }
}

TEST_CASE("times and lines are appended, not overwritten", "[csv]") {
  std::string out = "x;";
  AppendUtcMicros(out, absl::UnixEpoch());
  CHECK(out == "x;1970-01-01T00:00:00.000000Z");

  std::string csv(kCsvHeader);
  AppendCsvLine(csv, Event("AVITO_VOICE_MESSAGES", Operation::kAdd, Utc(2023, 8, 29, 10, 13, 42)));
  AppendCsvLine(csv, {segments::testing::Id("5d0c1b2a-3e4f-4a5b-8c6d-7e8f9a0b1c2d"), 2, "AVITO_DISCOUNT_30",
                      Operation::kRemove, Reason::kTtl, Utc(2023, 8, 30) + absl::Microseconds(1), 77});
  CHECK(csv ==
        "user_id;segment;operation;datetime\n"
        "0b7f9f5e-1c2d-4e3f-8a9b-0c1d2e3f4a5b;AVITO_VOICE_MESSAGES;add;2023-08-29T10:13:42.000000Z\n"
        "5d0c1b2a-3e4f-4a5b-8c6d-7e8f9a0b1c2d;AVITO_DISCOUNT_30;remove;2023-08-30T00:00:00.000001Z\n");
}

TEST_CASE("report file names carry the month and the user", "[csv]") {
  CHECK(ReportFileName({std::nullopt, 2023, 8}) == "segments-history-2023-08.csv");
  CHECK(ReportFileName({std::nullopt, 1970, 12}) == "segments-history-1970-12.csv");
  CHECK(ReportFileName({kUser, 9999, 1}) == "segments-history-9999-01-0b7f9f5e-1c2d-4e3f-8a9b-0c1d2e3f4a5b.csv");
}

TEST_CASE("an empty report is the header alone, and the cursor is released with it", "[csv]") {
  FakeStore store;
  auto report = OpenAll(store);
  CHECK(report->file_name() == "report.csv");
  REQUIRE(store.open_cursors == 1);

  auto first = report->NextChunk();
  REQUIRE(first.ok());
  CHECK(*first == kCsvHeader);
  CHECK(store.open_cursors == 0);
  for (int i = 0; i < 3; ++i) {
    auto next = report->NextChunk();
    REQUIRE(next.ok());
    CHECK(next->empty());
  }
  CHECK(store.open_cursors == 0);
}

TEST_CASE("a report comes in chunks of kRowsPerChunk lines, header first, in cursor order", "[csv]") {
  constexpr int kEvents = CsvReport::kRowsPerChunk * 2 + 500;
  FakeStore store;
  const absl::Time start = Utc(2024, 3, 1);
  std::string expected(kCsvHeader);
  for (int i = 0; i < kEvents; ++i) {
    HistoryEvent e =
        Event(absl::StrCat("S", i), i % 2 == 0 ? Operation::kAdd : Operation::kRemove, start + absl::Seconds(i));
    store.state.history.push_back(e);
    AppendCsvLine(expected, e);
  }
  auto report = OpenAll(store);

  std::vector<std::string> chunks;
  for (int i = 0; i < 10; ++i) {
    auto chunk = report->NextChunk();
    REQUIRE(chunk.ok());
    chunks.push_back(*chunk);
    if (chunk->empty()) break;
    // More rows to come: the cursor stays open.
    if (chunks.size() < 3) CHECK(store.open_cursors == 1);
  }
  REQUIRE(chunks.size() == 4);
  CHECK(chunks[0].starts_with(kCsvHeader));
  CHECK(Lines(chunks[0]) == 1 + CsvReport::kRowsPerChunk);
  CHECK(Lines(chunks[1]) == CsvReport::kRowsPerChunk);
  CHECK_FALSE(chunks[1].starts_with(kCsvHeader));
  CHECK(Lines(chunks[2]) == 500);
  CHECK(chunks[3].empty());
  CHECK(store.open_cursors == 0);
  CHECK(chunks[0] + chunks[1] + chunks[2] == expected);
  // Each chunk ends on a whole line.
  for (size_t i = 0; i < 3; ++i) CHECK(chunks[i].back() == '\n');

  auto after = report->NextChunk();
  REQUIRE(after.ok());
  CHECK(after->empty());
}

TEST_CASE("a report of exactly one chunk ends with an empty chunk", "[csv]") {
  FakeStore store;
  for (int i = 0; i < CsvReport::kRowsPerChunk; ++i) {
    store.state.history.push_back(Event("S", Operation::kAdd, Utc(2024, 3, 1) + absl::Microseconds(i)));
  }
  auto report = OpenAll(store);
  auto first = report->NextChunk();
  REQUIRE(first.ok());
  CHECK(Lines(*first) == 1 + CsvReport::kRowsPerChunk);
  auto second = report->NextChunk();
  REQUIRE(second.ok());
  CHECK(second->empty());
  CHECK(store.open_cursors == 0);
}

TEST_CASE("the report asks the cursor for kRowsPerChunk rows at a time", "[csv]") {
  std::vector<int> asked;
  int alive = 0;
  CsvReport report(
      std::make_unique<ScriptedCursor>(std::vector<absl::StatusOr<std::vector<HistoryEvent>>>{std::vector<HistoryEvent>{
                                           Event("A", Operation::kAdd, Utc(2024, 3, 1))}},
                                       asked, alive),
      "r.csv");
  REQUIRE(alive == 1);
  auto first = report.NextChunk();
  REQUIRE(first.ok());
  CHECK(*first ==
        "user_id;segment;operation;datetime\n"
        "0b7f9f5e-1c2d-4e3f-8a9b-0c1d2e3f4a5b;A;add;2024-03-01T00:00:00.000000Z\n");
  auto second = report.NextChunk();
  REQUIRE(second.ok());
  CHECK(second->empty());
  CHECK(alive == 0);
  // A short batch is the last: the cursor is released without a second read.
  CHECK(asked == std::vector<int>{CsvReport::kRowsPerChunk});
  // Once done, the cursor is gone and never asked again.
  REQUIRE(report.NextChunk().ok());
  CHECK(asked.size() == 1);
}

TEST_CASE("an error of the cursor reaches the caller", "[csv]") {
  std::vector<int> asked;
  int alive = 0;

  SECTION("on the first chunk") {
    CsvReport report(
        std::make_unique<ScriptedCursor>(
            std::vector<absl::StatusOr<std::vector<HistoryEvent>>>{absl::UnavailableError("db gone")}, asked, alive),
        "r.csv");
    auto first = report.NextChunk();
    CHECK(first.status().code() == absl::StatusCode::kUnavailable);
    CHECK(first.status().message() == "db gone");
  }
  SECTION("after some lines") {
    // A full first batch, so the report has to ask again.
    const std::vector<HistoryEvent> full(CsvReport::kRowsPerChunk, Event("A", Operation::kAdd, Utc(2024, 3, 1)));
    CsvReport report(
        std::make_unique<ScriptedCursor>(
            std::vector<absl::StatusOr<std::vector<HistoryEvent>>>{full, absl::InternalError("broken row")}, asked,
            alive),
        "r.csv");
    auto first = report.NextChunk();
    REQUIRE(first.ok());
    CHECK(Lines(*first) == 1 + CsvReport::kRowsPerChunk);
    auto second = report.NextChunk();
    CHECK(second.status().code() == absl::StatusCode::kInternal);
    CHECK(second.status().message() == "broken row");
  }
  // Whatever happened, destroying the report releases the cursor.
  CHECK(alive == 0);
}
