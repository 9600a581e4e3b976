// Messages of the user service's `UserAction` topic, and how a batch of them
// becomes work: the distinct users to look up, the messages to dead-letter,
// and the offsets to commit once the work is done.
#pragma once

#include <absl/status/statusor.h>

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "domain/model.h"

namespace segments::ingest {

// The user an event names: its value is a JSON object whose `userID` is the
// id as a string (`{"userID": "1000"}`, a UUID in any case, or a decimal
// integer as UserId::Parse takes them) or as a JSON integer
// (`{"userID": 1000}`, written as that decimal text would be); other members
// are ignored. INVALID_ARGUMENT saying why for anything else.
absl::StatusOr<domain::UserId> ParseUserEvent(std::string_view value);

// One consumed message, copied out of the client library.
struct EventRecord {
  int32_t partition = 0;
  int64_t offset = 0;
  std::string key;
  std::string value;
};

struct DeadLetter {
  EventRecord record;
  std::string error;
};

struct EventBatch {
  // Users named by the valid events, each once, in order of first mention.
  // One lookup per user is enough: the user service answers with the state
  // after every event in the batch, whatever their number and order.
  std::vector<domain::UserId> users;
  std::vector<DeadLetter> dead_letters;
  // Per partition, the offset to commit: one past the last record.
  std::map<int32_t, int64_t> commit_offsets;
  size_t events = 0;
};

EventBatch PlanBatch(const std::vector<EventRecord>& records);

}  // namespace segments::ingest
