#include "ingest/user_directory.h"

#include <absl/container/flat_hash_map.h>
#include <absl/random/random.h>
#include <fmt/format.h>
#include <grpcpp/client_context.h>

#include <algorithm>

#include "common/log.h"
#include "common/status_macros.h"
#include "domain/validation.h"

namespace segments::ingest {
namespace {

bool IsTransient(grpc::StatusCode code) {
  return code == grpc::StatusCode::UNAVAILABLE || code == grpc::StatusCode::DEADLINE_EXCEEDED ||
         code == grpc::StatusCode::RESOURCE_EXHAUSTED || code == grpc::StatusCode::ABORTED;
}

std::optional<domain::UserState> StateOf(userservice::v1::UserState state) {
  switch (state) {
    case userservice::v1::USER_STATE_ACTIVE:
      return domain::UserState::kActive;
    case userservice::v1::USER_STATE_EXCLUDED:
      return domain::UserState::kExcluded;
    default:
      return std::nullopt;
  }
}

}  // namespace

UserServiceClient::UserServiceClient(std::shared_ptr<grpc::Channel> channel, UserServiceClientOptions options)
    : stub_(userservice::v1::UserService::NewStub(std::move(channel))), options_(options) {}

absl::StatusOr<std::vector<domain::ObservedUser>> UserServiceClient::Lookup(const std::vector<domain::UserId>& users) {
  std::vector<domain::ObservedUser> found;
  found.reserve(users.size());
  const size_t step = static_cast<size_t>(std::max(1, options_.batch_size));
  for (size_t begin = 0; begin < users.size(); begin += step) {
    std::vector<domain::UserId> chunk(users.begin() + static_cast<ptrdiff_t>(begin),
                                      users.begin() + static_cast<ptrdiff_t>(std::min(users.size(), begin + step)));
    RETURN_IF_ERROR(LookupChunk(chunk, found));
  }
  return found;
}

absl::Status UserServiceClient::LookupChunk(const std::vector<domain::UserId>& chunk,
                                            std::vector<domain::ObservedUser>& out) {
  userservice::v1::BatchGetUsersRequest request;
  for (const domain::UserId& id : chunk) request.add_user_ids(id.ToString());

  const absl::Time give_up = absl::Now() + options_.max_wait;
  absl::Duration backoff = options_.backoff_min;
  absl::BitGen jitter;
  for (int attempt = 1;; ++attempt) {
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + options_.call_timeout));
    userservice::v1::BatchGetUsersResponse response;
    const grpc::Status status = stub_->BatchGetUsers(&context, request, &response);
    if (status.ok()) {
      absl::flat_hash_map<domain::UserId, std::optional<domain::UserState>> answers;
      for (const auto& user : response.users()) {
        auto id = domain::UserId::Parse(user.user_id());
        auto state = StateOf(user.state());
        if (!id.ok() || !state) {
          return absl::InternalError(fmt::format("user service answered a malformed user (id \"{}\", state {})",
                                                 user.user_id(), static_cast<int>(user.state())));
        }
        answers[*id] = state;
      }
      for (const auto& missing : response.missing_user_ids()) {
        if (auto id = domain::UserId::Parse(missing); id.ok()) answers.try_emplace(*id, std::nullopt);
      }
      for (const domain::UserId& id : chunk) {
        auto it = answers.find(id);
        if (it == answers.end()) {
          return absl::InternalError(fmt::format("user service did not answer for user \"{}\"", id));
        }
        out.push_back({id, it->second});
      }
      return absl::OkStatus();
    }
    const std::string why = fmt::format("user service lookup failed after {} attempt(s): {} (gRPC code {})", attempt,
                                        status.error_message(), static_cast<int>(status.error_code()));
    // gRPC and absl status codes have the same numbers.
    if (!IsTransient(status.error_code())) return absl::Status(static_cast<absl::StatusCode>(status.error_code()), why);
    if (absl::Now() + backoff > give_up) return absl::UnavailableError(why);
    absl::SleepFor(backoff * absl::Uniform(jitter, 0.5, 1.0));
    backoff = std::min(backoff * 2, options_.backoff_max);
  }
}

}  // namespace segments::ingest
