// Minimal leveled logging to stderr: one line per event, UTC timestamp first.
#pragma once

#include <fmt/format.h>

#include <string_view>

namespace segments::log {

enum class Level { kDebug, kInfo, kWarning, kError };

// Lines below this level are dropped. Default: kInfo.
void SetMinLevel(Level level);
bool Enabled(Level level);
void Write(Level level, std::string_view message);

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
