#include "domain/user_id.h"

#include <absl/container/flat_hash_set.h>
#include <catch2/catch.hpp>

#include <set>

using segments::domain::UserId;
using segments::domain::UserIdInput;

TEST_CASE("user ids are UUIDs in any case, stored lowercase", "[user-id]") {
  CHECK(UserId::Parse("0B7F9F5E-1C2D-4E3F-8A9B-0C1D2E3F4A5B")->ToString() == "0b7f9f5e-1c2d-4e3f-8a9b-0c1d2e3f4a5b");
  CHECK(UserId::Parse("00000000-0000-0000-0000-000000000000").ok());
  CHECK_FALSE(UserId::Parse("").ok());
  CHECK_FALSE(UserId::Parse("0b7f9f5e1c2d4e3f8a9b0c1d2e3f4a5b").ok());        // no dashes
  CHECK_FALSE(UserId::Parse("{0b7f9f5e-1c2d-4e3f-8a9b-0c1d2e3f4a5b}").ok());  // braces
  CHECK_FALSE(UserId::Parse("0b7f9f5e-1c2d-4e3f-8a9b-0c1d2e3f4a5g").ok());    // not hex
  CHECK_FALSE(UserId::Parse("0b7f9f5e-1c2d-4e3f-8a9b_0c1d2e3f4a5b").ok());    // wrong separator
}

TEST_CASE("a parse reports why the text is not a user id", "[user-id]") {
  CHECK(UserId::Parse("").status().message() == "is required");
  CHECK(UserId::Parse("nope").status().message() == "must be a UUID");
  CHECK(UserId::Parse("0b7f9f5e-1c2d-4e3f-8a9b-0c1d2e3f4a5").status().message() == "must be a UUID");    // short
  CHECK(UserId::Parse("0b7f9f5e-1c2d-4e3f-8a9b-0c1d2e3f4a5bb").status().message() == "must be a UUID");  // long
  CHECK(UserId::Parse("0b7f9f5e-1c2d-4e3f-8a9b-0c1d2e3f4a5g").status().message() == "must be a UUID");   // not hex
  CHECK(UserId::Parse("0b7f9f5e-1c2d-4e3f-8a9b+0c1d2e3f4a5b").status().message() == "must be a UUID");   // not a dash
}

TEST_CASE("a user id is 16 bytes in network order, equal and hashed as a whole", "[user-id]") {
  const UserId a = UserId::Parse("00112233-4455-6677-8899-aabbccddeeff").value();
  CHECK(a.bytes() ==
        UserId::Bytes{0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff});
  CHECK(a.kind() == UserId::Kind::kUuid);
  CHECK(a == UserId::Parse("00112233-4455-6677-8899-AABBCCDDEEFF").value());
  const std::string binary(reinterpret_cast<const char*>(a.bytes().data()), a.bytes().size());
  CHECK(UserId::FromUuidBytes(binary).value() == a);
  CHECK_FALSE(UserId::FromUuidBytes("short").ok());

  // Ordered byte by byte, as PostgreSQL orders uuid values.
  const UserId b = UserId::Parse("00112233-4455-6677-8899-aabbccddef00").value();
  CHECK(a < b);
  CHECK(std::set<UserId>{b, a}.begin()->ToString() == "00112233-4455-6677-8899-aabbccddeeff");
  const absl::flat_hash_set<UserId> set = {a, b, UserId::Parse(a.ToString()).value()};
  CHECK(set.size() == 2);

  std::string out = "id=";
  a.AppendTo(out);
  CHECK(out == "id=00112233-4455-6677-8899-aabbccddeeff");
}

TEST_CASE("a user id input keeps the parse and its reason", "[user-id]") {
  const UserIdInput good("0B7F9F5E-1C2D-4E3F-8A9B-0C1D2E3F4A5B");
  REQUIRE(good.ok());
  CHECK_FALSE(good.empty());
  CHECK(good.value().ToString() == "0b7f9f5e-1c2d-4e3f-8a9b-0c1d2e3f4a5b");
  const UserIdInput bad("x");
  CHECK_FALSE(bad.ok());
  CHECK(bad.problem() == "must be a UUID");
  const UserIdInput none("");
  CHECK(none.empty());
  CHECK(none.problem() == "is required");
}
