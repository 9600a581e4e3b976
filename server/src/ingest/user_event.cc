#include "ingest/user_event.h"

#include <absl/container/flat_hash_set.h>
#include <absl/strings/str_cat.h>
#include <fmt/format.h>
#include <google/protobuf/util/json_util.h>

#include <algorithm>

#include "domain/validation.h"
#include "userservice/v1/user_service.pb.h"

namespace segments::ingest {

absl::StatusOr<domain::UserId> ParseUserEvent(std::string_view value) {
  userservice::v1::UserActionEvent event;
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = true;
  // JsonStringToMessage takes absl::string_view or StringPiece depending on
  // the protobuf version; a std::string converts to both.
  auto parsed = google::protobuf::util::JsonStringToMessage(std::string(value), &event, options);
  if (!parsed.ok()) {
    // The parser's message may quote the input on further lines.
    std::string why = parsed.message().ToString();
    why.resize(std::min(why.find('\n'), why.size()));
    return absl::InvalidArgumentError(fmt::format("value is not a JSON user event: {}", why));
  }
  auto user = domain::UserId::Parse(event.user_id());
  if (!user.ok()) return absl::InvalidArgumentError(absl::StrCat("userID: ", user.status().message()));
  return *user;
}

EventBatch PlanBatch(const std::vector<EventRecord>& records) {
  EventBatch batch;
  absl::flat_hash_set<domain::UserId> seen;
  for (const EventRecord& record : records) {
    ++batch.events;
    int64_t& next = batch.commit_offsets[record.partition];
    next = std::max(next, record.offset + 1);
    auto user = ParseUserEvent(record.value);
    if (!user.ok()) {
      batch.dead_letters.push_back({record, std::string(user.status().message())});
    } else if (seen.insert(*user).second) {
      batch.users.push_back(*user);
    }
  }
  return batch;
}

}  // namespace segments::ingest
