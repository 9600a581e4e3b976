// segments-auto-client: one SegmentService call against segments-server,
// timed, for bench/run_auto_bench.sh (automatic assignment and bulk
// membership at 1M/10M users).
//
//   --op=create --slug=S [--percent=P]   CreateSegment (no --percent: manual)
//   --op=update-percent --slug=S --percent=P
//   --op=bulk-add --slug=S --ids-file=F  AddSegmentToUsers, one user id a line
//   --op=delete --slug=S                 DeleteSegment
//   --op=get --slug=S                    GetSegment
//   --op=wait --slug=S                   GetSegment until the server answers
//                                        OK or NOT_FOUND (it reached the
//                                        database), up to --deadline
//
// Connects first (not timed), then times the one call and prints one line:
//
//   op=create seconds=3.214 added=... removed=... member_count=... request_bytes=...
//     start_unix_us=... end_unix_us=...
//
// (fields that do not apply are 0; removed is DeleteSegment's
// memberships_ended; start/end: the call's wall-clock bounds, for matching
// other clients' logs). --idempotency-key=K sends K as the call's
// idempotency key (a keyed fill, bench/run_fill_stall_bench.sh --keyed).
// The call's deadline is --deadline
// (default 30m): automatic assignment over millions of users is one
// statement that may take minutes. The channel sends and receives messages
// of up to 64 MB (a 100,000-id AddSegmentToUsers is ~4 MB; the server
// accepts 16 MB).
//
// Only the public API: no server header, so the same client works against
// any revision of the server.
#include <grpcpp/grpcpp.h>

#include <absl/synchronization/mutex.h>
#include <absl/time/clock.h>
#include <absl/time/time.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <string>

#include "bearer_token.h"
#include "flags.h"
#include "segmentation/v1/segment_service.grpc.pb.h"

namespace {

namespace v1 = segmentation::v1;
using Clock = std::chrono::steady_clock;

constexpr char kUsage[] = R"(Usage: segments-auto-client --target=HOST:PORT --op=OP --slug=SLUG [--percent=P]
                            [--ids-file=FILE] [--deadline=30m] [--idempotency-key=K]

OP: create (CreateSegment; --percent optional), update-percent (UpdateSegmentPercent),
bulk-add (AddSegmentToUsers with the ids of FILE, one a line), delete (DeleteSegment),
get (GetSegment), wait (GetSegment until OK or NOT_FOUND).
Prints: op=... seconds=... added=... removed=... member_count=... request_bytes=...
        start_unix_us=... end_unix_us=...
Exit status: 0 ok, 1 the call failed, 2 bad usage.
)";

int Fail(const char* what, const grpc::Status& status) {
  std::fprintf(stderr, "segments-auto-client: %s: %d %s\n", what, static_cast<int>(status.error_code()),
               status.error_message().c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  std::string target, op, slug, ids_file, idempotency_key;
  absl::Duration deadline = absl::Minutes(30);
  double percent = 0;
  segments::bench::Flags flags("segments-auto-client", kUsage);
  flags.String("target", &target)
      .String("op", &op)
      .String("slug", &slug)
      .Double("percent", &percent)
      .String("ids-file", &ids_file)
      .Duration("deadline", &deadline)
      .String("idempotency-key", &idempotency_key);
  if (!flags.Parse(argc, argv)) return 2;
  const bool has_percent = flags.Has("percent");
  if (target.empty() || slug.empty() ||
      (op != "create" && op != "update-percent" && op != "bulk-add" && op != "delete" && op != "get" && op != "wait") ||
      (op == "update-percent" && !has_percent) || (op == "bulk-add" && ids_file.empty())) {
    std::fputs(kUsage, stderr);
    return 2;
  }

  // The request first (reading 100,000 ids is not part of the call).
  v1::AddSegmentToUsersRequest bulk;
  if (op == "bulk-add") {
    std::ifstream in(ids_file);
    if (!in) {
      std::fprintf(stderr, "segments-auto-client: cannot read %s\n", ids_file.c_str());
      return 2;
    }
    bulk.set_slug(slug);
    for (std::string line; std::getline(in, line);) {
      if (!line.empty()) bulk.add_user_ids(line);
    }
  }

  grpc::ChannelArguments args;
  args.SetMaxSendMessageSize(64 << 20);
  args.SetMaxReceiveMessageSize(64 << 20);
  auto channel = grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args);
  if (!channel->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(30))) {
    std::fprintf(stderr, "segments-auto-client: cannot connect to %s\n", target.c_str());
    return 1;
  }
  auto stub = v1::SegmentService::NewStub(channel);
  if (op == "wait") {
    const absl::Time end = absl::Now() + deadline;
    for (;;) {
      grpc::ClientContext context;
      context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
      segments::bench::AddBearerToken(context);
      v1::GetSegmentRequest request;
      request.set_slug(slug);
      v1::GetSegmentResponse response;
      const grpc::Status status = stub->GetSegment(&context, request, &response);
      if (status.ok() || status.error_code() == grpc::StatusCode::NOT_FOUND) return 0;
      if (absl::Now() > end) return Fail("wait", status);
      absl::SleepFor(absl::Milliseconds(200));
    }
  }
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + deadline));
  segments::bench::AddBearerToken(context);
  if (!idempotency_key.empty()) context.AddMetadata("idempotency-key", idempotency_key);

  int64_t added = 0, removed = 0, member_count = 0;
  size_t request_bytes = 0;
  grpc::Status status;
  const absl::Time start = absl::Now();
  const auto t0 = Clock::now();
  if (op == "create") {
    v1::CreateSegmentRequest request;
    request.set_slug(slug);
    request.set_description("bench/run_auto_bench.sh");
    if (has_percent) request.set_percent_to_fill(percent);
    request_bytes = request.ByteSizeLong();
    v1::CreateSegmentResponse response;
    status = stub->CreateSegment(&context, request, &response);
  } else if (op == "update-percent") {
    v1::UpdateSegmentPercentRequest request;
    request.set_slug(slug);
    request.set_percent_to_fill(percent);
    request_bytes = request.ByteSizeLong();
    v1::UpdateSegmentPercentResponse response;
    status = stub->UpdateSegmentPercent(&context, request, &response);
    added = response.members_added();
    removed = response.members_removed();
  } else if (op == "bulk-add") {
    request_bytes = bulk.ByteSizeLong();
    v1::AddSegmentToUsersResponse response;
    status = stub->AddSegmentToUsers(&context, bulk, &response);
    added = response.added();
  } else if (op == "delete") {
    v1::DeleteSegmentRequest request;
    request.set_slug(slug);
    request_bytes = request.ByteSizeLong();
    v1::DeleteSegmentResponse response;
    status = stub->DeleteSegment(&context, request, &response);
    removed = response.memberships_ended();
  } else {
    v1::GetSegmentRequest request;
    request.set_slug(slug);
    request_bytes = request.ByteSizeLong();
    v1::GetSegmentResponse response;
    status = stub->GetSegment(&context, request, &response);
    member_count = response.member_count();
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  const absl::Time end = absl::Now();
  if (!status.ok()) return Fail(op.c_str(), status);
  std::printf(
      "op=%s seconds=%.3f added=%lld removed=%lld member_count=%lld request_bytes=%zu start_unix_us=%lld "
      "end_unix_us=%lld\n",
      op.c_str(), seconds, static_cast<long long>(added), static_cast<long long>(removed),
      static_cast<long long>(member_count), request_bytes, static_cast<long long>(absl::ToUnixMicros(start)),
      static_cast<long long>(absl::ToUnixMicros(end)));
  return 0;
}
