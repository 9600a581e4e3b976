#include "domain/listing_use_cases.h"

#include <absl/strings/str_cat.h>
#include <fmt/format.h>

#include "common/status_macros.h"
#include "domain/errors.h"
#include "domain/page_token.h"
#include "domain/validation.h"

namespace segments::domain {
namespace {

// Page tokens (domain/page_token.h): "s1" and the last slug of the page
// (segments), "m1", the segment and the last user id (members).
constexpr std::string_view kSegmentTokenKind = "s1";
constexpr std::string_view kMemberTokenKind = "m1";
constexpr char kBadToken[] = "is not a token this service issued for this list";

struct MemberPosition {
  SegmentId segment_id;
  UserId after_user;
};

std::optional<MemberPosition> DecodeMemberToken(const std::string& token) {
  std::optional<std::vector<std::string>> fields = page_token::Decode(token, kMemberTokenKind, 2);
  if (!fields) return std::nullopt;
  std::optional<int64_t> segment_id = page_token::ToInt((*fields)[0]);
  std::optional<UserId> user = page_token::ToUser((*fields)[1]);
  if (!segment_id || !user) return std::nullopt;
  return MemberPosition{*segment_id, *user};
}

void CheckPageSize(int32_t size, int32_t max, int32_t fallback, std::vector<FieldViolation>& problems) {
  if (size < 0 || size > max) {
    problems.push_back({Field::kPageSize, fmt::format("must be 1..{}, or 0 for {}", max, fallback)});
  }
}

}  // namespace

absl::StatusOr<SegmentPage> ListingUseCases::ListSegments(const ListSegmentsCommand& command) {
  std::vector<FieldViolation> problems;
  CheckPageSize(command.page_size, kMaxSegmentPageSize, kDefaultSegmentPageSize, problems);
  std::string after;
  if (!command.page_token.empty()) {
    std::optional<std::vector<std::string>> fields = page_token::Decode(command.page_token, kSegmentTokenKind, 1);
    if (!fields || !IsValidSlug((*fields)[0])) {
      problems.push_back({Field::kPageToken, kBadToken});
    } else {
      after = std::move((*fields)[0]);
    }
  }
  if (!problems.empty()) return ErrorWithViolations(absl::StatusCode::kInvalidArgument, problems);
  const int32_t size = command.page_size == 0 ? kDefaultSegmentPageSize : command.page_size;
  // One more tells whether another page follows.
  ASSIGN_OR_RETURN(std::vector<Segment> segments, store_.segments().List(after, size + 1));
  SegmentPage page{std::move(segments), ""};
  if (page.segments.size() > static_cast<size_t>(size)) {
    page.segments.resize(static_cast<size_t>(size));
    page.next_page_token = page_token::Encode(kSegmentTokenKind, {page.segments.back().slug});
  }
  return page;
}

absl::StatusOr<MemberPage> ListingUseCases::ListSegmentMembers(const ListSegmentMembersCommand& command) {
  std::vector<FieldViolation> problems;
  if (std::string why = DescribeSlugProblem(command.slug); !why.empty()) problems.push_back({Field::kSlug, why});
  CheckPageSize(command.page_size, kMaxMemberPageSize, kDefaultMemberPageSize, problems);
  std::optional<MemberPosition> position;
  if (!command.page_token.empty()) {
    position = DecodeMemberToken(command.page_token);
    if (!position) problems.push_back({Field::kPageToken, kBadToken});
  }
  if (!problems.empty()) return ErrorWithViolations(absl::StatusCode::kInvalidArgument, problems);

  ASSIGN_OR_RETURN(std::optional<Segment> found, store_.segments().Find(command.slug));
  if (!found) {
    return FieldError(absl::StatusCode::kNotFound, Field::kSlug,
                      fmt::format("segment \"{}\" does not exist", command.slug));
  }
  const SegmentId segment = found->id;
  // A slug deleted and created again is another segment: its order of users
  // is the same, but its members are not, so an old token is refused.
  if (position && position->segment_id != segment) {
    return FieldError(absl::StatusCode::kInvalidArgument, Field::kPageToken,
                      fmt::format("belongs to an earlier segment \"{}\", since deleted", command.slug));
  }
  const int32_t size = command.page_size == 0 ? kDefaultMemberPageSize : command.page_size;
  ASSIGN_OR_RETURN(std::vector<SegmentMember> members,
                   store_.memberships().Members(segment, position ? std::optional(position->after_user) : std::nullopt,
                                                size + 1, Now()));
  MemberPage page{std::move(members), ""};
  if (page.members.size() > static_cast<size_t>(size)) {
    page.members.erase(page.members.begin() + size, page.members.end());
    page.next_page_token =
        page_token::Encode(kMemberTokenKind, {absl::StrCat(segment), page.members.back().user_id.ToString()});
  }
  return page;
}

}  // namespace segments::domain
