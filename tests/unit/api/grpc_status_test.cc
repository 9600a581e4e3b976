#include "api/grpc_status.h"

#include <catch2/catch.hpp>

#include "domain/errors.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"

using segments::api::ToGrpcStatus;

TEST_CASE("violations become one google.rpc.BadRequest detail", "[api]") {
  using segments::domain::Field;
  using segments::domain::FieldPath;
  const absl::Status status = segments::domain::ErrorWithViolations(
      absl::StatusCode::kNotFound,
      {{FieldPath(Field::kSegmentsToAdd, 0, Field::kSegmentSlug), "segment \"X\" does not exist"},
       {FieldPath(Field::kSegmentsToAdd, 1, Field::kSegmentSlug), "segment \"Y\" does not exist"}});
  const grpc::Status out = ToGrpcStatus(status);
  CHECK(out.error_code() == grpc::StatusCode::NOT_FOUND);
  CHECK(out.error_message() ==
        "segmentsToAdd[0].segmentSlug: segment \"X\" does not exist; "
        "segmentsToAdd[1].segmentSlug: segment \"Y\" does not exist");

  google::rpc::Status rich;
  REQUIRE(rich.ParseFromString(out.error_details()));
  CHECK(rich.code() == grpc::StatusCode::NOT_FOUND);
  REQUIRE(rich.details_size() == 1);
  google::rpc::BadRequest bad_request;
  REQUIRE(rich.details(0).UnpackTo(&bad_request));
  REQUIRE(bad_request.field_violations_size() == 2);
  CHECK(bad_request.field_violations(1).field() == "segmentsToAdd[1].segmentSlug");
  CHECK(bad_request.field_violations(1).description() == "segment \"Y\" does not exist");
  CHECK(rich.message() == out.error_message());
}

TEST_CASE("codes pass through; internal details never reach the client", "[api]") {
  CHECK(ToGrpcStatus(absl::OkStatus()).ok());
  const grpc::Status unavailable = ToGrpcStatus(absl::UnavailableError("database is unavailable"));
  CHECK(unavailable.error_code() == grpc::StatusCode::UNAVAILABLE);
  CHECK(unavailable.error_message() == "database is unavailable");
  CHECK(unavailable.error_details().empty());

  const grpc::Status internal = ToGrpcStatus(absl::InternalError("relation \"users\" does not exist"));
  CHECK(internal.error_code() == grpc::StatusCode::INTERNAL);
  CHECK(internal.error_message() == "internal error");
}
