// One libpq connection: prepares each statement once, on first use, and
// reports errors as absl::Status without leaking SQL text to callers.
#pragma once

#include <absl/container/flat_hash_set.h>
#include <absl/functional/function_ref.h>
#include <absl/status/statusor.h>
#include <libpq-fe.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "storage/pg_params.h"

namespace segments::storage {

// A named SQL statement, prepared once per connection under its name.
// Statements live beside the rows they read, in their repository.
struct Statement {
  std::string name;
  std::string sql;
  // Planned with the actual values on every call instead of prepared once.
  // For statements over arrays of ids: a prepared one switches to a generic
  // plan after five calls, and one made while `users` was small (a replica
  // filling from a backlog) scans the whole table for good.
  bool plan_per_call = false;
};

// Owns a PGresult.
class PgResult {
 public:
  explicit PgResult(PGresult* result) : result_(result, &PQclear) {}
  int Rows() const { return PQntuples(result_.get()); }
  bool IsNull(int row, int column) const { return PQgetisnull(result_.get(), row, column) != 0; }
  std::string_view Get(int row, int column) const {
    return {PQgetvalue(result_.get(), row, column), static_cast<size_t>(PQgetlength(result_.get(), row, column))};
  }
  int64_t AffectedRows() const;
  std::string_view ColumnName(int column) const {
    const char* name = PQfname(result_.get(), column);
    return name == nullptr ? "?" : name;
  }

 private:
  std::unique_ptr<PGresult, decltype(&PQclear)> result_;
};

class PgConnection {
 public:
  // Connects with `defaults` (keyword, value) overridden by whatever
  // `conninfo` sets. UNAVAILABLE if the server cannot be reached.
  static absl::StatusOr<std::unique_ptr<PgConnection>> Open(
      const std::string& conninfo, const std::vector<std::pair<std::string, std::string>>& defaults);
  ~PgConnection();
  PgConnection(const PgConnection&) = delete;
  PgConnection& operator=(const PgConnection&) = delete;

  absl::StatusOr<PgResult> Execute(const Statement& statement, const PgParams& params = {});
  // For parameterless control statements (BEGIN, COMMIT, ROLLBACK, SET) and
  // utility statements, which take no parameters (values go in with Quote).
  absl::StatusOr<PgResult> ExecuteSimple(const char* sql);
  // `value` as an SQL string literal, quoted and escaped for this connection.
  std::string Quote(std::string_view value) const;

  // Sends a parameterless statement and returns at once; TakeResult() waits
  // for its result. Nothing else may use the connection in between.
  absl::Status Send(const char* sql);
  absl::StatusOr<PgResult> TakeResult(const char* what);

  // The connection is lost; the pool must not lend it again.
  bool Broken() const { return PQstatus(conn_) != CONNECTION_OK; }
  // For an idle connection, without a round trip: whether the server has
  // closed it meanwhile (it restarted, or ended the session), so that a
  // statement sent on it would fail before the server ever saw it.
  bool ClosedByServer();

  // COPY ... TO STDOUT: calls `row` with each row's bytes as the server
  // sends them (one CopyData message), then checks the statement's end.
  absl::Status CopyOut(const std::string& sql, absl::FunctionRef<absl::Status(std::string_view row)> row,
                       const char* what);

  // For a LISTENing connection: the socket to wait on, and the
  // notifications that arrived since the last call (reads what the socket
  // has without blocking). UNAVAILABLE if the connection is lost.
  struct Notification {
    std::string channel;
    int sender_pid = 0;  // the sending session's server process
  };
  int Socket() const { return PQsocket(conn_); }
  absl::StatusOr<std::vector<Notification>> TakeNotifications();
  // The server process of this connection (pg_backend_pid()).
  int BackendPid() const { return PQbackendPID(conn_); }

 private:
  explicit PgConnection(PGconn* conn) : conn_(conn) {}
  absl::StatusOr<PgResult> Check(PGresult* raw, const char* what);

  PGconn* conn_;
  absl::flat_hash_set<std::string> prepared_;
};

}  // namespace segments::storage
