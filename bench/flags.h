// The bench clients' command line: --name=value flags only. Each client
// registers its flags with where their values go, then calls Parse once:
//
//   segments::bench::Flags flags("segments-auto-client", kUsage);
//   flags.String("target", &target).Duration("deadline", &deadline);
//   if (!flags.Parse(argc, argv)) return 2;
//
// Parse prints the usage to stdout and exits 0 on --help or -h; it reports an
// argument that is not --name=value, an unknown name or a bad value as
// "PROGRAM: ..." on stderr and returns false. Defaults are whatever the
// variables hold before Parse.
#pragma once

#include <absl/strings/numbers.h>
#include <absl/time/time.h>

#include <functional>
#include <map>
#include <set>
#include <string>
#include <type_traits>

namespace segments::bench {

class Flags {
 public:
  Flags(std::string program, std::string usage) : program_(std::move(program)), usage_(std::move(usage)) {}

  // --name=VALUE: `set` takes VALUE, false if it is bad.
  Flags& Add(const std::string& name, std::function<bool(const std::string&)> set);

  // Common kinds; `ok`, if given, must hold for the parsed value.
  Flags& String(const std::string& name, std::string* out, std::function<bool(const std::string&)> ok = nullptr);
  Flags& Double(const std::string& name, double* out, std::function<bool(double)> ok = nullptr);
  Flags& Duration(const std::string& name, absl::Duration* out, std::function<bool(absl::Duration)> ok = nullptr);
  template <typename T>
  Flags& Int(const std::string& name, T* out, std::function<bool(std::type_identity_t<T>)> ok = nullptr) {
    return Add(name, [out, ok = std::move(ok)](const std::string& value) {
      T parsed{};
      if (!absl::SimpleAtoi(value, &parsed) || (ok && !ok(parsed))) return false;
      *out = parsed;
      return true;
    });
  }

  // Parses argv[1..argc): false, after saying why on stderr, on the first
  // bad argument.
  bool Parse(int argc, char** argv);
  // Whether --name was given.
  bool Has(const std::string& name) const { return given_.count(name) > 0; }

 private:
  std::string program_;
  std::string usage_;
  std::map<std::string, std::function<bool(const std::string&)>> setters_;
  std::set<std::string> given_;
};

}  // namespace segments::bench
