// The history report as CSV (contract §4): a header line, then one line per
// event, `;`-separated, ordered by time, user and segment:
//
//   user_id;segment;operation;datetime
//   0b7f...;AVITO_VOICE_MESSAGES;add;2023-08-29T10:13:42.000000Z
//
// Times are UTC with microseconds, the precision they are stored with.
#pragma once

#include <absl/status/statusor.h>
#include <absl/time/time.h>

#include <memory>
#include <string>

#include "domain/report_link.h"
#include "domain/repositories/unit_of_work.h"

namespace segments::domain {

inline constexpr std::string_view kCsvHeader = "user_id;segment;operation;datetime\n";
inline constexpr std::string_view kCsvContentType = "text/csv; charset=utf-8";

// "2023-08-29T10:13:42.123456Z"; `t` must lie in years 0..9999.
void AppendUtcMicros(std::string& out, absl::Time t);

// One CSV line, with its newline.
void AppendCsvLine(std::string& out, const HistoryEvent& event);

// "segments-history-2023-08.csv", with "-<user id>" before ".csv" for one user.
std::string ReportFileName(const ReportQuery& query);

// Reads a report from a cursor, a batch of lines at a time, so memory stays
// the same for ten events or ten million.
class CsvReport {
 public:
  // Lines per chunk: about 85 bytes each, so chunks of some 85 KB.
  static constexpr int kRowsPerChunk = 1000;

  CsvReport(std::unique_ptr<HistoryCursor> cursor, std::string file_name)
      : cursor_(std::move(cursor)), file_name_(std::move(file_name)) {}

  const std::string& file_name() const { return file_name_; }

  // The next piece of the file: the header and the first lines, then more
  // lines; an empty string once the file is complete.
  absl::StatusOr<std::string> NextChunk();

 private:
  std::unique_ptr<HistoryCursor> cursor_;
  std::string file_name_;
  bool header_written_ = false;
  bool done_ = false;
};

}  // namespace segments::domain
