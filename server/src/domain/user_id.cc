#include "domain/user_id.h"

#include <absl/strings/ascii.h>

#include <cstring>

namespace segments::domain {
namespace {

constexpr size_t kUuidTextLength = 36;

bool IsDashPosition(size_t i) { return i == 8 || i == 13 || i == 18 || i == 23; }

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  const char lower = absl::ascii_tolower(static_cast<unsigned char>(c));
  if (lower >= 'a' && lower <= 'f') return lower - 'a' + 10;
  return -1;
}

}  // namespace

absl::StatusOr<UserId> UserId::Parse(std::string_view text) {
  if (text.empty()) return absl::InvalidArgumentError("is required");
  Bytes bytes{};
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
  if (!valid) return absl::InvalidArgumentError("must be a UUID");
  return UserId(Kind::kUuid, bytes);
}

absl::StatusOr<UserId> UserId::FromUuidBytes(std::string_view bytes) {
  Bytes out{};
  if (bytes.size() != out.size()) return absl::InvalidArgumentError("a binary UUID has 16 bytes");
  std::memcpy(out.data(), bytes.data(), out.size());
  return UserId(Kind::kUuid, out);
}

std::string UserId::ToString() const {
  std::string text;
  AppendTo(text);
  return text;
}

void UserId::AppendTo(std::string& out) const {
  static constexpr char kHex[] = "0123456789abcdef";
  const size_t start = out.size();
  out.resize(start + kUuidTextLength, '-');
  char* text = out.data() + start;
  for (size_t b = 0, o = 0; b < bytes_.size(); ++b, ++o) {
    if (IsDashPosition(o)) ++o;
    text[o] = kHex[bytes_[b] >> 4];
    text[++o] = kHex[bytes_[b] & 15];
  }
}

}  // namespace segments::domain
