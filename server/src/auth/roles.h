// The roles a token can grant (docs/auth.md). Each role may do what the one
// before it may, and more: service < support < analyst < admin.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace segments::auth {

enum class Role : uint8_t {
  kService = 0,  // GetUserSegments (the hot read) and health: what other services embed
  kSupport = 1,  // every read
  kAnalyst = 2,  // reads, segments, percentages, single and bulk membership changes
  kAdmin = 3,    // everything, the user replica too
};

inline constexpr Role kAllRoles[] = {Role::kService, Role::kSupport, Role::kAnalyst, Role::kAdmin};

std::string_view NameOf(Role role);
// nullopt for a name that is not a role.
std::optional<Role> RoleNamed(std::string_view name);

// The roles a principal holds.
class RoleSet {
 public:
  constexpr RoleSet() = default;
  static constexpr RoleSet Of(Role role) { return RoleSet(Bit(role)); }
  static constexpr RoleSet All() { return RoleSet(0x0f); }

  void Add(Role role) { bits_ |= Bit(role); }
  bool Has(Role role) const { return (bits_ & Bit(role)) != 0; }
  bool empty() const { return bits_ == 0; }
  // Whether one of these roles may do what `needed` may.
  bool Covers(Role needed) const { return (bits_ >> static_cast<int>(needed)) != 0; }
  bool operator==(const RoleSet& other) const { return bits_ == other.bits_; }

 private:
  constexpr explicit RoleSet(uint8_t bits) : bits_(bits) {}
  static constexpr uint8_t Bit(Role role) { return static_cast<uint8_t>(1U << static_cast<unsigned>(role)); }
  uint8_t bits_ = 0;
};

}  // namespace segments::auth
