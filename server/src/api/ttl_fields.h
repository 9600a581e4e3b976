// The time-to-live fields of requests, as the domain takes them.
//
// A zero value means "not given": the original service's Go clients always
// send both fields, `"secondsToBeInSegment": 0` and
// `"deadlineForStayingInSegment": "0001-01-01T00:00:00Z"` (Go's zero
// time), when they mean neither.
#pragma once

#include <google/protobuf/timestamp.pb.h>

#include <cstdint>
#include <optional>

#include "api/proto_time.h"
#include "domain/commands.h"

namespace segments::api {

// 0001-01-01T00:00:00Z, Go's zero time.Time, in Unix seconds.
inline constexpr int64_t kGoZeroTimeUnixSeconds = -62135596800;

inline bool IsGoZeroTime(const google::protobuf::Timestamp& t) {
  return t.seconds() == kGoZeroTimeUnixSeconds && t.nanos() == 0;
}

// A seconds field that is set and not zero.
inline std::optional<int64_t> GivenSeconds(bool has, int64_t seconds) {
  if (!has || seconds == 0) return std::nullopt;
  return seconds;
}

// The TTL of a request or item with `seconds_to_be_in_segment` and
// `deadline_for_staying_in_segment` fields.
template <typename Message>
domain::TtlInput TtlInputOf(const Message& m) {
  domain::TtlInput ttl;
  ttl.seconds = GivenSeconds(m.has_seconds_to_be_in_segment(), m.seconds_to_be_in_segment());
  if (m.has_deadline_for_staying_in_segment() && !IsGoZeroTime(m.deadline_for_staying_in_segment())) {
    ttl.deadline = FromProto(m.deadline_for_staying_in_segment());
  }
  return ttl;
}

}  // namespace segments::api
