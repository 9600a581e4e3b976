#pragma once

#include <absl/time/time.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "domain/user_id.h"

// Page tokens of every paged list: base64url of "<kind>:<field>:...:<field>".
// Callers treat them as opaque. The kind names the list and the format's
// version ("m1": members, version 1), so a token of one list is refused by
// another and a format can change without old tokens being misread.
namespace segments::domain::page_token {

std::string Encode(std::string_view kind, const std::vector<std::string>& fields);

// The COUNT fields of TOKEN if it is a token of KIND with that many fields
// (the last may contain ':'), else nullopt.
std::optional<std::vector<std::string>> Decode(std::string_view token, std::string_view kind, size_t count);

// The typed fields, as Encode's callers write them; nullopt for anything
// else. An instant is microseconds since the epoch; a user id must be in its
// canonical text (a token this service made never holds another).
std::string FromTime(absl::Time t);
std::optional<absl::Time> ToTime(std::string_view field);
std::optional<int64_t> ToInt(std::string_view field);
std::optional<UserId> ToUser(std::string_view field);

}  // namespace segments::domain::page_token
