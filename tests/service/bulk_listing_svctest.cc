// Bulk membership (AddSegmentToUsers / RemoveSegmentFromUsers) and listing
// (ListSegments, ListSegmentMembers, StreamSegmentMembers) through gRPC on the
// real server and database.
#include <absl/strings/escaping.h>

#include <algorithm>
#include <atomic>
#include <future>
#include <thread>

#include "service/auto_fixture.h"

namespace segments::testing {
namespace {

using Rows = std::vector<std::vector<std::string>>;

// --- bulk membership

TEST_CASE_METHOD(AutoFixture, "AddSegmentToUsers with one unknown id adds nobody and writes no history",
                 "[service][bulk]") {
  auto people = InsertUsers(1000, "atomic");
  REQUIRE(CreateSegment("S").ok());
  const std::string unknown = "ffffffff-ffff-4fff-bfff-ffffffffffff";
  people.insert(people.begin() + 500, unknown);
  const auto before = Snapshot();

  const grpc::Status add = BulkAdd("S", people);
  CHECK(add.error_code() == grpc::StatusCode::NOT_FOUND);
  const auto violations = FieldViolations(add);
  REQUIRE(violations.size() == 1);
  CHECK(violations[0].field() == "userIDs[500]");
  CHECK(violations[0].description().find(unknown) != std::string::npos);
  CHECK(Snapshot() == before);

  const grpc::Status remove = BulkRemove("S", people);
  CHECK(remove.error_code() == grpc::StatusCode::NOT_FOUND);
  CHECK(ViolationFields(remove) == std::vector<std::string>{"userIDs[500]"});
  CHECK(Snapshot() == before);
  CHECK(Count("SELECT count(*) FROM auto_opt_outs") == 0);
}

// The list is capped so that the error fits the metadata a default gRPC
// client accepts (it travels twice in the trailers: message and details).
TEST_CASE_METHOD(AutoFixture, "Bulk calls list the first 20 unknown or repeated ids and sum up the rest",
                 "[service][bulk]") {
  REQUIRE(CreateSegment("S").ok());
  const auto people = InsertUsers(1, "known");
  std::vector<std::string> unknown;
  for (int i = 0; i < 250; ++i) unknown.push_back(fmt::format("00000000-0000-4000-8000-{:012x}", i));
  std::vector<std::string> repeated(250, people[0]);

  const auto check = [](const grpc::Status& status, grpc::StatusCode code, const std::string& field19,
                        const std::string& summary) {
    INFO(Describe(status).substr(0, 300) << " / message bytes " << status.error_message().size());
    CHECK(status.error_code() == code);
    const auto violations = FieldViolations(status);
    CHECK(violations.size() == 21);
    if (violations.size() != 21) return;
    CHECK(violations[19].field() == field19);
    CHECK(violations[20].field() == "userIDs");
    CHECK(violations[20].description() == summary);
  };
  check(BulkAdd("S", unknown), grpc::StatusCode::NOT_FOUND, "userIDs[19]", "and 230 more unknown users");
  check(BulkRemove("S", unknown), grpc::StatusCode::NOT_FOUND, "userIDs[19]", "and 230 more unknown users");
  check(BulkAdd("S", repeated), grpc::StatusCode::INVALID_ARGUMENT, "userIDs[20]", "and 229 more problems");
  CHECK(Count("SELECT count(*) FROM memberships") == 0);
}

TEST_CASE_METHOD(AutoFixture, "Bulk requests are checked: slug, list size, ids, duplicates, TTL", "[service][bulk]") {
  const auto people = InsertUsers(3, "shape");
  REQUIRE(CreateSegment("S").ok());
  const grpc::Status empty = BulkAdd("S", {});
  CHECK(empty.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK(ViolationFields(empty) == std::vector<std::string>{"userIDs"});

  // 100,001 ids: refused as a whole, the request itself fits the message limit.
  std::vector<std::string> too_many(100'001, people[0]);
  const grpc::Status big = BulkRemove("S", too_many);
  CHECK(big.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK(ViolationFields(big) == std::vector<std::string>{"userIDs"});

  const grpc::Status bad = BulkAdd("bad slug", {people[0], "nope", people[1], people[0]});
  CHECK(bad.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK(ViolationFields(bad) == std::vector<std::string>{"slug", "userIDs[1]", "userIDs[3]"});

  CHECK(BulkAdd("NOPE", {people[0]}).error_code() == grpc::StatusCode::NOT_FOUND);

  v1::AddSegmentToUsersRequest both;
  both.set_slug("S");
  both.add_user_ids(people[0]);
  both.set_seconds_to_be_in_segment(10);
  *both.mutable_deadline_for_staying_in_segment() = ToTimestamp(Now() + absl::Hours(1));
  v1::AddSegmentToUsersResponse ignored;
  const grpc::Status ttl = segments->AddSegmentToUsers(NewContext().get(), both, &ignored);
  CHECK(ttl.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK(ViolationFields(ttl) == std::vector<std::string>{"secondsToBeInSegment"});
  CHECK(Count("SELECT count(*) FROM memberships") == 0);
}

TEST_CASE_METHOD(AutoFixture, "AddSegmentToUsers: counts, TTL, canonical ids and manual history", "[service][bulk]") {
  const auto people = InsertUsers(20, "counts");
  REQUIRE(CreateSegment("S").ok());
  REQUIRE(Update(Change(people[0], {{"S"}})).ok());
  clock.Advance(absl::Seconds(3));
  std::vector<std::string> ids(people.begin(), people.begin() + 10);
  std::transform(ids[4].begin(), ids[4].end(), ids[4].begin(),
                 [](char c) { return static_cast<char>(std::toupper(c)); });
  v1::AddSegmentToUsersResponse response;
  const grpc::Status status = BulkAdd("S", ids, &response, 600);
  INFO(Describe(status));
  REQUIRE(status.ok());
  CHECK(response.added() == 9);
  CHECK(response.already_members() == 1);
  CHECK(MembersOf("S") == UserSet(people.begin(), people.begin() + 10));
  CHECK(Count("SELECT count(*) FROM memberships WHERE NOT auto AND expires_at = '" +
              Rfc3339Of(Now() + absl::Minutes(10)) + "'") == 9);
  CHECK(HistoryOf(people[4]) == Rows{Event("S", "add", "manual", Now())});
  CHECK(SegmentsOf(people[4]) == std::vector<std::string>{"S"});

  v1::RemoveSegmentFromUsersResponse removed;
  REQUIRE(BulkRemove("S", std::vector<std::string>(people.begin() + 5, people.end()), &removed).ok());
  CHECK(removed.removed() == 5);
  CHECK(removed.not_members() == 10);
  CHECK(MembersOf("S") == UserSet(people.begin(), people.begin() + 5));
  CHECK(HistoryOf(people[7]).back() == Event("S", "remove", "manual", Now()));
  CHECK(Count("SELECT count(*) FROM auto_opt_outs WHERE reason = 'manual'") == 5);
}

TEST_CASE_METHOD(AutoFixture, "100,000 users in one AddSegmentToUsers and one RemoveSegmentFromUsers",
                 "[service][bulk][large]") {
  const auto people = InsertUsers(100'000, "large");
  REQUIRE(CreateSegment("BIG").ok());
  v1::AddSegmentToUsersResponse added;
  const grpc::Status add = BulkAdd("BIG", people, &added);

  INFO(Describe(add));
  REQUIRE(add.ok());
  CHECK(added.added() == 100'000);
  CHECK(MemberCount("BIG") == 100'000);
  CHECK(Count("SELECT count(*) FROM history WHERE operation = 'add' AND reason = 'manual'") == 100'000);

  v1::RemoveSegmentFromUsersResponse removed;
  const grpc::Status remove = BulkRemove("BIG", people, &removed);
  INFO(Describe(remove));
  REQUIRE(remove.ok());
  CHECK(removed.removed() == 100'000);
  CHECK(MemberCount("BIG") == 0);
  CHECK(Count("SELECT count(*) FROM auto_opt_outs") == 100'000);
}

// Memberships have no foreign keys: a bulk add must keep the users it found
// from being deleted until it commits, or a user deleted meanwhile keeps a
// membership (returned by GetUserSegments, counted, listed). The test holds
// an uncommitted row the bulk insert must wait for, deterministically.
TEST_CASE_METHOD(AutoFixture, "A user deleted while a bulk add is under way keeps no membership",
                 "[service][bulk][concurrency]") {
  const auto people = InsertUsers(2, "race");
  const std::string& victim = people[0];
  const std::string& blocker = people[1];
  REQUIRE(CreateSegment("S").ok());
  PgSession holder;
  holder.Exec("BEGIN");
  holder.Exec("INSERT INTO memberships (user_id, segment_id, added_at) SELECT " + Literal(blocker) +
              ", id, now() FROM segments WHERE slug = 'S'");
  auto add = std::async(std::launch::async, [&] { return BulkAdd("S", {victim, blocker}); });
  REQUIRE(Eventually([] { return LockWaiters() >= 1; }, absl::Seconds(5)));
  auto removal = std::async(std::launch::async, [&] { return DeleteUser(victim); });
  // Either the deletion goes through at once (no lock kept it off) or it waits for the bulk add.
  Eventually(
      [&] { return removal.wait_for(std::chrono::seconds(0)) == std::future_status::ready || LockWaiters() >= 2; },
      absl::Seconds(3));
  holder.Exec("ROLLBACK");
  const grpc::Status added = add.get();
  const grpc::Status removed = removal.get();
  INFO(Describe(added) << " / " << Describe(removed));
  REQUIRE(added.ok());
  REQUIRE(removed.ok());
  CHECK(Count("SELECT count(*) FROM users WHERE id = " + Literal(victim)) == 0);
  CHECK(Count("SELECT count(*) FROM memberships WHERE user_id = " + Literal(victim)) == 0);
  CHECK(SegmentsOf(victim).empty());
  CHECK(MembersOf("S") == UserSet{blocker});
}

// --- listing

grpc::Status ListMembers(AutoFixture& f, const std::string& slug, int32_t size, const std::string& token,
                         v1::ListSegmentMembersResponse* response) {
  v1::ListSegmentMembersRequest request;
  request.set_slug(slug);
  request.set_page_size(size);
  request.set_page_token(token);
  return f.segments->ListSegmentMembers(NewContext().get(), request, response);
}

TEST_CASE_METHOD(AutoFixture, "ListSegments pages through live segments in byte order with their options",
                 "[service][listing]") {
  for (const char* slug : {"b", "A", "a", "Z_1", "Z-1", "0", "GONE"}) REQUIRE(CreateSegment(slug).ok());
  REQUIRE(DeleteSegment("GONE").ok());
  REQUIRE(CreateAuto("OPT", 12.5, {"b", "A"}, {"0"}, 90).ok());
  std::vector<std::string> slugs;
  std::string token;
  int pages = 0;
  do {
    v1::ListSegmentsRequest request;
    request.set_page_size(3);
    request.set_page_token(token);
    v1::ListSegmentsResponse response;
    const grpc::Status status = segments->ListSegments(NewContext().get(), request, &response);
    INFO(Describe(status));
    REQUIRE(status.ok());
    REQUIRE(++pages <= 3);
    for (const auto& s : response.segments()) {
      slugs.push_back(s.slug());
      if (s.slug() == "OPT") {
        CHECK(s.percent_to_fill() == 12.5);
        CHECK(std::vector<std::string>(s.include_segments().begin(), s.include_segments().end()) ==
              std::vector<std::string>{"A", "b"});
        CHECK(std::vector<std::string>(s.exclude_segments().begin(), s.exclude_segments().end()) ==
              std::vector<std::string>{"0"});
        CHECK(s.auto_seconds_to_be_in_segment() == 90);
      } else {
        CHECK_FALSE(s.has_auto_seconds_to_be_in_segment());
      }
    }
    token = response.next_page_token();
  } while (!token.empty());
  CHECK(slugs == std::vector<std::string>{"0", "A", "OPT", "Z-1", "Z_1", "a", "b"});

  v1::ListSegmentsRequest bad;
  bad.set_page_token("not a token");
  bad.set_page_size(1001);
  v1::ListSegmentsResponse ignored;
  const grpc::Status status = segments->ListSegments(NewContext().get(), bad, &ignored);
  CHECK(status.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK(ViolationFields(status) == std::vector<std::string>{"pageSize", "pageToken"});
}

TEST_CASE_METHOD(AutoFixture, "ListSegmentMembers returns every stable member once while others come and go",
                 "[service][listing][concurrency]") {
  const auto stable = InsertUsers(3000, "stable");
  const auto churn = InsertUsers(1000, "churn");
  REQUIRE(CreateSegment("S").ok());
  REQUIRE(BulkAdd("S", stable).ok());

  std::atomic<bool> stop{false};
  std::atomic<int> changes{0};
  std::thread writer([&] {
    auto stub = v1::SegmentService::NewStub(NewChannel(app->port()));
    for (size_t round = 0; !stop.load(); ++round) {
      const size_t from = (round * 37) % (churn.size() - 50);
      v1::AddSegmentToUsersRequest add;
      add.set_slug("S");
      for (size_t i = from; i < from + 50; ++i) add.add_user_ids(churn[i]);
      v1::AddSegmentToUsersResponse added;
      if (stub->AddSegmentToUsers(NewContext().get(), add, &added).ok()) changes.fetch_add(1);
      v1::RemoveSegmentFromUsersRequest remove;
      remove.set_slug("S");
      for (size_t i = from; i < from + 50; i += 2) remove.add_user_ids(churn[i]);
      v1::RemoveSegmentFromUsersResponse removed;
      if (stub->RemoveSegmentFromUsers(NewContext().get(), remove, &removed).ok()) changes.fetch_add(1);
    }
  });

  // Stops the writer however the test ends (a failed REQUIRE throws).
  struct Joiner {
    std::atomic<bool>& stop;
    std::thread& thread;
    ~Joiner() {
      stop.store(true);
      if (thread.joinable()) thread.join();
    }
  } joiner{stop, writer};
  CHECK(Eventually([&] { return changes.load() >= 2; }, absl::Seconds(10)));  // the writer is going
  std::vector<std::string> seen;
  std::string token;
  int pages = 0;
  do {
    v1::ListSegmentMembersResponse response;
    const grpc::Status status = ListMembers(*this, "S", 100, token, &response);
    INFO(Describe(status));
    REQUIRE(status.ok());
    ++pages;
    for (const auto& m : response.members()) seen.push_back(m.user_id());
    token = response.next_page_token();
    // The next page only after another write: pages and writes interleave
    // however slow the machine.
    const int written = changes.load();
    if (!token.empty()) REQUIRE(Eventually([&] { return changes.load() > written; }, absl::Seconds(30)));
  } while (!token.empty());
  stop.store(true);
  writer.join();
  INFO("pages " << pages << ", writes " << changes.load());
  CHECK(changes.load() > 2);
  CHECK(std::is_sorted(seen.begin(), seen.end()));
  CHECK(std::adjacent_find(seen.begin(), seen.end()) == seen.end());  // nobody twice
  const UserSet got(seen.begin(), seen.end());
  for (const auto& u : stable) {
    if (!got.contains(u)) FAIL_CHECK("stable member missing: " << u);
  }
  const UserSet allowed = [&] {
    UserSet out(stable.begin(), stable.end());
    out.insert(churn.begin(), churn.end());
    return out;
  }();
  CHECK(Minus(got, allowed).empty());
}

TEST_CASE_METHOD(AutoFixture, "ListSegmentMembers: fields, bad tokens and a re-created segment", "[service][listing]") {
  const auto people = InsertUsers(5, "fields");
  REQUIRE(CreateAuto("S", 100.0, {}, {}, 3600).ok());
  v1::ListSegmentMembersResponse page;
  REQUIRE(ListMembers(*this, "S", 2, "", &page).ok());
  REQUIRE(page.members_size() == 2);
  CHECK(page.members(0).automatic());
  CHECK(page.members(0).added_at().seconds() == absl::ToUnixSeconds(Now()));
  CHECK(page.members(0).expires_at().seconds() == absl::ToUnixSeconds(Now() + absl::Hours(1)));
  const std::string token = page.next_page_token();
  REQUIRE_FALSE(token.empty());

  v1::ListSegmentMembersResponse ignored;
  const grpc::Status garbage = ListMembers(*this, "S", 2, "###", &ignored);
  CHECK(garbage.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK(ViolationFields(garbage) == std::vector<std::string>{"pageToken"});
  CHECK(ListMembers(*this, "NOPE", 2, "", &ignored).error_code() == grpc::StatusCode::NOT_FOUND);
  CHECK(ViolationFields(ListMembers(*this, "S", 10001, "", &ignored)) == std::vector<std::string>{"pageSize"});

  REQUIRE(DeleteSegment("S").ok());
  REQUIRE(CreateAuto("S", 100.0).ok());
  const grpc::Status stale = ListMembers(*this, "S", 2, token, &ignored);
  CHECK(stale.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK(ViolationFields(stale) == std::vector<std::string>{"pageToken"});
}

std::vector<v1::StreamSegmentMembersResponse> StreamAll(AutoFixture& f, const std::string& slug, grpc::Status* status) {
  v1::StreamSegmentMembersRequest request;
  request.set_slug(slug);
  auto context = NewContext(std::chrono::seconds(30));
  auto reader = f.segments->StreamSegmentMembers(context.get(), request);
  std::vector<v1::StreamSegmentMembersResponse> out;
  v1::StreamSegmentMembersResponse message;
  while (reader->Read(&message)) out.push_back(message);
  *status = reader->Finish();
  return out;
}

TEST_CASE_METHOD(AutoFixture, "StreamSegmentMembers sends every member once, in order, in batches",
                 "[service][listing][stream]") {
  const auto people = InsertUsers(2500, "stream");
  REQUIRE(CreateSegment("S").ok());
  REQUIRE(BulkAdd("S", people).ok());
  const auto others = InsertUsers(10, "not-members");
  REQUIRE(CreateSegment("OTHER").ok());
  REQUIRE(BulkAdd("OTHER", others).ok());

  grpc::Status status;
  const auto messages = StreamAll(*this, "S", &status);
  INFO(Describe(status));
  REQUIRE(status.ok());
  CHECK(messages.size() == 3);
  std::vector<std::string> ids;
  for (const auto& m : messages) {
    CHECK(m.members_size() <= 1000);
    for (const auto& member : m.members()) ids.push_back(member.user_id());
  }
  std::vector<std::string> expected = people;
  std::sort(expected.begin(), expected.end());
  CHECK(ids == expected);

  REQUIRE(CreateSegment("EMPTY").ok());
  const auto empty = StreamAll(*this, "EMPTY", &status);
  CHECK(status.ok());
  REQUIRE(empty.size() == 1);
  CHECK(empty[0].members_size() == 0);

  StreamAll(*this, "NOPE", &status);
  CHECK(status.error_code() == grpc::StatusCode::NOT_FOUND);
  StreamAll(*this, "bad slug", &status);
  CHECK(status.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
}

// Every member at an instant (HistoryService, docs/time-travel.md), as
// StreamAll above.
std::vector<std::string> StreamAllAt(AutoFixture& f, const std::string& slug, std::optional<absl::Time> at,
                                     grpc::Status* status, size_t* messages) {
  v1::StreamSegmentMembersAtRequest request;
  request.set_slug(slug);
  if (at) *request.mutable_at() = ToTimestamp(*at);
  auto context = NewContext(std::chrono::seconds(30));
  auto reader = f.history->StreamSegmentMembersAt(context.get(), request);
  std::vector<std::string> ids;
  v1::StreamSegmentMembersAtResponse message;
  *messages = 0;
  while (reader->Read(&message)) {
    ++*messages;
    CHECK(message.members_size() <= 1000);
    for (const auto& member : message.members()) ids.push_back(member.user_id());
  }
  *status = reader->Finish();
  return ids;
}

TEST_CASE_METHOD(AutoFixture, "StreamSegmentMembersAt sends the members of a past instant, in batches",
                 "[service][listing][stream][time_travel]") {
  const auto people = InsertUsers(2500, "then");
  REQUIRE(CreateSegment("S").ok());
  REQUIRE(BulkAdd("S", people).ok());
  const absl::Time then = Now();
  clock.Advance(absl::Seconds(1));
  const std::vector<std::string> leaving(people.begin(), people.begin() + 600);
  REQUIRE(BulkRemove("S", leaving).ok());

  grpc::Status status;
  size_t messages = 0;
  std::vector<std::string> expected = people;
  std::sort(expected.begin(), expected.end());
  CHECK(StreamAllAt(*this, "S", then, &status, &messages) == expected);
  INFO(Describe(status));
  CHECK(status.ok());
  CHECK(messages == 3);
  const auto now = StreamAllAt(*this, "S", std::nullopt, &status, &messages);
  CHECK(status.ok());
  CHECK(now.size() == 1900);
  CHECK(messages == 2);
  StreamAllAt(*this, "S", Now() + absl::Hours(1), &status, &messages);
  CHECK(status.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  StreamAllAt(*this, "NEVER", std::nullopt, &status, &messages);
  CHECK(status.error_code() == grpc::StatusCode::NOT_FOUND);
}

}  // namespace
}  // namespace segments::testing
