// Debian's abseil has a string_view of its own, not std::string_view: these
// convert between the two where std strings meet absl's string functions.
#pragma once

#include <absl/strings/string_view.h>

#include <string_view>

namespace segments {

inline absl::string_view Absl(std::string_view text) { return {text.data(), text.size()}; }
inline std::string_view Std(absl::string_view text) { return {text.data(), text.size()}; }

}  // namespace segments
