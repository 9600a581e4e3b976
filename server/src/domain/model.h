// Plain data of the domain: users, segments, memberships, history events.
#pragma once

#include <absl/time/time.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "domain/user_id.h"

namespace segments::domain {

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

// Options of automatic assignment: which users it may take, and for how long.
struct AutoOptions {
  // Users must be in every one of these segments and in none of those.
  std::vector<SegmentId> include_ids;
  std::vector<SegmentId> exclude_ids;
  // Time to live of automatic memberships; nullopt: permanent.
  std::optional<int64_t> ttl_seconds;
};

struct Segment {
  SegmentId id = 0;
  std::string slug{};  // initialized, so -Wmissing-field-initializers accepts HistoryEvent{user}
  // Share of users in hundredths of a percent (0..10000); 0 = manual only.
  int32_t percent_hundredths = 0;
  std::string description;
  std::string salt;
  absl::Time created_at;
  AutoOptions auto_options;
  // Slugs of auto_options' segments, sorted, for display.
  std::vector<std::string> include_slugs;
  std::vector<std::string> exclude_slugs;
};

struct NewSegment {
  std::string slug{};  // initialized, so -Wmissing-field-initializers accepts HistoryEvent{user}
  int32_t percent_hundredths = 0;
  std::string description;
  std::string salt;
  AutoOptions auto_options;
};

struct Membership {
  SegmentId segment_id = 0;
  std::string slug{};  // initialized, so -Wmissing-field-initializers accepts HistoryEvent{user}
  absl::Time added_at;
  std::optional<absl::Time> expires_at;
  bool automatic = false;  // made by automatic assignment, not by hand

  bool ActiveAt(absl::Time now) const { return !expires_at || *expires_at > now; }
};

struct NewMembership {
  SegmentId segment_id = 0;
  std::optional<absl::Time> expires_at;
  bool automatic = false;
};

// A user in a segment, as listed.
struct SegmentMember {
  UserId user_id;
  absl::Time added_at = absl::UnixEpoch();
  std::optional<absl::Time> expires_at = std::nullopt;
  bool automatic = false;
};

struct HistoryEvent {
  UserId user_id;
  SegmentId segment_id = 0;
  std::string slug{};  // initialized, so -Wmissing-field-initializers accepts HistoryEvent{user}
  Operation operation = Operation::kAdd;
  Reason reason = Reason::kManual;
  absl::Time at = absl::UnixEpoch();
  int64_t id = 0;  // assigned by the store; orders events of the same instant
};

}  // namespace segments::domain
