// The many-user statements of PgStore (batches of user events): reads of
// many users' memberships and opt-outs, deletion and opt-outs by (user,
// segment), and the end of many users (EndAllOfUsers, DeleteMany), each
// checked row by row in the tables.
#include <absl/synchronization/notification.h>

#include <catch2/catch.hpp>
#include <string>
#include <thread>
#include <vector>

#include "common/status_macros.h"
#include "storage/pg_store.h"
#include "support/domain_testing.h"
#include "support/store_testing.h"
#include "support/test_database.h"

using namespace segments::domain;
using segments::storage::PgPool;
using segments::storage::PgPoolOptions;
using segments::storage::PgStore;
using segments::testing::Id;
using segments::testing::Query;
using segments::testing::QueryValue;
using Rows = std::vector<std::vector<std::string>>;

namespace {

constexpr const char* kAnn = "11111111-1111-4111-8111-111111111111";
constexpr const char* kBen = "22222222-2222-4222-8222-222222222222";
constexpr const char* kCal = "1003";

const absl::Time kT0 = absl::FromCivil(absl::CivilSecond(2024, 3, 1, 12, 0, 0), absl::UTCTimeZone());
const absl::Time kNow = kT0 + absl::Hours(1);

std::string Micros(absl::Time t) { return std::to_string(absl::ToUnixMicros(t)); }
std::string MicrosOf(const std::string& column) { return "(extract(epoch FROM " + column + ") * 1000000)::int8"; }

struct Fixture {
  PgPool pool{PgPoolOptions{segments::testing::TestDatabaseUrl(), 4}};
  PgStore store{pool};
  Segment s1, s2;

  // Ann: S1 automatic, expired at +5 min, and S2 for good; Ben: S1 for good;
  // Cal: S1 for good. Ann opted out of S2 by hand, Cal of S2 by TTL.
  Fixture() {
    segments::testing::ResetDatabase();
    Tx([&](Transaction& tx) -> absl::Status {
      for (const char* user : {kAnn, kBen, kCal}) RETURN_IF_ERROR(tx.users().Insert(Id(user), UserState::kActive, kT0));
      ASSIGN_OR_RETURN(s1, tx.segments().Insert({"S1", 0, "", "salt", {}}, kT0));
      ASSIGN_OR_RETURN(s2, tx.segments().Insert({"S2", 0, "", "salt", {}}, kT0));
      RETURN_IF_ERROR(tx.memberships().Insert({{Id(kAnn), {s1.id, kT0 + absl::Minutes(5), true}},
                                               {Id(kAnn), {s2.id, std::nullopt, false}},
                                               {Id(kBen), {s1.id, std::nullopt, false}},
                                               {Id(kCal), {s1.id, std::nullopt, false}}},
                                              kT0));
      return tx.memberships().RecordOptOutsOfUsers(
          {{Id(kAnn), s2.id, Reason::kManual}, {Id(kCal), s2.id, Reason::kTtl}}, kT0);
    });
  }

  template <typename F>
  void Tx(F f) {
    absl::Status status = store.InTransaction([&](Transaction& tx) -> absl::Status { return f(tx); });
    INFO(status.ToString());
    REQUIRE(status.ok());
  }
};

}  // namespace

TEST_CASE_METHOD(Fixture, "OfUsers and OptedOutSegmentsOfUsers read many users at once, by user", "[pg][users]") {
  Tx([&](Transaction& tx) -> absl::Status {
    ASSIGN_OR_RETURN(auto memberships, tx.memberships().OfUsers({Id(kAnn), Id(kBen), Id("777")}));
    CHECK(memberships.size() == 2);  // nothing for user 777
    const std::vector<Membership>& ann = memberships.at(Id(kAnn));
    REQUIRE(ann.size() == 2);
    CHECK(ann[0].segment_id == s1.id);
    CHECK(ann[0].slug == "S1");
    CHECK(ann[0].added_at == kT0);
    CHECK(ann[0].expires_at == kT0 + absl::Minutes(5));
    CHECK(ann[0].automatic);
    CHECK(ann[1].segment_id == s2.id);
    CHECK_FALSE(ann[1].expires_at.has_value());
    CHECK_FALSE(ann[1].automatic);
    CHECK(memberships.at(Id(kBen)).size() == 1);

    ASSIGN_OR_RETURN(auto opted_out, tx.memberships().OptedOutSegmentsOfUsers({Id(kAnn), Id(kBen), Id(kCal)}));
    CHECK(opted_out.size() == 2);  // Ben has none
    CHECK(opted_out.at(Id(kAnn)) == std::vector<SegmentId>{s2.id});
    CHECK(opted_out.at(Id(kCal)) == std::vector<SegmentId>{s2.id});
    return absl::OkStatus();
  });
}

TEST_CASE_METHOD(Fixture, "OfUsers locks the rows it reads, so the expiry job skips them", "[pg][users][expiry]") {
  Tx([&](Transaction& tx) {
    return tx.memberships().Insert({{Id(kBen), {s2.id, kT0 + absl::Minutes(7), true}}}, kT0);
  });
  absl::Notification read, expired;
  absl::Status reader;
  std::thread t([&] {
    reader = store.InTransaction([&](Transaction& tx) -> absl::Status {
      auto rows = tx.memberships().OfUsers({Id(kAnn)});
      if (!read.HasBeenNotified()) read.Notify();
      expired.WaitForNotification();
      return rows.status();
    });
    if (!read.HasBeenNotified()) read.Notify();
  });
  read.WaitForNotification();
  // Ann's expired row is held: only Ben's ends.
  auto ended = segments::testing::EndExpiredMemberships(store, kNow, 100);
  expired.Notify();
  t.join();
  CHECK(reader.ok());
  REQUIRE(ended.ok());
  CHECK(*ended == 1);
  CHECK(Query("SELECT user_id FROM history WHERE reason = 'ttl'") == Rows{{kBen}});
}

TEST_CASE_METHOD(Fixture, "DeleteOfUsers and RecordOptOutsOfUsers touch exactly their (user, segment) pairs",
                 "[pg][users]") {
  Tx([&](Transaction& tx) -> absl::Status {
    // Ben is not in S2: nothing to delete there.
    RETURN_IF_ERROR(tx.memberships().DeleteOfUsers({{Id(kAnn), s1.id}, {Id(kBen), s2.id}, {Id(kCal), s1.id}}));
    // Ann's opt-out of S2 is there already and stays as it was.
    return tx.memberships().RecordOptOutsOfUsers({{Id(kAnn), s1.id, Reason::kTtl},
                                                  {Id(kAnn), s2.id, Reason::kTtl},
                                                  {Id(kBen), s1.id, Reason::kManual},
                                                  {Id(kBen), s1.id, Reason::kManual}},
                                                 kNow);
  });
  CHECK(Query("SELECT user_id, segment_id FROM memberships ORDER BY 1, 2") ==
        Rows{{kAnn, std::to_string(s2.id)}, {kBen, std::to_string(s1.id)}});
  CHECK(Query("SELECT user_id, segment_id, reason, " + MicrosOf("at") + " FROM auto_opt_outs ORDER BY 1, 2") ==
        Rows{{kCal, std::to_string(s2.id), "ttl", Micros(kT0)},
             {kAnn, std::to_string(s1.id), "ttl", Micros(kNow)},
             {kAnn, std::to_string(s2.id), "manual", Micros(kT0)},
             {kBen, std::to_string(s1.id), "manual", Micros(kNow)}});
  CHECK(QueryValue("SELECT count(*) FROM history") == "0");  // history is the caller's (MembershipChanges)
}

TEST_CASE_METHOD(Fixture, "EndAllOfUsers and DeleteMany end many users as EndAllOfUser and Delete end one",
                 "[pg][users]") {
  int64_t ended = -1;
  Tx([&](Transaction& tx) -> absl::Status {
    ASSIGN_OR_RETURN(ended, tx.memberships().EndAllOfUsers({Id(kAnn), Id(kBen)}, Reason::kUserDeleted, kNow));
    return tx.users().DeleteMany({Id(kAnn), Id(kBen)});
  });
  CHECK(ended == 2);  // Ann's S1 had expired: recorded, not counted
  // Ann's automatic S1 ended by TTL at its deadline; no opt-out is written
  // for it, as the user goes.
  CHECK(Query("SELECT user_id, slug, operation, reason, " + MicrosOf("at") + " FROM history ORDER BY 1, 2") ==
        Rows{{kAnn, "S1", "remove", "ttl", Micros(kT0 + absl::Minutes(5))},
             {kAnn, "S2", "remove", "user_deleted", Micros(kNow)},
             {kBen, "S1", "remove", "user_deleted", Micros(kNow)}});
  CHECK(Query("SELECT user_id FROM memberships") == Rows{{kCal}});
  CHECK(Query("SELECT id FROM users") == Rows{{kCal}});
  CHECK(Query("SELECT user_id, reason FROM auto_opt_outs") == Rows{{kCal, "ttl"}});

  // No users: nothing to do, nothing asked.
  Tx([&](Transaction& tx) -> absl::Status {
    ASSIGN_OR_RETURN(ended, tx.memberships().EndAllOfUsers({}, Reason::kUserDeleted, kNow));
    return tx.users().DeleteMany({});
  });
  CHECK(ended == 0);
}
