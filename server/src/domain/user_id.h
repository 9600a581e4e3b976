// The id of a user: a value that only a parse can make, so every UserId in
// the program is valid and canonical. Two kinds, which never name the same
// user: a UUID (16 bytes) or a decimal integer 0..2^63-1 (held in the same
// 16 bytes); a tag tells them apart.
#pragma once

#include <absl/status/statusor.h>
#include <fmt/format.h>

#include <array>
#include <compare>
#include <cstdint>
#include <ostream>
#include <string>
#include <string_view>

namespace segments::domain {

class UserId {
 public:
  enum class Kind : uint8_t { kUuid, kInteger };
  static constexpr uint64_t kMaxInteger = 9'223'372'036'854'775'807;  // 2^63 - 1
  // The longest canonical text: a UUID's 36 characters.
  static constexpr size_t kMaxTextLength = 36;

  // A UUID in 8-4-4-4-12 hex form, in any case, or a decimal integer
  // 0..kMaxInteger written without sign, spaces or leading zeros ("0" is one,
  // "01" is not). INVALID_ARGUMENT otherwise, with a message for the client
  // ("is required", "must be a UUID or a decimal integer 0..9223372036854775807").
  static absl::StatusOr<UserId> Parse(std::string_view text);

  Kind kind() const { return kind_; }
  // The 16 bytes the id is held in (see bytes_ below): with kind(), a compact
  // key for tables of many ids (readmodel::MembershipTable).
  const std::array<uint8_t, 16>& bytes() const { return bytes_; }
  // The canonical text: lowercase 8-4-4-4-12 for a UUID, the decimal digits
  // of an integer.
  std::string ToString() const;
  // Appends the canonical text to `out`, without a temporary.
  void AppendTo(std::string& out) const;

  friend bool operator==(const UserId&, const UserId&) = default;
  // The byte order of the canonical texts: the order of the database, which
  // keeps ids as that text in the "C" collation (db/schema.sql, domain
  // user_id), so keyset pages, lock order and the report's order agree with
  // it. Two UUIDs compare as their 16 bytes; two integers as their digit
  // strings ("10" < "9"); a UUID and an integer as their texts.
  friend std::strong_ordering operator<=>(const UserId& a, const UserId& b);

  template <typename H>
  friend H AbslHashValue(H h, const UserId& id) {
    return H::combine(std::move(h), id.kind_, id.bytes_);
  }

 private:
  // A UUID's bytes in network order; an integer in the first 8 bytes, big
  // endian, and zeros after it.
  using Bytes = std::array<uint8_t, 16>;

  UserId(Kind kind, const Bytes& bytes) : kind_(kind), bytes_(bytes) {}
  uint64_t integer() const;
  // Writes the canonical text to `out` (kMaxTextLength bytes at least) and
  // returns its length.
  size_t Write(char* out) const;

  Kind kind_;
  Bytes bytes_;
};

inline std::ostream& operator<<(std::ostream& out, const UserId& id) { return out << id.ToString(); }

// A user id as a request gives it: parsed once, where the request enters
// the service (implicitly, from its text), keeping the reason when it is not
// an id, so that the domain reports it beside the request's other problems.
class UserIdInput {
 public:
  // NOLINTNEXTLINE(google-explicit-constructor): requests carry ids as text.
  UserIdInput(std::string_view text) : parsed_(UserId::Parse(text)), empty_(text.empty()) {}
  UserIdInput(const std::string& text) : UserIdInput(std::string_view(text)) {}  // NOLINT
  UserIdInput(const char* text) : UserIdInput(std::string_view(text)) {}         // NOLINT
  UserIdInput(const UserId& id) : parsed_(id), empty_(false) {}                  // NOLINT

  // No text was given.
  bool empty() const { return empty_; }
  bool ok() const { return parsed_.ok(); }
  // The id; only when ok().
  const UserId& value() const { return *parsed_; }
  // Why the text is not an id (UserId::Parse's message); only when !ok().
  std::string problem() const { return std::string(parsed_.status().message()); }

 private:
  absl::StatusOr<UserId> parsed_;
  bool empty_;
};

// For logs and test messages: the id, or why there is none.
inline std::ostream& operator<<(std::ostream& out, const UserIdInput& input) {
  if (input.ok()) return out << input.value();
  return out << "(not a user id: " << input.problem() << ")";
}

}  // namespace segments::domain

// Formats as the canonical text.
template <>
struct fmt::formatter<segments::domain::UserId> : fmt::formatter<std::string_view> {
  template <typename Context>
  auto format(const segments::domain::UserId& id, Context& ctx) const {
    return fmt::formatter<std::string_view>::format(id.ToString(), ctx);
  }
};
