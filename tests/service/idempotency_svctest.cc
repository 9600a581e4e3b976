// Idempotency keys (docs/behaviour.md#idempotency-keys) through the real
// server: a repeat gets the first call's outcome byte for byte and changes
// nothing; twenty calls at once with one key do the work once; a key used
// for another request is refused; an answer lost after the commit is found
// by the retry; failures of the infrastructure are not stored; malformed
// keys are refused; keys are forgotten after their TTL; keyed changes of a
// whole segment run in chunks, and their repeats finish them.
#include <algorithm>
#include <chrono>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "service/auto_fixture.h"
#include "service/service_fixture.h"

using namespace std::chrono_literals;
using namespace segments;
using namespace segments::testing;

namespace {

using SegmentStub = v1::SegmentService::Stub;
using UserStub = v1::UserAdminService::Stub;

// Everything a call answered.
struct Answer {
  grpc::StatusCode code = grpc::StatusCode::OK;
  std::string message;
  std::string details;   // grpc-status-details-bin
  std::string response;  // the response message, serialized
  grpc::Status status;   // the whole status, for its violations

  bool operator==(const Answer& other) const {
    return code == other.code && message == other.message && details == other.details && response == other.response;
  }
};

std::ostream& operator<<(std::ostream& out, const Answer& answer) {
  return out << Describe(answer.status) << " response " << answer.response.size() << " bytes";
}

// Calls `method` of `stub` with `key` in the idempotency-key metadata (none
// when nullopt).
template <typename Stub, typename Request, typename Response>
Answer Call(Stub& stub, grpc::Status (Stub::*method)(grpc::ClientContext*, const Request&, Response*),
            const Request& request, const std::optional<std::string>& key, Response* out = nullptr,
            std::chrono::milliseconds timeout = kCallTimeout) {
  auto context = NewContext(timeout);
  if (key) context->AddMetadata("idempotency-key", *key);
  Response response;
  const grpc::Status status = (stub.*method)(context.get(), request, &response);
  if (out != nullptr) *out = response;
  return {status.error_code(), status.error_message(), status.error_details(), response.SerializeAsString(), status};
}

// For Call's `out` when the response is not looked at.
template <typename Response>
Response* NoResponse() {
  return nullptr;
}

v1::CreateUserRequest NewUser(const std::string& user_id) {
  v1::CreateUserRequest request;
  request.set_user_id(user_id);
  return request;
}

v1::DeleteSegmentRequest SegmentToDelete(const std::string& slug) {
  v1::DeleteSegmentRequest request;
  request.set_slug(slug);
  return request;
}

int64_t StoredKeys() { return Count("SELECT count(*) FROM idempotency_keys"); }
int64_t Users() { return Count("SELECT count(*) FROM users"); }

// Sessions of the test database other than `except_pid` waiting for a lock.
int64_t LockWaiters(const std::string& except_pid) {
  return Count(
      "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' "
      "AND pid <> " +
      except_pid);
}

// A session of its own holding the rows `select` locks.
class HeldRows {
 public:
  explicit HeldRows(const std::string& select) : pid_(session_.Exec("SELECT pg_backend_pid()")) {
    session_.Exec("BEGIN");
    session_.Exec(select);
  }
  void Release() { session_.Exec("ROLLBACK"); }
  // Sessions waiting for a lock, this one's or another's.
  int64_t Waiters() const { return LockWaiters(pid_); }

 private:
  PgSession session_;
  const std::string pid_;
};

// The user's row, which every change of the user's segments waits for (and
// a chunk that adds the user).
class HeldUser : public HeldRows {
 public:
  explicit HeldUser(const std::string& user_id)
      : HeldRows("SELECT 1 FROM users WHERE id = " + Literal(user_id) + " FOR UPDATE") {}
};

// ServiceFixture with the test configuration as `adjust` changes it.
template <void (*adjust)(config::Config&)>
class AdjustedFixture : public ServiceFixture {
 public:
  AdjustedFixture() : ServiceFixture(Config()) {}
  static config::Config Config() {
    config::Config config = TestConfig();
    adjust(config);
    return config;
  }
};

// Room for twenty calls in the database at once.
void Wide(config::Config& config) {
  config.workers = 24;
  config.db_pool_size = 24;
}
using WideFixture = AdjustedFixture<&Wide>;

void ShortStatements(config::Config& config) { config.db_statement_timeout = absl::Milliseconds(500); }
using ShortStatementFixture = AdjustedFixture<&ShortStatements>;

void ShortTtl(config::Config& config) {
  config.idempotency_key_ttl = absl::Hours(1);
  config.idempotency_cleanup_period = absl::Milliseconds(50);
}
using ShortTtlFixture = AdjustedFixture<&ShortTtl>;

// Segment tasks in chunks of 50 users.
class SmallChunkFixture : public AutoFixture {
 public:
  SmallChunkFixture() : AutoFixture(Config()) {}
  static config::Config Config() {
    config::Config config = TestConfig();
    config.segment_task_chunk_users = 50;
    config.segment_task_chunk_time = absl::ZeroDuration();
    return config;
  }
};

int64_t UnfinishedTasksUnderWay() {
  return Count("SELECT count(*) FROM segment_tasks WHERE finished_at IS NULL AND after_user <> ''");
}

}  // namespace

TEST_CASE_METHOD(ServiceFixture, "A repeat with the key gets the first outcome byte for byte and changes nothing",
                 "[service][idempotency]") {
  REQUIRE(CreateUser(kUser1).ok());

  v1::CreateSegmentRequest create;
  create.set_slug("VOICE");
  create.set_description("voice messages");
  const Answer created = Call(*segments, &SegmentStub::CreateSegment, create, "create-voice");
  REQUIRE(created.code == grpc::StatusCode::OK);
  clock.Advance(absl::Minutes(1));  // a second creation would have another time
  CHECK(Call(*segments, &SegmentStub::CreateSegment, create, "create-voice") == created);
  CHECK(Count("SELECT count(*) FROM segments WHERE slug = 'VOICE'") == 1);
  // Without the key, the same request is a second creation.
  CHECK(CreateSegment(create).error_code() == grpc::StatusCode::ALREADY_EXISTS);

  const auto add = Change(kUser1, {{"VOICE", 300}});
  const Answer added = Call(*segments, &SegmentStub::UpdateUserSegments, add, "add-voice");
  REQUIRE(added.code == grpc::StatusCode::OK);
  // Committed before the answer, and the read model has caught up.
  CHECK(SegmentsOf(kUser1) == std::vector<std::string>{"VOICE"});
  const std::string expires = QueryValue("SELECT " + MicrosOf("expires_at") + " FROM memberships");
  clock.Advance(absl::Minutes(1));
  for (int i = 0; i < 3; ++i) CHECK(Call(*segments, &SegmentStub::UpdateUserSegments, add, "add-voice") == added);
  CHECK(HistoryOf(kUser1).size() == 1);
  CHECK(QueryValue("SELECT " + MicrosOf("expires_at") + " FROM memberships") == expires);
  CHECK(Update(add).error_code() == grpc::StatusCode::FAILED_PRECONDITION);  // without the key: already in

  v1::DeleteSegmentResponse first;
  const Answer deleted = Call(*segments, &SegmentStub::DeleteSegment, SegmentToDelete("VOICE"), "delete-voice", &first);
  REQUIRE(deleted.code == grpc::StatusCode::OK);
  CHECK(first.memberships_ended() == 1);
  v1::DeleteSegmentResponse again;
  CHECK(Call(*segments, &SegmentStub::DeleteSegment, SegmentToDelete("VOICE"), "delete-voice", &again) == deleted);
  CHECK(again.memberships_ended() == 1);
  CHECK(HistoryOf(kUser1).size() == 2);
  CHECK(SegmentsOf(kUser1).empty());
  CHECK(StoredKeys() == 3);
}

TEST_CASE_METHOD(ServiceFixture, "An error is an outcome too: a repeat gets it even after the state changed",
                 "[service][idempotency]") {
  REQUIRE(CreateUser(kUser1).ok());
  const auto add = Change(kUser1, {{"LATER"}});
  const Answer missing = Call(*segments, &SegmentStub::UpdateUserSegments, add, "add-later");
  REQUIRE(missing.code == grpc::StatusCode::NOT_FOUND);
  CHECK(ViolationFields(missing.status) == std::vector<std::string>{"segmentsToAdd[0].segmentSlug"});

  REQUIRE(CreateSegment("LATER").ok());
  CHECK(Call(*segments, &SegmentStub::UpdateUserSegments, add, "add-later") == missing);
  CHECK(SegmentsOf(kUser1).empty());
  CHECK(Count("SELECT count(*) FROM history") == 0);
  // Another key is another call.
  CHECK(Call(*segments, &SegmentStub::UpdateUserSegments, add, "add-later-2").code == grpc::StatusCode::OK);
  CHECK(SegmentsOf(kUser1) == std::vector<std::string>{"LATER"});

  // Errors found before the database is asked are stored the same way.
  const auto malformed = Change("not-a-user", {{"LATER"}});
  const Answer invalid = Call(*segments, &SegmentStub::UpdateUserSegments, malformed, "malformed");
  REQUIRE(invalid.code == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK(Call(*segments, &SegmentStub::UpdateUserSegments, malformed, "malformed") == invalid);
  CHECK(Call(*segments, &SegmentStub::UpdateUserSegments, Change(kUser1, {}), "malformed").code ==
        grpc::StatusCode::ALREADY_EXISTS);
  // So is a request that has nothing to do.
  const Answer nothing = Call(*segments, &SegmentStub::UpdateUserSegments, Change(kUser1, {}), "nothing");
  REQUIRE(nothing.code == grpc::StatusCode::OK);
  CHECK(Call(*segments, &SegmentStub::UpdateUserSegments, Change(kUser1, {}), "nothing") == nothing);
  CHECK(StoredKeys() == 4);
}

TEST_CASE_METHOD(ServiceFixture, "A key used for another request is refused, naming the key, and nothing is done",
                 "[service][idempotency]") {
  REQUIRE(CreateUser(kUser1).ok());
  REQUIRE(CreateSegment("A").ok());
  REQUIRE(CreateSegment("B").ok());
  REQUIRE(Call(*segments, &SegmentStub::UpdateUserSegments, Change(kUser1, {{"A"}}), "key-1").code ==
          grpc::StatusCode::OK);

  const Answer other = Call(*segments, &SegmentStub::UpdateUserSegments, Change(kUser1, {{"B"}}), "key-1");
  CHECK(other.code == grpc::StatusCode::ALREADY_EXISTS);
  CHECK(other.message == "idempotency key \"key-1\" was already used with a different request");
  CHECK(SegmentsOf(kUser1) == std::vector<std::string>{"A"});
  // Another call with the key.
  CHECK(Call(*segments, &SegmentStub::DeleteSegment, SegmentToDelete("A"), "key-1").code ==
        grpc::StatusCode::ALREADY_EXISTS);
  CHECK(Call(*users, &UserStub::CreateUser, NewUser(kUser2), "key-1").code == grpc::StatusCode::ALREADY_EXISTS);
  CHECK(Count("SELECT count(*) FROM segments WHERE slug = 'A' AND deleted_at IS NULL") == 1);
  CHECK(Users() == 1);
  CHECK(HistoryOf(kUser1).size() == 1);
  // The first request still gets its outcome; a key in another case is another key.
  CHECK(Call(*segments, &SegmentStub::UpdateUserSegments, Change(kUser1, {{"A"}}), "key-1").code ==
        grpc::StatusCode::OK);
  CHECK(Call(*segments, &SegmentStub::UpdateUserSegments, Change(kUser1, {{"B"}}), "KEY-1").code ==
        grpc::StatusCode::OK);
  CHECK(SegmentsOf(kUser1) == std::vector<std::string>{"A", "B"});
}

TEST_CASE_METHOD(WideFixture, "Twenty calls at once with one key do the work once, and all get its outcome",
                 "[service][idempotency]") {
  REQUIRE(CreateUser(kUser1).ok());
  REQUIRE(CreateSegment("HOT").ok());
  HeldUser held(kUser1);
  std::vector<std::unique_ptr<AsyncUpdate>> calls;
  for (int i = 0; i < 20; ++i) {
    calls.push_back(std::make_unique<AsyncUpdate>(*segments, Change(kUser1, {{"HOT"}}), 30000ms, "one-key"));
  }
  // One call waits for the user's row, the other 19 for its claim of the key.
  REQUIRE(Eventually([&] { return held.Waiters() == 20; }, absl::Seconds(20)));
  held.Release();
  for (const auto& call : calls) {
    const grpc::Status status = call->result.get();
    INFO(Describe(status));
    CHECK(status.ok());
  }
  CHECK(HistoryOf(kUser1).size() == 1);
  CHECK(SegmentsOf(kUser1) == std::vector<std::string>{"HOT"});
  CHECK(StoredKeys() == 1);
}

TEST_CASE_METHOD(ServiceFixture, "A retry finds the outcome of a call whose answer was lost after the commit",
                 "[service][idempotency]") {
  REQUIRE(CreateUser(kUser1).ok());
  REQUIRE(CreateSegment("LOST").ok());
  const auto add = Change(kUser1, {{"LOST"}});
  HeldUser held(kUser1);
  std::optional<AsyncUpdate> call;
  SECTION("the client's deadline passes while the server works") {
    call.emplace(*segments, add, 3000ms, "lost-1");
    REQUIRE(Eventually([&] { return held.Waiters() == 1; }, absl::Seconds(20)));
    CHECK(call->result.get().error_code() == grpc::StatusCode::DEADLINE_EXCEEDED);
  }
  SECTION("the client cancels while the server works") {
    call.emplace(*segments, add, 30000ms, "lost-1");
    REQUIRE(Eventually([&] { return held.Waiters() == 1; }, absl::Seconds(20)));
    call->Cancel();
    CHECK(call->result.get().error_code() == grpc::StatusCode::CANCELLED);
  }
  // The server goes on, and commits the change with its outcome.
  held.Release();
  REQUIRE(Eventually([] { return StoredKeys() == 1; }, absl::Seconds(20)));
  CHECK(HistoryOf(kUser1).size() == 1);

  const Answer retried = Call(*segments, &SegmentStub::UpdateUserSegments, add, "lost-1");
  CHECK(retried.code == grpc::StatusCode::OK);
  CHECK(HistoryOf(kUser1).size() == 1);
  CHECK(SegmentsOf(kUser1) == std::vector<std::string>{"LOST"});
  // Without the key the retry would have been refused.
  CHECK(Update(add).error_code() == grpc::StatusCode::FAILED_PRECONDITION);
}

TEST_CASE_METHOD(ShortStatementFixture, "A failure of the infrastructure is not stored: the retry does the work",
                 "[service][idempotency]") {
  REQUIRE(CreateUser(kUser1).ok());
  REQUIRE(CreateSegment("SLOW").ok());
  const auto add = Change(kUser1, {{"SLOW"}});
  HeldUser held(kUser1);
  // The statement waits for the row past the statement timeout.
  const Answer timed_out = Call(*segments, &SegmentStub::UpdateUserSegments, add, "slow-1");
  CHECK(timed_out.code == grpc::StatusCode::DEADLINE_EXCEEDED);
  CHECK(StoredKeys() == 0);
  held.Release();

  CHECK(Call(*segments, &SegmentStub::UpdateUserSegments, add, "slow-1").code == grpc::StatusCode::OK);
  CHECK(HistoryOf(kUser1).size() == 1);
  CHECK(StoredKeys() == 1);
}

TEST_CASE_METHOD(ServiceFixture, "Malformed keys are refused with a validation error; reads ignore keys",
                 "[service][idempotency]") {
  // gRPC itself refuses to send other characters than printable ASCII in
  // metadata (the gateway refuses them over HTTP: gateway/e2e), so an empty
  // and a long key are what a gRPC client can get wrong.
  for (const std::string& key : {std::string(), std::string(129, 'k')}) {
    const Answer refused = Call(*users, &UserStub::CreateUser, NewUser(kUser1), key);
    INFO(refused);
    CHECK(refused.code == grpc::StatusCode::INVALID_ARGUMENT);
    CHECK(refused.message == "Idempotency-Key: must be 1 to 128 printable ASCII characters (0x20 to 0x7E)");
    CHECK(ViolationFields(refused.status) == std::vector<std::string>{"Idempotency-Key"});
  }
  CHECK(Users() == 0);
  CHECK(StoredKeys() == 0);

  // Two keys on one call.
  auto context = NewContext();
  context->AddMetadata("idempotency-key", "one");
  context->AddMetadata("idempotency-key", "two");
  v1::CreateUserResponse response;
  const grpc::Status two = users->CreateUser(context.get(), NewUser(kUser1), &response);
  CHECK(two.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK(two.error_message() == "Idempotency-Key: give one key, not several");
  CHECK(Users() == 0);

  // The longest key, from the first printable character to the last.
  std::string longest(128, 'x');
  longest.front() = ' ';
  longest.back() = '~';
  CHECK(Call(*users, &UserStub::CreateUser, NewUser(kUser1), longest).code == grpc::StatusCode::OK);
  CHECK(StoredKeys() == 1);

  v1::GetUserSegmentsRequest read;
  read.set_user_id(kUser1);
  CHECK(Call(*segments, &SegmentStub::GetUserSegments, read, "").code == grpc::StatusCode::OK);
  CHECK(Call(*segments, &SegmentStub::GetUserSegments, read, longest).code == grpc::StatusCode::OK);
  CHECK(StoredKeys() == 1);
}

TEST_CASE_METHOD(ShortTtlFixture, "A key is remembered for its TTL, then forgotten", "[service][idempotency]") {
  const Answer created = Call(*users, &UserStub::CreateUser, NewUser(kUser1), "user-1");
  REQUIRE(created.code == grpc::StatusCode::OK);
  REQUIRE(DeleteUser(kUser1).ok());

  // A second before the TTL ends, the cleanup keeps the key: it takes a
  // key made just before that second, put there to show it has run.
  const absl::Time made = Now();
  clock.Advance(absl::Hours(1) - absl::Seconds(1));
  Query("INSERT INTO idempotency_keys VALUES ('', 'older', '\\x00', to_timestamp(" +
        std::to_string(absl::ToUnixMicros(made - absl::Seconds(1) - absl::Milliseconds(1))) +
        " / 1e6), 0, '', '', '')");
  REQUIRE(Eventually([] { return StoredKeys() == 1; }, absl::Seconds(10)));
  CHECK(Call(*users, &UserStub::CreateUser, NewUser(kUser1), "user-1") == created);
  CHECK(Users() == 0);
  CHECK(StoredKeys() == 1);

  clock.Advance(absl::Seconds(2));
  REQUIRE(Eventually([] { return StoredKeys() == 0; }, absl::Seconds(10)));
  // Forgotten: the key does the work again, and may name another request.
  CHECK(Call(*users, &UserStub::CreateUser, NewUser(kUser1), "user-1").code == grpc::StatusCode::OK);
  CHECK(Users() == 1);
  CHECK(Call(*users, &UserStub::DeleteUser, v1::DeleteUserRequest(), "user-1").code ==
        grpc::StatusCode::ALREADY_EXISTS);
}

TEST_CASE_METHOD(ServiceFixture,
                 "A keyed fill and percentage change answer once their chunks are done, and repeat exactly",
                 "[service][idempotency]") {
  REQUIRE(CreateUser(kUser1).ok());
  REQUIRE(CreateUser(kUser2).ok());
  v1::CreateSegmentRequest create;
  create.set_slug("ALL");
  create.set_percent_to_fill(100);
  const Answer created = Call(*segments, &SegmentStub::CreateSegment, create, "fill-all");
  REQUIRE(created.code == grpc::StatusCode::OK);
  // Filled when the call returns, with one event each, and its task done.
  CHECK(SegmentsOf(kUser1) == std::vector<std::string>{"ALL"});
  CHECK(SegmentsOf(kUser2) == std::vector<std::string>{"ALL"});
  CHECK(Count("SELECT count(*) FROM segment_tasks WHERE finished_at IS NOT NULL AND count = 2") == 1);
  clock.Advance(absl::Minutes(1));
  CHECK(Call(*segments, &SegmentStub::CreateSegment, create, "fill-all") == created);
  CHECK(Count("SELECT count(*) FROM history WHERE slug = 'ALL' AND operation = 'add'") == 2);

  v1::UpdateSegmentPercentRequest lower;
  lower.set_slug("ALL");
  lower.set_percent_to_fill(0);
  v1::UpdateSegmentPercentResponse first;
  const Answer lowered = Call(*segments, &SegmentStub::UpdateSegmentPercent, lower, "empty-all", &first);
  REQUIRE(lowered.code == grpc::StatusCode::OK);
  CHECK(first.members_removed() == 2);
  CHECK(SegmentsOf(kUser1).empty());
  v1::UpdateSegmentPercentResponse again;
  CHECK(Call(*segments, &SegmentStub::UpdateSegmentPercent, lower, "empty-all", &again) == lowered);
  CHECK(again.members_removed() == 2);
  CHECK(Count("SELECT count(*) FROM history WHERE slug = 'ALL' AND operation = 'remove'") == 2);
  CHECK(Count("SELECT count(*) FROM segment_tasks WHERE finished_at IS NULL") == 0);
  // Both keys were pending on their tasks, and hold their answers now.
  CHECK(Count("SELECT count(*) FROM idempotency_keys WHERE task_id IS NOT NULL AND code = 0") == 2);
}

TEST_CASE_METHOD(SmallChunkFixture,
                 "A keyed fill commits its key pending and runs in chunks: users are created beside it, and a "
                 "repeat under way finishes it and answers alike",
                 "[service][idempotency]") {
  std::vector<std::string> people = InsertUsers(200, "kf");
  std::sort(people.begin(), people.end());  // the order chunks take them in
  // In the third chunk: the first one commits before anything waits.
  HeldUser held(people[120]);
  v1::CreateSegmentRequest create;
  create.set_slug("KEYED_FILL");
  create.set_percent_to_fill(100);
  auto keyed_fill = [&] {
    return Call(*segments, &SegmentStub::CreateSegment, create, "fill-1", NoResponse<v1::CreateSegmentResponse>(),
                30000ms);
  };
  std::future<Answer> first = std::async(std::launch::async, keyed_fill);
  REQUIRE(Eventually([&] { return held.Waiters() == 1 && UnfinishedTasksUnderWay() == 1; }, absl::Seconds(20)));
  // The segment and the key, pending on the fill's task, are committed.
  CHECK(Count("SELECT count(*) FROM idempotency_keys WHERE code IS NULL AND task_id IS NOT NULL") == 1);
  CHECK(Count("SELECT count(*) FROM segments WHERE slug = 'KEYED_FILL'") == 1);
  // A user created now does not wait for the fill, and is in the segment.
  REQUIRE(CreateUser(kUser1).ok());
  CHECK(SegmentsOf(kUser1) == std::vector<std::string>{"KEYED_FILL"});
  CHECK(UnfinishedTasksUnderWay() == 1);

  // A repeat while the fill is under way finishes it too (its chunk waits
  // for the first call's), and answers what the first call answers.
  std::future<Answer> repeat = std::async(std::launch::async, keyed_fill);
  REQUIRE(Eventually([&] { return held.Waiters() == 2; }, absl::Seconds(20)));
  held.Release();
  const Answer answer = first.get();
  REQUIRE(answer.code == grpc::StatusCode::OK);
  CHECK(repeat.get() == answer);
  // Every user once: one membership and one `add` each.
  CHECK(Count("SELECT count(*) FROM history WHERE slug = 'KEYED_FILL' AND operation = 'add'") == 201);
  CHECK(Count("SELECT count(DISTINCT user_id) FROM history WHERE slug = 'KEYED_FILL'") == 201);
  CHECK(Count("SELECT count(*) FROM memberships m JOIN segments s ON s.id = m.segment_id "
              "WHERE s.slug = 'KEYED_FILL'") == 201);
  CHECK(Count("SELECT count(*) FROM idempotency_keys WHERE code = 0 AND task_id IS NOT NULL") == 1);
  CHECK(Count("SELECT count(*) FROM segment_tasks WHERE finished_at IS NULL") == 0);
  CHECK(keyed_fill() == answer);
}

TEST_CASE_METHOD(SmallChunkFixture,
                 "A keyed percentage change or deletion left pending is finished by its repeat, which answers "
                 "from the task",
                 "[service][idempotency]") {
  std::vector<std::string> people = InsertUsers(200, "kp");
  std::sort(people.begin(), people.end());
  REQUIRE(CreateSegment("HALF").ok());
  v1::UpdateSegmentPercentRequest raise;
  raise.set_slug("HALF");
  raise.set_percent_to_fill(100);
  v1::DeleteSegmentRequest drop = SegmentToDelete("HALF");
  std::optional<HeldRows> held;
  std::optional<std::future<Answer>> first;
  SECTION("a raised percentage") {
    held.emplace("SELECT 1 FROM users WHERE id = " + Literal(people[120]) + " FOR UPDATE");
    first = std::async(std::launch::async, [&] {
      return Call(*segments, &SegmentStub::UpdateSegmentPercent, raise, "change-1",
                  NoResponse<v1::UpdateSegmentPercentResponse>(), 3000ms);
    });
  }
  SECTION("a deletion") {
    REQUIRE(SetPercent("HALF", 100).ok());
    // A deletion's chunk locks no user: it waits for a membership's row.
    held.emplace("SELECT 1 FROM memberships WHERE user_id = " + Literal(people[120]) + " FOR UPDATE");
    first = std::async(std::launch::async, [&] {
      return Call(*segments, &SegmentStub::DeleteSegment, drop, "change-1", NoResponse<v1::DeleteSegmentResponse>(),
                  3000ms);
    });
  }
  // The first caller gives up while a chunk waits for the held row: its key
  // stays pending on the task.
  REQUIRE(Eventually([&] { return held->Waiters() == 1 && UnfinishedTasksUnderWay() == 1; }, absl::Seconds(20)));
  CHECK(first->get().code == grpc::StatusCode::DEADLINE_EXCEEDED);
  CHECK(Count("SELECT count(*) FROM idempotency_keys WHERE code IS NULL AND task_id IS NOT NULL") == 1);
  held->Release();
  // The repeat answers with the task's whole count, once it is done.
  const bool deleting = Count("SELECT count(*) FROM segments WHERE deleted_at IS NOT NULL") == 1;
  Answer repeated;
  int64_t count = 0;
  if (deleting) {
    v1::DeleteSegmentResponse response;
    repeated = Call(*segments, &SegmentStub::DeleteSegment, drop, "change-1", &response, 30000ms);
    count = response.memberships_ended();
  } else {
    v1::UpdateSegmentPercentResponse response;
    repeated = Call(*segments, &SegmentStub::UpdateSegmentPercent, raise, "change-1", &response, 30000ms);
    count = response.members_added();
  }
  REQUIRE(repeated.code == grpc::StatusCode::OK);
  CHECK(count == 200);
  CHECK(Count("SELECT count(*) FROM segment_tasks WHERE finished_at IS NULL") == 0);
  CHECK(Count("SELECT count(*) FROM idempotency_keys WHERE code = 0 AND task_id IS NOT NULL") == 1);
  CHECK(Count(fmt::format("SELECT count(*) FROM history WHERE operation = '{}'", deleting ? "remove" : "add")) == 200);
}
