#include "domain/user_id.h"

#include <absl/container/flat_hash_set.h>
#include <absl/strings/str_cat.h>
#include <catch2/catch.hpp>

#include <algorithm>
#include <set>
#include <string>
#include <vector>

using segments::domain::UserId;
using segments::domain::UserIdInput;

namespace {

constexpr const char* kNotAnId = "must be a UUID or a decimal integer 0..9223372036854775807";

UserId Id(std::string_view text) { return UserId::Parse(text).value(); }

}  // namespace

TEST_CASE("user ids are UUIDs in any case, stored lowercase", "[user-id]") {
  CHECK(UserId::Parse("0B7F9F5E-1C2D-4E3F-8A9B-0C1D2E3F4A5B")->ToString() == "0b7f9f5e-1c2d-4e3f-8a9b-0c1d2e3f4a5b");
  CHECK(UserId::Parse("0b7F9f5E-1c2D-4e3F-8a9B-0c1D2e3F4a5B")->ToString() == "0b7f9f5e-1c2d-4e3f-8a9b-0c1d2e3f4a5b");
  CHECK(UserId::Parse("00000000-0000-0000-0000-000000000000")->ToString() == "00000000-0000-0000-0000-000000000000");
  CHECK(UserId::Parse("FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF")->ToString() == "ffffffff-ffff-ffff-ffff-ffffffffffff");
  CHECK(Id("0B7F9F5E-1C2D-4E3F-8A9B-0C1D2E3F4A5B").kind() == UserId::Kind::kUuid);
  CHECK(Id("0B7F9F5E-1C2D-4E3F-8A9B-0C1D2E3F4A5B") == Id("0b7f9f5e-1c2d-4e3f-8a9b-0c1d2e3f4a5b"));
  CHECK_FALSE(UserId::Parse("0b7f9f5e1c2d4e3f8a9b0c1d2e3f4a5b").ok());        // no dashes
  CHECK_FALSE(UserId::Parse("{0b7f9f5e-1c2d-4e3f-8a9b-0c1d2e3f4a5b}").ok());  // braces
  CHECK_FALSE(UserId::Parse("0b7f9f5e-1c2d-4e3f-8a9b-0c1d2e3f4a5g").ok());    // not hex
  CHECK_FALSE(UserId::Parse("0b7f9f5e-1c2d-4e3f-8a9b_0c1d2e3f4a5b").ok());    // wrong separator
}

TEST_CASE("user ids are decimal integers 0..2^63-1, written canonically", "[user-id]") {
  for (const char* text : {"0", "1", "9", "10", "1000", "1002", "4294967296", "999999999999999999",
                           "1000000000000000000", "9223372036854775806", "9223372036854775807"}) {
    INFO(text);
    const absl::StatusOr<UserId> id = UserId::Parse(text);
    REQUIRE(id.ok());
    CHECK(id->kind() == UserId::Kind::kInteger);
    CHECK(id->ToString() == text);
  }
  for (const char* text :
       {"01", "00", "007", "+1", "-1", "-0", "1.0", "1e3", " 1", "1 ", "1_000", "1,000", "0x10", "9223372036854775808",
        "9999999999999999999", "10000000000000000000", "18446744073709551616", "99999999999999999999999"}) {
    INFO(text);
    const absl::StatusOr<UserId> id = UserId::Parse(text);
    REQUIRE_FALSE(id.ok());
    CHECK(id.status().code() == absl::StatusCode::kInvalidArgument);
    CHECK(id.status().message() == kNotAnId);
  }
}

TEST_CASE("a UUID and an integer are different users, even with the same digits", "[user-id]") {
  const UserId uuid = Id("00000000-0000-0000-0000-000000001000");
  const UserId integer = Id("1000");
  CHECK(uuid != integer);
  CHECK(uuid.ToString() != integer.ToString());
  // An integer fills the bytes a UUID would: the tag alone tells them apart.
  CHECK(Id("00000000-0000-0000-0000-000000000000") != Id("0"));
  CHECK(Id("00000000-0000-03e8-0000-000000000000") != Id("1000"));
  const absl::flat_hash_set<UserId> set = {uuid,       integer,
                                           Id("0"),    Id("00000000-0000-0000-0000-000000000000"),
                                           Id("1000"), Id("00000000-0000-0000-0000-000000001000")};
  CHECK(set.size() == 4);
}

TEST_CASE("a parse reports why the text is not a user id", "[user-id]") {
  CHECK(UserId::Parse("").status().message() == "is required");
  CHECK(UserId::Parse("nope").status().message() == kNotAnId);
  CHECK(UserId::Parse("0b7f9f5e-1c2d-4e3f-8a9b-0c1d2e3f4a5").status().message() == kNotAnId);    // short
  CHECK(UserId::Parse("0b7f9f5e-1c2d-4e3f-8a9b-0c1d2e3f4a5bb").status().message() == kNotAnId);  // long
  CHECK(UserId::Parse("0b7f9f5e-1c2d-4e3f-8a9b-0c1d2e3f4a5g").status().message() == kNotAnId);   // not hex
  CHECK(UserId::Parse("0b7f9f5e-1c2d-4e3f-8a9b+0c1d2e3f4a5b").status().message() == kNotAnId);   // not a dash
  CHECK(UserId::Parse("12345678-1234-1234-1234-12345678901").status().message() == kNotAnId);    // digits, short
}

// The database keeps ids as their canonical text in the "C" collation, and
// keyset pages, lock order and the report's order rely on C++ agreeing.
TEST_CASE("user ids are ordered as the bytes of their canonical texts", "[user-id]") {
  const std::vector<std::string> texts = {
      "0",
      "00000000-0000-0000-0000-000000000000",
      "00000000-0000-0000-0000-000000001000",
      "00112233-4455-6677-8899-aabbccddeeff",
      "00112233-4455-6677-8899-aabbccddef00",
      "1",
      "10",
      "100",
      "1000",
      "1000000000000000000",
      "1002",
      "10020000-0000-0000-0000-000000000000",
      "1004",
      "11",
      "19",
      "1ffff000-0000-0000-0000-000000000000",
      "2",
      "20",
      "9",
      "90",
      "9223372036854775807",
      "99",
      "9a000000-0000-0000-0000-000000000000",
      "a0000000-0000-0000-0000-000000000000",
      "ffffffff-ffff-ffff-ffff-ffffffffffff",
  };
  REQUIRE(std::is_sorted(texts.begin(), texts.end()));  // std::string compares bytes
  std::vector<UserId> ids;
  for (const std::string& text : texts) ids.push_back(Id(text));
  for (size_t i = 0; i < ids.size(); ++i) {
    for (size_t j = 0; j < ids.size(); ++j) {
      INFO(texts[i] << " vs " << texts[j]);
      CHECK((ids[i] <=> ids[j]) == (texts[i] <=> texts[j]));
    }
  }
  std::vector<UserId> shuffled(ids.rbegin(), ids.rend());
  std::sort(shuffled.begin(), shuffled.end());
  CHECK(shuffled == ids);
  CHECK(std::set<UserId>(ids.begin(), ids.end()).begin()->ToString() == "0");
}

TEST_CASE("integer ids order as their digit strings over the whole range", "[user-id]") {
  // Powers of ten, their neighbours and every length, against std::string.
  std::vector<uint64_t> values = {0, UserId::kMaxInteger, UserId::kMaxInteger - 1};
  for (uint64_t p = 1; p <= 1'000'000'000'000'000'000; p *= 10) {
    for (uint64_t v : {p - 1, p, p + 1, 2 * p, 9 * p, 9 * p + p - 1}) {
      if (v <= UserId::kMaxInteger) values.push_back(v);
    }
  }
  for (uint64_t a : values) {
    for (uint64_t b : values) {
      const std::string ta = absl::StrCat(a), tb = absl::StrCat(b);
      INFO(ta << " vs " << tb);
      REQUIRE((Id(ta) <=> Id(tb)) == (ta <=> tb));
    }
  }
}

TEST_CASE("a user id is canonical text, equal and hashed as a whole", "[user-id]") {
  const UserId a = Id("00112233-4455-6677-8899-AABBCCDDEEFF");
  CHECK(a == Id("00112233-4455-6677-8899-aabbccddeeff"));
  const UserId b = Id("00112233-4455-6677-8899-aabbccddef00");
  const absl::flat_hash_set<UserId> set = {a, b, Id(a.ToString()), Id("1000"), Id("1000")};
  CHECK(set.size() == 3);

  std::string out = "id=";
  a.AppendTo(out);
  out += ",";
  Id("9223372036854775807").AppendTo(out);
  CHECK(out == "id=00112233-4455-6677-8899-aabbccddeeff,9223372036854775807");
  CHECK(fmt::format("{}|{}", Id("0"), a) == "0|00112233-4455-6677-8899-aabbccddeeff");
}

TEST_CASE("a user id input keeps the parse and its reason", "[user-id]") {
  const UserIdInput good("0B7F9F5E-1C2D-4E3F-8A9B-0C1D2E3F4A5B");
  REQUIRE(good.ok());
  CHECK_FALSE(good.empty());
  CHECK(good.value().ToString() == "0b7f9f5e-1c2d-4e3f-8a9b-0c1d2e3f4a5b");
  const UserIdInput number("1004");
  REQUIRE(number.ok());
  CHECK(number.value().ToString() == "1004");
  const UserIdInput bad("x");
  CHECK_FALSE(bad.ok());
  CHECK(bad.problem() == kNotAnId);
  const UserIdInput none("");
  CHECK(none.empty());
  CHECK(none.problem() == "is required");
}
