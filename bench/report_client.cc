// segments-report-client: downloads one history report straight from
// segments-server over gRPC (no gateway), for bench/run_report_bench.sh.
//
// Asks HistoryService.GetHistoryReportLink for a link, takes the signed query
// out of it and streams HistoryService.DownloadHistoryReport, counting
// chunks, bytes and lines without keeping them. Prints one line:
//
//   rows=832335 bytes=76385214 chunks=833 link_ms=1.9 first_chunk_ms=35.1 seconds=2.412 cpu_seconds=0.21
//
// rows = lines minus the header; seconds = from the download call to the end
// of the stream (the link request is link_ms, not included); cpu_seconds =
// this process's user+system CPU during the download.
//
// --print-sql=all|user prints the server's DECLARE statement for the report
// (from server/src/storage/pg_history_repository.h, so the runner EXPLAINs the very query
// the server runs) and exits.
#include <grpcpp/grpcpp.h>
#include <sys/resource.h>

#include <absl/strings/numbers.h>
#include <absl/strings/str_split.h>
#include <absl/synchronization/mutex.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>

#include "bearer_token.h"
#include "flags.h"
#include "segmentation/v1/history_service.grpc.pb.h"
#include "storage/pg_history_repository.h"

namespace {

namespace v1 = segmentation::v1;
using Clock = std::chrono::steady_clock;

constexpr char kUsage[] = R"(Usage: segments-report-client --target=HOST:PORT --year=Y --month=M [--user=UUID]
       segments-report-client --print-sql=all|user

Downloads one history report over gRPC and prints
rows=... bytes=... chunks=... link_ms=... first_chunk_ms=... seconds=... cpu_seconds=...
Exit status: 0 ok, 1 the call failed, 2 bad usage.
)";

double CpuSeconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

int Fail(const char* what, const grpc::Status& status) {
  std::fprintf(stderr, "segments-report-client: %s: %d %s\n", what, static_cast<int>(status.error_code()),
               status.error_message().c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  std::string target, user, print_sql;
  int year = 0, month = 0;
  segments::bench::Flags flags("segments-report-client", kUsage);
  flags.String("target", &target)
      .Int("year", &year)
      .Int("month", &month)
      .String("user", &user)
      .String("print-sql", &print_sql);
  if (!flags.Parse(argc, argv)) return 2;
  if (flags.Has("print-sql")) {
    if (print_sql != "all" && print_sql != "user") {
      std::fputs("segments-report-client: --print-sql wants all or user\n", stderr);
      return 2;
    }
    std::puts(segments::storage::ReportCursorSql(/*one_user=*/print_sql != "all").c_str());
    return 0;
  }
  if (target.empty() || !flags.Has("year") || !flags.Has("month")) {
    std::fputs(kUsage, stderr);
    return 2;
  }

  auto channel = grpc::CreateChannel(target, grpc::InsecureChannelCredentials());
  auto stub = v1::HistoryService::NewStub(channel);

  // The link: its query carries the fields of DownloadHistoryReportRequest.
  const auto t_link = Clock::now();
  v1::GetHistoryReportLinkRequest link_request;
  link_request.set_user_id(user);
  link_request.set_year(year);
  link_request.set_month(month);
  v1::GetHistoryReportLinkResponse link;
  {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    segments::bench::AddBearerToken(context);
    context.set_wait_for_ready(true);
    if (auto status = stub->GetHistoryReportLink(&context, link_request, &link); !status.ok()) {
      return Fail("GetHistoryReportLink", status);
    }
  }
  const double link_ms = Ms(Clock::now() - t_link);
  v1::DownloadHistoryReportRequest request;
  const std::string& url = link.report_link();
  const auto question = url.find('?');
  if (question == std::string::npos) {
    std::fprintf(stderr, "segments-report-client: link without a query: %s\n", url.c_str());
    return 1;
  }
  // (absl::string_view: Debian's abseil has its own, not std::string_view.)
  for (absl::string_view pair : absl::StrSplit(absl::string_view(url).substr(question + 1), '&')) {
    const auto eq = pair.find('=');
    const absl::string_view key = pair.substr(0, eq);
    const std::string value(eq == absl::string_view::npos ? absl::string_view() : pair.substr(eq + 1));
    bool ok = true;
    if (key == "userID") {
      request.set_user_id(value);
    } else if (key == "year") {
      int32_t v = 0;
      ok = absl::SimpleAtoi(value, &v);
      request.set_year(v);
    } else if (key == "month") {
      int32_t v = 0;
      ok = absl::SimpleAtoi(value, &v);
      request.set_month(v);
    } else if (key == "expires") {
      int64_t v = 0;
      ok = absl::SimpleAtoi(value, &v);
      request.set_expires(v);
    } else if (key == "key") {
      request.set_key(value);
    } else if (key == "signature") {
      request.set_signature(value);
    }
    if (!ok) {
      std::fprintf(stderr, "segments-report-client: bad link: %s\n", url.c_str());
      return 1;
    }
  }

  const double cpu0 = CpuSeconds();
  const auto t0 = Clock::now();
  grpc::ClientContext context;
  auto reader = stub->DownloadHistoryReport(&context, request);
  v1::DownloadHistoryReportResponse chunk;
  uint64_t bytes = 0, lines = 0, chunks = 0;
  double first_chunk_ms = 0;
  while (reader->Read(&chunk)) {
    if (chunks++ == 0) first_chunk_ms = Ms(Clock::now() - t0);
    const std::string& data = chunk.data();
    bytes += data.size();
    lines += static_cast<uint64_t>(std::count(data.begin(), data.end(), '\n'));
  }
  const grpc::Status status = reader->Finish();
  const double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  const double cpu = CpuSeconds() - cpu0;
  if (!status.ok()) return Fail("DownloadHistoryReport", status);
  std::printf("rows=%llu bytes=%llu chunks=%llu link_ms=%.1f first_chunk_ms=%.1f seconds=%.3f cpu_seconds=%.2f\n",
              static_cast<unsigned long long>(lines == 0 ? 0 : lines - 1), static_cast<unsigned long long>(bytes),
              static_cast<unsigned long long>(chunks), link_ms, first_chunk_ms, seconds, cpu);
  return 0;
}
