#include "api/access.h"

#include <absl/time/clock.h>
#include <fmt/format.h>

#include "common/log.h"
#include "common/string_views.h"

namespace segments::api {
namespace {

using auth::Role;

std::string_view AuthorizationOf(const grpc::ServerContextBase& context) {
  const auto& metadata = context.client_metadata();
  const auto found = metadata.find(grpc::string_ref(kAuthorizationMetadata.data(), kAuthorizationMetadata.size()));
  if (found == metadata.end()) return {};
  return {found->second.data(), found->second.size()};
}

}  // namespace

const std::vector<Access>& AccessTable() {
  static const std::vector<Access> table = {
      // The hot read: what other services' embedded keys may do.
      {"/segmentation.v1.SegmentService/GetUserSegments", Role::kService},
      // Reads: support and above.
      {"/segmentation.v1.SegmentService/GetSegment", Role::kSupport},
      {"/segmentation.v1.SegmentService/ListSegments", Role::kSupport},
      {"/segmentation.v1.SegmentService/ListSegmentMembers", Role::kSupport},
      {"/segmentation.v1.SegmentService/StreamSegmentMembers", Role::kSupport},
      {"/segmentation.v1.HistoryService/ListUserHistory", Role::kSupport},
      {"/segmentation.v1.HistoryService/GetHistoryReportLink", Role::kSupport},
      {"/segmentation.v1.HistoryService/GetUserSegmentsAt", Role::kSupport},
      {"/segmentation.v1.HistoryService/ListSegmentMembersAt", Role::kSupport},
      {"/segmentation.v1.HistoryService/StreamSegmentMembersAt", Role::kSupport},
      {"/segmentation.v1.HistoryService/CountSegmentMembersAt", Role::kSupport},
      {"/segmentation.v1.HistoryService/GetSegmentSizeHistory", Role::kSupport},
      {"/segmentation.v1.HistoryService/ExplainUserSegments", Role::kSupport},
      // The link is the capability: signed and expiring, no token needed.
      {"/segmentation.v1.HistoryService/DownloadHistoryReport", std::nullopt},
      // Segments and memberships: analyst and above.
      {"/segmentation.v1.SegmentService/CreateSegment", Role::kAnalyst},
      {"/segmentation.v1.SegmentService/DeleteSegment", Role::kAnalyst},
      {"/segmentation.v1.SegmentService/UpdateSegmentPercent", Role::kAnalyst},
      {"/segmentation.v1.SegmentService/UpdateUserSegments", Role::kAnalyst},
      {"/segmentation.v1.SegmentService/AddSegmentToUsers", Role::kAnalyst},
      {"/segmentation.v1.SegmentService/RemoveSegmentFromUsers", Role::kAnalyst},
      // The user replica: admin only.
      {"/segmentation.v1.UserAdminService/CreateUser", Role::kAdmin},
      {"/segmentation.v1.UserAdminService/UpdateUser", Role::kAdmin},
      {"/segmentation.v1.UserAdminService/DeleteUser", Role::kAdmin},
  };
  return table;
}

const Access* AccessOf(std::string_view method) {
  for (const Access& access : AccessTable()) {
    if (access.method == method) return &access;
  }
  return nullptr;
}

absl::StatusOr<auth::Principal> CallGuard::Admit(const grpc::ServerContextBase& context,
                                                 std::string_view method) const {
  const Access* access = AccessOf(method);
  if (access == nullptr) {
    log::Error("refused {}: the method has no row in the access table", method);
    return absl::PermissionDeniedError("this method is not open to any role");
  }
  if (authenticator_ == nullptr) return auth::Principal{"anonymous", auth::RoleSet::All()};
  if (!access->role) return auth::Principal{"anonymous", auth::RoleSet()};
  absl::StatusOr<auth::Principal> principal = authenticator_->Authenticate(AuthorizationOf(context), absl::Now());
  if (!principal.ok()) {
    log::Warning("unauthenticated call of {} from {}: {}", method, context.peer(), Std(principal.status().message()));
    return principal.status();
  }
  if (!principal->roles.Covers(*access->role)) {
    log::Warning("refused {} to {} from {}: needs the {} role", method, principal->subject, context.peer(),
                 auth::NameOf(*access->role));
    return absl::PermissionDeniedError(
        fmt::format("the {} role (or a role above it) is needed for this call", auth::NameOf(*access->role)));
  }
  return principal;
}

}  // namespace segments::api
