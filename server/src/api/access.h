// Who may call what (docs/auth.md#roles): the one table of every RPC, and
// the admission every call passes before any work (api/calls.h makes it).
#pragma once

#include <absl/status/statusor.h>
#include <grpcpp/grpcpp.h>

#include <optional>
#include <string_view>

#include "auth/authenticator.h"
#include "auth/principal.h"
#include "auth/roles.h"

namespace segments::api {

// What calling a method takes: nothing (`role` empty: a capability link
// carries its own proof), or a token holding `role` or a role above it.
struct Access {
  std::string_view method;  // "/segmentation.v1.SegmentService/GetUserSegments"
  std::optional<auth::Role> role;
};

// Every RPC of SegmentService, HistoryService and UserAdminService. A test
// holds it to the services' descriptors, so an RPC without a row fails it.
// (gRPC's health and reflection services are open and are not in it.)
const std::vector<Access>& AccessTable();
// The row of `method`, or null.
const Access* AccessOf(std::string_view method);

class CallGuard {
 public:
  // A null `authenticator`: authentication is off (--auth=off, local
  // experiments only): every call is admitted as "anonymous" with every role.
  explicit CallGuard(auth::Authenticator* authenticator) : authenticator_(authenticator) {}

  // The caller of `method` if it may call it: otherwise UNAUTHENTICATED (no
  // valid token) or PERMISSION_DENIED (its roles do not cover the method),
  // logged with the method and the peer, never the token. A method with no
  // row is refused too (PERMISSION_DENIED): a new RPC is closed until the
  // table says otherwise.
  absl::StatusOr<auth::Principal> Admit(const grpc::ServerContextBase& context, std::string_view method) const;

  bool enabled() const { return authenticator_ != nullptr; }

 private:
  auth::Authenticator* authenticator_;
};

// The metadata carrying the token: "Bearer <jwt>" (the gateway passes the
// HTTP Authorization header on as it).
inline constexpr std::string_view kAuthorizationMetadata = "authorization";

}  // namespace segments::api
