#include "api/ttl_fields.h"

#include <catch2/catch.hpp>

#include "segmentation/v1/segment_service.pb.h"

using segments::api::GivenSeconds;
using segments::api::TtlInputOf;
using SegmentToAdd = segmentation::v1::UpdateUserSegmentsRequest::SegmentToAdd;

namespace {

// 0001-01-01T00:00:00Z as JSON decodes it.
void SetGoZeroTime(google::protobuf::Timestamp* t) {
  t->set_seconds(-62135596800);
  t->set_nanos(0);
}

}  // namespace

TEST_CASE("zero TTL fields mean not given, as the original's Go clients send them", "[api]") {
  SegmentToAdd add;
  add.set_segment_slug("A");
  add.set_seconds_to_be_in_segment(0);
  SetGoZeroTime(add.mutable_deadline_for_staying_in_segment());
  const segments::domain::TtlInput ttl = TtlInputOf(add);
  CHECK_FALSE(ttl.seconds.has_value());
  CHECK_FALSE(ttl.deadline.has_value());
}

TEST_CASE("a TTL beside the other field's zero value is kept", "[api]") {
  SegmentToAdd by_seconds;
  by_seconds.set_seconds_to_be_in_segment(60);
  SetGoZeroTime(by_seconds.mutable_deadline_for_staying_in_segment());
  CHECK(TtlInputOf(by_seconds).seconds == 60);
  CHECK_FALSE(TtlInputOf(by_seconds).deadline.has_value());

  SegmentToAdd by_deadline;
  by_deadline.set_seconds_to_be_in_segment(0);
  by_deadline.mutable_deadline_for_staying_in_segment()->set_seconds(1'900'000'000);
  CHECK_FALSE(TtlInputOf(by_deadline).seconds.has_value());
  CHECK(TtlInputOf(by_deadline).deadline == absl::FromUnixSeconds(1'900'000'000));
}

TEST_CASE("only the exact zero values are absent", "[api]") {
  SegmentToAdd add;
  add.set_seconds_to_be_in_segment(-1);  // refused later by validation, not dropped here
  add.mutable_deadline_for_staying_in_segment()->set_seconds(-62135596800);
  add.mutable_deadline_for_staying_in_segment()->set_nanos(1000);
  const segments::domain::TtlInput ttl = TtlInputOf(add);
  CHECK(ttl.seconds == -1);
  CHECK(ttl.deadline == absl::FromUnixSeconds(-62135596800) + absl::Microseconds(1));

  SegmentToAdd unset;
  CHECK_FALSE(TtlInputOf(unset).seconds.has_value());
  CHECK_FALSE(TtlInputOf(unset).deadline.has_value());

  CHECK_FALSE(GivenSeconds(true, 0).has_value());
  CHECK_FALSE(GivenSeconds(false, 5).has_value());
  CHECK(GivenSeconds(true, 5) == 5);
}
