// segments-table-memory: the read model's MembershipTable
// (server/src/readmodel/membership_table.h) at the issue's scale, in one
// process and no database: memory per membership, build time, reads per
// second, and the time of a set-wise fill and deletion of one segment.
//
// Builds --users users (random v4 UUIDs, --integer-share of them integer
// ids) with --per-user distinct segments each out of --segments, a share
// --expiring of the memberships with a deadline (up to 30 days ahead), the
// rest without. Memory is the growth of the resident set (/proc/self/statm)
// over the build, divided by the memberships, beside the table's own
// MemoryBytes(). The ids are made from the user's index, so nothing but the
// table grows during the build.
//
// Prints one line per measure, "name value unit".
#include <absl/time/clock.h>
#include <absl/time/time.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include "flags.h"
#include "readmodel/membership_table.h"

namespace {

using segments::domain::UserId;
using segments::readmodel::HeldMembership;
using segments::readmodel::MembershipTable;
using Clock = std::chrono::steady_clock;

constexpr char kUsage[] = R"(Usage: segments-table-memory [--users=2000000] [--per-user=5] [--segments=100]
                            [--expiring=0.2] [--integer-share=0.05] [--load=replace|put]
                            [--reserve=1] [--reads=5000000] [--fill=1000000]

--load=replace  one Replace per user (what a load whose rows come grouped by user does)
--load=put      one Put per membership
--reserve=1     Reserve(users) before the build (0: let the tables grow)
--fill          users of the set-wise fill of a new segment timed after the build (0: none)
)";

// SplitMix64: a good 64-bit value from any index.
uint64_t Mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9;
  x = (x ^ (x >> 27)) * 0x94d049bb133111eb;
  return x ^ (x >> 31);
}

// User `i`: an integer id for the first `integers` indexes, else a v4 UUID.
UserId User(uint64_t i, uint64_t integers) {
  const uint64_t a = Mix(2 * i), b = Mix(2 * i + 1);
  char text[40];
  if (i < integers) {
    std::snprintf(text, sizeof text, "%llu", static_cast<unsigned long long>(a >> 1));
  } else {
    std::snprintf(text, sizeof text, "%08x-%04x-4%03x-%04x-%012llx", static_cast<unsigned>(a >> 32),
                  static_cast<unsigned>(a >> 16 & 0xffff), static_cast<unsigned>(a & 0xfff),
                  static_cast<unsigned>(0x8000 | (b >> 48 & 0x3fff)),
                  static_cast<unsigned long long>(b & 0xffffffffffff));
  }
  return UserId::Parse(text).value();
}

size_t ResidentBytes() {
  std::ifstream statm("/proc/self/statm");
  size_t size = 0, resident = 0;
  statm >> size >> resident;
  return resident * static_cast<size_t>(sysconf(_SC_PAGESIZE));
}

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

}  // namespace

int main(int argc, char** argv) {
  uint64_t users = 2'000'000, per_user = 5, segments = 100, reads = 5'000'000, fill = 1'000'000;
  double expiring = 0.2, integer_share = 0.05;
  std::string load = "replace";
  int reserve = 1;
  segments::bench::Flags flags("segments-table-memory", kUsage);
  flags.Int("users", &users)
      .Int("per-user", &per_user, [](uint64_t n) { return n >= 1 && n <= 64; })
      .Int("segments", &segments, [](uint64_t n) { return n >= 1 && n < (uint64_t{1} << 31); })
      .Double("expiring", &expiring, [](double share) { return share >= 0 && share <= 1; })
      .Double("integer-share", &integer_share, [](double share) { return share >= 0 && share <= 1; })
      .String("load", &load, [](const std::string& v) { return v == "replace" || v == "put"; })
      .Int("reserve", &reserve)
      .Int("reads", &reads)
      .Int("fill", &fill);
  if (!flags.Parse(argc, argv)) return 2;
  if (per_user > segments) {
    std::fputs("segments-table-memory: --per-user must be at most --segments\n", stderr);
    return 2;
  }
  const auto integers = static_cast<uint64_t>(static_cast<double>(users) * integer_share);
  const int64_t now_us = absl::ToUnixMicros(absl::Now());

  MembershipTable table;
  const size_t rss_before = ResidentBytes();
  const Clock::time_point build_start = Clock::now();
  if (reserve != 0) table.Reserve(users - integers, integers);
  std::vector<HeldMembership> memberships;
  size_t with_deadline = 0;
  for (uint64_t i = 0; i < users; ++i) {
    const UserId user = User(i, integers);
    memberships.clear();
    // Distinct segments: consecutive from a random one, wrapping.
    const uint64_t r = Mix(~i);
    for (uint64_t k = 0; k < per_user; ++k) {
      HeldMembership m{.segment_id = static_cast<uint32_t>(1 + (r + k) % segments)};
      const uint64_t coin = Mix(r + k);
      if (static_cast<double>(coin % 1'000'000) < expiring * 1'000'000) {
        m.expires_us = now_us + static_cast<int64_t>(coin >> 20) % (30LL * 86'400'000'000);
        ++with_deadline;
      }
      memberships.push_back(m);
    }
    if (load == "put") {
      for (const HeldMembership& m : memberships) table.Put(user, m);
    } else {
      table.Replace(user, memberships);
    }
  }
  const double build_seconds = Seconds(Clock::now() - build_start);
  const size_t rss_after = ResidentBytes();
  const size_t held = table.memberships();

  std::printf("users %zu\n", table.users());
  std::printf("memberships %zu\n", held);
  std::printf("memberships_with_deadline %zu\n", with_deadline);
  std::printf("build_seconds %.2f s\n", build_seconds);
  std::printf("rss_growth %.1f MiB\n", static_cast<double>(rss_after - rss_before) / (1 << 20));
  std::printf("rss_growth_per_membership %.1f bytes\n",
              static_cast<double>(rss_after - rss_before) / static_cast<double>(held));
  std::printf("memory_bytes_per_membership %.1f bytes\n",
              static_cast<double>(table.MemoryBytes()) / static_cast<double>(held));

  // Reads: random users of the table, single-threaded.
  if (reads > 0) {
    std::vector<UserId> sample;
    constexpr uint64_t kSample = 1 << 20;
    sample.reserve(kSample);
    for (uint64_t i = 0; i < kSample; ++i) sample.push_back(User(Mix(i ^ 0x5eed) % users, integers));
    std::vector<uint32_t> out;
    size_t found = 0;
    const Clock::time_point start = Clock::now();
    for (uint64_t i = 0; i < reads; ++i) {
      out.clear();
      table.LiveSegments(sample[i % kSample], now_us, out);
      found += out.size();
    }
    const double seconds = Seconds(Clock::now() - start);
    std::printf("live_segments_per_second %.0f\n", static_cast<double>(reads) / seconds);
    std::printf("live_segments_ns %.0f ns\n", seconds * 1e9 / static_cast<double>(reads));
    std::printf("live_segments_found_per_read %.2f\n", static_cast<double>(found) / static_cast<double>(reads));
  }

  // A set-wise fill of a new segment over `fill` users, then its deletion.
  if (fill > 0) {
    const auto segment = static_cast<uint32_t>(segments + 1);
    std::vector<std::pair<UserId, HeldMembership>> rows;
    rows.reserve(fill);
    for (uint64_t i = 0; i < fill; ++i)
      rows.emplace_back(User(i % users, integers), HeldMembership{.segment_id = segment});
    const uint32_t segment_ids[] = {segment};
    Clock::time_point start = Clock::now();
    table.ReplaceSegments(segment_ids, std::move(rows));
    std::printf("fill_seconds %.2f s (%zu rows)\n", Seconds(Clock::now() - start), static_cast<size_t>(fill));
    start = Clock::now();
    table.ReplaceSegments(segment_ids, {});
    std::printf("delete_segment_seconds %.2f s\n", Seconds(Clock::now() - start));
    if (table.memberships() != held) {
      std::fprintf(stderr, "segments-table-memory: %zu memberships after the fill and deletion, %zu before\n",
                   table.memberships(), held);
      return 1;
    }
  }
  return 0;
}
