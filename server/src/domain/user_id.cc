#include "domain/user_id.h"

#include <absl/strings/ascii.h>

#include <algorithm>
#include <cstring>

namespace segments::domain {
namespace {

constexpr size_t kUuidTextLength = 36;
constexpr size_t kMaxIntegerDigits = 19;  // of 9223372036854775807
constexpr const char* kNotAnId = "must be a UUID or a decimal integer 0..9223372036854775807";

bool IsDashPosition(size_t i) { return i == 8 || i == 13 || i == 18 || i == 23; }

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  const char lower = absl::ascii_tolower(static_cast<unsigned char>(c));
  if (lower >= 'a' && lower <= 'f') return lower - 'a' + 10;
  return -1;
}

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

int DigitCount(uint64_t value) {
  int digits = 1;
  for (; value >= 10; value /= 10) ++digits;
  return digits;
}

uint64_t PowerOfTen(int exponent) {
  uint64_t power = 1;
  for (int i = 0; i < exponent; ++i) power *= 10;
  return power;
}

// The order of the decimal texts of a and b, without writing them: the
// shorter one, padded with zeros to the other's length, compares as a
// number; if that is a tie, it is a prefix of the other and comes first.
// Both have at most 19 digits, so the padded value stays below 10^19 < 2^64.
std::strong_ordering CompareDigits(uint64_t a, uint64_t b) {
  const int a_digits = DigitCount(a), b_digits = DigitCount(b);
  const uint64_t a_padded = a_digits < b_digits ? a * PowerOfTen(b_digits - a_digits) : a;
  const uint64_t b_padded = b_digits < a_digits ? b * PowerOfTen(a_digits - b_digits) : b;
  if (a_padded != b_padded) return a_padded <=> b_padded;
  return a_digits <=> b_digits;
}

}  // namespace

absl::StatusOr<UserId> UserId::Parse(std::string_view text) {
  if (text.empty()) return absl::InvalidArgumentError("is required");
  Bytes bytes{};
  if (std::all_of(text.begin(), text.end(), IsDigit)) {
    if (text.size() > kMaxIntegerDigits || (text.size() > 1 && text[0] == '0')) {
      return absl::InvalidArgumentError(kNotAnId);
    }
    uint64_t value = 0;
    for (char c : text) value = value * 10 + static_cast<uint64_t>(c - '0');  // < 10^19: no overflow
    if (value > kMaxInteger) return absl::InvalidArgumentError(kNotAnId);
    for (size_t i = 0; i < 8; ++i) bytes[i] = static_cast<uint8_t>(value >> (56 - 8 * i));
    return UserId(Kind::kInteger, bytes);
  }
  bool valid = text.size() == kUuidTextLength;
  for (size_t i = 0, b = 0; valid && i < text.size(); ++i) {
    if (IsDashPosition(i)) {
      valid = text[i] == '-';
      continue;
    }
    const int high = HexValue(text[i]);
    const int low = HexValue(text[++i]);
    valid = high >= 0 && low >= 0 && !IsDashPosition(i);
    if (valid) bytes[b++] = static_cast<uint8_t>(high << 4 | low);
  }
  if (!valid) return absl::InvalidArgumentError(kNotAnId);
  return UserId(Kind::kUuid, bytes);
}

uint64_t UserId::integer() const {
  uint64_t value = 0;
  for (size_t i = 0; i < 8; ++i) value = value << 8 | bytes_[i];
  return value;
}

size_t UserId::Write(char* out) const {
  if (kind_ == Kind::kInteger) {
    uint64_t value = integer();
    const int digits = DigitCount(value);
    for (int i = digits - 1; i >= 0; --i, value /= 10) out[i] = static_cast<char>('0' + value % 10);
    return static_cast<size_t>(digits);
  }
  static constexpr char kHex[] = "0123456789abcdef";
  for (size_t b = 0, o = 0; b < bytes_.size(); ++b, ++o) {
    if (IsDashPosition(o)) out[o++] = '-';
    out[o] = kHex[bytes_[b] >> 4];
    out[++o] = kHex[bytes_[b] & 15];
  }
  return kUuidTextLength;
}

std::string UserId::ToString() const {
  std::string text;
  AppendTo(text);
  return text;
}

void UserId::AppendTo(std::string& out) const {
  char text[kMaxTextLength];
  out.append(text, Write(text));
}

std::strong_ordering operator<=>(const UserId& a, const UserId& b) {
  if (a.kind_ == UserId::Kind::kUuid && b.kind_ == UserId::Kind::kUuid) {
    // Hex digits sort as their values, and the dashes stand at the same
    // places, so the texts sort as the bytes.
    return a.bytes_ <=> b.bytes_;
  }
  if (a.kind_ == UserId::Kind::kInteger && b.kind_ == UserId::Kind::kInteger) {
    return CompareDigits(a.integer(), b.integer());
  }
  char a_text[UserId::kMaxTextLength], b_text[UserId::kMaxTextLength];
  return std::string_view(a_text, a.Write(a_text)) <=> std::string_view(b_text, b.Write(b_text));
}

}  // namespace segments::domain
