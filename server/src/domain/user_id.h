// The id of a user: a value that only a parse can make, so every UserId in
// the program is valid and canonical. 16 bytes and a tag: a UUID today; the
// tag leaves room for other forms (decimal integers) beside it.
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
  enum class Kind : uint8_t { kUuid };
  using Bytes = std::array<uint8_t, 16>;

  // A UUID in 8-4-4-4-12 hex form, in any case. INVALID_ARGUMENT otherwise,
  // with a message for the client ("is required", "must be a UUID").
  static absl::StatusOr<UserId> Parse(std::string_view text);
  // A UUID in PostgreSQL's binary form (16 bytes, network order).
  static absl::StatusOr<UserId> FromUuidBytes(std::string_view bytes);

  Kind kind() const { return kind_; }
  const Bytes& bytes() const { return bytes_; }
  // The canonical text: lowercase 8-4-4-4-12 for a UUID.
  std::string ToString() const;
  // Appends the canonical text to `out`, without a temporary.
  void AppendTo(std::string& out) const;

  friend bool operator==(const UserId&, const UserId&) = default;
  // Ordered as PostgreSQL orders uuid values: byte by byte.
  friend std::strong_ordering operator<=>(const UserId&, const UserId&) = default;

  template <typename H>
  friend H AbslHashValue(H h, const UserId& id) {
    return H::combine(std::move(h), id.kind_, id.bytes_);
  }

 private:
  UserId(Kind kind, const Bytes& bytes) : kind_(kind), bytes_(bytes) {}

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
  // Why the text is not an id ("is required", "must be a UUID"); only when !ok().
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
