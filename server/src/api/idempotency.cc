#include "api/idempotency.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>

#include <iterator>
#include <memory>

#include "common/crypto.h"
#include "common/status_macros.h"
#include "domain/errors.h"

namespace segments::api {
namespace {

// Appends `message` to `out`, with map entries in key order.
void AppendDeterministically(const google::protobuf::Message& message, std::string& out) {
  google::protobuf::io::StringOutputStream stream(&out);
  google::protobuf::io::CodedOutputStream coded(&stream);
  coded.SetSerializationDeterministic(true);
  message.SerializeToCodedStream(&coded);
}

}  // namespace

absl::StatusOr<std::optional<std::string>> IdempotencyKeyOf(const grpc::ServerContextBase& context) {
  const auto [first, last] = context.client_metadata().equal_range(
      grpc::string_ref(kIdempotencyKeyMetadata.data(), kIdempotencyKeyMetadata.size()));
  if (first == last) return std::nullopt;
  if (std::next(first) != last) {
    return domain::FieldError(absl::StatusCode::kInvalidArgument, domain::Field::kIdempotencyKey,
                              "give one key, not several");
  }
  std::string key(first->second.data(), first->second.size());
  RETURN_IF_ERROR(domain::CheckIdempotencyKey(key));
  return key;
}

std::string RequestFingerprint(std::string_view method, const google::protobuf::Message& request) {
  std::string bytes(method);
  bytes += '\0';
  AppendDeterministically(request, bytes);
  const auto digest = crypto::Sha256(bytes);
  return {reinterpret_cast<const char*>(digest.data()), digest.size()};
}

grpc::Status RunKeyed(domain::IdempotentCalls& calls, std::string_view method, std::string scope, std::string key,
                      const google::protobuf::Message& request, google::protobuf::Message& response,
                      absl::FunctionRef<absl::Status()> handler) {
  std::unique_ptr<domain::KeyedCall> call =
      calls.Start(std::move(scope), std::move(key), RequestFingerprint(method, request));
  absl::Status status;
  {
    const domain::KeyedCall::Scope in_call(*call);
    status = handler();
  }
  grpc::Status fresh = ToGrpcStatus(status);
  if (!call->answered_earlier() && !domain::IsFinalOutcome(status.code())) {
    call->Abandon();  // a retry does the work
    return fresh;
  }
  domain::CallOutcome outcome{static_cast<int>(fresh.error_code()), fresh.error_message(), fresh.error_details(), ""};
  if (status.ok()) AppendDeterministically(response, outcome.response);
  absl::StatusOr<domain::CallOutcome> answer = call->Settle(outcome);
  if (!answer.ok()) return ToGrpcStatus(answer.status());
  response.Clear();
  if (answer->code == 0 && !response.ParseFromString(answer->response)) {
    return ToGrpcStatus(absl::InternalError("a stored response does not parse"));
  }
  return {static_cast<grpc::StatusCode>(answer->code), answer->message, answer->details};
}

}  // namespace segments::api
