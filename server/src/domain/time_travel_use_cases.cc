#include "domain/time_travel_use_cases.h"

#include <absl/container/flat_hash_set.h>
#include <absl/strings/str_cat.h>
#include <absl/strings/str_join.h>
#include <fmt/format.h>

#include <algorithm>

#include "common/status_macros.h"
#include "domain/bucketing.h"
#include "domain/page_token.h"
#include "domain/validation.h"

namespace segments::domain {
namespace {

// Page tokens of MembersAt: "a1", then the instant, the segment and the last
// user id of the page (domain/page_token.h).
constexpr std::string_view kTokenKind = "a1";
constexpr char kBadToken[] = "is not a token this service issued for this list";

struct MembersPosition {
  absl::Time at;
  SegmentId segment = 0;
  UserId after_user;
};

std::string EncodeToken(absl::Time at, SegmentId segment, const UserId& last) {
  return page_token::Encode(kTokenKind, {page_token::FromTime(at), absl::StrCat(segment), last.ToString()});
}

std::optional<MembersPosition> DecodeToken(const std::string& token) {
  std::optional<std::vector<std::string>> fields = page_token::Decode(token, kTokenKind, 3);
  if (!fields) return std::nullopt;
  std::optional<absl::Time> at = page_token::ToTime((*fields)[0]);
  std::optional<int64_t> segment = page_token::ToInt((*fields)[1]);
  std::optional<UserId> user = page_token::ToUser((*fields)[2]);
  if (!at || !segment || !user) return std::nullopt;
  return MembersPosition{*at, *segment, *user};
}

void CheckSlug(const std::string& slug, Field field, std::vector<FieldViolation>& problems) {
  if (std::string why = DescribeSlugProblem(slug); !why.empty()) problems.push_back({field, why});
}

absl::Time FloorTo(absl::Time t, absl::Duration step) {
  return absl::UnixEpoch() + absl::Floor(t - absl::UnixEpoch(), step);
}
absl::Time CeilTo(absl::Time t, absl::Duration step) {
  return absl::UnixEpoch() + absl::Ceil(t - absl::UnixEpoch(), step);
}

// For people: "2024-03-01 12:00:00 UTC" (microseconds when there are any).
std::string Readable(absl::Time t) {
  const bool whole = absl::ToUnixMicros(t) % 1'000'000 == 0;
  return absl::FormatTime(whole ? "%Y-%m-%d %H:%M:%S UTC" : "%Y-%m-%d %H:%M:%E6S UTC", t, absl::UTCTimeZone());
}

std::string Percent(int32_t hundredths) {
  std::string text = fmt::format("{}.{:02}", hundredths / 100, hundredths % 100);
  while (text.back() == '0') text.pop_back();
  if (text.back() == '.') text.pop_back();
  return text + "%";
}

std::string Until(const std::optional<absl::Time>& expires_at) {
  return expires_at ? "until " + Readable(*expires_at) + " (TTL)" : "permanent";
}

HistoryEvent AddEventOf(const MembershipAt& m) {
  HistoryEvent e{m.user_id, m.segment_id, m.slug, Operation::kAdd, m.reason, m.added_at};
  e.actor = m.actor;
  e.expires_at = m.expires_at;
  return e;
}

}  // namespace

absl::Time TimeTravelUseCases::InstantOf(const std::optional<absl::Time>& at, absl::Time now,
                                         std::vector<FieldViolation>& problems) {
  if (!at) return now;
  // Events are stored to the microsecond: those at or before `at` are those
  // at or before `at` rounded down to one.
  const absl::Time instant = TruncateToMicros(*at);
  if (instant > now) problems.push_back({Field::kAt, "must not be in the future"});
  return instant;
}

absl::StatusOr<std::optional<SegmentId>> TimeTravelUseCases::SegmentAt(const std::string& slug, absl::Time at) const {
  ASSIGN_OR_RETURN(std::vector<TimeTravelQueries::SegmentLife> lives, queries_.SegmentsOfSlug(slug));
  if (lives.empty()) {
    return FieldError(absl::StatusCode::kNotFound, Field::kSlug, fmt::format("no segment \"{}\" ever existed", slug));
  }
  // Segments of one slug never overlap: one is deleted (its members leave at
  // that instant) before the next is created.
  for (const auto& life : lives) {
    if (life.created_at <= at && (!life.deleted_at || *life.deleted_at > at)) return life.id;
  }
  return std::nullopt;
}

absl::StatusOr<UserSegmentsAt> TimeTravelUseCases::SegmentsOfUserAt(const UserSegmentsAtCommand& command) const {
  std::vector<FieldViolation> problems;
  if (!command.user_id.ok()) problems.push_back({Field::kUserId, command.user_id.problem()});
  const absl::Time at = InstantOf(command.at, Now(), problems);
  if (!problems.empty()) return ErrorWithViolations(absl::StatusCode::kInvalidArgument, problems);

  UserSegmentsAt out{at, {}};
  ASSIGN_OR_RETURN(out.memberships, queries_.OfUserAt(command.user_id.value(), at));
  std::sort(out.memberships.begin(), out.memberships.end(),
            [](const MembershipAt& a, const MembershipAt& b) { return a.slug < b.slug; });
  return out;
}

absl::StatusOr<MembersAtPage> TimeTravelUseCases::MembersAt(const SegmentAtCommand& command) const {
  std::vector<FieldViolation> problems;
  CheckSlug(command.slug, Field::kSlug, problems);
  if (command.page_size < 0 || command.page_size > kMaxPageSize) {
    problems.push_back({Field::kPageSize, fmt::format("must be 1..{}, or 0 for {}", kMaxPageSize, kDefaultPageSize)});
  }
  std::optional<MembersPosition> position;
  if (!command.page_token.empty()) {
    position = DecodeToken(command.page_token);
    if (!position) problems.push_back({Field::kPageToken, kBadToken});
  }
  // A later page answers about the instant of the first, which its token
  // names; a different `at` with it is a mistake.
  std::optional<absl::Time> asked = command.at;
  if (position) {
    if (asked && TruncateToMicros(*asked) != position->at) {
      problems.push_back({Field::kPageToken, "was issued for another `at`"});
    }
    asked = position->at;
  }
  const absl::Time at = InstantOf(asked, Now(), problems);
  if (!problems.empty()) return ErrorWithViolations(absl::StatusCode::kInvalidArgument, problems);

  ASSIGN_OR_RETURN(std::optional<SegmentId> segment, SegmentAt(command.slug, at));
  MembersAtPage page{at, {}, ""};
  if (!segment) return page;
  if (position && position->segment != *segment) {
    return FieldError(absl::StatusCode::kInvalidArgument, Field::kPageToken, kBadToken);
  }
  const int32_t size = command.page_size == 0 ? kDefaultPageSize : command.page_size;
  ASSIGN_OR_RETURN(
      page.members,
      queries_.MembersAt(*segment, at, position ? std::optional(position->after_user) : std::nullopt, size + 1));
  for (MembershipAt& m : page.members) m.slug = command.slug;
  if (page.members.size() > static_cast<size_t>(size)) {
    page.members.erase(page.members.begin() + size, page.members.end());
    page.next_page_token = EncodeToken(at, *segment, page.members.back().user_id);
  }
  return page;
}

absl::StatusOr<CountAt> TimeTravelUseCases::CountMembersAt(const SegmentAtCommand& command) const {
  std::vector<FieldViolation> problems;
  CheckSlug(command.slug, Field::kSlug, problems);
  const absl::Time at = InstantOf(command.at, Now(), problems);
  if (!problems.empty()) return ErrorWithViolations(absl::StatusCode::kInvalidArgument, problems);
  ASSIGN_OR_RETURN(std::optional<SegmentId> segment, SegmentAt(command.slug, at));
  CountAt out{at, 0};
  if (segment) {
    ASSIGN_OR_RETURN(out.count, queries_.CountAt(*segment, at));
  }
  return out;
}

absl::StatusOr<SizeHistory> TimeTravelUseCases::SizeOverTime(const SizeHistoryCommand& command) const {
  std::vector<FieldViolation> problems;
  CheckSlug(command.slug, Field::kSlug, problems);
  absl::Duration step = absl::Hours(24);
  if (command.step == "hour") {
    step = absl::Hours(1);
  } else if (!command.step.empty() && command.step != "day") {
    problems.push_back({Field::kStep, "must be \"hour\" or \"day\""});
  }
  const absl::Time now = Now();
  if (!command.from) problems.push_back({Field::kFrom, "is required"});
  // The range is whole steps: `from` rounded down, `to` up, and at most to
  // the end of the step that holds now.
  const absl::Time from = FloorTo(command.from.value_or(now), step);
  const absl::Time to = std::min(CeilTo(command.to.value_or(now), step), CeilTo(now, step));
  if (command.from && from >= to) {
    problems.push_back({Field::kTo, Description::Of("must be later than ", Field::kFrom, " and not in the future")});
  } else if (command.from && (to - from) / step > kMaxSteps) {
    problems.push_back({Field::kTo, fmt::format("the range holds more than {} steps", kMaxSteps)});
  }
  if (!problems.empty()) return ErrorWithViolations(absl::StatusCode::kInvalidArgument, problems);

  ASSIGN_OR_RETURN(std::vector<TimeTravelQueries::SegmentLife> lives, queries_.SegmentsOfSlug(command.slug));
  if (lives.empty()) {
    return FieldError(absl::StatusCode::kNotFound, Field::kSlug,
                      fmt::format("no segment \"{}\" ever existed", command.slug));
  }
  std::vector<SegmentId> ids;
  ids.reserve(lives.size());
  for (const auto& life : lives) ids.push_back(life.id);
  ASSIGN_OR_RETURN(SizeEvents events, queries_.SizeEventsOf(ids, from, to, step, now));

  SizeHistory out{events.members_at_from, {}};
  out.points.reserve(static_cast<size_t>((to - from) / step));
  int64_t size = events.members_at_from;
  auto next = events.steps.begin();
  for (absl::Time start = from; start < to; start += step) {
    SizePoint point{start, size, {}};
    if (next != events.steps.end() && next->first == start) {
      point.events = next->second;
      ++next;
    }
    for (size_t r = 0; r < EventCounts::kReasons; ++r) size += point.events.added[r] - point.events.removed[r];
    point.size = size;
    out.points.push_back(point);
  }
  return out;
}

absl::StatusOr<std::vector<Explanation>> TimeTravelUseCases::Explain(const ExplainCommand& command) const {
  std::vector<FieldViolation> problems;
  if (!command.user_id.ok()) problems.push_back({Field::kUserId, command.user_id.problem()});
  if (command.segments.size() > kMaxExplained) {
    problems.push_back({Field::kSegments, fmt::format("at most {} slugs", kMaxExplained)});
  }
  for (size_t i = 0; i < command.segments.size() && i < kMaxExplained; ++i) {
    if (std::string why = DescribeSlugProblem(command.segments[i]); !why.empty()) {
      problems.push_back({FieldPath(Field::kSegments, i), why});
    }
  }
  if (!problems.empty()) return ErrorWithViolations(absl::StatusCode::kInvalidArgument, problems);

  const UserId& user = command.user_id.value();
  const absl::Time now = Now();
  ASSIGN_OR_RETURN(std::vector<MembershipAt> held, queries_.OfUserAt(user, now));
  std::vector<std::string> slugs = command.segments;
  if (slugs.empty()) {
    for (const MembershipAt& m : held) slugs.push_back(m.slug);
  }
  std::sort(slugs.begin(), slugs.end());
  slugs.erase(std::unique(slugs.begin(), slugs.end()), slugs.end());

  std::vector<Explanation> out;
  for (const std::string& slug : slugs) {
    ASSIGN_OR_RETURN(std::optional<Segment> segment, store_.segments().Find(slug));
    if (!segment) {
      return FieldError(absl::StatusCode::kNotFound, Field::kSegments,
                        fmt::format("segment \"{}\" does not exist", slug));
    }
    ASSIGN_OR_RETURN(Explanation explained, ExplainOne(user, *segment, held, now));
    out.push_back(std::move(explained));
  }
  return out;
}

absl::StatusOr<Explanation> TimeTravelUseCases::ExplainOne(const UserId& user, const Segment& segment,
                                                           const std::vector<MembershipAt>& held,
                                                           absl::Time now) const {
  Explanation x;
  x.segment = segment.slug;
  x.percent_hundredths = segment.percent_hundredths;
  const bool automatic = segment.percent_hundredths > 0;
  if (automatic) {
    x.bucket = Bucket(segment.salt, user);
    x.threshold = segment.percent_hundredths;
  }
  const std::string share = automatic ? fmt::format("bucket {} against {} ({} of users)", *x.bucket, *x.threshold,
                                                    Percent(segment.percent_hundredths))
                                      : "";

  const auto membership =
      std::find_if(held.begin(), held.end(), [&](const MembershipAt& m) { return m.segment_id == segment.id; });
  if (membership != held.end()) {
    x.member = true;
    x.event = AddEventOf(*membership);
    x.expires_at = membership->expires_at;
    if (membership->reason == Reason::kAutoPercent) {
      x.why = "auto_percent";
      x.summary = fmt::format("Assigned automatically at {}: {}; {}.", Readable(membership->added_at), share,
                              Until(membership->expires_at));
    } else {
      x.why = "manual";
      x.summary = fmt::format("Added by hand by {} at {}; {}.", membership->actor, Readable(membership->added_at),
                              Until(membership->expires_at));
    }
    return x;
  }

  ASSIGN_OR_RETURN(x.event, queries_.LastEventAt(user, segment.id, now));
  ASSIGN_OR_RETURN(UserFacts facts, queries_.FactsOf(user, segment.id));
  const std::optional<HistoryEvent>& last = x.event;
  // An `add` not held now is one whose deadline has passed.
  const bool expired = last && (last->operation == Operation::kAdd || last->reason == Reason::kTtl);
  const std::string left =
      last ? fmt::format("{} at {} ({})", last->actor, Readable(last->at), ToString(last->reason)) : "";
  if (!facts.state) {
    x.why = "unknown_user";
    x.summary = "No user with this id is known (never created, or deleted).";
  } else if (expired) {
    x.why = "expired";
    x.expires_at = last->operation == Operation::kAdd ? last->expires_at : std::optional(last->at);
    x.summary = fmt::format("Was in until {}, when the TTL ended{}.", Readable(*x.expires_at),
                            automatic ? "; automatic assignment does not put them back" : "");
  } else if (automatic && facts.opted_out) {
    x.why = "opted_out";
    x.summary = fmt::format("Taken out by {}; automatic assignment does not put them back ({}).",
                            last ? left : Readable(facts.opted_out_at.value_or(now)), share);
  } else if (automatic && !InPercent(*x.bucket, segment.percent_hundredths)) {
    x.why = "outside_percent";
    x.summary = fmt::format("Not covered by the percentage: {}; only buckets below {} are in.", share, *x.threshold);
  } else if (automatic && facts.state == UserState::kExcluded) {
    x.why = "user_excluded";
    x.summary = fmt::format("Covered ({}), but the user's state is excluded: automatic assignment skips them.", share);
  } else {
    absl::flat_hash_set<std::string> in;
    for (const MembershipAt& m : held) in.insert(m.slug);
    if (automatic) {
      for (const std::string& s : segment.include_slugs) {
        if (!in.contains(s)) x.unmet_filters.push_back("include:" + s);
      }
      for (const std::string& s : segment.exclude_slugs) {
        if (in.contains(s)) x.unmet_filters.push_back("exclude:" + s);
      }
    }
    if (!x.unmet_filters.empty()) {
      x.why = "filtered";
      x.summary = fmt::format("Covered ({}), but the segment's options are not met now: {}.", share,
                              absl::StrJoin(x.unmet_filters, ", "));
    } else if (last) {
      x.why = "removed";
      x.summary = fmt::format("Removed by {}.", left);
    } else {
      x.why = "never_added";
      x.summary = automatic ? fmt::format(
                                  "Never in this segment, though covered ({}): the options did not hold when "
                                  "it was filled, or the user came later and was not assigned.",
                                  share)
                            : "Never in this segment.";
    }
  }
  return x;
}

}  // namespace segments::domain
