#include "domain/history_use_cases.h"

#include <absl/strings/escaping.h>

#include <catch2/catch.hpp>

#include <limits>
#include <set>

#include "domain/errors.h"
#include "domain/segment_use_cases.h"
#include "domain/user_use_cases.h"
#include "support/domain_testing.h"
#include "support/fake_clock.h"
#include "support/fake_store.h"

using namespace segments::domain;
using segments::testing::FakeClock;
using segments::testing::FakeStore;
using segments::testing::Id;
using segments::testing::ViolationFields;
using segments::testing::ViolationsOf;

namespace {

// In lexical order, which the report follows within one instant.
constexpr const char* kU1 = "0b7f9f5e-1c2d-4e3f-8a9b-0c1d2e3f4a5b";
constexpr const char* kU2 = "5d0c1b2a-3e4f-4a5b-8c6d-7e8f9a0b1c2d";
constexpr const char* kU3 = "a3e1c2d4-5f6a-4b7c-9d8e-0f1a2b3c4d5e";
constexpr const char* kU3Upper = "A3E1C2D4-5F6A-4B7C-9D8E-0F1A2B3C4D5E";
constexpr const char* kVoice = "AVITO_VOICE_MESSAGES";
constexpr const char* kDiscount = "AVITO_DISCOUNT_30";

absl::Time Utc(int y, int m, int d, int hh = 0, int mm = 0, int ss = 0) {
  return absl::FromCivil(absl::CivilSecond(y, m, d, hh, mm, ss), absl::UTCTimeZone());
}

ReportLinkSigner MakeSigner() {
  auto signer = ReportLinkSigner::Create({{"k1", std::string(32, 's')}}, absl::Hours(4));
  if (!signer.ok()) throw std::runtime_error(signer.status().ToString());
  return *std::move(signer);
}

struct Fixture {
  FakeStore store;
  FakeStore& fake = store;
  FakeClock clock;
  ReportLinkSigner signer = MakeSigner();
  HistoryUseCases history{store, clock, signer};
  SegmentUseCases segments{fake, clock};
  UserUseCases users{fake, clock};

  ReportLink Link(std::string user, int32_t year, int32_t month) {
    auto link = history.CreateReportLink({std::move(user), month, year});
    REQUIRE(link.ok());
    return *link;
  }

  // The whole file behind a link.
  std::string Download(const ReportLink& link, std::string* file_name = nullptr) {
    auto report = history.OpenReport(link);
    REQUIRE(report.ok());
    if (file_name != nullptr) *file_name = (*report)->file_name();
    std::string out;
    for (int i = 0; i < 100; ++i) {
      auto chunk = (*report)->NextChunk();
      REQUIRE(chunk.ok());
      if (chunk->empty()) return out;
      out += *chunk;
    }
    FAIL("the report never ended");
    return out;
  }

  void AddAt(absl::Time at, const std::string& user, std::vector<std::string> slugs) {
    clock.Set(at);
    std::vector<SegmentToAdd> add;
    for (auto& slug : slugs) add.push_back({std::move(slug), std::nullopt, std::nullopt});
    REQUIRE(segments.UpdateUserSegments({user, std::move(add), {}}).ok());
  }

  // A history through the real use cases, across the boundaries of March 2024.
  void BuildMarchHistory() {
    for (const char* user : {kU1, kU2, kU3}) REQUIRE(users.CreateUser(user).ok());
    clock.Set(Utc(2024, 2, 29, 23, 59, 59) + absl::Microseconds(999999));
    REQUIRE(segments.CreateSegment({kVoice, std::nullopt, "", {}, {}, std::nullopt}).ok());
    REQUIRE(segments.CreateSegment({kDiscount, std::nullopt, "", {}, {}, std::nullopt}).ok());
    AddAt(clock.Now(), kU1, {kVoice});                 // the last microsecond of February
    AddAt(Utc(2024, 3, 1), kU2, {kVoice, kDiscount});  // the first of March
    // Two users at one instant, the later id first.
    AddAt(Utc(2024, 3, 10, 8, 30, 0) + absl::Microseconds(123), kU3, {kDiscount});
    AddAt(Utc(2024, 3, 10, 8, 30, 0) + absl::Microseconds(123), kU1, {kDiscount});
    // The segment goes, with its three members, and its slug comes back.
    clock.Set(Utc(2024, 3, 15, 12, 0, 0));
    REQUIRE(segments.DeleteSegment(kDiscount).ok());
    clock.Set(Utc(2024, 3, 15, 12, 0, 1));
    REQUIRE(segments.CreateSegment({kDiscount, std::nullopt, "", {}, {}, std::nullopt}).ok());
    AddAt(clock.Now(), kU3, {kDiscount});
    // The user leaves; their history stays.
    clock.Set(Utc(2024, 3, 20));
    REQUIRE(users.DeleteUser(kU3).ok());
    // The first instant of April.
    clock.Set(Utc(2024, 4, 1));
    REQUIRE(segments.UpdateUserSegments({kU2, {}, {kVoice}}).ok());
  }
};

}  // namespace

TEST_CASE_METHOD(Fixture, "a report link is signed for the month, expiring after the ttl", "[history-link]") {
  clock.Set(Utc(2024, 3, 1, 12, 0, 0) + absl::Milliseconds(750));
  auto link = history.CreateReportLink({"", 8, 2023});
  REQUIRE(link.ok());
  CHECK_FALSE(link->query.user.has_value());
  CHECK(link->query.year == 2023);
  CHECK(link->query.month == 8);
  CHECK(link->expires == Utc(2024, 3, 1, 16, 0, 0));
  CHECK(link->key_id == "k1");
  CHECK(signer.Verify(*link, clock.Now()).ok());
  CHECK(store.open_history_calls == 0);
  CHECK(fake.transactions == 0);
}

TEST_CASE_METHOD(Fixture, "a report link names its user in canonical lowercase", "[history-link]") {
  const ReportLink upper = Link(kU3Upper, 2024, 3);
  CHECK(upper.query.user == std::optional<std::string>(kU3));
  CHECK(signer.Verify(upper, clock.Now()).ok());
  CHECK(Link("A3e1C2d4-5f6A-4b7C-9D8e-0f1a2b3c4d5e", 2024, 3).query.user == std::optional<std::string>(kU3));
  // The user need not be known: the history outlives deleted users.
  CHECK(Link(kU1, 2024, 3).query.user == std::optional<std::string>(kU1));
}

TEST_CASE_METHOD(Fixture, "report link requests are checked field by field", "[history-link]") {
  CHECK(history.CreateReportLink({"", 1, 1970}).ok());
  CHECK(history.CreateReportLink({"", 12, 9999}).ok());

  auto check = [&](ReportLinkCommand command, std::vector<std::string> fields) {
    INFO("user \"" << command.user_id << "\", month " << command.month << ", year " << command.year);
    auto link = history.CreateReportLink(command);
    CHECK(link.status().code() == absl::StatusCode::kInvalidArgument);
    CHECK(ViolationFields(link.status()) == fields);
  };
  check({"", 0, 2024}, {"month"});
  check({"", 13, 2024}, {"month"});
  check({"", -1, 2024}, {"month"});
  check({"", 3, 1969}, {"year"});
  check({"", 3, 10000}, {"year"});
  check({"", 3, 0}, {"year"});
  check({"not-a-uuid", 3, 2024}, {"userID"});
  check({" ", 3, 2024}, {"userID"});
  check({"0b7f9f5e1c2d4e3f8a9b0c1d2e3f4a5b", 3, 2024}, {"userID"});
  check({"not-a-uuid", 0, 0}, {"userID", "month", "year"});
}

TEST_CASE_METHOD(Fixture, "a report lists a month's events byte for byte, by time, user, segment", "[history-report]") {
  BuildMarchHistory();
  std::string file_name;
  CHECK(Download(Link("", 2024, 3), &file_name) ==
        "user_id;segment;operation;datetime\n"
        "5d0c1b2a-3e4f-4a5b-8c6d-7e8f9a0b1c2d;AVITO_DISCOUNT_30;add;2024-03-01T00:00:00.000000Z\n"
        "5d0c1b2a-3e4f-4a5b-8c6d-7e8f9a0b1c2d;AVITO_VOICE_MESSAGES;add;2024-03-01T00:00:00.000000Z\n"
        "0b7f9f5e-1c2d-4e3f-8a9b-0c1d2e3f4a5b;AVITO_DISCOUNT_30;add;2024-03-10T08:30:00.000123Z\n"
        "a3e1c2d4-5f6a-4b7c-9d8e-0f1a2b3c4d5e;AVITO_DISCOUNT_30;add;2024-03-10T08:30:00.000123Z\n"
        "0b7f9f5e-1c2d-4e3f-8a9b-0c1d2e3f4a5b;AVITO_DISCOUNT_30;remove;2024-03-15T12:00:00.000000Z\n"
        "5d0c1b2a-3e4f-4a5b-8c6d-7e8f9a0b1c2d;AVITO_DISCOUNT_30;remove;2024-03-15T12:00:00.000000Z\n"
        "a3e1c2d4-5f6a-4b7c-9d8e-0f1a2b3c4d5e;AVITO_DISCOUNT_30;remove;2024-03-15T12:00:00.000000Z\n"
        "a3e1c2d4-5f6a-4b7c-9d8e-0f1a2b3c4d5e;AVITO_DISCOUNT_30;add;2024-03-15T12:00:01.000000Z\n"
        "a3e1c2d4-5f6a-4b7c-9d8e-0f1a2b3c4d5e;AVITO_DISCOUNT_30;remove;2024-03-20T00:00:00.000000Z\n");
  CHECK(file_name == "segments-history-2024-03.csv");
  CHECK(fake.open_cursors == 0);
}

TEST_CASE_METHOD(Fixture, "months are half-open: the first instant belongs, the next month's does not",
                 "[history-report]") {
  BuildMarchHistory();
  CHECK(Download(Link("", 2024, 2)) ==
        "user_id;segment;operation;datetime\n"
        "0b7f9f5e-1c2d-4e3f-8a9b-0c1d2e3f4a5b;AVITO_VOICE_MESSAGES;add;2024-02-29T23:59:59.999999Z\n");
  CHECK(Download(Link("", 2024, 4)) ==
        "user_id;segment;operation;datetime\n"
        "5d0c1b2a-3e4f-4a5b-8c6d-7e8f9a0b1c2d;AVITO_VOICE_MESSAGES;remove;2024-04-01T00:00:00.000000Z\n");
}

TEST_CASE_METHOD(Fixture, "a deleted user's report keeps their events, and only theirs", "[history-report]") {
  BuildMarchHistory();
  REQUIRE_FALSE(fake.state.users.contains(Id(kU3)));
  std::string file_name;
  CHECK(Download(Link(kU3Upper, 2024, 3), &file_name) ==
        "user_id;segment;operation;datetime\n"
        "a3e1c2d4-5f6a-4b7c-9d8e-0f1a2b3c4d5e;AVITO_DISCOUNT_30;add;2024-03-10T08:30:00.000123Z\n"
        "a3e1c2d4-5f6a-4b7c-9d8e-0f1a2b3c4d5e;AVITO_DISCOUNT_30;remove;2024-03-15T12:00:00.000000Z\n"
        "a3e1c2d4-5f6a-4b7c-9d8e-0f1a2b3c4d5e;AVITO_DISCOUNT_30;add;2024-03-15T12:00:01.000000Z\n"
        "a3e1c2d4-5f6a-4b7c-9d8e-0f1a2b3c4d5e;AVITO_DISCOUNT_30;remove;2024-03-20T00:00:00.000000Z\n");
  CHECK(file_name == "segments-history-2024-03-a3e1c2d4-5f6a-4b7c-9d8e-0f1a2b3c4d5e.csv");
}

TEST_CASE_METHOD(Fixture, "a month without events gives the header only", "[history-report]") {
  BuildMarchHistory();
  CHECK(Download(Link("", 2024, 5)) == "user_id;segment;operation;datetime\n");
  CHECK(Download(Link("", 2023, 3)) == "user_id;segment;operation;datetime\n");
  CHECK(Download(Link(kU1, 2024, 4)) == "user_id;segment;operation;datetime\n");
  CHECK(fake.open_cursors == 0);
}

TEST_CASE_METHOD(Fixture, "a report holds its cursor while it is read", "[history-report]") {
  BuildMarchHistory();
  auto report = history.OpenReport(Link("", 2024, 3));
  REQUIRE(report.ok());
  CHECK(fake.open_cursors == 1);
  REQUIRE((*report)->NextChunk().ok());
  REQUIRE((*report)->NextChunk().ok());
  CHECK(fake.open_cursors == 0);
}

TEST_CASE_METHOD(Fixture, "an expired link opens no report", "[history-report]") {
  BuildMarchHistory();
  const ReportLink link = Link("", 2024, 3);
  REQUIRE(link.expires == clock.Now() + absl::Hours(4));

  clock.Set(link.expires - absl::Microseconds(1));
  CHECK(history.OpenReport(link).ok());
  CHECK(store.open_history_calls == 1);

  clock.Set(link.expires);
  CHECK(history.OpenReport(link).status().code() == absl::StatusCode::kNotFound);
  clock.Advance(absl::Hours(24));
  CHECK(history.OpenReport(link).status().code() == absl::StatusCode::kNotFound);
  CHECK(store.open_history_calls == 1);
  CHECK(fake.open_cursors == 0);
}

TEST_CASE_METHOD(Fixture, "a tampered link never reaches the store", "[history-report]") {
  BuildMarchHistory();
  const ReportLink link = Link(kU1, 2024, 3);
  std::vector<ReportLink> tampered(6, link);
  tampered[0].query.user = kU2;
  tampered[1].query.user.reset();
  tampered[2].query.month = 4;
  tampered[3].query.year = 2023;
  tampered[4].expires += absl::Hours(1);
  tampered[5].signature[0] = tampered[5].signature[0] == 'x' ? 'y' : 'x';
  for (size_t i = 0; i < tampered.size(); ++i) {
    INFO("tampered link " << i);
    CHECK(history.OpenReport(tampered[i]).status().code() == absl::StatusCode::kNotFound);
  }
  CHECK(store.open_history_calls == 0);
  CHECK(fake.open_cursors == 0);
  CHECK(history.OpenReport(link).ok());
  CHECK(store.open_history_calls == 1);
}

TEST_CASE_METHOD(Fixture, "a link signed with bad fields is refused before the store", "[history-report]") {
  // Only a holder of the key could make these; they still must not reach the store.
  const absl::Time now = clock.Now();
  auto month = history.OpenReport(signer.Sign({std::nullopt, 2024, 13}, now));
  CHECK(month.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(ViolationFields(month.status()) == std::vector<std::string>{"month"});
  auto all = history.OpenReport(signer.Sign({"not-a-uuid", 1969, 0}, now));
  CHECK(all.status().code() == absl::StatusCode::kInvalidArgument);
  const std::vector<std::string> fields = ViolationFields(all.status());
  CHECK(std::set<std::string>(fields.begin(), fields.end()) == std::set<std::string>{"userID", "month", "year"});
  CHECK(store.open_history_calls == 0);
}

TEST_CASE_METHOD(Fixture, "a store failure when opening a report reaches the caller", "[history-report]") {
  const ReportLink link = Link("", 2024, 3);
  fake.failure = absl::UnavailableError("database is down");
  auto report = history.OpenReport(link);
  CHECK(report.status().code() == absl::StatusCode::kUnavailable);
  CHECK(fake.open_cursors == 0);
}

namespace {

// A user's history with several events at the same instant, and another
// user's event among them. Ids are positions + 1 in the fake store.
struct PagesFixture : Fixture {
  const absl::Time t10 = Utc(2024, 3, 5, 10, 0, 0);
  const absl::Time t11 = Utc(2024, 3, 5, 11, 0, 0);
  const absl::Time t12 = Utc(2024, 3, 5, 12, 0, 0);
  const absl::Time t13 = Utc(2024, 3, 5, 13, 0, 0);

  PagesFixture() {
    Put(kU1, "A", Operation::kAdd, t10);     // 1
    Put(kU1, "B", Operation::kAdd, t10);     // 2
    Put(kU1, "C", Operation::kAdd, t10);     // 3
    Put(kU1, "A", Operation::kRemove, t11);  // 4
    Put(kU2, "A", Operation::kAdd, t11);     // 5, another user
    Put(kU1, "B", Operation::kRemove, t12);  // 6
    Put(kU1, "C", Operation::kRemove, t12);  // 7
    Put(kU1, "A", Operation::kAdd, t13);     // 8
  }

  void Put(const std::string& user, const std::string& slug, Operation op, absl::Time at) {
    fake.state.history.push_back({Id(user), 1, slug, op, op == Operation::kAdd ? Reason::kManual : Reason::kTtl, at});
  }

  HistoryPage Page(UserHistoryCommand command) {
    auto page = history.ListUserHistory(command);
    REQUIRE(page.ok());
    return *page;
  }

  // Every page in turn; the ids of all events, in the order served.
  std::vector<int64_t> AllIds(UserHistoryCommand command, int* pages = nullptr) {
    std::vector<int64_t> ids;
    int count = 0;
    for (;;) {
      REQUIRE(++count < 100);
      HistoryPage page = Page(command);
      for (const HistoryEvent& e : page.events) ids.push_back(e.id);
      if (page.next_page_token.empty()) break;
      command.page_token = page.next_page_token;
    }
    if (pages != nullptr) *pages = count;
    return ids;
  }
};

}  // namespace

TEST_CASE_METHOD(PagesFixture, "a user's history comes newest first, with every field", "[history-pages]") {
  HistoryPage page = Page({kU1, "", std::nullopt, std::nullopt, 0, ""});
  std::vector<int64_t> ids;
  for (const auto& e : page.events) ids.push_back(e.id);
  CHECK(ids == std::vector<int64_t>{8, 7, 6, 4, 3, 2, 1});
  CHECK(page.next_page_token.empty());
  REQUIRE(page.events.size() == 7);
  CHECK(page.events[0].user_id == Id(kU1));
  CHECK(page.events[0].slug == "A");
  CHECK(page.events[0].operation == Operation::kAdd);
  CHECK(page.events[0].at == t13);
  CHECK(page.events[1].operation == Operation::kRemove);
  CHECK(page.events[1].reason == Reason::kTtl);
  for (size_t i = 1; i < page.events.size(); ++i) CHECK(page.events[i - 1].at >= page.events[i].at);

  // Any case of the id finds the same events.
  CHECK(Page({"0B7F9F5E-1C2D-4E3F-8A9B-0C1D2E3F4A5B", "", std::nullopt, std::nullopt, 0, ""}).events.size() == 7);
  // A user without events (or unknown) has an empty history, not an error.
  HistoryPage none = Page({kU3, "", std::nullopt, std::nullopt, 0, ""});
  CHECK(none.events.empty());
  CHECK(none.next_page_token.empty());
}

TEST_CASE_METHOD(PagesFixture, "pages give every event exactly once, also across equal timestamps", "[history-pages]") {
  const std::vector<int64_t> expected = {8, 7, 6, 4, 3, 2, 1};
  for (int32_t size = 1; size <= 8; ++size) {
    INFO("page size " << size);
    int pages = 0;
    CHECK(AllIds({kU1, "", std::nullopt, std::nullopt, size, ""}, &pages) == expected);
    CHECK(pages == (7 + size - 1) / size);  // a full last page has no token
  }

  HistoryPage first = Page({kU1, "", std::nullopt, std::nullopt, 2, ""});
  REQUIRE(first.events.size() == 2);
  REQUIRE_FALSE(first.next_page_token.empty());
  // The token names the last event served.
  auto position = DecodePageToken(first.next_page_token);
  REQUIRE(position.has_value());
  CHECK(position->at == t12);
  CHECK(position->id == 7);
}

TEST_CASE_METHOD(PagesFixture, "history can be narrowed to a segment and a time range", "[history-pages]") {
  CHECK(AllIds({kU1, "A", std::nullopt, std::nullopt, 0, ""}) == std::vector<int64_t>{8, 4, 1});
  CHECK(AllIds({kU1, "A", std::nullopt, std::nullopt, 1, ""}) == std::vector<int64_t>{8, 4, 1});
  CHECK(AllIds({kU1, "Z", std::nullopt, std::nullopt, 0, ""}).empty());
  // From is inclusive, to exclusive.
  CHECK(AllIds({kU1, "", t11, t12, 0, ""}) == std::vector<int64_t>{4});
  CHECK(AllIds({kU1, "", t12, std::nullopt, 0, ""}) == std::vector<int64_t>{8, 7, 6});
  CHECK(AllIds({kU1, "", std::nullopt, t10 + absl::Microseconds(1), 0, ""}) == std::vector<int64_t>{3, 2, 1});
  CHECK(AllIds({kU1, "", std::nullopt, t10, 0, ""}).empty());
  CHECK(AllIds({kU1, "C", t10, t13, 1, ""}) == std::vector<int64_t>{7, 3});
}

TEST_CASE_METHOD(Fixture, "page size 0 means 100, and 1000 is the most", "[history-pages]") {
  for (int i = 0; i < 1005; ++i) {
    fake.state.history.push_back(
        {Id(kU1), 1, "A", Operation::kAdd, Reason::kManual, Utc(2024, 1, 1) + absl::Seconds(i)});
  }
  HistoryPage first = history.ListUserHistory({kU1, "", std::nullopt, std::nullopt, 0, ""}).value();
  CHECK(first.events.size() == static_cast<size_t>(HistoryUseCases::kDefaultPageSize));
  CHECK_FALSE(first.next_page_token.empty());
  CHECK(first.events.front().id == 1005);

  HistoryPage most = history.ListUserHistory({kU1, "", std::nullopt, std::nullopt, 1000, ""}).value();
  CHECK(most.events.size() == 1000);
  CHECK_FALSE(most.next_page_token.empty());
  HistoryPage rest = history.ListUserHistory({kU1, "", std::nullopt, std::nullopt, 1000, most.next_page_token}).value();
  CHECK(rest.events.size() == 5);
  CHECK(rest.events.back().id == 1);
  CHECK(rest.next_page_token.empty());

  for (int32_t bad : {1001, -1, std::numeric_limits<int32_t>::min(), std::numeric_limits<int32_t>::max()}) {
    INFO("page size " << bad);
    auto page = history.ListUserHistory({kU1, "", std::nullopt, std::nullopt, bad, ""});
    CHECK(page.status().code() == absl::StatusCode::kInvalidArgument);
    CHECK(ViolationFields(page.status()) == std::vector<std::string>{"pageSize"});
  }
}

TEST_CASE_METHOD(Fixture, "history requests are checked field by field, all at once", "[history-pages]") {
  const absl::Time t = Utc(2024, 3, 1);
  auto check = [&](UserHistoryCommand command, std::vector<std::string> fields) {
    INFO("user \"" << command.user_id << "\", segment \"" << command.segment << "\", token \"" << command.page_token
                   << "\"");
    auto page = history.ListUserHistory(command);
    CHECK(page.status().code() == absl::StatusCode::kInvalidArgument);
    CHECK(ViolationFields(page.status()) == fields);
  };
  check({"", "", std::nullopt, std::nullopt, 0, ""}, {"userID"});
  check({"nope", "", std::nullopt, std::nullopt, 0, ""}, {"userID"});
  check({kU1, "bad slug", std::nullopt, std::nullopt, 0, ""}, {"segment"});
  check({kU1, "_A", std::nullopt, std::nullopt, 0, ""}, {"segment"});
  check({kU1, "", t, t, 0, ""}, {"to"});
  check({kU1, "", t, t - absl::Microseconds(1), 0, ""}, {"to"});
  check({kU1, "", std::nullopt, std::nullopt, 0, "garbage"}, {"pageToken"});
  check({"nope", "bad slug", t, t, -5, "garbage"}, {"userID", "segment", "to", "pageSize", "pageToken"});
  CHECK(store.user_history_calls == 0);

  auto empty = history.ListUserHistory({"", "", std::nullopt, std::nullopt, 0, ""});
  REQUIRE(ViolationsOf(empty.status()).size() == 1);
  CHECK(ViolationsOf(empty.status())[0].description == "is required");

  // One bound alone, or from just before to, is fine.
  CHECK(history.ListUserHistory({kU1, "", t, std::nullopt, 0, ""}).ok());
  CHECK(history.ListUserHistory({kU1, "", std::nullopt, t, 0, ""}).ok());
  CHECK(history.ListUserHistory({kU1, "", t, t + absl::Microseconds(1), 0, ""}).ok());
}

TEST_CASE_METHOD(Fixture, "a store failure when listing history reaches the caller", "[history-pages]") {
  fake.failure = absl::UnavailableError("database is down");
  auto page = history.ListUserHistory({kU1, "", std::nullopt, std::nullopt, 0, ""});
  CHECK(page.status().code() == absl::StatusCode::kUnavailable);
}

TEST_CASE("page tokens round-trip and are URL-safe", "[history-pages]") {
  const std::vector<HistoryPosition> positions = {
      {Utc(2024, 3, 5, 10, 0, 0) + absl::Microseconds(123456), 42},
      {absl::UnixEpoch(), 1},
      {absl::UnixEpoch() - absl::Microseconds(1), 7},
      {Utc(9999, 12, 31, 23, 59, 59) + absl::Microseconds(999999), std::numeric_limits<int64_t>::max()},
  };
  for (const HistoryPosition& p : positions) {
    const std::string token = EncodePageToken(p);
    INFO("token " << token);
    CHECK(token.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") ==
          std::string::npos);
    auto decoded = DecodePageToken(token);
    REQUIRE(decoded.has_value());
    CHECK(decoded->at == p.at);
    CHECK(decoded->id == p.id);
  }
  CHECK(EncodePageToken({absl::UnixEpoch(), 1}) != EncodePageToken({absl::UnixEpoch(), 2}));
  CHECK(EncodePageToken({absl::UnixEpoch(), 1}) != EncodePageToken({absl::UnixEpoch() + absl::Microseconds(1), 1}));
}

TEST_CASE("page tokens that this service did not issue are rejected", "[history-pages]") {
  auto b64 = [](const char* raw) { return absl::WebSafeBase64Escape(raw); };
  const std::vector<std::string> junk = {
      "",
      "garbage!",
      "****",
      b64(""),
      b64("h1:"),
      b64("h2:1709632800000000:5"),
      b64("H1:1709632800000000:5"),
      b64("1709632800000000:5"),
      b64("h1:1709632800000000"),
      b64("h1:1709632800000000:"),
      b64("h1::5"),
      b64("h1:x:5"),
      b64("h1:1709632800000000:five"),
      b64("h1:1709632800000000:0"),
      b64("h1:1709632800000000:-3"),
      b64("h1:1709632800000000:5:6"),
      b64("h1:99999999999999999999:5"),
      b64("h1:1709632800000000:99999999999999999999"),
      "h1:1709632800000000:5",  // not encoded
  };
  for (const std::string& token : junk) {
    INFO("token \"" << token << "\"");
    CHECK_FALSE(DecodePageToken(token).has_value());
  }
  // The same text, encoded, is a token.
  auto good = DecodePageToken(b64("h1:1709632800000000:5"));
  REQUIRE(good.has_value());
  CHECK(good->at == absl::FromUnixMicros(1709632800000000));
  CHECK(good->id == 5);
}
