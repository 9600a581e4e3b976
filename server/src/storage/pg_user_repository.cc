#include "storage/pg_user_repository.h"

#include <absl/container/flat_hash_set.h>

#include "common/status_macros.h"
#include "storage/pg_row.h"

namespace segments::storage {
namespace {

using domain::UserId;
using domain::UserState;

const Statement kLockUser{"lock_user", "SELECT state FROM users WHERE id = $1::user_id FOR UPDATE"};
const Statement kInsertUser{"insert_user",
                            "INSERT INTO users (id, state, created_at, updated_at) "
                            "VALUES ($1::user_id, $2, $3, $3) ON CONFLICT (id) DO NOTHING"};
// db/schema.sql, migration 13. $1 user, $2 now.
const Statement kCreateUser{"create_user", "SELECT create_user($1::user_id, $2)"};
const Statement kSetUserStateAndAssign{"set_user_state_and_assign",
                                       "SELECT set_user_state($1::user_id, $2::user_state, $3)"};
// $3: the actor its history records (NULL: the system); migration 14.
const Statement kDeleteUserAndMemberships{"delete_user_and_memberships", "SELECT delete_user_as($3, $1::user_id, $2)"};
const Statement kSetUserState{"set_user_state", "UPDATE users SET state = $2, updated_at = $3 WHERE id = $1::user_id"};
const Statement kDeleteUser{"delete_user",
                            "WITH o AS (DELETE FROM auto_opt_outs WHERE user_id = $1::user_id) "
                            "DELETE FROM users WHERE id = $1::user_id"};

// Many users at once (user events): $1 ids, $2 their states (parallel).
const Statement kLockUsers{"lock_users",
                           "SELECT id, state FROM users WHERE id = ANY($1::user_id[]) ORDER BY id FOR UPDATE",
                           /*plan_per_call=*/true};
const Statement kInsertUsers{"insert_users",
                             "INSERT INTO users (id, state, created_at, updated_at) "
                             "SELECT id, state, $3, $3 FROM unnest($1::user_id[], $2::user_state[]) AS t(id, state) "
                             "ORDER BY id ON CONFLICT (id) DO NOTHING"};
const Statement kSetUserStates{"set_user_states",
                               "UPDATE users u SET state = t.state, updated_at = $3 "
                               "FROM unnest($1::user_id[], $2::user_state[]) AS t(id, state) WHERE u.id = t.id",
                               /*plan_per_call=*/true};
// kDeleteUser for users $1.
const Statement kDeleteUsers{"delete_users",
                             "WITH o AS (DELETE FROM auto_opt_outs WHERE user_id = ANY($1::user_id[])) "
                             "DELETE FROM users WHERE id = ANY($1::user_id[])",
                             /*plan_per_call=*/true};
// FOR KEY SHARE keeps the known users from being deleted until the
// transaction ends (memberships have no foreign keys; schema.sql), in id
// order, the order every multi-user lock takes, so they cannot deadlock.
const Statement kKeyShareUsers{"key_share_users",
                               "SELECT id FROM users WHERE id = ANY($1::user_id[]) ORDER BY id FOR KEY SHARE",
                               /*plan_per_call=*/true};

std::vector<UserId> IdsOf(const std::vector<std::pair<UserId, UserState>>& users) {
  std::vector<UserId> ids;
  ids.reserve(users.size());
  for (const auto& [id, state] : users) ids.push_back(id);
  return ids;
}

std::vector<std::string> StatesOf(const std::vector<std::pair<UserId, UserState>>& users) {
  std::vector<std::string> states;
  states.reserve(users.size());
  for (const auto& [id, state] : users) states.emplace_back(domain::ToString(state));
  return states;
}

}  // namespace

absl::StatusOr<std::optional<UserState>> PgUserRepository::Lock(const UserId& user) {
  ASSIGN_OR_RETURN(PgResult r, tx_.conn().Execute(kLockUser, PgParams().User(user)));
  if (r.Rows() == 0) return std::nullopt;
  return PgRow(r, 0).Enum(0, &domain::ParseUserState);
}

absl::Status PgUserRepository::Insert(const UserId& user, UserState state, absl::Time now) {
  ASSIGN_OR_RETURN(PgResult r,
                   tx_.conn().Execute(kInsertUser, PgParams().User(user).Text(domain::ToString(state)).Time(now)));
  if (r.AffectedRows() == 0) return absl::AlreadyExistsError("user exists");
  return absl::OkStatus();
}

absl::StatusOr<int> PgUserRepository::CreateActive(const UserId& user, absl::Time now) {
  tx_.NoteReadModelChange();
  ASSIGN_OR_RETURN(PgResult r, tx_.conn().Execute(kCreateUser, PgParams().User(user).Time(now)));
  const PgRow row(r, 0);
  if (row.IsNull(0)) return absl::AlreadyExistsError("user exists");
  return row.Int32(0);
}

absl::StatusOr<std::optional<int>> PgUserRepository::SetStateAndAssign(const UserId& user, UserState state,
                                                                       absl::Time now) {
  tx_.NoteReadModelChange();
  ASSIGN_OR_RETURN(PgResult r, tx_.conn().Execute(kSetUserStateAndAssign,
                                                  PgParams().User(user).Text(domain::ToString(state)).Time(now)));
  const PgRow row(r, 0);
  if (row.IsNull(0)) return std::nullopt;
  return row.Int32(0);
}

absl::StatusOr<std::optional<int64_t>> PgUserRepository::DeleteWithMemberships(const UserId& user, absl::Time now) {
  tx_.NoteReadModelChange();
  ASSIGN_OR_RETURN(PgResult r, tx_.conn().Execute(kDeleteUserAndMemberships, PgParams().User(user).Time(now).Actor()));
  const PgRow row(r, 0);
  if (row.IsNull(0)) return std::nullopt;
  return row.Int64(0);
}

absl::Status PgUserRepository::SetState(const UserId& user, UserState state, absl::Time now) {
  return tx_.conn().Execute(kSetUserState, PgParams().User(user).Text(domain::ToString(state)).Time(now)).status();
}

absl::Status PgUserRepository::Delete(const UserId& user) {
  return tx_.conn().Execute(kDeleteUser, PgParams().User(user)).status();
}

absl::StatusOr<absl::flat_hash_map<UserId, UserState>> PgUserRepository::LockMany(const std::vector<UserId>& users) {
  absl::flat_hash_map<UserId, UserState> known;
  if (users.empty()) return known;
  ASSIGN_OR_RETURN(PgResult r, tx_.conn().Execute(kLockUsers, PgParams().Users(users)));
  for (int i = 0; i < r.Rows(); ++i) {
    const PgRow row(r, i);
    ASSIGN_OR_RETURN(UserId id, row.User(0));
    ASSIGN_OR_RETURN(UserState state, row.Enum(1, &domain::ParseUserState));
    known.emplace(id, state);
  }
  return known;
}

absl::Status PgUserRepository::InsertMany(const std::vector<std::pair<UserId, UserState>>& users, absl::Time now) {
  if (users.empty()) return absl::OkStatus();
  ASSIGN_OR_RETURN(PgResult r, tx_.conn().Execute(kInsertUsers,
                                                  PgParams().Users(IdsOf(users)).TextArray(StatesOf(users)).Time(now)));
  if (r.AffectedRows() != static_cast<int64_t>(users.size())) return absl::AlreadyExistsError("a user exists");
  return absl::OkStatus();
}

absl::Status PgUserRepository::SetStates(const std::vector<std::pair<UserId, UserState>>& users, absl::Time now) {
  if (users.empty()) return absl::OkStatus();
  return tx_.conn()
      .Execute(kSetUserStates, PgParams().Users(IdsOf(users)).TextArray(StatesOf(users)).Time(now))
      .status();
}

absl::Status PgUserRepository::DeleteMany(const std::vector<UserId>& users) {
  if (users.empty()) return absl::OkStatus();
  return tx_.conn().Execute(kDeleteUsers, PgParams().Users(users)).status();
}

absl::StatusOr<std::vector<UserId>> PgUserRepository::Unknown(const std::vector<UserId>& users) {
  ASSIGN_OR_RETURN(PgResult r, tx_.conn().Execute(kKeyShareUsers, PgParams().Users(users)));
  absl::flat_hash_set<UserId> known;
  for (int i = 0; i < r.Rows(); ++i) {
    ASSIGN_OR_RETURN(UserId id, PgRow(r, i).User(0));
    known.insert(id);
  }
  std::vector<UserId> unknown;
  for (const UserId& user : users) {
    if (!known.contains(user)) unknown.push_back(user);
  }
  return unknown;
}

}  // namespace segments::storage
