#include "api/user_admin_service.h"

#include "api/idempotency.h"
#include "common/status_macros.h"

namespace segments::api {

namespace v1 = segmentation::v1;

grpc::ServerUnaryReactor* UserAdminService::CreateUser(grpc::CallbackServerContext* context,
                                                       const v1::CreateUserRequest* request,
                                                       v1::CreateUserResponse* response) {
  return RunMutation(context, workers_, idempotent_calls_, "/segmentation.v1.UserAdminService/CreateUser", request,
                     response, [this, request]() { return use_cases_.CreateUser(request->user_id()); });
}

grpc::ServerUnaryReactor* UserAdminService::UpdateUser(grpc::CallbackServerContext* context,
                                                       const v1::UpdateUserRequest* request,
                                                       v1::UpdateUserResponse* response) {
  return RunMutation(context, workers_, idempotent_calls_, "/segmentation.v1.UserAdminService/UpdateUser", request,
                     response,
                     [this, request]() { return use_cases_.UpdateUser(request->user_id(), request->status()); });
}

grpc::ServerUnaryReactor* UserAdminService::DeleteUser(grpc::CallbackServerContext* context,
                                                       const v1::DeleteUserRequest* request,
                                                       v1::DeleteUserResponse* response) {
  return RunMutation(context, workers_, idempotent_calls_, "/segmentation.v1.UserAdminService/DeleteUser", request,
                     response, [this, request, response]() -> absl::Status {
                       ASSIGN_OR_RETURN(const int64_t ended, use_cases_.DeleteUser(request->user_id()));
                       response->set_memberships_ended(ended);
                       return absl::OkStatus();
                     });
}

}  // namespace segments::api
