#include "common/log.h"

#include <absl/time/clock.h>
#include <absl/time/time.h>

#include <atomic>
#include <cstdio>

namespace segments::log {
namespace {
std::atomic<Level> min_level{Level::kInfo};

std::string_view Name(Level level) {
  switch (level) {
    case Level::kDebug:
      return "DEBUG";
    case Level::kInfo:
      return "INFO";
    case Level::kWarning:
      return "WARN";
    case Level::kError:
      return "ERROR";
  }
  return "?";
}
}  // namespace

void SetMinLevel(Level level) { min_level.store(level); }
bool Enabled(Level level) { return level >= min_level.load(std::memory_order_relaxed); }

void Write(Level level, std::string_view message) {
  std::string line = fmt::format(
      "{} {} {}\n", absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::Now(), absl::UTCTimeZone()), Name(level), message);
  std::fwrite(line.data(), 1, line.size(), stderr);  // one write per line keeps lines whole
}

}  // namespace segments::log
