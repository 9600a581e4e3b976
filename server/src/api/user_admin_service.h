// gRPC UserAdminService: maps protos to the user use cases.
#pragma once

#include "api/access.h"
#include "api/calls.h"
#include "common/worker_pool.h"
#include "domain/user_use_cases.h"
#include "segmentation/v1/user_admin_service.grpc.pb.h"

namespace segments::api {

class UserAdminService final : public segmentation::v1::UserAdminService::CallbackService {
 public:
  // Calls with an idempotency key go through `idempotent_calls`.
  UserAdminService(domain::UserUseCases& use_cases, domain::IdempotentCalls& idempotent_calls, WorkerPool& workers,
                   const CallGuard& guard)
      : use_cases_(use_cases), calls_(workers, guard, &idempotent_calls) {}

  grpc::ServerUnaryReactor* CreateUser(grpc::CallbackServerContext* context,
                                       const segmentation::v1::CreateUserRequest* request,
                                       segmentation::v1::CreateUserResponse* response) override;
  grpc::ServerUnaryReactor* UpdateUser(grpc::CallbackServerContext* context,
                                       const segmentation::v1::UpdateUserRequest* request,
                                       segmentation::v1::UpdateUserResponse* response) override;
  grpc::ServerUnaryReactor* DeleteUser(grpc::CallbackServerContext* context,
                                       const segmentation::v1::DeleteUserRequest* request,
                                       segmentation::v1::DeleteUserResponse* response) override;

 private:
  domain::UserUseCases& use_cases_;
  Calls calls_;
};

}  // namespace segments::api
