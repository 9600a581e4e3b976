#include "api/user_admin_service.h"

#include "api/idempotency.h"
#include "common/status_macros.h"

namespace segments::api {

namespace v1 = segmentation::v1;

namespace {

// The methods, as the access table and idempotency keys' fingerprints name them.
constexpr std::string_view kCreateUser = "/segmentation.v1.UserAdminService/CreateUser";
constexpr std::string_view kUpdateUser = "/segmentation.v1.UserAdminService/UpdateUser";
constexpr std::string_view kDeleteUser = "/segmentation.v1.UserAdminService/DeleteUser";

}  // namespace

grpc::ServerUnaryReactor* UserAdminService::CreateUser(grpc::CallbackServerContext* context,
                                                       const v1::CreateUserRequest* request,
                                                       v1::CreateUserResponse* response) {
  return calls_.Mutate(context, kCreateUser, request, response,
                       [this, request]() { return use_cases_.CreateUser(request->user_id()); });
}

grpc::ServerUnaryReactor* UserAdminService::UpdateUser(grpc::CallbackServerContext* context,
                                                       const v1::UpdateUserRequest* request,
                                                       v1::UpdateUserResponse* response) {
  return calls_.Mutate(context, kUpdateUser, request, response,
                       [this, request]() { return use_cases_.UpdateUser(request->user_id(), request->status()); });
}

grpc::ServerUnaryReactor* UserAdminService::DeleteUser(grpc::CallbackServerContext* context,
                                                       const v1::DeleteUserRequest* request,
                                                       v1::DeleteUserResponse* response) {
  return calls_.Mutate(context, kDeleteUser, request, response, [this, request, response]() -> absl::Status {
    ASSIGN_OR_RETURN(const int64_t ended, use_cases_.DeleteUser(request->user_id()));
    response->set_memberships_ended(ended);
    return absl::OkStatus();
  });
}

}  // namespace segments::api
