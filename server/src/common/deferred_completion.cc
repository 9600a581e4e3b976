#include "common/deferred_completion.h"

#include <utility>

namespace segments {
namespace {

thread_local CompletionScope* current_scope = nullptr;

}  // namespace

CompletionScope::CompletionScope() : outer_(current_scope) { current_scope = this; }

CompletionScope::~CompletionScope() { current_scope = outer_; }

bool CompletionScope::Open() { return current_scope != nullptr; }

void CompletionScope::Defer(Deferral deferral) {
  if (current_scope != nullptr) current_scope->deferral_ = std::move(deferral);
}

std::optional<CompletionScope::Deferral> CompletionScope::Take() {
  std::optional<Deferral> out = std::move(deferral_);
  deferral_.reset();
  return out;
}

}  // namespace segments
