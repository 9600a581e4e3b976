#include "domain/history_use_cases.h"

#include <absl/strings/str_cat.h>
#include <fmt/format.h>

#include "common/status_macros.h"
#include "domain/errors.h"
#include "domain/page_token.h"
#include "domain/validation.h"

namespace segments::domain {
namespace {

// Page tokens of a user's history: "h1", the instant and the id of the page's
// last event (domain/page_token.h).
constexpr std::string_view kPageTokenKind = "h1";

absl::Time CeilToMicros(absl::Time t) {
  return absl::UnixEpoch() + absl::Ceil(t - absl::UnixEpoch(), absl::Microseconds(1));
}

void CheckReportMonth(int32_t month, int32_t year, std::vector<FieldViolation>& violations) {
  if (month < 1 || month > 12) violations.push_back({Field::kMonth, "must be 1..12"});
  if (year < HistoryUseCases::kMinReportYear || year > HistoryUseCases::kMaxReportYear) {
    violations.push_back({Field::kYear, fmt::format("must be {}..{}", HistoryUseCases::kMinReportYear,
                                                    HistoryUseCases::kMaxReportYear)});
  }
}

}  // namespace

std::string EncodePageToken(const HistoryPosition& position) {
  return page_token::Encode(kPageTokenKind, {page_token::FromTime(position.at), absl::StrCat(position.id)});
}

std::optional<HistoryPosition> DecodePageToken(std::string_view token) {
  std::optional<std::vector<std::string>> fields = page_token::Decode(token, kPageTokenKind, 2);
  if (!fields) return std::nullopt;
  std::optional<absl::Time> at = page_token::ToTime((*fields)[0]);
  std::optional<int64_t> id = page_token::ToInt((*fields)[1]);
  if (!at || !id || *id <= 0) return std::nullopt;
  return HistoryPosition{*at, *id};
}

absl::StatusOr<ReportLink> HistoryUseCases::CreateReportLink(const ReportLinkCommand& command) const {
  std::vector<FieldViolation> violations;
  ReportQuery query{std::nullopt, command.year, command.month};
  if (!command.user_id.empty()) {
    if (command.user_id.ok()) {
      query.user = command.user_id.value().ToString();
    } else {
      violations.push_back({Field::kUserId, command.user_id.problem()});
    }
  }
  CheckReportMonth(command.month, command.year, violations);
  if (!violations.empty()) return ErrorWithViolations(absl::StatusCode::kInvalidArgument, violations);
  return signer_.Sign(query, Now());
}

absl::Status HistoryUseCases::VerifyReportLink(const ReportLink& link) const { return signer_.Verify(link, Now()); }

absl::StatusOr<std::unique_ptr<CsvReport>> HistoryUseCases::OpenReport(const ReportLink& link) const {
  RETURN_IF_ERROR(VerifyReportLink(link));
  // A valid signature vouches for the fields, but a leaked key must not be
  // able to crash the server either.
  std::vector<FieldViolation> violations;
  CheckReportMonth(link.query.month, link.query.year, violations);
  std::optional<UserId> user;
  if (link.query.user) {
    if (auto parsed = UserId::Parse(*link.query.user); parsed.ok()) {
      user = *parsed;
    } else {
      violations.push_back({Field::kUserId, std::string(parsed.status().message())});
    }
  }
  if (!violations.empty()) return ErrorWithViolations(absl::StatusCode::kInvalidArgument, violations);

  ASSIGN_OR_RETURN(std::unique_ptr<HistoryCursor> cursor,
                   store_.history().OpenReport(user, link.query.From(), link.query.To()));
  return std::make_unique<CsvReport>(std::move(cursor), ReportFileName(link.query));
}

absl::StatusOr<HistoryPage> HistoryUseCases::ListUserHistory(const UserHistoryCommand& command) const {
  std::vector<FieldViolation> violations;
  std::optional<std::string> slug;
  std::optional<absl::Time> from, to;
  std::optional<HistoryPosition> after;
  if (!command.user_id.ok()) violations.push_back({Field::kUserId, command.user_id.problem()});
  if (!command.segment.empty()) {
    if (std::string problem = DescribeSlugProblem(command.segment); !problem.empty()) {
      violations.push_back({Field::kSegment, problem});
    }
    slug = command.segment;
  }
  // Stored times have microseconds, requests may have nanoseconds: an event
  // is at or after `from` (before `to`) iff it is at or after (before) that
  // instant rounded up to a microsecond.
  if (command.from) from = CeilToMicros(*command.from);
  if (command.to) to = CeilToMicros(*command.to);
  if (command.from && command.to && *command.from >= *command.to) {
    violations.push_back({Field::kTo, Description::Of("must be later than ", Field::kFrom)});
  }
  if (command.page_size < 0 || command.page_size > kMaxPageSize) {
    violations.push_back({Field::kPageSize, fmt::format("must be 1..{}, or 0 for {}", kMaxPageSize, kDefaultPageSize)});
  }
  if (!command.page_token.empty()) {
    after = DecodePageToken(command.page_token);
    if (!after) violations.push_back({Field::kPageToken, "is not a token this service issued"});
  }
  if (!violations.empty()) return ErrorWithViolations(absl::StatusCode::kInvalidArgument, violations);

  const int32_t page_size = command.page_size == 0 ? kDefaultPageSize : command.page_size;
  // One more tells whether another page follows.
  const UserHistoryQuery query{command.user_id.value(), slug, from, to, after, page_size + 1};
  HistoryPage page;
  ASSIGN_OR_RETURN(page.events, store_.history().OfUser(query));
  if (page.events.size() > static_cast<size_t>(page_size)) {
    page.events.erase(page.events.begin() + page_size, page.events.end());
    page.next_page_token = EncodePageToken({page.events.back().at, page.events.back().id});
  }
  return page;
}

}  // namespace segments::domain
