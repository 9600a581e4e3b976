#include "domain/segment_use_cases.h"

#include <absl/container/flat_hash_map.h>
#include <absl/container/flat_hash_set.h>
#include <absl/random/random.h>
#include <fmt/format.h>

#include <algorithm>

#include "domain/errors.h"
#include "domain/validation.h"

namespace segments::domain {
namespace {

std::string NewSalt() {
  // Per-segment salt for percentage bucketing: 16 random hex digits.
  absl::BitGen gen;
  return fmt::format("{:016x}", absl::Uniform<uint64_t>(gen));
}

std::string AddPath(size_t i, std::string_view leaf) { return fmt::format("segmentsToAdd[{}].{}", i, leaf); }
std::string RemovePath(size_t i) { return fmt::format("segmentsToRemove[{}].segmentSlug", i); }

// An add item after validation.
struct PlannedAdd {
  std::string slug;
  std::optional<absl::Time> expires_at;
};

// Checks everything that needs no database; fills `adds` with deadlines.
std::vector<FieldViolation> ValidateShape(const UpdateUserSegmentsCommand& command, absl::Time now,
                                          std::vector<PlannedAdd>& adds) {
  std::vector<FieldViolation> problems;
  if (std::string why = DescribeUserIdProblem(command.user_id); !why.empty()) {
    problems.push_back({std::string(kUserIdField), why});
  }
  if (command.to_add.empty() && command.to_remove.empty()) {
    problems.push_back({"", "segmentsToAdd or segmentsToRemove must list at least one segment"});
  }
  const absl::Time max_deadline = MaxDeadline(now);
  absl::flat_hash_map<std::string, size_t> added;  // slug -> first index
  for (size_t i = 0; i < command.to_add.size(); ++i) {
    const SegmentToAdd& item = command.to_add[i];
    PlannedAdd plan{item.slug, std::nullopt};
    if (std::string why = DescribeSlugProblem(item.slug); !why.empty()) {
      problems.push_back({AddPath(i, "segmentSlug"), why});
    } else if (auto [it, fresh] = added.emplace(item.slug, i); !fresh) {
      problems.push_back({AddPath(i, "segmentSlug"),
                          fmt::format("segment \"{}\" is already listed at segmentsToAdd[{}]", item.slug, it->second)});
    }
    if (item.seconds_to_be_in_segment && item.deadline) {
      problems.push_back({AddPath(i, "secondsToBeInSegment"),
                          "give secondsToBeInSegment or deadlineForStayingInSegment, not both"});
    } else if (item.seconds_to_be_in_segment) {
      const int64_t seconds = *item.seconds_to_be_in_segment;
      const absl::Duration max_ttl = max_deadline - now;
      if (seconds < 1 || absl::Seconds(seconds) > max_ttl) {
        problems.push_back({AddPath(i, "secondsToBeInSegment"),
                            fmt::format("must be between 1 and {} (10 years)", absl::ToInt64Seconds(max_ttl))});
      } else {
        plan.expires_at = now + absl::Seconds(seconds);
      }
    } else if (item.deadline) {
      const absl::Time deadline = TruncateToMicros(*item.deadline);
      if (deadline <= now) {
        problems.push_back({AddPath(i, "deadlineForStayingInSegment"), "must be in the future"});
      } else if (deadline > max_deadline) {
        problems.push_back({AddPath(i, "deadlineForStayingInSegment"), "must be at most 10 years ahead"});
      } else {
        plan.expires_at = deadline;
      }
    }
    adds.push_back(std::move(plan));
  }
  absl::flat_hash_map<std::string, size_t> removed;
  for (size_t i = 0; i < command.to_remove.size(); ++i) {
    const std::string& slug = command.to_remove[i];
    if (std::string why = DescribeSlugProblem(slug); !why.empty()) {
      problems.push_back({RemovePath(i), why});
    } else if (auto [it, fresh] = removed.emplace(slug, i); !fresh) {
      problems.push_back(
          {RemovePath(i), fmt::format("segment \"{}\" is already listed at segmentsToRemove[{}]", slug, it->second)});
    } else if (auto in_add = added.find(slug); in_add != added.end()) {
      problems.push_back({RemovePath(i), fmt::format("segment \"{}\" is also listed at segmentsToAdd[{}]", slug,
                                                     in_add->second)});
    }
  }
  return problems;
}

}  // namespace

absl::StatusOr<std::pair<Segment, int64_t>> SegmentUseCases::GetSegment(const std::string& slug) {
  if (std::string why = DescribeSlugProblem(slug); !why.empty()) {
    return FieldError(absl::StatusCode::kInvalidArgument, "slug", why);
  }
  auto found = store_.FindSegment(slug, Now());
  if (!found.ok()) return found.status();
  if (!*found) return FieldError(absl::StatusCode::kNotFound, "slug", fmt::format("segment \"{}\" does not exist", slug));
  return **found;
}

absl::StatusOr<Segment> SegmentUseCases::CreateSegment(const CreateSegmentCommand& command) {
  std::vector<FieldViolation> problems;
  if (std::string why = DescribeSlugProblem(command.slug); !why.empty()) problems.push_back({"slug", why});
  std::optional<int32_t> percent = 0;
  if (command.percent_to_fill) {
    percent = ParsePercent(*command.percent_to_fill);
    if (!percent) problems.push_back({"percentToFill", "must be between 0 and 100 with at most two decimals"});
  }
  if (std::string why = DescribeDescriptionProblem(command.description); !why.empty()) {
    problems.push_back({"description", why});
  }
  if (!problems.empty()) return ErrorWithViolations(absl::StatusCode::kInvalidArgument, problems);
  const NewSegment fresh{command.slug, *percent, command.description, NewSalt()};
  Segment created;
  absl::Status status = store_.InTransaction([&](Transaction& tx) -> absl::Status {
    const absl::Time now = Now();
    auto inserted = tx.InsertSegment(fresh, now);
    if (!inserted.ok()) return inserted.status();
    created = *std::move(inserted);
    // The members exist, with their history, when the call returns.
    if (created.percent_hundredths > 0) return tx.AssignByPercent(created, now).status();
    return absl::OkStatus();
  });
  if (absl::IsAlreadyExists(status)) {
    return FieldError(absl::StatusCode::kAlreadyExists, "slug",
                      fmt::format("segment \"{}\" already exists", command.slug));
  }
  if (!status.ok()) return status;
  return created;
}

absl::StatusOr<int64_t> SegmentUseCases::DeleteSegment(const std::string& slug) {
  if (std::string why = DescribeSlugProblem(slug); !why.empty()) {
    return FieldError(absl::StatusCode::kInvalidArgument, "slug", why);
  }
  int64_t ended = 0;
  absl::Status status = store_.InTransaction([&](Transaction& tx) -> absl::Status {
    const absl::Time now = Now();
    auto segment = tx.MarkSegmentDeleted(slug, now);
    if (!segment.ok()) return segment.status();
    if (!*segment) {
      return FieldError(absl::StatusCode::kNotFound, "slug", fmt::format("segment \"{}\" does not exist", slug));
    }
    auto count = tx.EndSegmentMemberships(**segment, Reason::kSegmentDeleted, now);
    if (!count.ok()) return count.status();
    ended = *count;
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  return ended;
}

absl::Status SegmentUseCases::UpdateUserSegments(const UpdateUserSegmentsCommand& command) {
  const absl::Time now = Now();
  std::vector<PlannedAdd> adds;
  if (auto problems = ValidateShape(command, now, adds); !problems.empty()) {
    return ErrorWithViolations(absl::StatusCode::kInvalidArgument, problems);
  }
  const UserId user = *ParseUserId(command.user_id);

  return store_.InTransaction([&](Transaction& tx) -> absl::Status {
    auto state = tx.LockUser(user);
    if (!state.ok()) return state.status();
    if (!*state) {
      return FieldError(absl::StatusCode::kNotFound, std::string(kUserIdField),
                        fmt::format("user \"{}\" does not exist", user));
    }

    std::vector<std::string> slugs;
    for (const auto& add : adds) slugs.push_back(add.slug);
    slugs.insert(slugs.end(), command.to_remove.begin(), command.to_remove.end());
    auto live = tx.LockLiveSegments(slugs);
    if (!live.ok()) return live.status();
    absl::flat_hash_map<std::string, const Segment*> by_slug;
    for (const Segment& s : *live) by_slug[s.slug] = &s;

    auto current = tx.UserMemberships(user);
    if (!current.ok()) return current.status();
    absl::flat_hash_map<SegmentId, const Membership*> member_of;
    for (const Membership& m : *current) member_of[m.segment_id] = &m;
    auto active_in = [&](const Segment& s) {
      auto it = member_of.find(s.id);
      return it != member_of.end() && it->second->ActiveAt(now);
    };

    std::vector<FieldViolation> missing;
    std::vector<FieldViolation> conflicts;
    for (size_t i = 0; i < adds.size(); ++i) {
      auto it = by_slug.find(adds[i].slug);
      if (it == by_slug.end()) {
        missing.push_back({AddPath(i, "segmentSlug"), fmt::format("segment \"{}\" does not exist", adds[i].slug)});
      } else if (active_in(*it->second)) {
        conflicts.push_back(
            {AddPath(i, "segmentSlug"), fmt::format("user is already in segment \"{}\"", adds[i].slug)});
      }
    }
    for (size_t i = 0; i < command.to_remove.size(); ++i) {
      const std::string& slug = command.to_remove[i];
      auto it = by_slug.find(slug);
      if (it == by_slug.end()) {
        missing.push_back({RemovePath(i), fmt::format("segment \"{}\" does not exist", slug)});
      } else if (!active_in(*it->second)) {
        conflicts.push_back({RemovePath(i), fmt::format("user is not in segment \"{}\"", slug)});
      }
    }
    if (!missing.empty()) return ErrorWithViolations(absl::StatusCode::kNotFound, missing);
    if (!conflicts.empty()) return ErrorWithViolations(absl::StatusCode::kFailedPrecondition, conflicts);

    // Expired rows the expiry job has not reached yet end now, recorded at
    // their deadline; then the requested removals, then the additions.
    std::vector<HistoryEvent> events;
    std::vector<SegmentId> to_delete;
    for (const Membership& m : *current) {
      if (!m.ActiveAt(now)) {
        to_delete.push_back(m.segment_id);
        events.push_back({user, m.segment_id, m.slug, Operation::kRemove, Reason::kTtl, *m.expires_at});
      }
    }
    std::sort(events.begin(), events.end(), [](const HistoryEvent& a, const HistoryEvent& b) { return a.at < b.at; });
    for (const std::string& slug : command.to_remove) {
      const Segment& s = *by_slug[slug];
      to_delete.push_back(s.id);
      events.push_back({user, s.id, s.slug, Operation::kRemove, Reason::kManual, now});
    }
    std::vector<NewMembership> to_insert;
    for (const PlannedAdd& add : adds) {
      const Segment& s = *by_slug[add.slug];
      to_insert.push_back({s.id, add.expires_at});
      events.push_back({user, s.id, s.slug, Operation::kAdd, Reason::kManual, now});
    }
    if (!to_delete.empty()) {
      if (absl::Status st = tx.DeleteMemberships(user, to_delete); !st.ok()) return st;
    }
    if (!to_insert.empty()) {
      if (absl::Status st = tx.InsertMemberships(user, to_insert, now); !st.ok()) return st;
    }
    return tx.AppendHistory(events);
  });
}

absl::StatusOr<std::vector<std::string>> SegmentUseCases::GetUserSegments(const std::string& user_id) {
  auto user = ParseUserId(user_id);
  if (!user) {
    return FieldError(absl::StatusCode::kInvalidArgument, std::string(kUserIdField), DescribeUserIdProblem(user_id));
  }
  auto slugs = store_.ActiveSegmentSlugs(*user, Now());
  if (!slugs.ok()) return slugs.status();
  std::sort(slugs->begin(), slugs->end());
  return slugs;
}

}  // namespace segments::domain
