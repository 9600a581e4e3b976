// The history of memberships: appended inside a transaction
// (HistoryRepository), read on its own (HistoryQueries).
#pragma once

#include <absl/status/status.h>
#include <absl/status/statusor.h>
#include <absl/time/time.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "domain/model.h"

namespace segments::domain {

class HistoryRepository {
 public:
  virtual ~HistoryRepository() = default;

  virtual absl::Status Append(const std::vector<HistoryEvent>& events) = 0;
};

// Where a page of a user's history starts: events strictly older than this.
struct HistoryPosition {
  absl::Time at;
  int64_t id = 0;
};

// A user's events, newest first (by time, then id).
struct UserHistoryQuery {
  UserId user;
  std::optional<std::string> slug = std::nullopt;
  std::optional<absl::Time> from = std::nullopt;  // inclusive
  std::optional<absl::Time> to = std::nullopt;    // exclusive
  std::optional<HistoryPosition> after = std::nullopt;
  int limit = 100;
};

// A report's events in order (time, user, slug, id), read in batches from
// one consistent snapshot. Holds a database connection until destroyed.
class HistoryCursor {
 public:
  virtual ~HistoryCursor() = default;
  // The next at most `max_rows` events; empty once all were read.
  virtual absl::StatusOr<std::vector<HistoryEvent>> Next(int max_rows) = 0;
};

class HistoryQueries {
 public:
  virtual ~HistoryQueries() = default;

  // Events at [from, to), of `user` only if given, for a report.
  virtual absl::StatusOr<std::unique_ptr<HistoryCursor>> OpenReport(const std::optional<UserId>& user, absl::Time from,
                                                                    absl::Time to) = 0;
  virtual absl::StatusOr<std::vector<HistoryEvent>> OfUser(const UserHistoryQuery& query) = 0;
};

}  // namespace segments::domain
