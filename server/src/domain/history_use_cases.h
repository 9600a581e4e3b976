// Use cases of the history: signed report links, the reports themselves, and
// a user's events page by page.
#pragma once

#include <absl/status/statusor.h>

#include <memory>
#include <string>
#include <vector>

#include "domain/clock.h"
#include "domain/commands.h"
#include "domain/history_report.h"
#include "domain/report_link.h"
#include "domain/repositories/unit_of_work.h"

namespace segments::domain {

struct HistoryPage {
  std::vector<HistoryEvent> events;  // newest first
  std::string next_page_token;       // empty on the last page
};

class HistoryUseCases {
 public:
  static constexpr int32_t kDefaultPageSize = 100;
  static constexpr int32_t kMaxPageSize = 1000;
  static constexpr int kMinReportYear = 1970;
  static constexpr int kMaxReportYear = 9999;

  HistoryUseCases(Store& store, const Clock& clock, const ReportLinkSigner& signer)
      : store_(store), clock_(clock), signer_(signer) {}

  // A signed link to a month's report. INVALID_ARGUMENT for a bad user id,
  // month or year, listing each.
  absl::StatusOr<ReportLink> CreateReportLink(const ReportLinkCommand& command) const;

  // NOT_FOUND if the link was tampered with or has expired. Cheap (no I/O):
  // checked before a download takes one of the limited report slots.
  absl::Status VerifyReportLink(const ReportLink& link) const;

  // The report behind a link. NOT_FOUND if the link was tampered with or has
  // expired; the report then is never read.
  absl::StatusOr<std::unique_ptr<CsvReport>> OpenReport(const ReportLink& link) const;

  // One page of a user's events, newest first. INVALID_ARGUMENT for a bad
  // user id, slug, range, page size or page token.
  absl::StatusOr<HistoryPage> ListUserHistory(const UserHistoryCommand& command) const;

 private:
  absl::Time Now() const { return TruncateToMicros(clock_.Now()); }

  Store& store_;
  const Clock& clock_;
  const ReportLinkSigner& signer_;
};

// Page tokens: the position of the last event of a page, opaque to clients.
std::string EncodePageToken(const HistoryPosition& position);
std::optional<HistoryPosition> DecodePageToken(std::string_view token);

}  // namespace segments::domain
