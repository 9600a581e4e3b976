#include "domain/page_token.h"

#include <absl/strings/escaping.h>

#include <catch2/catch.hpp>

using namespace segments::domain;

namespace {
std::string B64(const std::string& raw) { return absl::WebSafeBase64Escape(raw); }
}  // namespace

TEST_CASE("page tokens: the kind and the fields, base64url", "[unit][page_token]") {
  const std::string token = page_token::Encode("m1", {"42", "00000000-0000-4000-8000-000000000007"});
  // The format every list has issued so far, byte for byte: tokens already
  // in clients' hands stay valid.
  CHECK(token == B64("m1:42:00000000-0000-4000-8000-000000000007"));
  auto fields = page_token::Decode(token, "m1", 2);
  REQUIRE(fields.has_value());
  CHECK(*fields == std::vector<std::string>{"42", "00000000-0000-4000-8000-000000000007"});
}

TEST_CASE("page tokens: another list's, a wrong count, or no token at all are refused", "[unit][page_token]") {
  const std::string members = page_token::Encode("m1", {"42", "7"});
  CHECK_FALSE(page_token::Decode(members, "a1", 2).has_value());  // another list
  CHECK_FALSE(page_token::Decode(members, "m", 2).has_value());   // a kind's prefix is not the kind
  CHECK_FALSE(page_token::Decode(members, "m1", 3).has_value());  // too few fields
  CHECK_FALSE(page_token::Decode(members, "m1", 0).has_value());
  CHECK_FALSE(page_token::Decode("m1:42:7", "m1", 2).has_value());  // not encoded
  CHECK_FALSE(page_token::Decode("!!", "m1", 2).has_value());
  CHECK_FALSE(page_token::Decode("", "m1", 2).has_value());
  // The last field takes the rest, colons included; the count is exact.
  auto last = page_token::Decode(B64("h1:1:2:3"), "h1", 2);
  REQUIRE(last.has_value());
  CHECK((*last)[1] == "2:3");
  CHECK(page_token::Decode(B64("h1:1:2:3"), "h1", 3).has_value());
}

TEST_CASE("page tokens: typed fields", "[unit][page_token]") {
  const absl::Time t = absl::FromUnixMicros(1709632800000001);
  CHECK(page_token::FromTime(t) == "1709632800000001");
  CHECK(page_token::ToTime("1709632800000001") == t);
  CHECK_FALSE(page_token::ToTime("x").has_value());
  CHECK(page_token::ToInt("-3") == -3);
  CHECK_FALSE(page_token::ToInt("99999999999999999999").has_value());
  CHECK_FALSE(page_token::ToInt("").has_value());
  // User ids only in the canonical text this service writes.
  auto user = page_token::ToUser("1000");
  REQUIRE(user.has_value());
  CHECK(user->ToString() == "1000");
  CHECK(page_token::ToUser("00000000-0000-4000-8000-00000000000a").has_value());
  CHECK_FALSE(page_token::ToUser("00000000-0000-4000-8000-00000000000A").has_value());
  CHECK_FALSE(page_token::ToUser("01000").has_value());
  CHECK_FALSE(page_token::ToUser("").has_value());
}
