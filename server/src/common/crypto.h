// The few cryptographic primitives the service needs, over OpenSSL.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace segments::crypto {

// HMAC-SHA256 of `message` under `key`: 32 raw bytes.
std::string HmacSha256(std::string_view key, std::string_view message);

// SHA-256 of `data`.
std::array<uint8_t, 32> Sha256(std::string_view data);

// Compares in time that depends on the lengths only, not on where the inputs
// differ, so a signature cannot be guessed byte by byte.
bool ConstantTimeEquals(std::string_view a, std::string_view b);

// `size` cryptographically random bytes.
std::string RandomBytes(size_t size);

}  // namespace segments::crypto
