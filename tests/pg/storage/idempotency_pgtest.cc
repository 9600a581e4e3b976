// PgStore's keyed calls (storage/pg_keyed_call.h) and the cleanup of keys,
// on the real database: the claim and the work commit with the outcome when
// it is settled (or at once, pending on the task it published), a repeat
// runs no work, failures roll back, and the cleanup
// skips rows that another instance holds.
#include <catch2/catch.hpp>

#include "common/status_macros.h"
#include "domain/idempotency.h"
#include "storage/pg_store.h"
#include "support/domain_testing.h"
#include "support/test_database.h"

using namespace segments::domain;
using segments::storage::PgPool;
using segments::storage::PgPoolOptions;
using segments::storage::PgStore;
using segments::testing::Id;
using segments::testing::Query;
using segments::testing::QueryValue;

namespace {

constexpr const char* kAlice = "11111111-1111-1111-1111-111111111111";
const absl::Time kT0 = absl::FromCivil(absl::CivilSecond(2024, 3, 1, 12, 0, 0), absl::UTCTimeZone());

struct Fixture {
  PgPool pool{PgPoolOptions{segments::testing::TestDatabaseUrl(), 4}};
  PgStore store{pool};

  Fixture() { segments::testing::ResetDatabase(); }

  // Runs `work` as the unit of work of `call`.
  absl::Status InCall(KeyedCall& call, absl::FunctionRef<absl::Status(Transaction&)> work) {
    const KeyedCall::Scope scope(call);
    return store.InTransaction(work);
  }
  // Whether a unit of `call` ran its work; a unit that runs none fails.
  bool RanWork(KeyedCall& call) {
    bool ran = false;
    const absl::Status status = InCall(call, [&](Transaction&) {
      ran = true;
      return absl::OkStatus();
    });
    CHECK(status.ok() == ran);
    return ran;
  }
  absl::Status InsertAlice(Transaction& tx) { return tx.users().Insert(Id(kAlice), UserState::kActive, kT0); }

  static std::string Users() { return QueryValue("SELECT count(*) FROM users"); }
  static std::string Keys() { return QueryValue("SELECT count(*) FROM idempotency_keys"); }
};

const CallOutcome kDone{0, "", "", std::string("response \0\x01\xff", 12)};

}  // namespace

TEST_CASE_METHOD(Fixture, "a keyed call's work and outcome commit together, once the outcome is settled",
                 "[pg][idempotency]") {
  auto call = store.StartKeyedCall({"", "k1", "fingerprint"}, kT0);
  REQUIRE(InCall(*call, [&](Transaction& tx) { return InsertAlice(tx); }).ok());
  {
    // One transaction per keyed call: a second unit of work is a bug.
    const KeyedCall::Scope scope(*call);
    CHECK(store.InTransaction([](Transaction&) { return absl::OkStatus(); }).code() == absl::StatusCode::kInternal);
  }
  // The transaction is still open: neither the user nor the key is seen.
  CHECK(Users() == "0");
  CHECK(Keys() == "0");
  CHECK_FALSE(call->answered_earlier());
  auto settled = call->Settle(kDone);
  REQUIRE(settled.ok());
  CHECK(*settled == kDone);
  CHECK(Users() == "1");
  CHECK(Query("SELECT scope, key, encode(fingerprint, 'escape'), code, message, encode(details, 'hex'), "
              "encode(response, 'hex'), created_at = '2024-03-01T12:00:00Z' FROM idempotency_keys") ==
        std::vector<std::vector<std::string>>{{"", "k1", "fingerprint", "0", "", "", "726573706f6e7365200001ff", "t"}});

  // A repeat runs no work and answers the stored outcome, whatever its own.
  auto repeat = store.StartKeyedCall({"", "k1", "fingerprint"}, kT0 + absl::Hours(1));
  CHECK_FALSE(RanWork(*repeat));
  CHECK(repeat->answered_earlier());
  auto replayed = repeat->Settle({5, "not found", "", ""});
  REQUIRE(replayed.ok());
  CHECK(*replayed == kDone);

  // Another request with the key, found without a unit of work.
  auto other = store.StartKeyedCall({"", "k1", "another"}, kT0);
  const auto refused = other->Settle(kDone);
  CHECK(refused.status().code() == absl::StatusCode::kAlreadyExists);
  CHECK(refused.status().message() == "idempotency key \"k1\" was already used with a different request");
  // The key in another scope is another key.
  CHECK(store.StartKeyedCall({"someone", "k1", "another"}, kT0)->Settle(kDone).ok());
  CHECK(Keys() == "2");
}

TEST_CASE_METHOD(Fixture, "an abandoned call leaves nothing; a failed unit rolls back and its outcome stands alone",
                 "[pg][idempotency]") {
  auto abandoned = store.StartKeyedCall({"", "k2", "f"}, kT0);
  REQUIRE(InCall(*abandoned, [&](Transaction& tx) { return InsertAlice(tx); }).ok());
  abandoned->Abandon();
  CHECK(Users() == "0");
  CHECK(Keys() == "0");
  // The destructor abandons a call that was not settled.
  {
    REQUIRE(InCall(*store.StartKeyedCall({"", "k2", "f"}, kT0), [&](Transaction& tx) { return InsertAlice(tx); }).ok());
  }
  CHECK(Users() == "0");
  CHECK(Keys() == "0");

  auto failing = store.StartKeyedCall({"", "k3", "f"}, kT0);
  const absl::Status status = InCall(*failing, [&](Transaction& tx) -> absl::Status {
    RETURN_IF_ERROR(InsertAlice(tx));
    return absl::FailedPreconditionError("changed my mind");
  });
  CHECK(status.code() == absl::StatusCode::kFailedPrecondition);
  const CallOutcome refusal{9, "changed my mind", "details", ""};
  auto settled = failing->Settle(refusal);
  REQUIRE(settled.ok());
  CHECK(*settled == refusal);
  CHECK(Users() == "0");
  CHECK(QueryValue("SELECT code || ' ' || message FROM idempotency_keys") == "9 changed my mind");
}

TEST_CASE_METHOD(Fixture, "with a key, a single call runs in the transaction that holds the claim",
                 "[pg][idempotency]") {
  auto call = store.StartKeyedCall({"", "k4", "f"}, kT0);
  {
    const KeyedCall::Scope scope(*call);
    REQUIRE(store.InSingleCall([&](Transaction& tx) { return InsertAlice(tx); }).ok());
  }
  CHECK(Users() == "0");
  REQUIRE(call->Settle(kDone).ok());
  CHECK(Users() == "1");
  CHECK(Keys() == "1");
}

TEST_CASE_METHOD(Fixture, "the cleanup forgets keys made before the cutoff, oldest first, skipping held ones",
                 "[pg][idempotency]") {
  Query(
      "INSERT INTO idempotency_keys VALUES "
      "('', 'old-1', '', '2024-03-01T09:00:00Z', 0, '', '', ''), "
      "('', 'old-2', '', '2024-03-01T10:00:00Z', 0, '', '', ''), "
      "('', 'old-3', '', '2024-03-01T11:00:00Z', 0, '', '', ''), "
      "('', 'new', '', '2024-03-01T12:00:00Z', 0, '', '', '')");
  // Another instance deleting old-1 holds its row.
  auto other = pool.Acquire();
  REQUIRE(other.ok());
  REQUIRE((*other)->ExecuteSimple("BEGIN").ok());
  REQUIRE((*other)->ExecuteSimple("SELECT 1 FROM idempotency_keys WHERE key = 'old-1' FOR UPDATE").ok());

  const absl::Time cutoff = kT0 - absl::Minutes(30);
  auto first = store.DeleteKeysMadeBefore(cutoff, 1);
  REQUIRE(first.ok());
  CHECK(*first == 1);
  CHECK(QueryValue("SELECT string_agg(key, ',' ORDER BY key) FROM idempotency_keys") == "new,old-1,old-3");
  auto rest = store.DeleteKeysMadeBefore(cutoff, 10);  // does not wait for old-1
  REQUIRE(rest.ok());
  CHECK(*rest == 1);
  CHECK(QueryValue("SELECT string_agg(key, ',' ORDER BY key) FROM idempotency_keys") == "new,old-1");

  REQUIRE((*other)->ExecuteSimple("ROLLBACK").ok());
  auto last = store.DeleteKeysMadeBefore(kT0, 10);  // made before, not at
  REQUIRE(last.ok());
  CHECK(*last == 1);
  CHECK(Keys() == "1");
}

TEST_CASE_METHOD(Fixture, "a unit that failed gives the claim back: the call's next unit claims the key again",
                 "[pg][idempotency]") {
  auto call = store.StartKeyedCall({"", "k6", "f"}, kT0);
  CHECK(InCall(*call, [](Transaction&) { return absl::FailedPreconditionError("a change is under way"); }).code() ==
        absl::StatusCode::kFailedPrecondition);
  CHECK(Keys() == "0");
  REQUIRE(InCall(*call, [&](Transaction& tx) { return InsertAlice(tx); }).ok());
  CHECK(Keys() == "0");  // held until settled
  REQUIRE(call->Settle(kDone).ok());
  CHECK(Users() == "1");
  CHECK(Keys() == "1");
}

TEST_CASE_METHOD(Fixture, "a unit that published a task commits at once, its key pending; the first answer stored wins",
                 "[pg][idempotency]") {
  auto first = store.StartKeyedCall({"", "k5", "f"}, kT0);
  REQUIRE(InCall(*first, [&](Transaction& tx) -> absl::Status {
            RETURN_IF_ERROR(InsertAlice(tx));
            first->AnswerAfterTask(42);
            return absl::OkStatus();
          }).ok());
  // Committed: the work, and the key pending on the task.
  CHECK(Users() == "1");
  CHECK(Query("SELECT task_id, code IS NULL, response IS NULL FROM idempotency_keys") ==
        std::vector<std::vector<std::string>>{{"42", "t", "t"}});
  {
    const KeyedCall::Scope scope(*first);
    // Another unit within the call is a bug; the task's chunks run outside it.
    CHECK(store.InTransaction([](Transaction&) { return absl::OkStatus(); }).code() == absl::StatusCode::kInternal);
    const KeyedCall::Suspend unkeyed;
    CHECK(store.InTransaction([](Transaction&) { return absl::OkStatus(); }).ok());
  }

  // A repeat runs no work and learns the task, to finish and answer from.
  auto repeat = store.StartKeyedCall({"", "k5", "f"}, kT0 + absl::Hours(1));
  CHECK_FALSE(RanWork(*repeat));
  CHECK_FALSE(repeat->answered_earlier());
  CHECK(repeat->pending_task() == std::optional<int64_t>(42));
  // Another request under the key is refused, pending or not.
  auto other = store.StartKeyedCall({"", "k5", "g"}, kT0);
  CHECK_FALSE(RanWork(*other));
  CHECK(other->answered_earlier());
  CHECK(other->Settle(kDone).status().code() == absl::StatusCode::kAlreadyExists);

  // The repeat stores its answer first; the first call is answered with it.
  const CallOutcome by_repeat{0, "", "", "from the repeat"};
  CHECK(repeat->Settle(by_repeat).value() == by_repeat);
  CHECK(first->Settle(kDone).value() == by_repeat);
  CHECK(QueryValue("SELECT encode(response, 'escape') FROM idempotency_keys") == "from the repeat");
  auto later = store.StartKeyedCall({"", "k5", "f"}, kT0 + absl::Hours(2));
  CHECK_FALSE(RanWork(*later));
  CHECK(later->answered_earlier());
  CHECK(later->Settle(kDone).value() == by_repeat);
}
