// HistoryService through the generated stubs, against the real server and
// database:
//  - GetHistoryReportLink: validation (every bad field listed), the link's
//    shape and expiry (FakeClock), absolute links from x-forwarded-host or
//    the configured base URL;
//  - DownloadHistoryReport with the link's query: the CSV byte for byte for a
//    history made through the API (TTL, deleted segment and user, month
//    ends), the first chunk's content type and file name, several chunks;
//    tampered and expired links get NOT_FOUND and no data; links work across
//    instances sharing a key, through a key rotation, and not elsewhere;
//    max_concurrent_reports turns extra downloads away with UNAVAILABLE (a
//    link that is not valid is NOT_FOUND before it could take a slot);
//  - ListUserHistory: every event exactly once across pages, filters,
//    validation;
//  - the TTL expiry job of the running server ends due memberships, stamping
//    the deadline.
#include <absl/strings/match.h>
#include <absl/strings/str_split.h>

#include <map>

#include "service/service_fixture.h"

namespace segments::testing {
namespace {

using Catch::Matchers::Equals;
using Rows = std::vector<std::vector<std::string>>;

constexpr char kReportPath[] = "/segments/history-report";
constexpr char kTestKey[] = "test-key:0123456789abcdef0123456789abcdef";  // as TestConfig() has it

absl::Time Utc(int y, int mo, int d, int h, int mi, int s, int64_t micros = 0) {
  return absl::FromCivil(absl::CivilSecond(y, mo, d, h, mi, s), absl::UTCTimeZone()) + absl::Microseconds(micros);
}

std::string Rfc3339(absl::Time t) { return absl::FormatTime("%Y-%m-%dT%H:%M:%E6SZ", t, absl::UTCTimeZone()); }

// A report link split into its parts.
struct Link {
  std::string base;  // scheme and authority, or empty
  std::string path;
  std::vector<std::string> names;  // query parameter names, in order
  std::map<std::string, std::string> params;

  v1::DownloadHistoryReportRequest Request() const {
    v1::DownloadHistoryReportRequest request;
    if (params.count("userID")) request.set_user_id(params.at("userID"));
    request.set_year(std::stoi(params.at("year")));
    request.set_month(std::stoi(params.at("month")));
    request.set_expires(std::stoll(params.at("expires")));
    request.set_key(params.at("key"));
    request.set_signature(params.at("signature"));
    return request;
  }
};

Link ParseLink(const std::string& text) {
  Link link;
  const size_t question = text.find('?');
  REQUIRE(question != std::string::npos);
  const size_t path = text.find(kReportPath);
  REQUIRE(path != std::string::npos);
  link.base = text.substr(0, path);
  link.path = text.substr(path, question - path);
  const std::vector<std::string> pairs = absl::StrSplit(text.substr(question + 1), '&');
  for (const std::string& pair : pairs) {
    const size_t equals = pair.find('=');
    REQUIRE(equals != std::string::npos);
    link.names.push_back(pair.substr(0, equals));
    CHECK(link.params.emplace(pair.substr(0, equals), pair.substr(equals + 1)).second);
  }
  return link;
}

struct Downloaded {
  grpc::Status status;
  std::vector<v1::DownloadHistoryReportResponse> chunks;

  std::string Data() const {
    std::string out;
    for (const auto& chunk : chunks) out += chunk.data();
    return out;
  }
};

Downloaded Download(v1::HistoryService::Stub& stub, const v1::DownloadHistoryReportRequest& request,
                    std::chrono::milliseconds timeout = std::chrono::milliseconds(30000)) {
  auto context = NewContext(timeout);
  auto reader = stub.DownloadHistoryReport(context.get(), request);
  Downloaded out;
  v1::DownloadHistoryReportResponse chunk;
  while (reader->Read(&chunk)) out.chunks.push_back(chunk);
  out.status = reader->Finish();
  return out;
}

// The stub and channel of a second server instance.
struct Instance {
  std::unique_ptr<app::Application> app;
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<v1::HistoryService::Stub> history;

  Instance(const config::Config& config, const domain::Clock& clock) {
    auto started = app::Application::Start(config, clock);
    if (!started.ok()) throw std::runtime_error("Application::Start: " + started.status().ToString());
    app = *std::move(started);
    channel = NewChannel(app->port());
    history = v1::HistoryService::NewStub(channel);
  }
};

const std::string kHeader = "user_id;segment;operation;datetime\n";

class HistoryFixture : public ServiceFixture {
 public:
  HistoryFixture() = default;
  explicit HistoryFixture(const config::Config& config) : ServiceFixture(config) {}

  grpc::Status GetLink(const std::string& user_id, int32_t month, int32_t year,
                       v1::GetHistoryReportLinkResponse* response,
                       const std::vector<std::pair<std::string, std::string>>& metadata = {}) {
    v1::GetHistoryReportLinkRequest request;
    request.set_user_id(user_id);
    request.set_month(month);
    request.set_year(year);
    auto context = NewContext();
    for (const auto& [name, value] : metadata) context->AddMetadata(name, value);
    return history->GetHistoryReportLink(context.get(), request, response);
  }

  // A link that must be issued.
  Link LinkFor(const std::string& user_id, int32_t month, int32_t year) {
    v1::GetHistoryReportLinkResponse response;
    const grpc::Status status = GetLink(user_id, month, year, &response);
    INFO(Describe(status));
    REQUIRE(status.ok());
    return ParseLink(response.report_link());
  }

  Downloaded Download(const v1::DownloadHistoryReportRequest& request,
                      std::chrono::milliseconds timeout = std::chrono::milliseconds(30000)) {
    return testing::Download(*history, request, timeout);
  }

  // A report that must download.
  std::string ReportOf(const std::string& user_id, int32_t month, int32_t year) {
    const Downloaded report = Download(LinkFor(user_id, month, year).Request());
    INFO(Describe(report.status));
    REQUIRE(report.status.ok());
    return report.Data();
  }

  grpc::Status ListHistory(const v1::ListUserHistoryRequest& request, v1::ListUserHistoryResponse* response) {
    return history->ListUserHistory(NewContext().get(), request, response);
  }

  // A month of history made through the API, ending with the clock at
  // 2024-04-01T00:00:00Z. kUser2 is deleted by then; AVITO_DISCOUNT_50 was
  // deleted and created again.
  void MakeKnownHistory() {
    const absl::Time t0 = Now();  // 2024-03-01T12:00:00Z
    REQUIRE(CreateUser(kUser1).ok());
    REQUIRE(CreateUser(kUser2).ok());
    for (const char* slug : {"AVITO_VOICE_MESSAGES", "AVITO_DISCOUNT_30", "AVITO_DISCOUNT_50"}) {
      REQUIRE(CreateSegment(slug).ok());
    }
    // kUser2 first: the report orders by user, not by arrival.
    REQUIRE(Update(Change(kUser2, {{"AVITO_VOICE_MESSAGES"}, {"AVITO_DISCOUNT_30", 60}})).ok());
    REQUIRE(Update(Change(kUser1, {{"AVITO_VOICE_MESSAGES"}})).ok());
    clock.Set(t0 + absl::Seconds(1) + absl::Microseconds(234567));
    REQUIRE(Update(Change(kUser1, {{"AVITO_DISCOUNT_50"}})).ok());
    clock.Set(t0 + absl::Seconds(30));
    REQUIRE(Update(Change(kUser1, {}, {"AVITO_VOICE_MESSAGES"})).ok());
    // kUser2's AVITO_DISCOUNT_30 expired at t0 + 60s: recorded then.
    clock.Set(t0 + absl::Seconds(90));
    REQUIRE(DeleteSegment("AVITO_DISCOUNT_30").ok());
    clock.Set(t0 + absl::Seconds(120));
    REQUIRE(DeleteSegment("AVITO_DISCOUNT_50").ok());
    clock.Set(t0 + absl::Seconds(150));
    REQUIRE(CreateSegment("AVITO_DISCOUNT_50").ok());
    REQUIRE(Update(Change(kUser2, {{"AVITO_DISCOUNT_50"}})).ok());
    clock.Set(t0 + absl::Seconds(180));
    REQUIRE(DeleteUser(kUser2).ok());
    // The month's last microsecond, and the next month's first.
    clock.Set(Utc(2024, 3, 31, 23, 59, 59, 999999));
    REQUIRE(CreateSegment("LAST").ok());
    REQUIRE(Update(Change(kUser1, {{"LAST"}})).ok());
    clock.Set(Utc(2024, 4, 1, 0, 0, 0));
    REQUIRE(Update(Change(kUser1, {{"AVITO_VOICE_MESSAGES"}})).ok());
  }
};

const std::string kKnownMarch =
    "user_id;segment;operation;datetime\n"
    "0b7f9f5e-1c2d-4e3f-8a9b-0c1d2e3f4a5b;AVITO_VOICE_MESSAGES;add;2024-03-01T12:00:00.000000Z\n"
    "1c8f0a6f-2d3e-4f40-9bac-1d2e3f405b6c;AVITO_DISCOUNT_30;add;2024-03-01T12:00:00.000000Z\n"
    "1c8f0a6f-2d3e-4f40-9bac-1d2e3f405b6c;AVITO_VOICE_MESSAGES;add;2024-03-01T12:00:00.000000Z\n"
    "0b7f9f5e-1c2d-4e3f-8a9b-0c1d2e3f4a5b;AVITO_DISCOUNT_50;add;2024-03-01T12:00:01.234567Z\n"
    "0b7f9f5e-1c2d-4e3f-8a9b-0c1d2e3f4a5b;AVITO_VOICE_MESSAGES;remove;2024-03-01T12:00:30.000000Z\n"
    "1c8f0a6f-2d3e-4f40-9bac-1d2e3f405b6c;AVITO_DISCOUNT_30;remove;2024-03-01T12:01:00.000000Z\n"
    "0b7f9f5e-1c2d-4e3f-8a9b-0c1d2e3f4a5b;AVITO_DISCOUNT_50;remove;2024-03-01T12:02:00.000000Z\n"
    "1c8f0a6f-2d3e-4f40-9bac-1d2e3f405b6c;AVITO_DISCOUNT_50;add;2024-03-01T12:02:30.000000Z\n"
    "1c8f0a6f-2d3e-4f40-9bac-1d2e3f405b6c;AVITO_DISCOUNT_50;remove;2024-03-01T12:03:00.000000Z\n"
    "1c8f0a6f-2d3e-4f40-9bac-1d2e3f405b6c;AVITO_VOICE_MESSAGES;remove;2024-03-01T12:03:00.000000Z\n"
    "0b7f9f5e-1c2d-4e3f-8a9b-0c1d2e3f4a5b;LAST;add;2024-03-31T23:59:59.999999Z\n";

const std::string kKnownMarchUser2 =
    "user_id;segment;operation;datetime\n"
    "1c8f0a6f-2d3e-4f40-9bac-1d2e3f405b6c;AVITO_DISCOUNT_30;add;2024-03-01T12:00:00.000000Z\n"
    "1c8f0a6f-2d3e-4f40-9bac-1d2e3f405b6c;AVITO_VOICE_MESSAGES;add;2024-03-01T12:00:00.000000Z\n"
    "1c8f0a6f-2d3e-4f40-9bac-1d2e3f405b6c;AVITO_DISCOUNT_30;remove;2024-03-01T12:01:00.000000Z\n"
    "1c8f0a6f-2d3e-4f40-9bac-1d2e3f405b6c;AVITO_DISCOUNT_50;add;2024-03-01T12:02:30.000000Z\n"
    "1c8f0a6f-2d3e-4f40-9bac-1d2e3f405b6c;AVITO_DISCOUNT_50;remove;2024-03-01T12:03:00.000000Z\n"
    "1c8f0a6f-2d3e-4f40-9bac-1d2e3f405b6c;AVITO_VOICE_MESSAGES;remove;2024-03-01T12:03:00.000000Z\n";

// --- GetHistoryReportLink

TEST_CASE_METHOD(HistoryFixture, "GetHistoryReportLink rejects a bad month, year or userID, listing each",
                 "[service][history][report_link]") {
  struct Case {
    std::string user;
    int32_t month;
    int32_t year;
    std::vector<std::string> fields;
  };
  const std::vector<Case> cases = {
      {"not-a-uuid", 13, 1969, {"userID", "month", "year"}},
      {"", 0, 10000, {"month", "year"}},
      {"", 0, 2024, {"month"}},
      {"", -1, 2024, {"month"}},
      {"", 13, 2024, {"month"}},
      {"", 3, 0, {"year"}},
      {"", 3, 1969, {"year"}},
      {"", 3, 10000, {"year"}},
      {"0b7f9f5e-1c2d-4e3f-8a9b-0c1d2e3f4a5", 3, 2024, {"userID"}},
      {" 0b7f9f5e-1c2d-4e3f-8a9b-0c1d2e3f4a5b", 3, 2024, {"userID"}},
  };
  for (const Case& c : cases) {
    INFO("user '" << c.user << "' month " << c.month << " year " << c.year);
    v1::GetHistoryReportLinkResponse response;
    const grpc::Status status = GetLink(c.user, c.month, c.year, &response);
    INFO(Describe(status));
    CHECK(status.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
    CHECK_THAT(ViolationFields(status), Equals(c.fields));
    CHECK(response.report_link().empty());
  }
  // The edges of the ranges are fine.
  for (const auto& [month, year] : std::vector<std::pair<int32_t, int32_t>>{{1, 1970}, {12, 9999}}) {
    INFO(year << "-" << month);
    const Downloaded report = Download(LinkFor("", month, year).Request());
    INFO(Describe(report.status));
    CHECK(report.status.ok());
    CHECK(report.Data() == kHeader);
  }
}

TEST_CASE_METHOD(HistoryFixture, "GetHistoryReportLink: a signed path with the query, valid for 4 hours",
                 "[service][history][report_link]") {
  clock.Advance(absl::Milliseconds(750));  // expiry is in whole seconds, rounded down
  const absl::Time expires = Utc(2024, 3, 1, 16, 0, 0);

  v1::GetHistoryReportLinkResponse all;
  REQUIRE(GetLink("", 8, 2023, &all).ok());
  INFO(all.report_link());
  CHECK(all.expiration_time().seconds() == absl::ToUnixSeconds(expires));
  CHECK(all.expiration_time().nanos() == 0);
  const Link link = ParseLink(all.report_link());
  CHECK(link.base.empty());  // no public address known: a path
  CHECK(link.path == kReportPath);
  CHECK(link.names == std::vector<std::string>{"year", "month", "expires", "key", "signature"});
  CHECK(link.params.at("year") == "2023");
  CHECK(link.params.at("month") == "8");
  CHECK(link.params.at("expires") == std::to_string(absl::ToUnixSeconds(expires)));
  CHECK(link.params.at("key") == "test-key");
  // HMAC-SHA256 in base64url without padding: 43 URL-safe characters.
  const std::string& signature = link.params.at("signature");
  CHECK(signature.size() == 43);
  CHECK(signature.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") ==
        std::string::npos);

  // One user: the id in canonical form, first.
  v1::GetHistoryReportLinkResponse one;
  REQUIRE(GetLink("0B7F9F5E-1C2D-4E3F-8A9B-0C1D2E3F4A5B", 12, 2023, &one).ok());
  const Link user_link = ParseLink(one.report_link());
  CHECK(user_link.names == std::vector<std::string>{"userID", "year", "month", "expires", "key", "signature"});
  CHECK(user_link.params.at("userID") == kUser1);
  CHECK(user_link.params.at("month") == "12");
  CHECK(user_link.params.at("signature") != signature);
  CHECK(one.expiration_time().seconds() == absl::ToUnixSeconds(expires));

  // Later requests get later expiries.
  clock.Advance(absl::Minutes(10));
  v1::GetHistoryReportLinkResponse later;
  REQUIRE(GetLink("", 8, 2023, &later).ok());
  CHECK(later.expiration_time().seconds() == absl::ToUnixSeconds(expires + absl::Minutes(10)));
}

TEST_CASE_METHOD(HistoryFixture, "GetHistoryReportLink: x-forwarded-host makes the link absolute",
                 "[service][history][report_link]") {
  v1::GetHistoryReportLinkResponse response;
  REQUIRE(GetLink("", 3, 2024, &response, {{"x-forwarded-host", "reports.example.com:8443"}}).ok());
  INFO(response.report_link());
  CHECK(ParseLink(response.report_link()).base == "http://reports.example.com:8443");
  CHECK(absl::StartsWith(response.report_link(), "http://reports.example.com:8443/segments/history-report?year=2024"));
  // The absolute link's query downloads like any other.
  const Downloaded report = Download(ParseLink(response.report_link()).Request());
  CHECK(report.status.ok());

  // A host that is not a plain host name is not put into a link.
  for (const std::string host : {"evil.example.com/phish?x=", "a b", "@evil"}) {
    INFO(host);
    v1::GetHistoryReportLinkResponse odd;
    REQUIRE(GetLink("", 3, 2024, &odd, {{"x-forwarded-host", host}}).ok());
    CHECK(absl::StartsWith(odd.report_link(), "/segments/history-report?"));
  }
}

class BaseUrlFixture : public HistoryFixture {
 public:
  BaseUrlFixture() : HistoryFixture(WithBaseUrl()) {}
  static config::Config WithBaseUrl() {
    config::Config config = TestConfig();
    config.report_link_base_url = "https://segments.example.com";
    return config;
  }
};

TEST_CASE_METHOD(BaseUrlFixture, "GetHistoryReportLink: the configured base URL wins over x-forwarded-host",
                 "[service][history][report_link]") {
  for (const auto& metadata : std::vector<std::vector<std::pair<std::string, std::string>>>{
           {}, {{"x-forwarded-host", "gateway.internal:8080"}}}) {
    v1::GetHistoryReportLinkResponse response;
    REQUIRE(GetLink(kUser1, 3, 2024, &response, metadata).ok());
    INFO(response.report_link());
    CHECK(absl::StartsWith(response.report_link(), "https://segments.example.com/segments/history-report?userID="));
    CHECK(ParseLink(response.report_link()).base == "https://segments.example.com");
  }
}

// --- DownloadHistoryReport

TEST_CASE_METHOD(HistoryFixture, "DownloadHistoryReport: the CSV of a history made through the API, byte for byte",
                 "[service][history][download]") {
  MakeKnownHistory();

  const Downloaded march = Download(LinkFor("", 3, 2024).Request());
  INFO(Describe(march.status));
  REQUIRE(march.status.ok());
  REQUIRE(march.chunks.size() == 1);
  CHECK(march.chunks[0].content_type() == "text/csv; charset=utf-8");
  CHECK(march.chunks[0].file_name() == "segments-history-2024-03.csv");
  CHECK(march.Data() == kKnownMarch);

  // A deleted user's own report.
  const Downloaded user2 = Download(LinkFor(kUser2, 3, 2024).Request());
  REQUIRE(user2.status.ok());
  REQUIRE(user2.chunks.size() == 1);
  CHECK(user2.chunks[0].content_type() == "text/csv; charset=utf-8");
  CHECK(user2.chunks[0].file_name() == "segments-history-2024-03-" + kUser2 + ".csv");
  CHECK(user2.Data() == kKnownMarchUser2);

  // April starts at its first instant; other months are empty.
  CHECK(ReportOf("", 4, 2024) == kHeader +
                                     "0b7f9f5e-1c2d-4e3f-8a9b-0c1d2e3f4a5b;AVITO_VOICE_MESSAGES;add;"
                                     "2024-04-01T00:00:00.000000Z\n");
  CHECK(ReportOf(kUser2, 4, 2024) == kHeader);
  CHECK(ReportOf("", 2, 2024) == kHeader);
  CHECK(ReportOf("", 3, 2023) == kHeader);
  const Downloaded empty = Download(LinkFor("", 6, 2024).Request());
  REQUIRE(empty.status.ok());
  REQUIRE(empty.chunks.size() == 1);  // the header alone is still a file
  CHECK(empty.chunks[0].file_name() == "segments-history-2024-06.csv");
  CHECK(empty.Data() == kHeader);
}

TEST_CASE_METHOD(HistoryFixture, "DownloadHistoryReport streams a large report in chunks of whole lines",
                 "[service][history][download]") {
  constexpr int kEvents = 2500;
  Query("INSERT INTO history (user_id, segment_id, slug, operation, reason, at) SELECT " + Literal(kUser1) +
        "::uuid, 1, 'BULK', 'add', 'manual', '2024-03-05T00:00:00Z'::timestamptz + g * interval '1.000001 second' "
        "FROM generate_series(0, " +
        std::to_string(kEvents - 1) + ") AS g");
  std::string expected = kHeader;
  for (int g = 0; g < kEvents; ++g) {
    expected +=
        kUser1 + ";BULK;add;" + Rfc3339(Utc(2024, 3, 5, 0, 0, 0) + absl::Seconds(g) + absl::Microseconds(g)) + "\n";
  }
  const Downloaded report = Download(LinkFor("", 3, 2024).Request());
  INFO(Describe(report.status));
  REQUIRE(report.status.ok());
  CHECK(report.chunks.size() == 3);  // 1,000 lines a chunk
  for (size_t i = 0; i < report.chunks.size(); ++i) {
    INFO("chunk " << i);
    CHECK(report.chunks[i].content_type() == (i == 0 ? "text/csv; charset=utf-8" : ""));
    CHECK(report.chunks[i].file_name() == (i == 0 ? "segments-history-2024-03.csv" : ""));
    REQUIRE_FALSE(report.chunks[i].data().empty());
    CHECK(report.chunks[i].data().back() == '\n');
  }
  CHECK(report.Data() == expected);
}

TEST_CASE_METHOD(HistoryFixture, "DownloadHistoryReport: a changed link is NOT_FOUND and sends nothing",
                 "[service][history][download]") {
  MakeKnownHistory();
  const Link all = LinkFor("", 3, 2024);
  const Link one = LinkFor(kUser2, 3, 2024);
  REQUIRE(Download(all.Request()).status.ok());
  REQUIRE(Download(one.Request()).status.ok());

  std::vector<std::pair<std::string, v1::DownloadHistoryReportRequest>> tampered;
  auto add = [&](const std::string& what, const Link& link, auto change) {
    v1::DownloadHistoryReportRequest request = link.Request();
    change(request);
    tampered.emplace_back(what, request);
  };
  using R = v1::DownloadHistoryReportRequest;
  add("a user added", all, [](R& r) { r.set_user_id(kUser1); });
  add("the user removed", one, [](R& r) { r.clear_user_id(); });
  add("another user", one, [](R& r) { r.set_user_id(kUser1); });
  add("the user in capitals", one, [](R& r) { r.set_user_id("1C8F0A6F-2D3E-4F40-9BAC-1D2E3F405B6C"); });
  add("not a user", one, [](R& r) { r.set_user_id("x"); });
  add("another month", all, [](R& r) { r.set_month(4); });
  add("a bad month", all, [](R& r) { r.set_month(13); });
  add("another year", all, [](R& r) { r.set_year(2023); });
  add("a later expiry", all, [](R& r) { r.set_expires(r.expires() + 1); });
  add("an earlier expiry", all, [](R& r) { r.set_expires(r.expires() - 1); });
  add("another key", all, [](R& r) { r.set_key("other"); });
  add("no key", all, [](R& r) { r.clear_key(); });
  add("a changed signature", all, [](R& r) {
    std::string s = r.signature();
    s[5] = s[5] == 'A' ? 'B' : 'A';
    r.set_signature(s);
  });
  add("the other link's signature", all, [&](R& r) { r.set_signature(one.params.at("signature")); });
  add("a cut signature", all, [](R& r) { r.set_signature(r.signature().substr(0, 42)); });
  add("no signature", all, [](R& r) { r.clear_signature(); });
  add("nothing at all", all, [](R& r) { r.Clear(); });

  for (const auto& [what, request] : tampered) {
    INFO(what);
    const Downloaded report = Download(request);
    INFO(Describe(report.status));
    CHECK(report.status.error_code() == grpc::StatusCode::NOT_FOUND);
    CHECK(report.chunks.empty());
  }
}

TEST_CASE_METHOD(HistoryFixture, "DownloadHistoryReport: an expired link is NOT_FOUND",
                 "[service][history][download]") {
  MakeKnownHistory();
  const Link link = LinkFor("", 3, 2024);
  const absl::Time expires = absl::FromUnixSeconds(std::stoll(link.params.at("expires")));
  CHECK(expires == Now() + absl::Hours(4));

  clock.Set(expires - absl::Microseconds(1));
  const Downloaded last = Download(link.Request());
  INFO(Describe(last.status));
  CHECK(last.status.ok());
  CHECK(last.Data() == kKnownMarch);

  for (const absl::Time now : {expires, expires + absl::Seconds(1), expires + absl::Hours(24 * 365)}) {
    INFO("now " << Rfc3339(now));
    clock.Set(now);
    const Downloaded report = Download(link.Request());
    INFO(Describe(report.status));
    CHECK(report.status.error_code() == grpc::StatusCode::NOT_FOUND);
    CHECK(report.chunks.empty());
  }
}

TEST_CASE_METHOD(HistoryFixture, "A report link works on every instance that holds its key",
                 "[service][history][download][keys]") {
  MakeKnownHistory();
  const Link link = LinkFor("", 3, 2024);

  auto with_keys = [](const std::string& keys) {
    config::Config config = TestConfig();
    config.report_link_keys = keys;
    return config;
  };
  {
    Instance same(with_keys(kTestKey), clock);
    const Downloaded report = testing::Download(*same.history, link.Request());
    INFO(Describe(report.status));
    CHECK(report.status.ok());
    CHECK(report.Data() == kKnownMarch);
  }
  {
    // Rotation: a new key signs, the old one still verifies.
    Instance rotated(with_keys("new:ffffffffffffffffffffffffffffffff0000," + std::string(kTestKey)), clock);
    const Downloaded report = testing::Download(*rotated.history, link.Request());
    INFO(Describe(report.status));
    CHECK(report.status.ok());
    CHECK(report.Data() == kKnownMarch);

    // Its own links carry the new key, which this instance does not know.
    v1::GetHistoryReportLinkRequest request;
    request.set_month(3);
    request.set_year(2024);
    v1::GetHistoryReportLinkResponse response;
    REQUIRE(rotated.history->GetHistoryReportLink(NewContext().get(), request, &response).ok());
    const Link fresh = ParseLink(response.report_link());
    CHECK(fresh.params.at("key") == "new");
    CHECK(testing::Download(*rotated.history, fresh.Request()).Data() == kKnownMarch);
    const Downloaded here = Download(fresh.Request());
    CHECK(here.status.error_code() == grpc::StatusCode::NOT_FOUND);
    CHECK(here.chunks.empty());
  }
  for (const std::string keys :
       {"other:0123456789abcdef0123456789abcdef", "test-key:0123456789abcdef0123456789abcdeF"}) {
    INFO("keys " << keys);
    Instance elsewhere(with_keys(keys), clock);
    const Downloaded report = testing::Download(*elsewhere.history, link.Request());
    INFO(Describe(report.status));
    CHECK(report.status.error_code() == grpc::StatusCode::NOT_FOUND);
    CHECK(report.chunks.empty());
  }
}

class OneReportFixture : public HistoryFixture {
 public:
  OneReportFixture() : HistoryFixture(WithOneReport()) {}
  static config::Config WithOneReport() {
    config::Config config = TestConfig();
    config.max_concurrent_reports = 1;
    return config;
  }
};

// The first download is held at its start: a session of the test holds an
// exclusive lock on `history`, so the report's cursor waits for it, which the
// test sees in pg_stat_activity. That download counts against the limit from
// the moment the server has the call until it ends, whatever its client does.
TEST_CASE_METHOD(OneReportFixture, "max_concurrent_reports: a download beyond the limit gets UNAVAILABLE",
                 "[service][history][download][limit]") {
  MakeKnownHistory();
  const v1::DownloadHistoryReportRequest request = LinkFor("", 3, 2024).Request();

  PgSession lock;
  lock.Exec("BEGIN");
  lock.Exec("LOCK TABLE history IN ACCESS EXCLUSIVE MODE");
  auto first_context = NewContext(std::chrono::milliseconds(60000));
  auto first = history->DownloadHistoryReport(first_context.get(), request);
  const bool waiting = Eventually(
      [] {
        return Count(
                   "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                   "AND wait_event_type = 'Lock' AND query LIKE 'DECLARE history_report%'") == 1;
      },
      absl::Seconds(30));
  if (!waiting) {
    first_context->TryCancel();
    lock.Exec("ROLLBACK");
  }
  REQUIRE(waiting);

  // Turned away at once, without touching the database (which would wait
  // for the lock).
  const Downloaded second = Download(request, kCallTimeout);
  INFO(Describe(second.status));
  CHECK(second.status.error_code() == grpc::StatusCode::UNAVAILABLE);
  CHECK(second.chunks.empty());
  // A link that is not valid is NOT_FOUND whatever the load: it is checked
  // before it could wait for a slot.
  v1::DownloadHistoryReportRequest tampered = request;
  tampered.set_month(4);
  const Downloaded refused = Download(tampered, kCallTimeout);
  INFO(Describe(refused.status));
  CHECK(refused.status.error_code() == grpc::StatusCode::NOT_FOUND);
  CHECK(refused.chunks.empty());

  // Let the first one go: it is complete.
  lock.Exec("COMMIT");
  Downloaded first_result;
  v1::DownloadHistoryReportResponse chunk;
  while (first->Read(&chunk)) first_result.chunks.push_back(chunk);
  first_result.status = first->Finish();
  INFO(Describe(first_result.status));
  CHECK(first_result.status.ok());
  CHECK(first_result.Data() == kKnownMarch);

  // Its slot is given back once the call is over on the server.
  grpc::Status again;
  CHECK(Eventually(
      [&] {
        const Downloaded third = Download(request);
        again = third.status;
        return third.status.ok() && third.Data() == kKnownMarch;
      },
      absl::Seconds(20), absl::Milliseconds(50)));
  INFO(Describe(again));
}

// --- ListUserHistory

using Page = std::vector<std::vector<std::string>>;  // (user, segment, operation, reason, micros)

Page EventsOf(const v1::ListUserHistoryResponse& response) {
  Page out;
  for (const auto& e : response.events()) {
    out.push_back({e.user_id(), e.segment(), e.operation(), e.reason(),
                   std::to_string(e.at().seconds() * 1000000 + e.at().nanos() / 1000)});
  }
  return out;
}

class UserHistoryFixture : public HistoryFixture {
 public:
  // kUser1: 8 rounds of adding and removing A, B and C, three events at each
  // instant; kUser2's events in between.
  UserHistoryFixture() {
    REQUIRE(CreateUser(kUser1).ok());
    REQUIRE(CreateUser(kUser2).ok());
    for (const char* slug : {"A", "B", "C"}) REQUIRE(CreateSegment(slug).ok());
    const absl::Time t0 = Now();
    for (int round = 0; round < 8; ++round) {
      clock.Set(t0 + absl::Seconds(round) + absl::Microseconds(round));
      if (round % 2 == 0) {
        REQUIRE(Update(Change(kUser1, {{"C"}, {"A"}, {"B"}})).ok());
        REQUIRE(Update(Change(kUser2, {{"A"}})).ok());
      } else {
        REQUIRE(Update(Change(kUser1, {}, {"B", "C", "A"})).ok());
        REQUIRE(Update(Change(kUser2, {}, {"A"})).ok());
      }
    }
  }

  // The user's events as the database has them, newest first.
  Page Expected(const std::string& where = "") {
    return Query("SELECT user_id::text, slug, operation::text, reason::text, " + MicrosOf("at") +
                 " FROM history WHERE user_id = " + Literal(kUser1) + where + " ORDER BY at DESC, id DESC");
  }

  // Every page of `request`, checked to chain properly.
  std::vector<Page> AllPages(v1::ListUserHistoryRequest request) {
    std::vector<Page> pages;
    for (;;) {
      v1::ListUserHistoryResponse response;
      const grpc::Status status = ListHistory(request, &response);
      INFO(Describe(status));
      REQUIRE(status.ok());
      pages.push_back(EventsOf(response));
      if (response.next_page_token().empty()) break;
      CHECK_FALSE(pages.back().empty());
      request.set_page_token(response.next_page_token());
      REQUIRE(pages.size() < 100);
    }
    return pages;
  }

  static Page Concat(const std::vector<Page>& pages) {
    Page out;
    for (const Page& p : pages) out.insert(out.end(), p.begin(), p.end());
    return out;
  }
};

TEST_CASE_METHOD(UserHistoryFixture, "ListUserHistory pages through every event once, newest first",
                 "[service][history][user_history]") {
  const Page expected = Expected();
  REQUIRE(expected.size() == 24);

  v1::ListUserHistoryRequest request;
  request.set_user_id("0B7F9F5E-1C2D-4E3F-8A9B-0C1D2E3F4A5B");  // any case in, canonical out
  for (const int32_t size : {1, 2, 4, 5, 7, 23, 24, 25, 1000}) {
    INFO("page size " << size);
    request.set_page_size(size);
    const auto pages = AllPages(request);
    CHECK(Concat(pages) == expected);
    CHECK(pages.size() == static_cast<size_t>((24 + size - 1) / size));  // no empty page at the end
    for (size_t i = 0; i + 1 < pages.size(); ++i) CHECK(pages[i].size() == static_cast<size_t>(size));
  }
  request.set_page_size(0);
  CHECK(AllPages(request) == std::vector<Page>{expected});

  // 0 means pages of 100; 1000 is the most.
  const std::string user3 = "2d9a1b7c-3e4f-4a5b-8c6d-7e8f9a0b1c2d";
  Query("INSERT INTO history (user_id, segment_id, slug, operation, reason, at) SELECT " + Literal(user3) +
        "::uuid, 1, 'A', 'add', 'manual', '2024-03-01T00:00:00Z'::timestamptz + g * interval '1 second' "
        "FROM generate_series(1, 1234) AS g");
  request.set_user_id(user3);
  std::vector<size_t> sizes;
  for (const Page& page : AllPages(request)) sizes.push_back(page.size());
  CHECK(sizes == std::vector<size_t>{100, 100, 100, 100, 100, 100, 100, 100, 100, 100, 100, 100, 34});
  request.set_page_size(1000);
  sizes.clear();
  for (const Page& page : AllPages(request)) sizes.push_back(page.size());
  CHECK(sizes == std::vector<size_t>{1000, 234});

  // Events of one instant come newest (last written) first: the oldest is
  // the first segment of the first request.
  CHECK(expected.back() ==
        std::vector<std::string>{kUser1, "C", "add", "manual", std::to_string(Micros(Utc(2024, 3, 1, 12, 0, 0)))});
}

TEST_CASE_METHOD(UserHistoryFixture, "ListUserHistory filters by segment and time",
                 "[service][history][user_history]") {
  const absl::Time t0 = Utc(2024, 3, 1, 12, 0, 0);
  v1::ListUserHistoryRequest request;
  request.set_user_id(kUser1);
  request.set_page_size(2);
  request.set_segment("B");
  CHECK(Concat(AllPages(request)) == Expected(" AND slug = 'B'"));
  CHECK(Concat(AllPages(request)).size() == 8);

  // [round 2, round 5): rounds 2, 3 and 4.
  *request.mutable_from() = ToTimestamp(t0 + absl::Seconds(2) + absl::Microseconds(2));
  *request.mutable_to() = ToTimestamp(t0 + absl::Seconds(5) + absl::Microseconds(5));
  const Page b = Concat(AllPages(request));
  CHECK(b == Expected(" AND slug = 'B' AND at >= '2024-03-01T12:00:02.000002Z' "
                      "AND at < '2024-03-01T12:00:05.000005Z'"));
  CHECK(b.size() == 3);
  request.clear_segment();
  CHECK(Concat(AllPages(request)).size() == 9);

  // Times finer than the stored microseconds: `from` a little after an
  // event leaves it out; `to` a little after an event keeps it.
  *request.mutable_from() = ToTimestamp(t0 + absl::Seconds(2) + absl::Microseconds(2) + absl::Nanoseconds(500));
  *request.mutable_to() = ToTimestamp(t0 + absl::Seconds(5) + absl::Microseconds(5) + absl::Nanoseconds(500));
  CHECK(Concat(AllPages(request)) ==
        Expected(" AND at >= '2024-03-01T12:00:03.000003Z' AND at <= '2024-03-01T12:00:05.000005Z'"));

  // A user without history, and one deleted since: pages all the same.
  request.clear_from();
  request.clear_to();
  request.set_user_id("99999999-9999-4999-8999-999999999999");
  CHECK(AllPages(request) == std::vector<Page>{Page{}});
  REQUIRE(Update(Change(kUser2, {{"B"}})).ok());
  REQUIRE(DeleteUser(kUser2).ok());
  request.set_user_id(kUser2);
  request.set_page_size(0);
  const Page user2 = Concat(AllPages(request));
  CHECK(user2.size() == 8 + 2);
  CHECK(user2.front() ==
        std::vector<std::string>{kUser2, "B", "remove", "user_deleted", std::to_string(Micros(Now()))});
}

TEST_CASE_METHOD(HistoryFixture, "ListUserHistory rejects bad requests, listing each field",
                 "[service][history][user_history]") {
  const auto at = [](int seconds) { return ToTimestamp(Utc(2024, 3, 1, 12, 0, seconds)); };
  struct Case {
    std::string what;
    v1::ListUserHistoryRequest request;
    std::vector<std::string> fields;
  };
  std::vector<Case> cases;
  auto add = [&](const std::string& what, auto fill, std::vector<std::string> fields) {
    v1::ListUserHistoryRequest request;
    request.set_user_id(kUser1);
    fill(request);
    cases.push_back({what, request, std::move(fields)});
  };
  using R = v1::ListUserHistoryRequest;
  add("no user", [](R& r) { r.clear_user_id(); }, {"userID"});
  add("bad user", [](R& r) { r.set_user_id("user-1"); }, {"userID"});
  add("bad slug", [](R& r) { r.set_segment("no spaces"); }, {"segment"});
  add("empty range",
      [&](R& r) {
        *r.mutable_from() = at(5);
        *r.mutable_to() = at(5);
      },
      {"to"});
  add("backwards range",
      [&](R& r) {
        *r.mutable_from() = at(6);
        *r.mutable_to() = at(5);
      },
      {"to"});
  add("negative page", [](R& r) { r.set_page_size(-1); }, {"pageSize"});
  add("huge page", [](R& r) { r.set_page_size(1001); }, {"pageSize"});
  add("garbage token", [](R& r) { r.set_page_token("not a token!"); }, {"pageToken"});
  add("foreign token", [](R& r) { r.set_page_token("aDE6MTIzOjA"); }, {"pageToken"});  // "h1:123:0"
  add("all of it",
      [&](R& r) {
        r.set_user_id("");
        r.set_segment("_x");
        *r.mutable_from() = at(9);
        *r.mutable_to() = at(1);
        r.set_page_size(5000);
        r.set_page_token("%%%");
      },
      {"userID", "segment", "to", "pageSize", "pageToken"});
  for (const Case& c : cases) {
    INFO(c.what);
    v1::ListUserHistoryResponse response;
    const grpc::Status status = ListHistory(c.request, &response);
    INFO(Describe(status));
    CHECK(status.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
    CHECK_THAT(ViolationFields(status), Equals(c.fields));
  }
  // The edges are fine.
  v1::ListUserHistoryRequest ok;
  ok.set_user_id(kUser1);
  ok.set_page_size(1000);
  v1::ListUserHistoryResponse response;
  CHECK(ListHistory(ok, &response).ok());
  *ok.mutable_from() = at(5);
  *ok.mutable_to() = ToTimestamp(Utc(2024, 3, 1, 12, 0, 5) + absl::Nanoseconds(1));
  CHECK(ListHistory(ok, &response).ok());
}

// --- the TTL expiry job in the running server

class FastExpiryFixture : public HistoryFixture {
 public:
  FastExpiryFixture() : HistoryFixture(WithFastExpiry()) {}
  static config::Config WithFastExpiry() {
    config::Config config = TestConfig();
    config.expiry_period = absl::Milliseconds(50);
    config.expiry_batch_size = 2;  // several batches per pass
    return config;
  }
  int64_t DueMemberships() {
    return Count("SELECT count(*) FROM memberships WHERE expires_at <= '" + Rfc3339(Now()) + "'");
  }
};

TEST_CASE_METHOD(FastExpiryFixture, "The expiry job ends due memberships, recording each at its deadline",
                 "[service][history][expiry_job]") {
  const absl::Time t0 = Now();
  REQUIRE(CreateUser(kUser1).ok());
  REQUIRE(CreateUser(kUser2).ok());
  for (const char* slug : {"TTL_A", "TTL_B", "PERM", "LATER"}) REQUIRE(CreateSegment(slug).ok());
  REQUIRE(Update(Change(kUser1, {{"TTL_A", 60}, {"PERM"}, {"LATER", 3600}})).ok());
  const absl::Time deadline_b = t0 + absl::Seconds(90) + absl::Microseconds(500000);
  REQUIRE(Update(Change(kUser2, {{"TTL_A", 120}, {"TTL_B", std::nullopt, deadline_b}})).ok());
  CHECK(Count("SELECT count(*) FROM memberships") == 5);

  // The job keeps running every 50 ms; with the clock moved it finds work.
  clock.Set(t0 + absl::Minutes(10));
  CHECK(Eventually([&] { return DueMemberships() == 0; }, absl::Seconds(30)));
  CHECK(HistoryOf(kUser1) == Rows{Event("LATER", "add", "manual", t0), Event("PERM", "add", "manual", t0),
                                  Event("TTL_A", "add", "manual", t0),
                                  Event("TTL_A", "remove", "ttl", t0 + absl::Seconds(60))});
  CHECK(HistoryOf(kUser2) == Rows{Event("TTL_A", "add", "manual", t0), Event("TTL_B", "add", "manual", t0),
                                  Event("TTL_B", "remove", "ttl", deadline_b),
                                  Event("TTL_A", "remove", "ttl", t0 + absl::Seconds(120))});
  CHECK(Count("SELECT count(*) FROM history WHERE at = '" + Rfc3339(Now()) + "'") == 0);
  CHECK(Query("SELECT user_id::text, s.slug FROM memberships m JOIN segments s ON s.id = m.segment_id ORDER BY 2") ==
        Rows{{kUser1, "LATER"}, {kUser1, "PERM"}});
  CHECK(SegmentsOf(kUser1) == std::vector<std::string>{"LATER", "PERM"});
  CHECK(SegmentsOf(kUser2).empty());

  // The same through ListUserHistory: the newest event is the TTL end.
  v1::ListUserHistoryRequest request;
  request.set_user_id(kUser2);
  request.set_page_size(1);
  v1::ListUserHistoryResponse response;
  REQUIRE(ListHistory(request, &response).ok());
  CHECK(EventsOf(response) ==
        Page{{kUser2, "TTL_A", "remove", "ttl", std::to_string(Micros(t0 + absl::Seconds(120)))}});

  // Later the long one ends too, still at its own deadline; nothing twice.
  clock.Set(t0 + absl::Hours(2));
  CHECK(Eventually([&] { return DueMemberships() == 0; }, absl::Seconds(30)));
  CHECK(Query("SELECT slug, " + MicrosOf("at") + " FROM history WHERE reason = 'ttl' ORDER BY at") ==
        Rows{{"TTL_A", std::to_string(Micros(t0 + absl::Seconds(60)))},
             {"TTL_B", std::to_string(Micros(deadline_b))},
             {"TTL_A", std::to_string(Micros(t0 + absl::Seconds(120)))},
             {"LATER", std::to_string(Micros(t0 + absl::Hours(1)))}});
  CHECK(SegmentsOf(kUser1) == std::vector<std::string>{"PERM"});
  CHECK(Count("SELECT count(*) FROM memberships") == 1);
}

}  // namespace
}  // namespace segments::testing
