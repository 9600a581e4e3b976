// Leveled logging to stderr: one line per event, either text
//   2026-12-05T10:00:00.123Z WARN slow call method=/pkg.Service/Method request_id=abc
// or one JSON object per line (--log-format=json)
//   {"time":"2026-12-05T10:00:00.123Z","level":"warn","message":"slow call","method":"...","request_id":"abc"}
// An event's fields follow its message; a LogContext adds fields to every
// line its thread writes while it is open (the request id of the call
// being served).
#pragma once

#include <fmt/format.h>

#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

namespace segments::log {

enum class Level { kDebug, kInfo, kWarning, kError };
enum class Format { kText, kJson };

struct Field {
  std::string_view key;  // a plain identifier: request_id, method, code
  std::string value;
};

// Lines below this level are dropped. Default: kInfo.
void SetMinLevel(Level level);
bool Enabled(Level level);
// Default: kText.
void SetFormat(Format format);

void Write(Level level, std::string_view message, std::initializer_list<Field> fields = {});

// The line as it would be written (without the newline), for tests.
std::string FormatLine(Format format, std::string_view time, Level level, std::string_view message,
                       const std::vector<Field>& fields);

// While open, lines written on this thread carry the fields that
// `describe(subject, fields)` appends. It is called only when a line is
// written, so an open context costs nothing on paths that do not log.
// Contexts nest; inner fields last. `subject` must outlive the context.
class LogContext {
 public:
  using Describe = void (*)(const void* subject, std::vector<Field>& fields);
  LogContext(Describe describe, const void* subject);
  ~LogContext();
  LogContext(const LogContext&) = delete;
  LogContext& operator=(const LogContext&) = delete;

 private:
  friend void Write(Level, std::string_view, std::initializer_list<Field>);
  const Describe describe_;
  const void* const subject_;
  LogContext* const outer_;
};

template <typename... Args>
void Debug(fmt::format_string<Args...> format, Args&&... args) {
  if (Enabled(Level::kDebug)) Write(Level::kDebug, fmt::format(format, std::forward<Args>(args)...));
}
template <typename... Args>
void Info(fmt::format_string<Args...> format, Args&&... args) {
  if (Enabled(Level::kInfo)) Write(Level::kInfo, fmt::format(format, std::forward<Args>(args)...));
}
template <typename... Args>
void Warning(fmt::format_string<Args...> format, Args&&... args) {
  if (Enabled(Level::kWarning)) Write(Level::kWarning, fmt::format(format, std::forward<Args>(args)...));
}
template <typename... Args>
void Error(fmt::format_string<Args...> format, Args&&... args) {
  if (Enabled(Level::kError)) Write(Level::kError, fmt::format(format, std::forward<Args>(args)...));
}

}  // namespace segments::log
