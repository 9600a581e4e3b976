// The one conversion from domain errors to gRPC statuses.
#pragma once

#include <absl/status/status.h>
#include <grpcpp/support/status.h>

namespace segments::api {

// Same code and message; with field violations, the message names the fields
// as the contract does (api/field_paths.h). Field violations travel as a
// google.rpc.Status with one google.rpc.BadRequest detail, in the standard
// `grpc-status-details-bin` trailer. INTERNAL and UNKNOWN messages are replaced by a generic text, so
// clients never see storage details.
grpc::Status ToGrpcStatus(const absl::Status& status);
// A status in gRPC's terms already (an outcome answered as it was stored),
// unchanged: RunOnWorkers takes handlers that return either.
inline grpc::Status ToGrpcStatus(grpc::Status status) { return status; }

}  // namespace segments::api
