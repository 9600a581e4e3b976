#include "api/grpc_status.h"

#include "api/field_paths.h"
#include "common/log.h"
#include "common/string_views.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"

namespace segments::api {

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  const auto code = static_cast<grpc::StatusCode>(status.code());
  const std::vector<ClientViolation> violations = ClientViolations(status);
  std::string message = violations.empty() ? std::string(status.message()) : ClientMessage(violations);
  if (status.code() == absl::StatusCode::kInternal || status.code() == absl::StatusCode::kUnknown) {
    // The details stay in our log (with the call's request id), never in
    // the answer.
    log::Error("internal error: {}", Std(status.message()));
    message = "internal error";
  }
  if (violations.empty()) return grpc::Status(code, message);

  google::rpc::BadRequest bad_request;
  for (const auto& v : violations) {
    auto* out = bad_request.add_field_violations();
    out->set_field(v.field);
    out->set_description(v.description);
  }
  google::rpc::Status rich;
  rich.set_code(static_cast<int32_t>(code));
  rich.set_message(message);
  rich.add_details()->PackFrom(bad_request);
  return grpc::Status(code, message, rich.SerializeAsString());
}

}  // namespace segments::api
