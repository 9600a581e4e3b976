// Who the changes made on this thread are made for, as history records them
// (docs/auth.md#who-made-each-change): the token's subject while a call's
// handler runs (api/calls.h opens the scope), nobody otherwise, which history
// records as "system" (jobs, Kafka user events, automatic assignment). The
// store reads it when it starts a unit of work.
#pragma once

#include <string>

namespace segments::domain {

class ActingAs {
 public:
  // Changes made on this thread until the scope ends are `subject`'s; an
  // empty subject makes them the system's (a scope inside a caller's, for
  // work that is automatic whoever started it).
  explicit ActingAs(std::string subject) : subject_(std::move(subject)), outer_(current_) { current_ = this; }
  ~ActingAs() { current_ = outer_; }
  ActingAs(const ActingAs&) = delete;
  ActingAs& operator=(const ActingAs&) = delete;

  // The subject of the innermost scope on this thread; empty: the system.
  static const std::string& Current() {
    static const std::string kSystem;
    return current_ == nullptr ? kSystem : current_->subject_;
  }

 private:
  const std::string subject_;
  ActingAs* const outer_;
  inline static thread_local ActingAs* current_ = nullptr;
};

// The actor history shows for events written before actors were recorded.
inline constexpr char kUnknownActor[] = "unknown";
// The actor of changes nobody asked for (recorded when Current() is empty).
inline constexpr char kSystemActor[] = "system";

}  // namespace segments::domain
