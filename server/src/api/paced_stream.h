// A server stream whose messages are made on the worker pool one at a time:
// the next is made only once the previous one was written, so a slow client
// slows the reading down instead of filling memory. Deletes itself when gRPC
// is done with the call.
#pragma once

#include <absl/status/statusor.h>
#include <grpcpp/grpcpp.h>

#include <functional>
#include <string>
#include <utility>

#include "api/grpc_status.h"
#include "common/worker_pool.h"

namespace segments::api {

template <typename Response>
class PacedStream : public grpc::ServerWriteReactor<Response> {
 public:
  explicit PacedStream(WorkerPool& workers) : workers_(workers) {}

  void Begin() { ScheduleStep(); }

  void OnWriteDone(bool ok) override {
    if (!ok) {
      this->Finish(grpc::Status(grpc::StatusCode::CANCELLED, "the client stopped reading"));
      return;
    }
    ScheduleStep();
  }

  void OnDone() override { delete this; }

 protected:
  // Makes the next message. Ends with exactly one StartWrite or Finish and
  // touches nothing after it: from then on gRPC may call back on another
  // thread.
  virtual void Step() = 0;

 private:
  void ScheduleStep() {
    if (!workers_.TrySubmit([this] { Step(); })) {
      this->Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "server is overloaded or stopping; retry later"));
    }
  }

  WorkerPool& workers_;
};

// A list streamed as its keyset pages, one message per page: `next(token)`
// reads the page after `token` ("" for the first), `fill` puts its items
// into a message and says whether there were any. An empty list still gets
// one (empty) message; a list that emptied meanwhile ends without one.
template <typename Response, typename Page>
class PagedStream final : public PacedStream<Response> {
 public:
  using Next = std::function<absl::StatusOr<Page>(const std::string& token)>;
  using Fill = std::function<bool(const Page& page, Response& response)>;

  PagedStream(WorkerPool& workers, grpc::CallbackServerContext* context, Next next, Fill fill)
      : PacedStream<Response>(workers), context_(context), next_(std::move(next)), fill_(std::move(fill)) {}

 private:
  void Step() override {
    if (context_->IsCancelled()) {
      this->Finish(grpc::Status(grpc::StatusCode::CANCELLED, "call cancelled"));
      return;
    }
    if (done_) {
      this->Finish(grpc::Status::OK);
      return;
    }
    absl::StatusOr<Page> page = next_(token_);
    if (!page.ok()) {
      this->Finish(ToGrpcStatus(page.status()));
      return;
    }
    token_ = page->next_page_token;
    done_ = token_.empty();
    response_.Clear();
    if (!fill_(*page, response_) && wrote_) {  // the rest left meanwhile
      this->Finish(grpc::Status::OK);
      return;
    }
    wrote_ = true;
    this->StartWrite(&response_);
  }

  grpc::CallbackServerContext* context_;
  const Next next_;
  const Fill fill_;
  std::string token_;
  bool done_ = false;   // the last page was written
  bool wrote_ = false;  // a message was written
  Response response_;
};

}  // namespace segments::api
