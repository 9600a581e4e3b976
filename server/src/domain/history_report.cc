#include "domain/history_report.h"

#include <absl/strings/str_cat.h>
#include <absl/time/civil_time.h>

#include "common/status_macros.h"

namespace segments::domain {
namespace {

void AppendDigits(std::string& out, int64_t value, int width) {
  char buffer[8];
  for (int i = width - 1; i >= 0; --i) {
    buffer[i] = static_cast<char>('0' + value % 10);
    value /= 10;
  }
  out.append(buffer, static_cast<size_t>(width));
}

}  // namespace

void AppendUtcMicros(std::string& out, absl::Time t) {
  // Hand-rolled: absl::FormatTime costs more than the rest of a line.
  const absl::CivilSecond second = absl::ToCivilSecond(t, absl::UTCTimeZone());
  const int64_t micros = absl::ToInt64Microseconds(t - absl::FromCivil(second, absl::UTCTimeZone()));
  AppendDigits(out, second.year(), 4);
  out += '-';
  AppendDigits(out, second.month(), 2);
  out += '-';
  AppendDigits(out, second.day(), 2);
  out += 'T';
  AppendDigits(out, second.hour(), 2);
  out += ':';
  AppendDigits(out, second.minute(), 2);
  out += ':';
  AppendDigits(out, second.second(), 2);
  out += '.';
  AppendDigits(out, micros, 6);
  out += 'Z';
}

void AppendCsvLine(std::string& out, const HistoryEvent& event) {
  // Neither user ids (UUIDs or digits) nor slugs can hold ';', '"' or a
  // line break, so no field needs quoting.
  event.user_id.AppendTo(out);
  out += ';';
  out += event.slug;
  out += ';';
  out += ToString(event.operation);
  out += ';';
  AppendUtcMicros(out, event.at);
  out += '\n';
}

std::string ReportFileName(const ReportQuery& query) {
  std::string name = "segments-history-";
  AppendDigits(name, query.year, 4);
  name += '-';
  AppendDigits(name, query.month, 2);
  if (query.user) absl::StrAppend(&name, "-", *query.user);
  return name + ".csv";
}

absl::StatusOr<std::string> CsvReport::NextChunk() {
  if (done_) return std::string();
  ASSIGN_OR_RETURN(std::vector<HistoryEvent> events, cursor_->Next(kRowsPerChunk));
  std::string chunk;
  chunk.reserve(events.size() * 90 + kCsvHeader.size());
  if (!header_written_) {
    header_written_ = true;
    chunk += kCsvHeader;
  }
  if (events.size() < static_cast<size_t>(kRowsPerChunk)) {
    // A short batch is the last one: give the connection back at once.
    done_ = true;
    cursor_.reset();
  }
  for (const HistoryEvent& event : events) AppendCsvLine(chunk, event);
  return chunk;
}

}  // namespace segments::domain
