#include "domain/segment_use_cases.h"

#include <absl/container/flat_hash_map.h>
#include <absl/container/flat_hash_set.h>
#include <absl/random/random.h>
#include <absl/strings/str_join.h>
#include <fmt/format.h>

#include <algorithm>

#include "common/status_macros.h"
#include "domain/acting_as.h"
#include "domain/errors.h"
#include "domain/repositories/idempotency_store.h"
#include "domain/validation.h"

namespace segments::domain {
namespace {

std::string NewSalt() {
  // Per-segment salt for percentage bucketing: 16 random hex digits.
  absl::BitGen gen;
  return fmt::format("{:016x}", absl::Uniform<uint64_t>(gen));
}

FieldPath AddPath(size_t i, Field member) { return FieldPath(Field::kSegmentsToAdd, i, member); }
FieldPath RemovePath(size_t i) { return FieldPath(Field::kSegmentsToRemove, i, Field::kSegmentSlug); }

// An add item after validation.
struct PlannedAdd {
  std::string slug;
  std::optional<absl::Time> expires_at;
};

// A removal after validation: the first place its slug is listed (a slug
// listed again is the same removal).
struct PlannedRemove {
  size_t index = 0;
  std::string slug;
};

// A change for one user after validation.
struct PlannedChange {
  std::vector<PlannedAdd> adds;
  std::vector<PlannedRemove> removes;
};

// Checks everything that needs no database; fills `plan` with deadlines and
// the distinct removals.
std::vector<FieldViolation> ValidateShape(const UpdateUserSegmentsCommand& command, absl::Time now,
                                          PlannedChange& plan) {
  std::vector<FieldViolation> problems;
  if (!command.user_id.ok()) problems.push_back({Field::kUserId, command.user_id.problem()});
  absl::flat_hash_map<std::string, size_t> added;  // slug -> first index
  for (size_t i = 0; i < command.to_add.size(); ++i) {
    const SegmentToAdd& item = command.to_add[i];
    PlannedAdd add{item.slug, std::nullopt};
    if (std::string why = DescribeSlugProblem(item.slug); !why.empty()) {
      problems.push_back({AddPath(i, Field::kSegmentSlug), why});
    } else if (auto [it, fresh] = added.emplace(item.slug, i); !fresh) {
      problems.push_back({AddPath(i, Field::kSegmentSlug),
                          Description::Of(fmt::format("segment \"{}\" is already listed at ", item.slug),
                                          FieldPath(Field::kSegmentsToAdd, it->second))});
    }
    add.expires_at =
        ResolveTtl(item.ttl.seconds, item.ttl.deadline, now, FieldPath(Field::kSegmentsToAdd, i), problems);
    plan.adds.push_back(std::move(add));
  }
  absl::flat_hash_set<std::string> removed;
  for (size_t i = 0; i < command.to_remove.size(); ++i) {
    const std::string& slug = command.to_remove[i];
    if (std::string why = DescribeSlugProblem(slug); !why.empty()) {
      problems.push_back({RemovePath(i), why});
    } else if (!removed.insert(slug).second) {
      continue;  // listed again: removed once
    } else if (auto in_add = added.find(slug); in_add != added.end()) {
      problems.push_back({RemovePath(i), Description::Of(fmt::format("segment \"{}\" is also listed at ", slug),
                                                         FieldPath(Field::kSegmentsToAdd, in_add->second))});
    } else {
      plan.removes.push_back({i, slug});
    }
  }
  return problems;
}

constexpr size_t kMaxFilterSegments = 20;

void CheckFilterList(const std::vector<std::string>& slugs, Field field,
                     absl::flat_hash_map<std::string, FieldPath>& seen, std::vector<FieldViolation>& problems) {
  if (slugs.size() > kMaxFilterSegments) {
    problems.push_back({field, fmt::format("must list at most {} segments", kMaxFilterSegments)});
    return;
  }
  for (size_t i = 0; i < slugs.size(); ++i) {
    FieldPath path(field, i);
    if (std::string why = DescribeSlugProblem(slugs[i]); !why.empty()) {
      problems.push_back({path, why});
    } else if (auto [it, fresh] = seen.emplace(slugs[i], path); !fresh) {
      problems.push_back(
          {path, Description::Of(fmt::format("segment \"{}\" is already listed at ", slugs[i]), it->second)});
    }
  }
}

// Include and exclude lists: valid slugs, none twice across both.
void CheckFilterSlugs(const CreateSegmentCommand& command, std::vector<FieldViolation>& problems) {
  absl::flat_hash_map<std::string, FieldPath> seen;  // slug -> first path
  CheckFilterList(command.include_segments, Field::kIncludeSegments, seen, problems);
  CheckFilterList(command.exclude_segments, Field::kExcludeSegments, seen, problems);
}

absl::Status UnknownSlug(FieldPath field, const std::string& slug) {
  return FieldError(absl::StatusCode::kNotFound, field, fmt::format("segment \"{}\" does not exist", slug));
}

// The ids of the include and exclude segments, which must be live; they are
// protected against deletion until the transaction ends.
absl::Status ResolveFilters(Transaction& tx, const CreateSegmentCommand& command, AutoOptions& options) {
  options.include_ids.clear();
  options.exclude_ids.clear();
  if (command.include_segments.empty() && command.exclude_segments.empty()) return absl::OkStatus();
  std::vector<std::string> slugs = command.include_segments;
  slugs.insert(slugs.end(), command.exclude_segments.begin(), command.exclude_segments.end());
  ASSIGN_OR_RETURN(std::vector<Segment> live, tx.segments().LockLive(slugs));
  absl::flat_hash_map<std::string, SegmentId> id_of;
  for (const Segment& s : live) id_of[s.slug] = s.id;
  std::vector<FieldViolation> missing;
  auto resolve = [&](const std::vector<std::string>& list, Field field, std::vector<SegmentId>& ids) {
    for (size_t i = 0; i < list.size(); ++i) {
      auto it = id_of.find(list[i]);
      if (it == id_of.end()) {
        missing.push_back({FieldPath(field, i), fmt::format("segment \"{}\" does not exist", list[i])});
      } else {
        ids.push_back(it->second);
      }
    }
  };
  resolve(command.include_segments, Field::kIncludeSegments, options.include_ids);
  resolve(command.exclude_segments, Field::kExcludeSegments, options.exclude_ids);
  if (!missing.empty()) return ErrorWithViolations(absl::StatusCode::kNotFound, missing);
  return absl::OkStatus();
}

// How many times a create waits for a change under way of a segment named in
// its options before it goes ahead anyway.
constexpr int kMaxTaskWaits = 3;

// An unfinished task of one of the segments `options` names, locked.
absl::StatusOr<std::optional<SegmentTask>> UnfinishedTaskOf(Transaction& tx, const AutoOptions& options) {
  for (const std::vector<SegmentId>* ids : {&options.include_ids, &options.exclude_ids}) {
    for (SegmentId id : *ids) {
      ASSIGN_OR_RETURN(std::optional<SegmentTask> task, tx.segments().LockUnfinishedTask(id));
      if (task) return task;
    }
  }
  return std::nullopt;
}

// Records a task of `segment` (to the percentage it has), changed at `now`,
// and returns it. A call with an idempotency key answers once the task is
// done: its unit commits with the key pending on the task.
absl::StatusOr<SegmentTask> StartTask(Transaction& tx, const Segment& segment, SegmentTaskKind kind,
                                      int32_t from_hundredths, absl::Time now) {
  SegmentTask task;
  task.segment_id = segment.id;
  task.slug = segment.slug;
  task.kind = kind;
  task.from_hundredths = from_hundredths;
  task.to_hundredths = segment.percent_hundredths;
  task.at = now;
  task.actor = ActingAs::Current();
  ASSIGN_OR_RETURN(task.id, tx.segments().StartTask(task, now));
  if (KeyedCall* call = KeyedCall::Current()) call->AnswerAfterTask(task.id);
  return task;
}

// When this call repeats a keyed call that published a task and has not
// answered: that task, which this call finishes and answers from (its unit
// of work did nothing).
std::optional<int64_t> TaskOfRepeatedCall() {
  const KeyedCall* call = KeyedCall::Current();
  return call != nullptr ? call->pending_task() : std::nullopt;
}

// What a unit of work that found a change under way returns, so that it
// rolls back (a keyed call's claim with it); the caller finishes that
// change, then tries again. Never answered.
absl::Status ChangeUnderWay() { return absl::FailedPreconditionError("a change of a segment is under way"); }

}  // namespace

absl::StatusOr<std::pair<Segment, int64_t>> SegmentUseCases::GetSegment(const std::string& slug) {
  if (std::string why = DescribeSlugProblem(slug); !why.empty()) {
    return FieldError(absl::StatusCode::kInvalidArgument, Field::kSlug, why);
  }
  ASSIGN_OR_RETURN(auto found, store_.segments().FindWithMemberCount(slug, Now()));
  if (!found) return UnknownSlug(Field::kSlug, slug);
  return *found;
}

absl::StatusOr<Segment> SegmentUseCases::CreateSegment(const CreateSegmentCommand& command) {
  std::vector<FieldViolation> problems;
  if (std::string why = DescribeSlugProblem(command.slug); !why.empty()) problems.push_back({Field::kSlug, why});
  std::optional<int32_t> percent = 0;
  if (command.percent_to_fill) {
    percent = ParsePercent(*command.percent_to_fill);
    if (!percent) problems.push_back({Field::kPercentToFill, "must be between 0 and 100 with at most two decimals"});
  }
  if (std::string why = DescribeDescriptionProblem(command.description); !why.empty()) {
    problems.push_back({Field::kDescription, why});
  }
  CheckFilterSlugs(command, problems);
  std::optional<int64_t> auto_ttl_seconds;
  if (command.auto_seconds_to_be_in_segment) {
    const int64_t seconds = *command.auto_seconds_to_be_in_segment;
    if (seconds < 1 || seconds > kMaxTtlSeconds) {
      problems.push_back({Field::kAutoTtlSeconds, fmt::format("must be between 1 and {} (3650 days)", kMaxTtlSeconds)});
    }
    auto_ttl_seconds = seconds;
  }
  if (!problems.empty()) return ErrorWithViolations(absl::StatusCode::kInvalidArgument, problems);

  NewSegment fresh{command.slug, *percent, command.description, NewSalt(), {{}, {}, auto_ttl_seconds}};
  Segment created;
  std::optional<SegmentTask> fill;
  absl::Status status = absl::OkStatus();
  for (int attempt = 0;; ++attempt) {
    std::optional<SegmentTask> option_task;  // an unfinished task of a segment named in the options
    status = store_.InTransaction([&](Transaction& tx) -> absl::Status {
      fill.reset();
      option_task.reset();
      RETURN_IF_ERROR(ResolveFilters(tx, command, fresh.auto_options));
      // The options look at the named segments' members: a change of those
      // still under way finishes first.
      ASSIGN_OR_RETURN(option_task, UnfinishedTaskOf(tx, fresh.auto_options));
      if (option_task && attempt < kMaxTaskWaits) return ChangeUnderWay();
      const absl::Time now = Now();
      ASSIGN_OR_RETURN(created, tx.segments().Insert(fresh, now));
      if (created.percent_hundredths == 0) return absl::OkStatus();
      ASSIGN_OR_RETURN(fill, StartTask(tx, created, SegmentTaskKind::kAssign, 0, now));
      return absl::OkStatus();
    });
    if (const std::optional<int64_t> task = TaskOfRepeatedCall()) return CreatedBy(*task);
    if (!option_task || attempt >= kMaxTaskWaits) break;
    RETURN_IF_ERROR(tasks_.Finish(*option_task).status());
  }
  if (absl::IsAlreadyExists(status)) {
    return FieldError(absl::StatusCode::kAlreadyExists, Field::kSlug,
                      fmt::format("segment \"{}\" already exists", command.slug));
  }
  if (!status.ok()) return status;
  // The members exist, with their history, when the call returns.
  if (fill) RETURN_IF_ERROR(tasks_.Finish(*fill).status());
  return created;
}

absl::StatusOr<Segment> SegmentUseCases::CreatedBy(int64_t task_id) {
  ASSIGN_OR_RETURN(const SegmentTask task, tasks_.Finish(task_id));
  std::optional<Segment> segment;
  const KeyedCall::Suspend unkeyed;
  RETURN_IF_ERROR(store_.InTransaction([&](Transaction& tx) -> absl::Status {
    ASSIGN_OR_RETURN(segment, tx.segments().SegmentOfTask(task_id));
    return absl::OkStatus();
  }));
  if (!segment) return absl::InternalError(fmt::format("the segment of task {} does not exist", task_id));
  // As the call that published the task created it.
  segment->percent_hundredths = task.to_hundredths;
  return *segment;
}

absl::StatusOr<PercentChange> SegmentUseCases::UpdateSegmentPercent(const UpdateSegmentPercentCommand& command) {
  std::vector<FieldViolation> problems;
  if (std::string why = DescribeSlugProblem(command.slug); !why.empty()) problems.push_back({Field::kSlug, why});
  std::optional<int32_t> percent;
  if (!command.percent_to_fill) {
    problems.push_back({Field::kPercentToFill, "is required"});
  } else if (percent = ParsePercent(*command.percent_to_fill); !percent) {
    problems.push_back({Field::kPercentToFill, "must be between 0 and 100 with at most two decimals"});
  }
  if (!problems.empty()) return ErrorWithViolations(absl::StatusCode::kInvalidArgument, problems);

  std::optional<SegmentTask> change;
  for (;;) {
    std::optional<SegmentTask> earlier;  // the segment's previous change, still under way
    const absl::Status status = store_.InTransaction([&](Transaction& tx) -> absl::Status {
      change.reset();
      earlier.reset();
      // Hand changes and bulk calls naming the segment wait until it commits.
      ASSIGN_OR_RETURN(std::optional<Segment> locked, tx.segments().LockLiveExclusively(command.slug));
      if (!locked) return UnknownSlug(Field::kSlug, command.slug);
      Segment segment = *std::move(locked);
      // Changes of one segment follow each other: the previous one finishes
      // first, so that each task knows the percentage it starts from.
      ASSIGN_OR_RETURN(earlier, tx.segments().LockUnfinishedTask(segment.id));
      if (earlier) return ChangeUnderWay();
      const int32_t before = segment.percent_hundredths;
      if (*percent == before) return absl::OkStatus();
      RETURN_IF_ERROR(tx.segments().SetPercent(segment.id, *percent));
      segment.percent_hundredths = *percent;
      const absl::Time now = Now();
      const SegmentTaskKind kind = *percent > before ? SegmentTaskKind::kAssign : SegmentTaskKind::kUnassign;
      ASSIGN_OR_RETURN(change, StartTask(tx, segment, kind, before, now));
      return absl::OkStatus();
    });
    if (const std::optional<int64_t> task = TaskOfRepeatedCall()) {
      ASSIGN_OR_RETURN(change, tasks_.Finish(*task));
      break;
    }
    if (!earlier) {
      RETURN_IF_ERROR(status);
      break;
    }
    // Each round finishes a task another call started; a segment whose
    // percentage others keep changing still gets this change in the end.
    RETURN_IF_ERROR(tasks_.Finish(*earlier).status());
  }
  PercentChange result;
  if (!change) return result;  // the same percentage: a no-op
  ASSIGN_OR_RETURN(change, tasks_.Finish(*change));
  (change->kind == SegmentTaskKind::kAssign ? result.added : result.removed) = change->count;
  return result;
}

absl::StatusOr<int64_t> SegmentUseCases::DeleteSegment(const std::string& slug) {
  if (std::string why = DescribeSlugProblem(slug); !why.empty()) {
    return FieldError(absl::StatusCode::kInvalidArgument, Field::kSlug, why);
  }
  std::optional<SegmentTask> ending;
  const absl::Status status = store_.InTransaction([&](Transaction& tx) -> absl::Status {
    // Every user's evaluation that may still add to the segment commits
    // first; those after this one see it deleted.
    RETURN_IF_ERROR(tx.memberships().LockAutoAssignment(AutoAssignmentLock::kExclusive));
    ASSIGN_OR_RETURN(std::optional<Segment> locked, tx.segments().LockLiveExclusively(slug));
    if (!locked) return UnknownSlug(Field::kSlug, slug);
    const absl::Time now = Now();
    ASSIGN_OR_RETURN(std::optional<Segment> segment, tx.segments().MarkDeleted(slug, now));
    if (!segment) return UnknownSlug(Field::kSlug, slug);
    // Checked after the row is locked, so a segment created meanwhile that
    // names this one is seen.
    ASSIGN_OR_RETURN(std::vector<std::string> referring, tx.segments().Referring(segment->id));
    if (!referring.empty()) {
      return FieldError(absl::StatusCode::kFailedPrecondition, Field::kSlug,
                        fmt::format("segment \"{}\" is named in the automatic assignment options of {}; delete "
                                    "those first",
                                    slug, absl::StrJoin(referring, ", ", [](std::string* out, const std::string& s) {
                                      absl::StrAppend(out, "\"", s, "\"");
                                    })));
    }
    // A fill or percentage change under way stops here: its memberships end
    // with the others.
    ASSIGN_OR_RETURN(std::optional<SegmentTask> earlier, tx.segments().LockUnfinishedTask(segment->id));
    if (earlier) RETURN_IF_ERROR(tx.segments().FinishTask(earlier->id, now));
    ASSIGN_OR_RETURN(ending, StartTask(tx, *segment, SegmentTaskKind::kDelete, segment->percent_hundredths, now));
    return absl::OkStatus();
  });
  if (const std::optional<int64_t> task = TaskOfRepeatedCall()) {
    ASSIGN_OR_RETURN(ending, tasks_.Finish(*task));
    return ending->count;
  }
  if (!status.ok()) return status;
  ASSIGN_OR_RETURN(ending, tasks_.Finish(*ending));
  return ending->count;
}

absl::Status SegmentUseCases::UpdateUserSegments(const UpdateUserSegmentsCommand& command) {
  const absl::Time now = Now();
  PlannedChange plan;
  if (auto problems = ValidateShape(command, now, plan); !problems.empty()) {
    return ErrorWithViolations(absl::StatusCode::kInvalidArgument, problems);
  }
  // Nothing to add or remove: nothing happens, as in the original service.
  if (plan.adds.empty() && plan.removes.empty()) return absl::OkStatus();
  const UserId& user = command.user_id.value();

  UserSegmentsChange change{user, {}, {}, now};
  for (const PlannedAdd& add : plan.adds) change.adds.push_back({add.slug, add.expires_at});
  for (const PlannedRemove& remove : plan.removes) change.removes.push_back(remove.slug);
  UserSegmentsProblems found;
  // One statement: the database checks and applies the change together.
  RETURN_IF_ERROR(store_.InSingleCall([&](Transaction& tx) -> absl::Status {
    ASSIGN_OR_RETURN(found, tx.memberships().ChangeUserSegments(change));
    return absl::OkStatus();
  }));
  if (found.no_user) {
    return FieldError(absl::StatusCode::kNotFound, Field::kUserId, fmt::format("user \"{}\" does not exist", user));
  }
  // Unknown segments are reported before conflicts, each at its place in
  // the request. Removing a segment the user is not in changes nothing.
  std::vector<FieldViolation> missing;
  for (size_t i : found.missing_adds) {
    missing.push_back(
        {AddPath(i, Field::kSegmentSlug), fmt::format("segment \"{}\" does not exist", plan.adds[i].slug)});
  }
  for (size_t i : found.missing_removes) {
    const PlannedRemove& remove = plan.removes[i];
    missing.push_back({RemovePath(remove.index), fmt::format("segment \"{}\" does not exist", remove.slug)});
  }
  if (!missing.empty()) return ErrorWithViolations(absl::StatusCode::kNotFound, missing);
  if (!found.already_in.empty()) {
    std::vector<FieldViolation> conflicts;
    for (size_t i : found.already_in) {
      conflicts.push_back(
          {AddPath(i, Field::kSegmentSlug), fmt::format("user is already in segment \"{}\"", plan.adds[i].slug)});
    }
    return ErrorWithViolations(absl::StatusCode::kFailedPrecondition, conflicts);
  }
  return absl::OkStatus();
}

std::optional<absl::StatusOr<std::vector<std::string>>> SegmentUseCases::GetUserSegmentsAtOnce(
    const UserIdInput& user) {
  if (!user.ok()) return FieldError(absl::StatusCode::kInvalidArgument, Field::kUserId, user.problem());
  std::optional<std::vector<std::string>> slugs = store_.memberships().ActiveSegmentSlugsAtOnce(user.value(), Now());
  if (!slugs) return std::nullopt;
  std::sort(slugs->begin(), slugs->end());
  return *std::move(slugs);
}

absl::StatusOr<std::vector<std::string>> SegmentUseCases::GetUserSegments(const UserIdInput& user) {
  if (!user.ok()) return FieldError(absl::StatusCode::kInvalidArgument, Field::kUserId, user.problem());
  ASSIGN_OR_RETURN(std::vector<std::string> slugs, store_.memberships().ActiveSegmentSlugs(user.value(), Now()));
  std::sort(slugs.begin(), slugs.end());
  return slugs;
}

}  // namespace segments::domain
