#include "auth/roles.h"

namespace segments::auth {

std::string_view NameOf(Role role) {
  switch (role) {
    case Role::kService:
      return "service";
    case Role::kSupport:
      return "support";
    case Role::kAnalyst:
      return "analyst";
    case Role::kAdmin:
      return "admin";
  }
  return "unknown";
}

std::optional<Role> RoleNamed(std::string_view name) {
  for (Role role : kAllRoles) {
    if (NameOf(role) == name) return role;
  }
  return std::nullopt;
}

}  // namespace segments::auth
