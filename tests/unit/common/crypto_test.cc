#include "common/crypto.h"

#include <absl/strings/escaping.h>

#include <catch2/catch.hpp>

#include <set>
#include <string>

namespace crypto = segments::crypto;

namespace {

std::string Hex(std::string_view bytes) {
  return absl::BytesToHexString(absl::string_view(bytes.data(), bytes.size()));
}

std::string Hex(const std::array<uint8_t, 32>& digest) {
  return Hex(std::string_view(reinterpret_cast<const char*>(digest.data()), digest.size()));
}

std::string Bytes(size_t count, char byte) { return std::string(count, byte); }

}  // namespace

// RFC 4231, section 4: test cases for HMAC-SHA-256.
TEST_CASE("HMAC-SHA256 matches the RFC 4231 test vectors", "[crypto]") {
  SECTION("case 1: 20-byte key") {
    CHECK(Hex(crypto::HmacSha256(Bytes(20, '\x0b'), "Hi There")) ==
          "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
  }
  SECTION("case 2: key shorter than the output") {
    CHECK(Hex(crypto::HmacSha256("Jefe", "what do ya want for nothing?")) ==
          "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  }
  SECTION("case 3: 50 bytes of 0xdd") {
    CHECK(Hex(crypto::HmacSha256(Bytes(20, '\xaa'), Bytes(50, '\xdd'))) ==
          "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe");
  }
  SECTION("case 4: key 0x01..0x19") {
    std::string key;
    for (char c = 1; c <= 25; ++c) key += c;
    CHECK(Hex(crypto::HmacSha256(key, Bytes(50, '\xcd'))) ==
          "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b");
  }
  SECTION("case 5: the first 128 bits") {
    CHECK(Hex(crypto::HmacSha256(Bytes(20, '\x0c'), "Test With Truncation")).substr(0, 32) ==
          "a3b6167473100ee06e0c796c2955552b");
  }
  SECTION("case 6: key longer than a block is hashed first") {
    CHECK(Hex(crypto::HmacSha256(Bytes(131, '\xaa'), "Test Using Larger Than Block-Size Key - Hash Key First")) ==
          "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
  }
  SECTION("case 7: key and data longer than a block") {
    CHECK(Hex(crypto::HmacSha256(Bytes(131, '\xaa'),
                                 "This is a test using a larger than block-size key and a larger than block-size "
                                 "data. The key needs to be hashed before being used by the HMAC algorithm.")) ==
          "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2");
  }
}

TEST_CASE("HMAC-SHA256 gives 32 raw bytes and depends on key and message", "[crypto]") {
  const std::string key(32, 'k');
  const std::string mac = crypto::HmacSha256(key, "message");
  CHECK(mac.size() == 32);
  CHECK(crypto::HmacSha256(key, "message") == mac);
  CHECK(crypto::HmacSha256(key, "messagE") != mac);
  CHECK(crypto::HmacSha256(std::string(31, 'k') + "K", "message") != mac);
  // Embedded NULs are data, not terminators.
  CHECK(crypto::HmacSha256(key, std::string_view("a\0b", 3)) != crypto::HmacSha256(key, "a"));
}

TEST_CASE("HMAC-SHA256 of an empty key and message", "[crypto]") {
  const std::string expected = "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad";
  CHECK(Hex(crypto::HmacSha256("", "")) == expected);
  CHECK(Hex(crypto::HmacSha256(std::string_view(), std::string_view())) == expected);
}

TEST_CASE("SHA-256 matches the FIPS 180-2 examples", "[crypto]") {
  CHECK(Hex(crypto::Sha256("abc")) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  CHECK(Hex(crypto::Sha256("")) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  CHECK(Hex(crypto::Sha256("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")) ==
        "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

TEST_CASE("ConstantTimeEquals compares content and length", "[crypto]") {
  CHECK(crypto::ConstantTimeEquals("", ""));
  CHECK(crypto::ConstantTimeEquals("signature", "signature"));
  CHECK_FALSE(crypto::ConstantTimeEquals("signature", "Signature"));  // first byte
  CHECK_FALSE(crypto::ConstantTimeEquals("signature", "signaturE"));  // last byte
  CHECK_FALSE(crypto::ConstantTimeEquals("signature", "signatur"));   // a prefix
  CHECK_FALSE(crypto::ConstantTimeEquals("signatur", "signature"));
  CHECK_FALSE(crypto::ConstantTimeEquals("", "x"));
  CHECK_FALSE(crypto::ConstantTimeEquals(std::string_view("a\0b", 3), std::string_view("a\0c", 3)));
  CHECK(crypto::ConstantTimeEquals(std::string_view("a\0b", 3), std::string_view("a\0b", 3)));
}

TEST_CASE("RandomBytes gives the size asked for, different each time", "[crypto]") {
  CHECK(crypto::RandomBytes(0).empty());
  CHECK(crypto::RandomBytes(1).size() == 1);
  std::set<std::string> seen;
  for (int i = 0; i < 20; ++i) {
    const std::string bytes = crypto::RandomBytes(32);
    REQUIRE(bytes.size() == 32);
    seen.insert(bytes);
  }
  // 20 draws of 256 bits: a repeat would mean the generator is broken.
  CHECK(seen.size() == 20);
  // Not all zeros (the buffer starts zeroed): 8 KiB of zeros by chance is impossible.
  CHECK(crypto::RandomBytes(8192).find_first_not_of('\0') != std::string::npos);
}
