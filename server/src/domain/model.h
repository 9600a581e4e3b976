// Plain data of the domain: users, segments, memberships, history events.
#pragma once

#include <absl/time/time.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace segments::domain {

// Canonical lowercase UUID text, e.g. "0b7f9f5e-...". Build with ParseUserId.
using UserId = std::string;
using SegmentId = int64_t;

enum class UserState { kActive, kExcluded };
std::string_view ToString(UserState state);
std::optional<UserState> ParseUserState(std::string_view text);

enum class Operation { kAdd, kRemove };
std::string_view ToString(Operation operation);
std::optional<Operation> ParseOperation(std::string_view text);

// Why a membership began or ended; stored with every history event.
enum class Reason { kManual, kTtl, kAutoPercent, kSegmentDeleted, kUserDeleted };
std::string_view ToString(Reason reason);
std::optional<Reason> ParseReason(std::string_view text);

struct Segment {
  SegmentId id = 0;
  std::string slug;
  // Share of users in hundredths of a percent (0..10000); 0 = manual only.
  int32_t percent_hundredths = 0;
  std::string description;
  std::string salt;
  absl::Time created_at;
};

struct NewSegment {
  std::string slug;
  int32_t percent_hundredths = 0;
  std::string description;
  std::string salt;
};

struct Membership {
  SegmentId segment_id = 0;
  std::string slug;
  absl::Time added_at;
  std::optional<absl::Time> expires_at;

  bool ActiveAt(absl::Time now) const { return !expires_at || *expires_at > now; }
};

struct NewMembership {
  SegmentId segment_id = 0;
  std::optional<absl::Time> expires_at;
};

struct HistoryEvent {
  UserId user_id;
  SegmentId segment_id = 0;
  std::string slug;
  Operation operation = Operation::kAdd;
  Reason reason = Reason::kManual;
  absl::Time at;
  int64_t id = 0;  // assigned by the store; orders events of the same instant
};

}  // namespace segments::domain
