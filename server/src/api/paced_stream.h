// A server stream whose messages are made on the worker pool one at a time:
// the next is made only once the previous one was written, so a slow client
// slows the reading down instead of filling memory. Deletes itself when gRPC
// is done with the call.
#pragma once

#include <grpcpp/grpcpp.h>

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

}  // namespace segments::api
