#include "domain/model.h"

namespace segments::domain {

std::string_view ToString(UserState state) { return state == UserState::kActive ? "active" : "excluded"; }

std::optional<UserState> ParseUserState(std::string_view text) {
  if (text == "active") return UserState::kActive;
  if (text == "excluded") return UserState::kExcluded;
  return std::nullopt;
}

std::string_view ToString(Operation operation) { return operation == Operation::kAdd ? "add" : "remove"; }

std::string_view ToString(Reason reason) {
  switch (reason) {
    case Reason::kManual:
      return "manual";
    case Reason::kTtl:
      return "ttl";
    case Reason::kAutoPercent:
      return "auto_percent";
    case Reason::kSegmentDeleted:
      return "segment_deleted";
    case Reason::kUserDeleted:
      return "user_deleted";
  }
  return "manual";
}

std::optional<Operation> ParseOperation(std::string_view text) {
  if (text == "add") return Operation::kAdd;
  if (text == "remove") return Operation::kRemove;
  return std::nullopt;
}

std::optional<Reason> ParseReason(std::string_view text) {
  for (Reason reason :
       {Reason::kManual, Reason::kTtl, Reason::kAutoPercent, Reason::kSegmentDeleted, Reason::kUserDeleted}) {
    if (ToString(reason) == text) return reason;
  }
  return std::nullopt;
}

}  // namespace segments::domain
