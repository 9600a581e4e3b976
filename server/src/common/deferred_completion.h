// Lets the work of a call hand the call's completion to something that
// finishes later, so that the thread running the work is free at once: a
// write answers its caller only when the read model shows it, and waiting
// for that on a worker thread would hold the thread for a look of the
// model. The call wrapper (api/unary_call.h) opens a scope around the work;
// code deep inside the work (the store's after-commit hook) defers; the
// wrapper then finishes the call through the deferral.
#pragma once

#include <absl/functional/any_invocable.h>

#include <optional>

namespace segments {

class CompletionScope {
 public:
  // Answers the call.
  using Finish = absl::AnyInvocable<void() &&>;
  // Runs `finish` once whatever the call waits for has happened (on any thread).
  using Deferral = absl::AnyInvocable<void(Finish finish) &&>;

  // Opens a scope on this thread, for the work that runs until it is destroyed.
  CompletionScope();
  ~CompletionScope();
  CompletionScope(const CompletionScope&) = delete;
  CompletionScope& operator=(const CompletionScope&) = delete;

  // From inside the work: whether a scope is open on this thread, and hands
  // it a deferral. A later deferral replaces an earlier one, so it must
  // cover what the earlier waited for.
  static bool Open();
  static void Defer(Deferral deferral);

  // For the wrapper, after the work: the deferral, if the work left one.
  std::optional<Deferral> Take();

 private:
  CompletionScope* outer_;
  std::optional<Deferral> deferral_;
};

}  // namespace segments
