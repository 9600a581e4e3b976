#include "storage/pg_connection.h"

#include <poll.h>

#include <absl/strings/numbers.h>

#include "common/log.h"
#include "common/status_macros.h"
#include "metrics/registry.h"
#include "storage/sqlstate.h"

namespace segments::storage {
namespace {

// libpq messages end in newlines and may span lines; logs want one line.
std::string OneLine(const char* message) {
  std::string out = message == nullptr ? "" : message;
  for (char& ch : out) {
    if (ch == '\n' || ch == '\t') ch = ' ';
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  return out;
}

// Database errors by the class of their SQLSTATE (its first two
// characters: 08 connection, 23 integrity, 40 rollback, 57 operator
// intervention, ...), or "none" when the connection broke without one.
metrics::Family<metrics::Counter>& Errors() {
  static metrics::Family<metrics::Counter>& errors = []() -> metrics::Family<metrics::Counter>& {
    auto& family = metrics::Default().AddCounterFamily(
        "segments_db_errors_total", "Database errors, by SQLSTATE class (\"none\": the connection broke).",
        {"sqlstate_class"});
    family.With({"08"});  // the classes the alerts watch
    family.With({"none"});
    return family;
  }();
  return errors;
}
// Registered when the program starts, so that the series exist (at 0)
// before the first event: rates and dashboards need them.
[[maybe_unused]] const bool kErrorsRegistered = (Errors(), true);

void CountError(const char* sqlstate) {
  metrics::Family<metrics::Counter>& errors = Errors();
  const std::string_view state = sqlstate != nullptr ? std::string_view(sqlstate) : std::string_view();
  errors.With({state.size() >= 2 ? state.substr(0, 2) : std::string_view("none")}).Inc();
}

}  // namespace

int64_t PgResult::AffectedRows() const {
  int64_t n = 0;
  return absl::SimpleAtoi(PQcmdTuples(result_.get()), &n) ? n : 0;
}

absl::StatusOr<std::unique_ptr<PgConnection>> PgConnection::Open(
    const std::string& conninfo, const std::vector<std::pair<std::string, std::string>>& defaults) {
  // libpq applies keywords in order and expands the last "dbname" as a full
  // connection string, so the configured string overrides the defaults.
  std::vector<const char*> keys;
  std::vector<const char*> values;
  for (const auto& [key, value] : defaults) {
    keys.push_back(key.c_str());
    values.push_back(value.c_str());
  }
  keys.push_back("dbname");
  values.push_back(conninfo.c_str());
  keys.push_back(nullptr);
  values.push_back(nullptr);
  PGconn* conn = PQconnectdbParams(keys.data(), values.data(), /*expand_dbname=*/1);
  if (conn == nullptr) return absl::ResourceExhaustedError("out of memory opening a database connection");
  if (PQstatus(conn) != CONNECTION_OK) {
    log::Warning("database connection failed: {}", OneLine(PQerrorMessage(conn)));
    CountError("08");  // connection exception
    PQfinish(conn);
    return absl::UnavailableError("database is unavailable");
  }
  return std::unique_ptr<PgConnection>(new PgConnection(conn));
}

PgConnection::~PgConnection() { PQfinish(conn_); }

absl::StatusOr<PgResult> PgConnection::Check(PGresult* raw, const char* what) {
  PgResult result(raw);
  const ExecStatusType status = raw == nullptr ? PGRES_FATAL_ERROR : PQresultStatus(raw);
  if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) return result;

  const char* sqlstate = raw == nullptr ? nullptr : PQresultErrorField(raw, PG_DIAG_SQLSTATE);
  absl::StatusCode code = absl::StatusCode::kUnavailable;  // no SQLSTATE: the connection broke
  if (sqlstate != nullptr) code = CodeForSqlState(sqlstate);
  if (Broken()) code = absl::StatusCode::kUnavailable;
  const char* detail = raw != nullptr ? PQresultErrorMessage(raw) : PQerrorMessage(conn_);
  CountError(sqlstate);
  if (code != absl::StatusCode::kAlreadyExists && code != absl::StatusCode::kAborted) {
    log::Warning("database error in {}: {} {}", what, sqlstate != nullptr ? sqlstate : "-", OneLine(detail));
  }
  // Callers get the code and the statement name, never the server's text.
  return absl::Status(code, std::string("database error in ") + what);
}

absl::StatusOr<PgResult> PgConnection::Execute(const Statement& statement, const PgParams& params) {
  const std::vector<const char*> values = params.Values();
  const char* name = statement.name.c_str();
  if (statement.plan_per_call) {
    return Check(PQexecParams(conn_, statement.sql.c_str(), params.size(), nullptr, values.data(), params.Lengths(),
                              params.Formats(), 0),
                 name);
  }
  if (!prepared_.contains(statement.name)) {
    RETURN_IF_ERROR(Check(PQprepare(conn_, name, statement.sql.c_str(), 0, nullptr), name));
    prepared_.insert(statement.name);
  }
  return Check(PQexecPrepared(conn_, name, params.size(), values.data(), params.Lengths(), params.Formats(), 0), name);
}

absl::StatusOr<PgResult> PgConnection::ExecuteSimple(const char* sql) { return Check(PQexec(conn_, sql), sql); }

std::string PgConnection::Quote(std::string_view value) const {
  std::unique_ptr<char, decltype(&PQfreemem)> quoted(PQescapeLiteral(conn_, value.data(), value.size()), &PQfreemem);
  // NULL only for invalid encoding or no memory; a literal that matches
  // nothing is then the safe outcome.
  return quoted ? std::string(quoted.get()) : std::string("NULL");
}

absl::Status PgConnection::Send(const char* sql) {
  if (PQsendQuery(conn_, sql) == 1) return absl::OkStatus();
  log::Warning("database error sending {}: {}", sql, OneLine(PQerrorMessage(conn_)));
  CountError(nullptr);
  return absl::UnavailableError(std::string("database error in ") + sql);
}

absl::StatusOr<PgResult> PgConnection::TakeResult(const char* what) {
  // One statement, one result; the loop also consumes the end marker.
  PGresult* result = nullptr;
  while (PGresult* next = PQgetResult(conn_)) {
    if (result != nullptr) PQclear(result);
    result = next;
  }
  return Check(result, what);
}

absl::Status PgConnection::CopyOut(const std::string& sql, absl::FunctionRef<absl::Status(std::string_view row)> row,
                                   const char* what) {
  PGresult* started = PQexec(conn_, sql.c_str());
  if (started == nullptr || PQresultStatus(started) != PGRES_COPY_OUT) return Check(started, what).status();
  PQclear(started);
  absl::Status status = absl::OkStatus();
  for (;;) {
    char* buffer = nullptr;
    const int length = PQgetCopyData(conn_, &buffer, /*async=*/0);
    if (length < 0) break;  // -1: done; -2: failed (the result below says why)
    std::unique_ptr<char, decltype(&PQfreemem)> owned(buffer, &PQfreemem);
    // After a failure the rest is still read, so the connection stays usable.
    if (status.ok()) status = row(std::string_view(buffer, static_cast<size_t>(length)));
  }
  absl::StatusOr<PgResult> end = TakeResult(what);
  if (!end.ok()) return end.status();
  return status;
}

bool PgConnection::ClosedByServer() {
  pollfd fd{PQsocket(conn_), POLLIN, 0};
  if (fd.fd < 0) return true;
  // An idle session gets nothing from the server but the end of it.
  if (poll(&fd, 1, 0) <= 0) return false;
  return PQconsumeInput(conn_) == 0 || Broken();
}

absl::StatusOr<std::vector<PgConnection::Notification>> PgConnection::TakeNotifications() {
  if (PQconsumeInput(conn_) == 0) {
    log::Warning("database connection lost while waiting for notifications: {}", OneLine(PQerrorMessage(conn_)));
    return absl::UnavailableError("database connection lost");
  }
  std::vector<Notification> notifications;
  while (PGnotify* notify = PQnotifies(conn_)) {
    notifications.push_back({notify->relname, notify->be_pid});
    PQfreemem(notify);
  }
  return notifications;
}

}  // namespace segments::storage
