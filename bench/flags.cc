#include "flags.h"

#include <cstdio>
#include <cstdlib>
#include <string_view>
#include <utility>

namespace segments::bench {

Flags& Flags::Add(const std::string& name, std::function<bool(const std::string&)> set) {
  setters_[name] = std::move(set);
  return *this;
}

Flags& Flags::String(const std::string& name, std::string* out, std::function<bool(const std::string&)> ok) {
  return Add(name, [out, ok = std::move(ok)](const std::string& value) {
    if (ok && !ok(value)) return false;
    *out = value;
    return true;
  });
}

Flags& Flags::Double(const std::string& name, double* out, std::function<bool(double)> ok) {
  return Add(name, [out, ok = std::move(ok)](const std::string& value) {
    double parsed = 0;
    if (!absl::SimpleAtod(value, &parsed) || (ok && !ok(parsed))) return false;
    *out = parsed;
    return true;
  });
}

Flags& Flags::Duration(const std::string& name, absl::Duration* out, std::function<bool(absl::Duration)> ok) {
  return Add(name, [out, ok = std::move(ok)](const std::string& value) {
    absl::Duration parsed;
    if (!absl::ParseDuration(value, &parsed) || (ok && !ok(parsed))) return false;
    *out = parsed;
    return true;
  });
}

bool Flags::Parse(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::fputs(usage_.c_str(), stdout);
      std::exit(0);
    }
    const auto eq = arg.find('=');
    if (arg.substr(0, 2) != "--" || eq == std::string_view::npos) {
      std::fprintf(stderr, "%s: expected --flag=value, got '%s' (see --help)\n", program_.c_str(), argv[i]);
      return false;
    }
    const std::string name(arg.substr(2, eq - 2));
    const std::string value(arg.substr(eq + 1));
    const auto setter = setters_.find(name);
    if (setter == setters_.end()) {
      std::fprintf(stderr, "%s: unknown flag --%s (see --help)\n", program_.c_str(), name.c_str());
      return false;
    }
    if (!setter->second(value)) {
      std::fprintf(stderr, "%s: bad value for --%s: '%s'\n", program_.c_str(), name.c_str(), value.c_str());
      return false;
    }
    given_.insert(name);
  }
  return true;
}

}  // namespace segments::bench
