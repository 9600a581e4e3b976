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

// A change of a whole segment, done in chunks of users, each chunk a
// transaction of its own (domain/segment_tasks.h).
enum class SegmentTaskKind {
  kAssign,    // a new or raised percentage: users of the added buckets join
  kUnassign,  // a lowered percentage: automatic members of the dropped buckets leave
  kDelete,    // a deleted segment: every membership ends
};

struct SegmentTask {
  int64_t id = 0;
  SegmentId segment_id = 0;
  std::string slug{};
  SegmentTaskKind kind = SegmentTaskKind::kAssign;
  int32_t from_hundredths = 0;  // the percentage before the change
  int32_t to_hundredths = 0;    // the percentage it changes to (a deletion's: the last)
  absl::Time at;                // the change's time, which every event of the task carries
  // The last user the task looks at, fixed by its first chunk: users
  // created after it are evaluated by their own transactions.
  std::optional<std::string> last_user = std::nullopt;
  std::string after_user{};  // users up to this id (byte order) are done; "" for none
  int64_t count = 0;         // memberships added or ended so far
  bool finished = false;
  // Who asked for it (domain/acting_as.h; "" for the system): a deletion's
  // removals are recorded as theirs, whoever runs its chunks.
  std::string actor{};
};

// Users whose ids are in (after, last] in byte order (UserId's order): a
// chunk of a SegmentTask. `after` empty: from the first; no `last`: to the
// end.
struct UserRange {
  std::string after{};
  std::optional<std::string> last = std::nullopt;

  bool Contains(const UserId& user) const {
    const std::string id = user.ToString();
    return id > after && (!last || id <= *last);
  }
};

struct HistoryEvent {
  UserId user_id;
  SegmentId segment_id = 0;
  std::string slug{};  // initialized, so -Wmissing-field-initializers accepts HistoryEvent{user}
  Operation operation = Operation::kAdd;
  Reason reason = Reason::kManual;
  absl::Time at = absl::UnixEpoch();
  int64_t id = 0;  // assigned by the store; orders events of the same instant
  // Who made the change: a token's subject, "system", or "unknown" for
  // events recorded before actors were.
  std::string actor{};
  // Of an `add`: when the membership was due to end (its TTL); none:
  // permanent. Never set on a `remove`.
  std::optional<absl::Time> expires_at = std::nullopt;
};

}  // namespace segments::domain
