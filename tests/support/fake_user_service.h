// The user service (userservice.v1), in-process on 127.0.0.1:0: users are
// set by the test; an outage or injected failures make calls fail.
#pragma once

#include "domain/user_id.h"

#include <absl/container/flat_hash_map.h>
#include <absl/synchronization/mutex.h>
#include <grpcpp/grpcpp.h>

#include <memory>
#include <stdexcept>
#include <string>

#include "userservice/v1/user_service.grpc.pb.h"

namespace segments::testing {

// The user service in-process: users are set by the test; SetOutage and
// FailNext make calls fail as a real one in trouble would.
class FakeUserService final : public userservice::v1::UserService::Service {
 public:
  FakeUserService() {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(this);
    server_ = builder.BuildAndStart();
    if (!server_) throw std::runtime_error("fake user service did not start");
  }
  ~FakeUserService() override { server_->Shutdown(std::chrono::system_clock::now()); }

  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }

  void Set(const domain::UserId& user, userservice::v1::UserState state) { Set(user.ToString(), state); }
  void Remove(const domain::UserId& user) { Remove(user.ToString()); }
  void Set(const std::string& user, userservice::v1::UserState state) {
    absl::MutexLock lock(&mu_);
    users_[user] = state;
  }
  void Remove(const std::string& user) {
    absl::MutexLock lock(&mu_);
    users_.erase(user);
  }
  void SetOutage(bool down) {
    absl::MutexLock lock(&mu_);
    down_ = down;
  }
  // The next `count` calls fail with `code` (after counting), then calls
  // work again.
  void FailNext(int count, grpc::StatusCode code) {
    absl::MutexLock lock(&mu_);
    fail_next_ = count;
    fail_code_ = code;
  }
  int calls() const {
    absl::MutexLock lock(&mu_);
    return calls_;
  }

  grpc::Status GetUser(grpc::ServerContext*, const userservice::v1::GetUserRequest* request,
                       userservice::v1::User* user) override {
    absl::MutexLock lock(&mu_);
    if (grpc::Status failure = Failure(); !failure.ok()) return failure;
    auto it = users_.find(request->user_id());
    if (it == users_.end()) return {grpc::StatusCode::NOT_FOUND, "no such user"};
    user->set_user_id(it->first);
    user->set_state(it->second);
    return grpc::Status::OK;
  }

  grpc::Status BatchGetUsers(grpc::ServerContext*, const userservice::v1::BatchGetUsersRequest* request,
                             userservice::v1::BatchGetUsersResponse* response) override {
    absl::MutexLock lock(&mu_);
    if (grpc::Status failure = Failure(); !failure.ok()) return failure;
    for (const std::string& id : request->user_ids()) {
      auto it = users_.find(id);
      if (it == users_.end()) {
        response->add_missing_user_ids(id);
      } else {
        auto* user = response->add_users();
        user->set_user_id(it->first);
        user->set_state(it->second);
      }
    }
    return grpc::Status::OK;
  }

 private:
  grpc::Status Failure() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    ++calls_;
    if (down_) return {grpc::StatusCode::UNAVAILABLE, "outage"};
    if (fail_next_ > 0) {
      --fail_next_;
      return {fail_code_, "failing on purpose"};
    }
    return grpc::Status::OK;
  }

  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, userservice::v1::UserState> users_ ABSL_GUARDED_BY(mu_);
  bool down_ ABSL_GUARDED_BY(mu_) = false;
  int calls_ ABSL_GUARDED_BY(mu_) = 0;
  int fail_next_ ABSL_GUARDED_BY(mu_) = 0;
  grpc::StatusCode fail_code_ ABSL_GUARDED_BY(mu_) = grpc::StatusCode::UNAVAILABLE;
};

}  // namespace segments::testing
