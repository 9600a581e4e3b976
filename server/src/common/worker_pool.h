// Fixed threads for blocking work (database calls), so gRPC's callback
// threads never block. A bounded queue turns overload into a quick refusal.
#pragma once

#include <absl/base/thread_annotations.h>
#include <absl/functional/any_invocable.h>
#include <absl/synchronization/mutex.h>

#include <atomic>
#include <cstdint>
#include <deque>
#include <thread>
#include <vector>

namespace segments {

class WorkerPool {
 public:
  WorkerPool(int threads, size_t max_queued);
  ~WorkerPool();  // Stops, after running everything queued.
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  // Queues `task`; false when the queue is full or the pool is stopping.
  bool TrySubmit(absl::AnyInvocable<void() &&> task);

  // Runs what is queued, then joins the threads. Idempotent.
  void Stop();

  // For metrics: tasks waiting for a thread, and tasks refused so far.
  size_t queued() const;
  uint64_t rejected() const { return rejected_.load(std::memory_order_relaxed); }
  size_t threads() const { return thread_count_; }
  size_t max_queued() const { return max_queued_; }

 private:
  void Loop();

  const size_t max_queued_;
  const size_t thread_count_;
  std::atomic<uint64_t> rejected_{0};
  mutable absl::Mutex mu_;
  std::deque<absl::AnyInvocable<void() &&>> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

}  // namespace segments
