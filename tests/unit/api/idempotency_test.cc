#include "api/idempotency.h"

#include <google/protobuf/util/json_util.h>

#include <catch2/catch.hpp>

#include "segmentation/v1/segment_service.pb.h"

using segments::api::RequestFingerprint;
namespace v1 = segmentation::v1;

namespace {

constexpr std::string_view kUpdate = "/segmentation.v1.SegmentService/UpdateUserSegments";

v1::UpdateUserSegmentsRequest FromJson(const std::string& json) {
  v1::UpdateUserSegmentsRequest request;
  REQUIRE(google::protobuf::util::JsonStringToMessage(json, &request).ok());
  return request;
}

}  // namespace

TEST_CASE("the same request has the same fingerprint, however its JSON was written", "[api][idempotency]") {
  const auto a = FromJson(R"({"userID":"1000","segmentsToAdd":[{"segmentSlug":"A","secondsToBeInSegment":60}],)"
                          R"("segmentsToRemove":[{"segmentSlug":"B"}]})");
  const auto b = FromJson(R"({"segmentsToRemove":[{"segmentSlug":"B"}],)"
                          R"("segmentsToAdd":[{"secondsToBeInSegment":"60","segmentSlug":"A"}],"userID":"1000"})");
  const std::string fingerprint = RequestFingerprint(kUpdate, a);
  CHECK(fingerprint.size() == 32);  // SHA-256
  CHECK(RequestFingerprint(kUpdate, b) == fingerprint);
  CHECK(RequestFingerprint(kUpdate, a) == fingerprint);
}

TEST_CASE("another value, another item order, another method: another fingerprint", "[api][idempotency]") {
  const auto base = FromJson(R"({"userID":"1000","segmentsToAdd":[{"segmentSlug":"A"},{"segmentSlug":"B"}]})");
  const std::string fingerprint = RequestFingerprint(kUpdate, base);
  for (const char* other : {
           R"({"userID":"1001","segmentsToAdd":[{"segmentSlug":"A"},{"segmentSlug":"B"}]})",
           R"({"userID":"1000","segmentsToAdd":[{"segmentSlug":"B"},{"segmentSlug":"A"}]})",
           R"({"userID":"1000","segmentsToAdd":[{"segmentSlug":"A"}]})",
           // Given as 0 is not left out: the same meaning, another request.
           R"({"userID":"1000","segmentsToAdd":[{"segmentSlug":"A","secondsToBeInSegment":0},{"segmentSlug":"B"}]})",
       }) {
    INFO(other);
    CHECK(RequestFingerprint(kUpdate, FromJson(other)) != fingerprint);
  }
  CHECK(RequestFingerprint("/segmentation.v1.SegmentService/Other", base) != fingerprint);
}
