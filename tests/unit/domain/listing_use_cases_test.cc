#include "domain/listing_use_cases.h"

#include <absl/strings/escaping.h>
#include <fmt/format.h>

#include <catch2/catch.hpp>
#include <set>

#include "domain/errors.h"
#include "domain/segment_use_cases.h"
#include "support/domain_testing.h"
#include "support/fake_clock.h"
#include "support/fake_store.h"

using namespace segments::domain;
using segments::testing::FakeClock;
using segments::testing::FakeStore;
using segments::testing::Id;
using segments::testing::UserNo;
using segments::testing::UserText;
using segments::testing::ViolationFields;

namespace {

struct Fixture {
  FakeStore store;
  FakeClock clock;
  SegmentUseCases segments{store, clock};
  ListingUseCases listing{store, clock};

  void Create(const std::string& slug) {
    REQUIRE(segments.CreateSegment({slug, std::nullopt, "", {}, {}, std::nullopt}).ok());
  }

  // Every slug, walking pages of `size`; checks the tokens end the walk.
  std::vector<std::string> AllSlugs(int32_t size, int* pages = nullptr) {
    std::vector<std::string> out;
    std::string token;
    int n = 0;
    do {
      auto page = listing.ListSegments({size, token});
      INFO(page.status());
      REQUIRE(page.ok());
      REQUIRE(++n < 1000);
      for (const auto& s : page->segments) out.push_back(s.slug);
      token = page->next_page_token;
    } while (!token.empty());
    if (pages != nullptr) *pages = n;
    return out;
  }

  std::vector<std::string> AllMembers(const std::string& slug, int32_t size) {
    std::vector<std::string> out;
    std::string token;
    do {
      auto page = listing.ListSegmentMembers({slug, size, token});
      INFO(page.status());
      REQUIRE(page.ok());
      for (const auto& m : page->members) out.push_back(m.user_id.ToString());
      token = page->next_page_token;
    } while (!token.empty());
    return out;
  }

  void AddMembers(const std::string& slug, int from, int to, std::optional<int64_t> ttl = std::nullopt) {
    for (int i = from; i < to; ++i) {
      store.state.users[UserNo(i)] = UserState::kActive;
      REQUIRE(segments.UpdateUserSegments({UserNo(i), {{slug, {ttl, std::nullopt}}}, {}}).ok());
    }
  }
};

}  // namespace

TEST_CASE_METHOD(Fixture, "ListSegments: live segments in byte order of slugs, page by page", "[listing]") {
  for (const char* slug : {"b", "A", "a", "Z_1", "Z-1", "Z.1", "0", "B", "GONE"}) Create(slug);
  REQUIRE(segments.DeleteSegment("GONE").ok());
  const std::vector<std::string> sorted = {"0", "A", "B", "Z-1", "Z.1", "Z_1", "a", "b"};
  int pages = 0;
  CHECK(AllSlugs(3, &pages) == sorted);
  CHECK(pages == 3);
  CHECK(AllSlugs(8, &pages) == sorted);
  CHECK(pages == 1);  // no empty page after an exactly full one
  CHECK(AllSlugs(1) == sorted);
  CHECK(AllSlugs(0) == sorted);  // the default size

  // A segment created between pages after the position shows up; before it does not shift anything.
  auto first = listing.ListSegments({2, ""});
  REQUIRE(first.ok());
  Create("00");  // sorts before the position
  Create("Y");
  auto rest = listing.ListSegments({10, first->next_page_token});
  REQUIRE(rest.ok());
  std::vector<std::string> slugs;
  for (const auto& s : rest->segments) slugs.push_back(s.slug);
  CHECK(slugs == std::vector<std::string>{"B", "Y", "Z-1", "Z.1", "Z_1", "a", "b"});
  CHECK(rest->next_page_token.empty());
}

TEST_CASE_METHOD(Fixture, "ListSegments: empty, and bad sizes or tokens", "[listing]") {
  auto empty = listing.ListSegments({0, ""});
  REQUIRE(empty.ok());
  CHECK(empty->segments.empty());
  CHECK(empty->next_page_token.empty());

  CHECK(ViolationFields(listing.ListSegments({-1, ""}).status()) == std::vector<std::string>{"pageSize"});
  CHECK(ViolationFields(listing.ListSegments({1001, ""}).status()) == std::vector<std::string>{"pageSize"});
  CHECK(listing.ListSegments({1000, ""}).ok());
  for (const std::string& token :
       {std::string("garbage!"), absl::WebSafeBase64Escape("x1:A"), absl::WebSafeBase64Escape("s1:bad slug"),
        absl::WebSafeBase64Escape("m1:1:" + UserText(1))}) {
    INFO(token);
    auto bad = listing.ListSegments({10, token});
    CHECK(bad.status().code() == absl::StatusCode::kInvalidArgument);
    CHECK(ViolationFields(bad.status()) == std::vector<std::string>{"pageToken"});
  }
  CHECK(ViolationFields(listing.ListSegments({5000, "??"}).status()) ==
        std::vector<std::string>{"pageSize", "pageToken"});
}

TEST_CASE_METHOD(Fixture, "ListSegmentMembers: active members by user id, each once across pages", "[listing]") {
  Create("S");
  Create("OTHER");
  AddMembers("S", 0, 25);
  AddMembers("S", 25, 30, 60);  // expire later
  AddMembers("OTHER", 30, 40);
  std::vector<std::string> expected;
  for (int i = 0; i < 30; ++i) expected.push_back(UserText(i));
  CHECK(AllMembers("S", 7) == expected);
  CHECK(AllMembers("S", 30) == expected);
  CHECK(AllMembers("S", 0) == expected);

  clock.Advance(absl::Minutes(2));
  expected.resize(25);
  CHECK(AllMembers("S", 4) == expected);

  auto page = listing.ListSegmentMembers({"S", 1, ""});
  REQUIRE(page.ok());
  REQUIRE(page->members.size() == 1);
  CHECK(page->members[0].user_id == UserNo(0));
  CHECK(page->members[0].added_at == clock.Now() - absl::Minutes(2));
  CHECK_FALSE(page->members[0].automatic);
}

TEST_CASE_METHOD(Fixture, "ListSegmentMembers: a page token continues after its position, whatever changed",
                 "[listing]") {
  Create("S");
  AddMembers("S", 0, 10);
  auto first = listing.ListSegmentMembers({"S", 4, ""});
  REQUIRE(first.ok());
  REQUIRE(first->members.back().user_id == UserNo(3));
  // Users 1 and 5 leave, 20 joins: the next page starts after user 3.
  REQUIRE(segments.UpdateUserSegments({UserNo(1), {}, {"S"}}).ok());
  REQUIRE(segments.UpdateUserSegments({UserNo(5), {}, {"S"}}).ok());
  AddMembers("S", 20, 21);
  auto next = listing.ListSegmentMembers({"S", 4, first->next_page_token});
  REQUIRE(next.ok());
  std::vector<std::string> ids;
  for (const auto& m : next->members) ids.push_back(m.user_id.ToString());
  CHECK(ids == std::vector<std::string>{UserText(4), UserText(6), UserText(7), UserText(8)});
}

TEST_CASE_METHOD(Fixture, "ListSegmentMembers: bad requests and tokens", "[listing]") {
  Create("S");
  Create("T");
  AddMembers("S", 0, 5);
  AddMembers("T", 0, 5);
  CHECK(ViolationFields(listing.ListSegmentMembers({"", 0, ""}).status()) == std::vector<std::string>{"slug"});
  CHECK(ViolationFields(listing.ListSegmentMembers({"S", 10001, ""}).status()) == std::vector<std::string>{"pageSize"});
  CHECK(ViolationFields(listing.ListSegmentMembers({"S", -5, ""}).status()) == std::vector<std::string>{"pageSize"});
  CHECK(listing.ListSegmentMembers({"S", 10000, ""}).ok());
  auto unknown = listing.ListSegmentMembers({"NOPE", 0, ""});
  CHECK(unknown.status().code() == absl::StatusCode::kNotFound);
  CHECK(ViolationFields(unknown.status()) == std::vector<std::string>{"slug"});

  auto s_page = listing.ListSegmentMembers({"S", 2, ""});
  REQUIRE(s_page.ok());
  const std::string s_token = s_page->next_page_token;
  REQUIRE_FALSE(s_token.empty());
  auto segments_page = listing.ListSegments({1, ""});
  REQUIRE(segments_page.ok());

  std::string raw;
  REQUIRE(absl::WebSafeBase64Unescape(s_token, &raw));
  for (const std::string& token :
       {std::string("%%%"), segments_page->next_page_token, absl::WebSafeBase64Escape("m1:x:" + UserText(1)),
        absl::WebSafeBase64Escape("m1:1"), absl::WebSafeBase64Escape("m1:1:not-a-uuid"),
        absl::WebSafeBase64Escape("m1:1:0B7F9F5E-1C2D-4E3F-8A9B-0C1D2E3F4A5B"),  // not canonical
        absl::WebSafeBase64Escape("m2" + raw.substr(2))}) {
    INFO(token);
    auto bad = listing.ListSegmentMembers({"S", 2, token});
    CHECK(bad.status().code() == absl::StatusCode::kInvalidArgument);
    CHECK(ViolationFields(bad.status()) == std::vector<std::string>{"pageToken"});
  }
  // A token of another live segment is refused too.
  auto other = listing.ListSegmentMembers({"T", 2, s_token});
  CHECK(other.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(ViolationFields(other.status()) == std::vector<std::string>{"pageToken"});
}

TEST_CASE_METHOD(Fixture, "ListSegmentMembers: a token of a deleted and re-created segment is refused", "[listing]") {
  Create("S");
  AddMembers("S", 0, 5);
  auto page = listing.ListSegmentMembers({"S", 2, ""});
  REQUIRE(page.ok());
  REQUIRE(segments.DeleteSegment("S").ok());
  Create("S");
  AddMembers("S", 5, 10);
  auto stale = listing.ListSegmentMembers({"S", 2, page->next_page_token});
  CHECK(stale.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(ViolationFields(stale.status()) == std::vector<std::string>{"pageToken"});
  // Deleted and not re-created: the slug is unknown.
  REQUIRE(segments.DeleteSegment("S").ok());
  CHECK(listing.ListSegmentMembers({"S", 2, page->next_page_token}).status().code() == absl::StatusCode::kNotFound);
}
