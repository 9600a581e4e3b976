// Who is calling, as a verified token says.
#pragma once

#include <absl/time/time.h>

#include <string>

#include "auth/roles.h"

namespace segments::auth {

struct Principal {
  std::string subject;  // the token's `sub`
  RoleSet roles;
  absl::Time expires = absl::InfiniteFuture();  // the token's `exp`
};

}  // namespace segments::auth
