#include "metrics/process_metrics.h"

#include <absl/strings/numbers.h>
#include <absl/strings/str_split.h>
#include <dirent.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#ifndef SEGMENTS_VERSION
#define SEGMENTS_VERSION "unknown"
#endif
#ifndef SEGMENTS_REVISION
#define SEGMENTS_REVISION "unknown"
#endif

namespace segments::metrics {
namespace {

std::string ReadFile(const char* path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// /proc/self/stat's fields after the command name, which may hold spaces:
// the third field of the line (state) comes first.
std::vector<std::string> StatFields() {
  const std::string stat = ReadFile("/proc/self/stat");
  const size_t name_end = stat.rfind(')');
  if (name_end == std::string::npos) return {};
  return absl::StrSplit(stat.substr(name_end + 2), ' ', absl::SkipEmpty());
}

double BootTimeSeconds() {
  for (absl::string_view line : absl::StrSplit(ReadFile("/proc/stat"), '\n')) {
    double seconds = 0;
    if (absl::ConsumePrefix(&line, "btime ") && absl::SimpleAtod(line, &seconds)) return seconds;
  }
  return 0;
}

int OpenFileDescriptors() {
  DIR* dir = ::opendir("/proc/self/fd");
  if (dir == nullptr) return 0;
  int count = 0;
  while (const dirent* entry = ::readdir(dir)) {
    if (entry->d_name[0] != '.') ++count;
  }
  ::closedir(dir);
  return count - 1;  // the directory being read
}

}  // namespace

Registry::Registration ExposeProcessAndBuild(Registry& registry) {
  registry
      .AddGaugeFamily("segments_build_info", "The server's version and source revision (always 1).",
                      {"version", "revision"})
      .With({SEGMENTS_VERSION, SEGMENTS_REVISION})
      .Set(1);
  Gauge& cpu = registry.AddCopiedCounter("process_cpu_seconds_total", "User and system CPU time spent, in seconds.");
  Gauge& resident = registry.AddGauge("process_resident_memory_bytes", "Resident memory size in bytes.");
  Gauge& virtual_memory = registry.AddGauge("process_virtual_memory_bytes", "Virtual memory size in bytes.");
  Gauge& start_time =
      registry.AddGauge("process_start_time_seconds", "Start time of the process since the Unix epoch, in seconds.");
  Gauge& open_fds = registry.AddGauge("process_open_fds", "Open file descriptors.");
  Gauge& max_fds = registry.AddGauge("process_max_fds", "Most file descriptors the process may open.");
  Gauge& threads = registry.AddGauge("process_threads", "Threads of the process.");

  const double ticks = static_cast<double>(::sysconf(_SC_CLK_TCK));
  const double page_size = static_cast<double>(::sysconf(_SC_PAGESIZE));
  const double boot_time = BootTimeSeconds();
  max_fds.Set(static_cast<double>(::sysconf(_SC_OPEN_MAX)));
  return registry.OnScrape([=, &cpu, &resident, &virtual_memory, &start_time, &open_fds, &threads] {
    // Fields counted from the state (field 3 of proc(5)): utime 14, stime
    // 15, num_threads 20, starttime 22, vsize 23, rss 24.
    const std::vector<std::string> fields = StatFields();
    auto field = [&](int number) {
      double value = 0;
      const size_t index = static_cast<size_t>(number - 3);
      if (index < fields.size()) (void)absl::SimpleAtod(fields[index], &value);
      return value;
    };
    if (fields.size() < 22) return;
    cpu.Set((field(14) + field(15)) / ticks);
    threads.Set(field(20));
    start_time.Set(boot_time + field(22) / ticks);
    virtual_memory.Set(field(23));
    resident.Set(field(24) * page_size);
    open_fds.Set(OpenFileDescriptors());
  });
}

}  // namespace segments::metrics
