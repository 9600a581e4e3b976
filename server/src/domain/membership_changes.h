// One user's membership changes within a transaction, collected and then
// written together with their history and opt-outs. Shared by the hand-made
// changes (UpdateUserSegments) and by automatic assignment of one user or of
// a batch of users.
#pragma once

#include <absl/status/status.h>
#include <absl/time/time.h>

#include <optional>
#include <vector>

#include "domain/model.h"
#include "domain/repositories/unit_of_work.h"

namespace segments::domain {

class MembershipChanges {
 public:
  MembershipChanges(UserId user, absl::Time now) : user_(user), now_(now) {}

  // Ends the rows of `current` that expired before now and that no job has
  // removed yet: a `remove` event of reason ttl at each deadline, and an
  // opt-out for automatic ones (their time is over for good).
  void EndExpired(const std::vector<Membership>& current);
  // A hand removal: history of reason manual and an opt-out, so automatic
  // assignment never puts the user back.
  void RemoveByHand(const Segment& segment);
  // A hand addition, or an automatic one (reason auto_percent).
  void Add(const Segment& segment, std::optional<absl::Time> expires_at, bool automatic);

  bool empty() const { return deleted_.empty() && inserted_.empty(); }
  absl::Status Apply(Transaction& tx);
  // Applies the changes of many users with one statement of each kind
  // (deletion, opt-outs, insert, history), whatever the number of users.
  static absl::Status ApplyAll(Transaction& tx, const std::vector<MembershipChanges>& changes);

 private:
  UserId user_;
  absl::Time now_;
  std::vector<SegmentId> deleted_;
  std::vector<NewMembership> inserted_;
  std::vector<HistoryEvent> events_;
  std::vector<SegmentId> opted_out_by_hand_;
  std::vector<SegmentId> opted_out_by_ttl_;
};

}  // namespace segments::domain
