#include "support/test_database.h"

#include <libpq-fe.h>

#include <cstdlib>
#include <memory>
#include <stdexcept>

namespace segments::testing {

std::string TestDatabaseUrl() {
  const char* url = std::getenv("SEGMENTS_TEST_DATABASE_URL");
  if (url == nullptr || *url == '\0') {
    throw std::runtime_error("SEGMENTS_TEST_DATABASE_URL is not set; run the tests through scripts/test.sh");
  }
  return url;
}

std::vector<std::vector<std::string>> Query(const std::string& sql) {
  std::unique_ptr<PGconn, decltype(&PQfinish)> conn(PQconnectdb(TestDatabaseUrl().c_str()), &PQfinish);
  if (PQstatus(conn.get()) != CONNECTION_OK) throw std::runtime_error(PQerrorMessage(conn.get()));
  std::unique_ptr<PGresult, decltype(&PQclear)> result(PQexec(conn.get(), sql.c_str()), &PQclear);
  const auto status = PQresultStatus(result.get());
  if (status != PGRES_TUPLES_OK && status != PGRES_COMMAND_OK) {
    throw std::runtime_error(sql + ": " + PQresultErrorMessage(result.get()));
  }
  std::vector<std::vector<std::string>> rows;
  for (int r = 0; r < PQntuples(result.get()); ++r) {
    std::vector<std::string> row;
    for (int c = 0; c < PQnfields(result.get()); ++c) row.emplace_back(PQgetvalue(result.get(), r, c));
    rows.push_back(std::move(row));
  }
  return rows;
}

std::string QueryValue(const std::string& sql) {
  auto rows = Query(sql);
  if (rows.size() != 1 || rows[0].size() != 1) throw std::runtime_error("expected one value from: " + sql);
  return rows[0][0];
}

void ResetDatabase() {
  Query(
      "TRUNCATE history, memberships, auto_opt_outs, segment_tasks, segments, users, membership_changes, "
      "idempotency_keys "
      "RESTART IDENTITY");
}

void RunPgScript(const std::string& command) {
  const char* script = std::getenv("SEGMENTS_TEST_PG_SCRIPT");
  if (script == nullptr || *script == '\0') throw std::runtime_error("SEGMENTS_TEST_PG_SCRIPT is not set");
  const std::string line = std::string("bash '") + script + "' " + command + " >/dev/null 2>&1";
  if (std::system(line.c_str()) != 0) throw std::runtime_error("failed: " + line);
}

}  // namespace segments::testing
