// Early returns for absl::Status and absl::StatusOr<T>:
//
//   RETURN_IF_ERROR(tx.users().SetUserState(user, state, now));
//   ASSIGN_OR_RETURN(std::vector<Segment> live, tx.segments().LockLive(slugs));
//
// RETURN_IF_ERROR takes a Status or a StatusOr and returns its status from
// the enclosing function when it is not OK. ASSIGN_OR_RETURN evaluates a
// StatusOr once, returns its status when it is not OK, and otherwise moves
// its value into the declaration or variable on the left.
#pragma once

#include <absl/status/status.h>
#include <absl/status/statusor.h>

#include <utility>

namespace segments::status_internal {

inline const absl::Status& StatusOf(const absl::Status& status) { return status; }
template <typename T>
const absl::Status& StatusOf(const absl::StatusOr<T>& status_or) {
  return status_or.status();
}

}  // namespace segments::status_internal

#define RETURN_IF_ERROR(expr)                                           \
  do {                                                                  \
    if (auto&& status_macro_value = (expr); !status_macro_value.ok()) { \
      return ::segments::status_internal::StatusOf(status_macro_value); \
    }                                                                   \
  } while (false)

#define ASSIGN_OR_RETURN(lhs, rexpr) \
  STATUS_MACROS_ASSIGN_OR_RETURN_IMPL(STATUS_MACROS_CONCAT(status_or_value_, __LINE__), lhs, rexpr)

// `tmp` is a name and `lhs` may be a declaration: neither can be parenthesized.
// NOLINTBEGIN(bugprone-macro-parentheses)
#define STATUS_MACROS_ASSIGN_OR_RETURN_IMPL(tmp, lhs, rexpr) \
  auto tmp = (rexpr);                                        \
  if (!tmp.ok()) return std::move(tmp).status();             \
  lhs = std::move(tmp).value()
// NOLINTEND(bugprone-macro-parentheses)

#define STATUS_MACROS_CONCAT(a, b) STATUS_MACROS_CONCAT_INNER(a, b)
#define STATUS_MACROS_CONCAT_INNER(a, b) a##b
