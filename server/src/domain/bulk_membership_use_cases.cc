#include "domain/bulk_membership_use_cases.h"

#include <absl/container/flat_hash_map.h>
#include <absl/container/flat_hash_set.h>
#include <absl/time/clock.h>
#include <fmt/format.h>

#include "common/status_macros.h"
#include "domain/errors.h"
#include "domain/validation.h"
#include "domain/work_metrics.h"

namespace segments::domain {
namespace {

FieldPath UserPath(size_t i) { return FieldPath(Field::kUserIds, i); }

// Collects violations, listing the first kMaxListedProblems and summing up
// the rest, so that 100,000 bad ids give a readable error.
class ProblemList {
 public:
  void Add(FieldViolation violation) {
    if (listed_.size() < BulkMembershipUseCases::kMaxListedProblems) {
      listed_.push_back(std::move(violation));
    } else {
      ++unlisted_;
    }
  }
  void AddAll(const std::vector<FieldViolation>& violations) {
    for (const auto& v : violations) Add(v);
  }
  bool empty() const { return listed_.empty(); }
  absl::Status Error(absl::StatusCode code, std::string_view what) const {
    std::vector<FieldViolation> out = listed_;
    if (unlisted_ > 0) out.push_back({Field::kUserIds, fmt::format("and {} more {}", unlisted_, what)});
    return ErrorWithViolations(code, out);
  }

 private:
  std::vector<FieldViolation> listed_;
  size_t unlisted_ = 0;
};

// Slug and ids: shape only. Fills `users` with canonical ids.
ProblemList CheckShape(const SegmentUsersCommand& command, std::vector<UserId>& users) {
  ProblemList problems;
  if (std::string why = DescribeSlugProblem(command.slug); !why.empty()) problems.Add({Field::kSlug, why});
  if (command.user_ids.empty()) {
    problems.Add({Field::kUserIds, "must list at least one user"});
  } else if (command.user_ids.size() > BulkMembershipUseCases::kMaxUsers) {
    problems.Add({Field::kUserIds, fmt::format("must list at most {} users", BulkMembershipUseCases::kMaxUsers)});
    return problems;
  }
  users.reserve(command.user_ids.size());
  absl::flat_hash_map<UserId, size_t> first_index;
  first_index.reserve(command.user_ids.size());
  for (size_t i = 0; i < command.user_ids.size(); ++i) {
    const UserIdInput& input = command.user_ids[i];
    if (!input.ok()) {
      problems.Add({UserPath(i), input.problem()});
      continue;
    }
    const UserId& user = input.value();
    if (auto [it, fresh] = first_index.emplace(user, i); !fresh) {
      problems.Add(
          {UserPath(i), Description::Of(fmt::format("user \"{}\" is already listed at ", user), UserPath(it->second))});
      continue;
    }
    users.push_back(user);
  }
  return problems;
}

}  // namespace

absl::StatusOr<int64_t> BulkMembershipUseCases::Change(
    const SegmentUsersCommand& command, const std::vector<UserId>& users,
    absl::FunctionRef<absl::StatusOr<int64_t>(Transaction&, const Segment&)> change) {
  int64_t changed = 0;
  absl::Status status = store_.InTransaction([&](Transaction& tx) -> absl::Status {
    // The segment held shared: a fill, percentage change or deletion of it
    // waits for this call, or this call for it. Other segments' fills and
    // user events go on.
    ASSIGN_OR_RETURN(std::vector<Segment> live, tx.segments().LockLive({command.slug}));
    if (live.empty()) {
      return FieldError(absl::StatusCode::kNotFound, Field::kSlug,
                        fmt::format("segment \"{}\" does not exist", command.slug));
    }
    ASSIGN_OR_RETURN(std::vector<UserId> unknown, tx.users().Unknown(users));
    if (!unknown.empty()) {
      const absl::flat_hash_set<UserId> is_unknown(unknown.begin(), unknown.end());
      ProblemList problems;
      for (size_t i = 0; i < command.user_ids.size(); ++i) {
        const UserId& user = command.user_ids[i].value();  // the shape was checked
        if (is_unknown.contains(user)) problems.Add({UserPath(i), fmt::format("user \"{}\" does not exist", user)});
      }
      return problems.Error(absl::StatusCode::kNotFound, "unknown users");
    }
    ASSIGN_OR_RETURN(changed, change(tx, live.front()));
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  return changed;
}

absl::StatusOr<BulkAddResult> BulkMembershipUseCases::AddSegmentToUsers(const SegmentUsersCommand& command) {
  const absl::Time started = absl::Now();
  const absl::Time now = Now();
  std::vector<UserId> users;
  ProblemList problems = CheckShape(command, users);
  std::vector<FieldViolation> ttl_problems;
  const std::optional<absl::Time> expires_at =
      ResolveTtl(command.ttl.seconds, command.ttl.deadline, now, FieldPath(), ttl_problems);
  problems.AddAll(ttl_problems);
  if (!problems.empty()) return problems.Error(absl::StatusCode::kInvalidArgument, "problems");
  // One instant for the whole call, as for a single user's change: the TTL
  // counts from the time the members are recorded as added.
  ASSIGN_OR_RETURN(const int64_t added, Change(command, users, [&](Transaction& tx, const Segment& segment) {
                     return tx.memberships().AddMembers(segment, users, expires_at, now);
                   }));
  ObserveMembershipWork("bulk_add", absl::Now() - started, added);
  return BulkAddResult{added, static_cast<int64_t>(users.size()) - added};
}

absl::StatusOr<BulkRemoveResult> BulkMembershipUseCases::RemoveSegmentFromUsers(const SegmentUsersCommand& command) {
  const absl::Time started = absl::Now();
  std::vector<UserId> users;
  ProblemList problems = CheckShape(command, users);
  if (!problems.empty()) return problems.Error(absl::StatusCode::kInvalidArgument, "problems");
  const absl::Time now = Now();
  ASSIGN_OR_RETURN(const int64_t removed, Change(command, users, [&](Transaction& tx, const Segment& segment) {
                     return tx.memberships().RemoveMembers(segment, users, now);
                   }));
  ObserveMembershipWork("bulk_remove", absl::Now() - started, removed);
  return BulkRemoveResult{removed, static_cast<int64_t>(users.size()) - removed};
}

}  // namespace segments::domain
