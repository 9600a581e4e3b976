// Access to the real test database for *_pgtest and *_svctest binaries. The
// URL comes from SEGMENTS_TEST_DATABASE_URL (scripts/test.sh sets it); a
// missing URL fails the test rather than skipping it.
#pragma once

#include <string>
#include <vector>

namespace segments::testing {

std::string TestDatabaseUrl();

// Empties every table of the schema and restarts identities.
void ResetDatabase();

// Runs `sql` on a fresh connection; every value as text ("" for NULL).
// Throws std::runtime_error with the server's message on failure.
std::vector<std::vector<std::string>> Query(const std::string& sql);

// The single value of a one-row, one-column query.
std::string QueryValue(const std::string& sql);

// Runs scripts/pg.sh with `command` (start or stop), from
// SEGMENTS_TEST_PG_SCRIPT. Throws when it fails.
void RunPgScript(const std::string& command);

}  // namespace segments::testing
