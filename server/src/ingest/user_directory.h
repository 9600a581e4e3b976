// Where the consumer learns a user's current state: the user service.
#pragma once

#include <absl/status/statusor.h>
#include <absl/time/time.h>
#include <grpcpp/channel.h>

#include <memory>
#include <vector>

#include "domain/user_use_cases.h"
#include "userservice/v1/user_service.grpc.pb.h"

namespace segments::ingest {

class UserDirectory {
 public:
  virtual ~UserDirectory() = default;

  // The current state of each user, in the order asked; state nullopt for a
  // user the user service does not know. UNAVAILABLE when it cannot answer
  // within its bound; the caller decides when to ask again.
  virtual absl::StatusOr<std::vector<domain::ObservedUser>> Lookup(const std::vector<domain::UserId>& users) = 0;
};

struct UserServiceClientOptions {
  // Deadline of one call.
  absl::Duration call_timeout = absl::Seconds(1);
  // Retries of transient failures (UNAVAILABLE, DEADLINE_EXCEEDED,
  // RESOURCE_EXHAUSTED, ABORTED) back off exponentially from `backoff_min`
  // to `backoff_max`, with jitter, until `max_wait` has passed in all.
  absl::Duration backoff_min = absl::Milliseconds(50);
  absl::Duration backoff_max = absl::Seconds(2);
  absl::Duration max_wait = absl::Seconds(10);
  // Ids per BatchGetUsers call (the service takes at most 1000).
  int batch_size = 1000;
};

// UserDirectory over the user service's gRPC API (userservice.v1).
class UserServiceClient final : public UserDirectory {
 public:
  UserServiceClient(std::shared_ptr<grpc::Channel> channel, UserServiceClientOptions options);

  absl::StatusOr<std::vector<domain::ObservedUser>> Lookup(const std::vector<domain::UserId>& users) override;

 private:
  // One BatchGetUsers call with retries, appending the answers to `out`.
  absl::Status LookupChunk(const std::vector<domain::UserId>& chunk, std::vector<domain::ObservedUser>& out);

  std::unique_ptr<userservice::v1::UserService::Stub> stub_;
  const UserServiceClientOptions options_;
};

}  // namespace segments::ingest
