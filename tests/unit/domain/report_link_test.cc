#include "domain/report_link.h"

#include <catch2/catch.hpp>

#include <functional>
#include <string>
#include <vector>

using namespace segments::domain;

namespace {

constexpr const char* kUser = "0b7f9f5e-1c2d-4e3f-8a9b-0c1d2e3f4a5b";
constexpr const char* kOtherUser = "5d0c1b2a-3e4f-4a5b-8c6d-7e8f9a0b1c2d";

const std::string kSecretA(32, 'a');
const std::string kSecretB = "0123456789abcdef0123456789abcdef-b";

absl::Time Utc(int y, int m, int d, int hh = 0, int mm = 0, int ss = 0) {
  return absl::FromCivil(absl::CivilSecond(y, m, d, hh, mm, ss), absl::UTCTimeZone());
}

ReportLinkSigner MakeSigner(std::vector<SigningKey> keys, absl::Duration ttl = absl::Hours(4)) {
  auto signer = ReportLinkSigner::Create(std::move(keys), ttl);
  REQUIRE(signer.ok());
  return *std::move(signer);
}

absl::StatusCode CreateCode(std::vector<SigningKey> keys, absl::Duration ttl = absl::Hours(4)) {
  return ReportLinkSigner::Create(std::move(keys), ttl).status().code();
}

// Another base64url character.
char Other(char c) { return c == 'A' ? 'B' : 'A'; }

const absl::Time kNow = Utc(2024, 3, 1, 12, 0, 0) + absl::Milliseconds(750);

}  // namespace

TEST_CASE("a report query covers its month as a half-open UTC interval", "[report-link]") {
  SECTION("an ordinary month") {
    ReportQuery q{std::nullopt, 2023, 8};
    CHECK(q.From() == Utc(2023, 8, 1));
    CHECK(q.To() == Utc(2023, 9, 1));
    CHECK(q.From() == absl::FromUnixSeconds(1690848000));
  }
  SECTION("December ends at January 1st of the next year") {
    ReportQuery q{std::nullopt, 2023, 12};
    CHECK(q.From() == absl::FromUnixSeconds(1701388800));  // 2023-12-01T00:00:00Z
    CHECK(q.To() == absl::FromUnixSeconds(1704067200));    // 2024-01-01T00:00:00Z
  }
  SECTION("February of a leap year has 29 days, of other years 28") {
    CHECK(ReportQuery{std::nullopt, 2024, 2}.To() - ReportQuery{std::nullopt, 2024, 2}.From() == absl::Hours(29 * 24));
    CHECK(ReportQuery{std::nullopt, 2024, 2}.To() == Utc(2024, 3, 1));
    CHECK(ReportQuery{std::nullopt, 2023, 2}.To() - ReportQuery{std::nullopt, 2023, 2}.From() == absl::Hours(28 * 24));
    CHECK(ReportQuery{std::nullopt, 2000, 2}.To() - ReportQuery{std::nullopt, 2000, 2}.From() == absl::Hours(29 * 24));
    CHECK(ReportQuery{std::nullopt, 2100, 2}.To() - ReportQuery{std::nullopt, 2100, 2}.From() == absl::Hours(28 * 24));
  }
  SECTION("the first and last reportable months") {
    CHECK(ReportQuery{std::nullopt, 1970, 1}.From() == absl::UnixEpoch());
    CHECK(ReportQuery{std::nullopt, 9999, 12}.To() == absl::FromUnixSeconds(253402300800));  // 10000-01-01
  }
  SECTION("the user does not change the interval") {
    ReportQuery q{kUser, 2024, 3};
    CHECK(q.From() == Utc(2024, 3, 1));
    CHECK(q.To() == Utc(2024, 4, 1));
  }
}

TEST_CASE("signer creation rejects bad keys and ttls", "[report-link]") {
  CHECK(CreateCode({}) == absl::StatusCode::kInvalidArgument);
  CHECK(CreateCode({{"a", kSecretA}, {"a", kSecretB}}) == absl::StatusCode::kInvalidArgument);

  auto dup = ReportLinkSigner::Create({{"k1", kSecretA}, {"k2", kSecretA}, {"k1", kSecretB}}, absl::Hours(1));
  CHECK(dup.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK_THAT(std::string(dup.status().message()), Catch::Contains("\"k1\""));

  const std::vector<std::string> bad_ids = {"", "a b", "a:b", "a,b", "a/b", "ключ", std::string(65, 'k')};
  for (const std::string& id : bad_ids) {
    INFO("key id: \"" << id << "\"");
    CHECK(CreateCode({{id, kSecretA}}) == absl::StatusCode::kInvalidArgument);
  }
  // A bad id anywhere in the list, not only the signing one.
  CHECK(CreateCode({{"good", kSecretA}, {"bad id", kSecretB}}) == absl::StatusCode::kInvalidArgument);

  auto short_secret = ReportLinkSigner::Create({{"k1", kSecretA}, {"k2", std::string(31, 's')}}, absl::Hours(1));
  CHECK(short_secret.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK_THAT(std::string(short_secret.status().message()), Catch::Contains("\"k2\""));
  CHECK(CreateCode({{"k1", ""}}) == absl::StatusCode::kInvalidArgument);

  CHECK(CreateCode({{"k1", kSecretA}}, absl::Milliseconds(999)) == absl::StatusCode::kInvalidArgument);
  CHECK(CreateCode({{"k1", kSecretA}}, absl::ZeroDuration()) == absl::StatusCode::kInvalidArgument);
  CHECK(CreateCode({{"k1", kSecretA}}, -absl::Hours(1)) == absl::StatusCode::kInvalidArgument);
}

TEST_CASE("signer creation accepts the limits", "[report-link]") {
  CHECK(CreateCode({{"k", std::string(ReportLinkSigner::kMinSecretLength, 's')}}, absl::Seconds(1)) ==
        absl::StatusCode::kOk);
  CHECK(CreateCode({{std::string(64, 'k'), kSecretA}}) == absl::StatusCode::kOk);
  CHECK(CreateCode({{"2026-11_Az.09", kSecretA}, {"2026-10", kSecretB}}) == absl::StatusCode::kOk);
  CHECK(MakeSigner({{"k", kSecretA}}, absl::Minutes(90)).ttl() == absl::Minutes(90));
}

TEST_CASE("a link expires after the ttl, rounded down to a second, and the first key signs", "[report-link]") {
  const ReportLinkSigner signer = MakeSigner({{"new", kSecretB}, {"old", kSecretA}}, absl::Hours(4));
  const ReportLink link = signer.Sign({kUser, 2024, 2}, kNow);
  CHECK(link.expires == Utc(2024, 3, 1, 16, 0, 0));  // 12:00:00.750 + 4h, without the .750
  CHECK(link.key_id == "new");
  CHECK(link.query.user == std::optional<std::string>(kUser));
  CHECK(link.query.year == 2024);
  CHECK(link.query.month == 2);

  // base64url of 32 bytes, without padding: safe in a URL as is.
  CHECK(link.signature.size() == 43);
  CHECK(link.signature.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") ==
        std::string::npos);

  // Within one second the link is the same; the next second gives a new one.
  const ReportLink same = signer.Sign({kUser, 2024, 2}, Utc(2024, 3, 1, 12, 0, 0));
  CHECK(same.expires == link.expires);
  CHECK(same.signature == link.signature);
  const ReportLink later = signer.Sign({kUser, 2024, 2}, Utc(2024, 3, 1, 12, 0, 1));
  CHECK(later.expires == link.expires + absl::Seconds(1));
  CHECK(later.signature != link.signature);
}

TEST_CASE("a link is valid until it expires, never at or after", "[report-link]") {
  const ReportLinkSigner signer = MakeSigner({{"k1", kSecretA}}, absl::Hours(4));
  const ReportLink link = signer.Sign({std::nullopt, 2024, 2}, kNow);
  CHECK(signer.Verify(link, kNow).ok());
  CHECK(signer.Verify(link, link.expires - absl::Microseconds(1)).ok());
  CHECK(signer.Verify(link, link.expires).code() == absl::StatusCode::kNotFound);
  CHECK(signer.Verify(link, link.expires + absl::Microseconds(1)).code() == absl::StatusCode::kNotFound);
  CHECK(signer.Verify(link, link.expires + absl::Hours(24 * 365)).code() == absl::StatusCode::kNotFound);

  // A one-second ttl from a whole second: valid for exactly that second.
  const ReportLinkSigner short_lived = MakeSigner({{"k1", kSecretA}}, absl::Seconds(1));
  const absl::Time whole = Utc(2024, 3, 1, 12, 0, 0);
  const ReportLink brief = short_lived.Sign({std::nullopt, 2024, 2}, whole);
  CHECK(short_lived.Verify(brief, whole + absl::Milliseconds(999)).ok());
  CHECK(short_lived.Verify(brief, whole + absl::Seconds(1)).code() == absl::StatusCode::kNotFound);
}

TEST_CASE("changing any field of a link makes it invalid", "[report-link]") {
  const ReportLinkSigner signer = MakeSigner({{"k1", kSecretA}, {"k2", kSecretB}});
  const ReportLink for_user = signer.Sign({kUser, 2024, 2}, kNow);
  const ReportLink for_all = signer.Sign({std::nullopt, 2024, 2}, kNow);
  REQUIRE(signer.Verify(for_user, kNow).ok());
  REQUIRE(signer.Verify(for_all, kNow).ok());

  using Change = std::function<void(ReportLink&)>;
  const std::vector<std::pair<std::string, Change>> user_link_changes = {
      {"another user", [](ReportLink& l) { l.query.user = kOtherUser; }},
      {"the same user in upper case", [](ReportLink& l) { l.query.user = "0B7F9F5E-1C2D-4E3F-8A9B-0C1D2E3F4A5B"; }},
      {"user removed: all users", [](ReportLink& l) { l.query.user.reset(); }},
      {"year + 1", [](ReportLink& l) { l.query.year += 1; }},
      {"year - 1", [](ReportLink& l) { l.query.year -= 1; }},
      {"month + 1", [](ReportLink& l) { l.query.month += 1; }},
      {"month - 1", [](ReportLink& l) { l.query.month -= 1; }},
      {"digits moved from year to month",
       [](ReportLink& l) {
         l.query = {l.query.user, 202, 42};
       }},
      {"expires one second later", [](ReportLink& l) { l.expires += absl::Seconds(1); }},
      {"expires one second earlier", [](ReportLink& l) { l.expires -= absl::Seconds(1); }},
      {"expires a day later", [](ReportLink& l) { l.expires += absl::Hours(24); }},
      {"expires half a second later", [](ReportLink& l) { l.expires += absl::Milliseconds(500); }},
      {"key id of the other key", [](ReportLink& l) { l.key_id = "k2"; }},
      {"unknown key id", [](ReportLink& l) { l.key_id = "k3"; }},
      {"empty key id", [](ReportLink& l) { l.key_id.clear(); }},
      {"signature: one character changed", [](ReportLink& l) { l.signature[10] = Other(l.signature[10]); }},
      {"signature: last character changed", [](ReportLink& l) { l.signature.back() = Other(l.signature.back()); }},
      {"signature: truncated", [](ReportLink& l) { l.signature.pop_back(); }},
      {"signature: padded", [](ReportLink& l) { l.signature += "="; }},
      {"signature: empty", [](ReportLink& l) { l.signature.clear(); }},
      {"signature of another link", [&](ReportLink& l) { l.signature = for_all.signature; }},
  };
  for (const auto& [name, change] : user_link_changes) {
    INFO("change: " << name);
    ReportLink tampered = for_user;
    change(tampered);
    CHECK(signer.Verify(tampered, kNow).code() == absl::StatusCode::kNotFound);
  }

  // A link for all users cannot be narrowed (or widened) to one user.
  ReportLink user_added = for_all;
  user_added.query.user = kUser;
  CHECK(signer.Verify(user_added, kNow).code() == absl::StatusCode::kNotFound);
}

TEST_CASE("keys rotate: links of a key still listed verify, of a retired key do not", "[report-link]") {
  const SigningKey a{"2026-10", kSecretA};
  const SigningKey b{"2026-11", kSecretB};
  const ReportLinkSigner only_a = MakeSigner({a});
  const ReportLinkSigner b_then_a = MakeSigner({b, a});
  const ReportLinkSigner only_b = MakeSigner({b});

  const ReportLink by_a = only_a.Sign({kUser, 2024, 2}, kNow);
  CHECK(by_a.key_id == "2026-10");
  CHECK(b_then_a.Verify(by_a, kNow).ok());
  CHECK(only_b.Verify(by_a, kNow).code() == absl::StatusCode::kNotFound);

  const ReportLink by_b = b_then_a.Sign({kUser, 2024, 2}, kNow);
  CHECK(by_b.key_id == "2026-11");
  CHECK(only_b.Verify(by_b, kNow).ok());
  CHECK(MakeSigner({a, b}).Verify(by_b, kNow).ok());
  CHECK(only_a.Verify(by_b, kNow).code() == absl::StatusCode::kNotFound);
}

TEST_CASE("another instance with the same keys verifies, one with another secret does not", "[report-link]") {
  const ReportLink link = MakeSigner({{"k1", kSecretA}}).Sign({kUser, 2024, 2}, kNow);
  CHECK(MakeSigner({{"k1", kSecretA}}).Verify(link, kNow).ok());
  // The ttl only matters when signing: the link carries its expiry.
  CHECK(MakeSigner({{"k1", kSecretA}}, absl::Seconds(1)).Verify(link, kNow + absl::Hours(3)).ok());
  CHECK(MakeSigner({{"k1", kSecretB}}).Verify(link, kNow).code() == absl::StatusCode::kNotFound);
  CHECK(MakeSigner({{"k1", kSecretA + "x"}}).Verify(link, kNow).code() == absl::StatusCode::kNotFound);
}

TEST_CASE("signing keys parse from id:secret pairs in order", "[report-link]") {
  auto keys = ParseSigningKeys("2026-11:" + kSecretB + ",2026-10:" + kSecretA);
  REQUIRE(keys.ok());
  REQUIRE(keys->size() == 2);
  CHECK((*keys)[0].id == "2026-11");
  CHECK((*keys)[0].secret == kSecretB);
  CHECK((*keys)[1].id == "2026-10");
  CHECK((*keys)[1].secret == kSecretA);
  CHECK(ReportLinkSigner::Create(*keys, absl::Hours(1)).ok());

  // Only the first colon separates: a secret may hold colons.
  auto colons = ParseSigningKeys("k:a:b:c");
  REQUIRE(colons.ok());
  REQUIRE(colons->size() == 1);
  CHECK((*colons)[0].id == "k");
  CHECK((*colons)[0].secret == "a:b:c");

  // Empty entries are skipped.
  auto sparse = ParseSigningKeys(",k1:" + kSecretA + ",,");
  REQUIRE(sparse.ok());
  REQUIRE(sparse->size() == 1);
  CHECK((*sparse)[0].id == "k1");

  auto none = ParseSigningKeys("");
  REQUIRE(none.ok());
  CHECK(none->empty());
  CHECK(ReportLinkSigner::Create(*none, absl::Hours(1)).status().code() == absl::StatusCode::kInvalidArgument);
}

TEST_CASE("signing keys without a colon are rejected; bad ids or secrets are left to Create", "[report-link]") {
  CHECK(ParseSigningKeys("justasecret").status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(ParseSigningKeys("k1:" + kSecretA + ",oops").status().code() == absl::StatusCode::kInvalidArgument);

  auto empty_id = ParseSigningKeys(":" + kSecretA);
  REQUIRE(empty_id.ok());
  CHECK(ReportLinkSigner::Create(*empty_id, absl::Hours(1)).status().code() == absl::StatusCode::kInvalidArgument);
  auto short_secret = ParseSigningKeys("k1:short");
  REQUIRE(short_secret.ok());
  CHECK(ReportLinkSigner::Create(*short_secret, absl::Hours(1)).status().code() == absl::StatusCode::kInvalidArgument);
}
