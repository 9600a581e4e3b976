#include "readmodel/membership_table.h"

#include <fmt/format.h>
#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <string>
#include <thread>
#include <utility>
#include <vector>

using segments::domain::UserId;
using segments::readmodel::HeldMembership;
using segments::readmodel::kNeverExpires;
using segments::readmodel::MembershipTable;

namespace {

constexpr int64_t kNow = 1'700'000'000'000'000;  // µs since the epoch

UserId Id(std::string_view text) { return UserId::Parse(text).value(); }

// The i-th of a family of UUIDs.
UserId Uuid(int i) { return Id(fmt::format("00000000-0000-4000-8000-{:012x}", i)); }

// The user's live segments at `now_us`, sorted.
std::vector<uint32_t> Live(const MembershipTable& table, const UserId& user, int64_t now_us = kNow) {
  std::vector<uint32_t> out;
  table.LiveSegments(user, now_us, out);
  std::sort(out.begin(), out.end());
  return out;
}

using Segments = std::vector<uint32_t>;

}  // namespace

TEST_CASE("a user's memberships: put, overwrite, replace, forget", "[membership_table]") {
  MembershipTable table;
  const UserId alice = Uuid(1), bob = Uuid(2);
  CHECK(Live(table, alice).empty());

  table.Put(alice, {.segment_id = 7});
  table.Put(alice, {.segment_id = 3, .expires_us = kNow + 10});
  table.Put(bob, {.segment_id = 7});
  CHECK(Live(table, alice) == Segments{3, 7});
  CHECK(Live(table, bob) == Segments{7});
  CHECK(table.users() == 2);
  CHECK(table.memberships() == 3);

  // Put overwrites the same segment: here its deadline, now in the past.
  table.Put(alice, {.segment_id = 3, .expires_us = kNow - 10});
  CHECK(Live(table, alice) == Segments{7});
  CHECK(table.memberships() == 3);
  table.Put(alice, {.segment_id = 3});  // and back to no deadline
  CHECK(Live(table, alice) == Segments{3, 7});

  const std::vector<HeldMembership> replacement = {{.segment_id = 9}, {.segment_id = 1, .expires_us = kNow + 1}};
  table.Replace(alice, replacement);
  CHECK(Live(table, alice) == Segments{1, 9});
  CHECK(Live(table, bob) == Segments{7});
  CHECK(table.memberships() == 3);

  table.Replace(alice, {});
  CHECK(Live(table, alice).empty());
  CHECK(table.users() == 1);
  CHECK(table.memberships() == 1);
  table.Replace(bob, {});
  CHECK(table.users() == 0);
  CHECK(table.memberships() == 0);
}

TEST_CASE("LiveSegments appends to what the caller has", "[membership_table]") {
  MembershipTable table;
  table.Put(Uuid(1), {.segment_id = 5});
  std::vector<uint32_t> out = {42};
  table.LiveSegments(Uuid(1), kNow, out);
  table.LiveSegments(Uuid(2), kNow, out);  // no such user: nothing
  CHECK(out == Segments{42, 5});
}

TEST_CASE("a membership is live until its deadline, not at it", "[membership_table]") {
  MembershipTable table;
  const UserId user = Uuid(1);
  const std::vector<HeldMembership> memberships = {{.segment_id = 1, .expires_us = kNow},
                                                   {.segment_id = 2, .expires_us = kNow + 1},
                                                   {.segment_id = 3},
                                                   {.segment_id = 4, .expires_us = kNow + 1'000'000},
                                                   {.segment_id = 5, .expires_us = kNow - 1},
                                                   {.segment_id = 6, .expires_us = INT64_MAX - 1}};
  table.Replace(user, memberships);
  CHECK(Live(table, user, kNow - 2) == Segments{1, 2, 3, 4, 5, 6});
  CHECK(Live(table, user, kNow - 1) == Segments{1, 2, 3, 4, 6});
  CHECK(Live(table, user, kNow) == Segments{2, 3, 4, 6});
  CHECK(Live(table, user, kNow + 1) == Segments{3, 4, 6});
  CHECK(Live(table, user, kNow + 999'999) == Segments{3, 4, 6});
  CHECK(Live(table, user, kNow + 1'000'000) == Segments{3, 6});
  CHECK(Live(table, user, INT64_MAX - 1) == Segments{3});
  // The expired ones are still held (the database's expiry job removes them).
  CHECK(table.memberships() == 6);
}

TEST_CASE("a repeated segment in one write keeps the later deadline", "[membership_table]") {
  MembershipTable table;
  const std::vector<HeldMembership> memberships = {
      {.segment_id = 1, .expires_us = kNow + 5}, {.segment_id = 1, .expires_us = kNow - 5}, {.segment_id = 2}};
  table.Replace(Uuid(1), memberships);
  CHECK(Live(table, Uuid(1)) == Segments{1, 2});
  CHECK(table.memberships() == 2);
  table.ReplaceSegments(std::vector<uint32_t>{1},
                        {{Uuid(1), {.segment_id = 1}}, {Uuid(1), {.segment_id = 1, .expires_us = kNow - 5}}});
  CHECK(Live(table, Uuid(1), kNow + 10) == Segments{1, 2});
  CHECK(table.memberships() == 2);
}

TEST_CASE("integer and UUID ids with the same bytes are different users", "[membership_table]") {
  MembershipTable table;
  // The integer 1 is held as 00 00 00 00 00 00 00 01 00 ... 00, as is this UUID.
  const UserId integer = Id("1");
  const UserId uuid = Id("00000000-0000-0001-0000-000000000000");
  const UserId zero_integer = Id("0");
  const UserId zero_uuid = Id("00000000-0000-0000-0000-000000000000");
  REQUIRE(integer.bytes() == uuid.bytes());
  REQUIRE(zero_integer.bytes() == zero_uuid.bytes());

  table.Put(integer, {.segment_id = 1});
  table.Put(uuid, {.segment_id = 2});
  table.Put(zero_integer, {.segment_id = 3});
  CHECK(Live(table, integer) == Segments{1});
  CHECK(Live(table, uuid) == Segments{2});
  CHECK(Live(table, zero_integer) == Segments{3});
  CHECK(Live(table, zero_uuid).empty());
  CHECK(table.users() == 3);

  table.Replace(uuid, {});
  CHECK(Live(table, integer) == Segments{1});
  table.ReplaceSegments(std::vector<uint32_t>{1}, {{uuid, {.segment_id = 1}}});
  CHECK(Live(table, integer).empty());
  CHECK(Live(table, uuid) == Segments{1});
  CHECK(table.users() == 2);
}

TEST_CASE("ReplaceSegments replaces whole segments set-wise", "[membership_table]") {
  MembershipTable table;
  // Users 0..99 are in segment 1 (the even ones until kNow + 100) and 2; 100..149 in 3 only.
  for (int i = 0; i < 100; ++i) {
    table.Put(Uuid(i), {.segment_id = 1, .expires_us = i % 2 == 0 ? kNow + 100 : kNeverExpires});
    table.Put(Uuid(i), {.segment_id = 2});
  }
  for (int i = 100; i < 150; ++i) table.Put(Uuid(i), {.segment_id = 3});
  REQUIRE(table.users() == 150);
  REQUIRE(table.memberships() == 250);

  SECTION("a segment's new members: some kept, some dropped, new users and integer ids added") {
    std::vector<std::pair<UserId, HeldMembership>> rows;
    for (int i = 50; i < 200; ++i) rows.emplace_back(Uuid(i), HeldMembership{.segment_id = 1});
    rows.emplace_back(Id("12345"), HeldMembership{.segment_id = 1, .expires_us = kNow + 1});
    table.ReplaceSegments(std::vector<uint32_t>{1}, std::move(rows));
    for (int i = 0; i < 50; ++i) CHECK(Live(table, Uuid(i)) == Segments{2});
    for (int i = 50; i < 100; ++i) CHECK(Live(table, Uuid(i), kNow + 200) == Segments{1, 2});  // no deadline now
    for (int i = 100; i < 150; ++i) CHECK(Live(table, Uuid(i)) == Segments{1, 3});
    for (int i = 150; i < 200; ++i) CHECK(Live(table, Uuid(i)) == Segments{1});
    CHECK(Live(table, Id("12345")) == Segments{1});
    CHECK(Live(table, Id("12345"), kNow + 1).empty());
    CHECK(table.users() == 201);
    CHECK(table.memberships() == 151 + 100 + 50);
  }

  SECTION("a deleted segment: users left with nothing are forgotten") {
    table.ReplaceSegments(std::vector<uint32_t>{3}, {});
    for (int i = 100; i < 150; ++i) CHECK(Live(table, Uuid(i)).empty());
    CHECK(Live(table, Uuid(7)) == Segments{1, 2});
    CHECK(table.users() == 100);
    CHECK(table.memberships() == 200);
  }

  SECTION("several segments at once; a segment no one has") {
    const std::vector<std::pair<UserId, HeldMembership>> rows = {
        {Uuid(0), {.segment_id = 3}}, {Uuid(120), {.segment_id = 2}}, {Uuid(120), {.segment_id = 9}}};
    table.ReplaceSegments(std::vector<uint32_t>{2, 3, 9}, rows);
    CHECK(Live(table, Uuid(0)) == Segments{1, 3});
    CHECK(Live(table, Uuid(1)) == Segments{1});
    CHECK(Live(table, Uuid(120)) == Segments{2, 9});
    CHECK(Live(table, Uuid(121)).empty());
    CHECK(table.users() == 101);
    CHECK(table.memberships() == 100 + 3);
  }
}

TEST_CASE("MemoryBytes counts the tables and every block", "[membership_table]") {
  MembershipTable table;
  CHECK(table.MemoryBytes() == 0);
  CHECK(MembershipTable::BlockBytes(1, 0) == 8);
  CHECK(MembershipTable::BlockBytes(5, 0) == 24);
  CHECK(MembershipTable::BlockBytes(5, 1) == 36);
  CHECK(MembershipTable::BlockBytes(3, 3) == 8 + 12 + 24);

  // One user: the shard's table (whatever abseil allocates for it) plus the block.
  const UserId user = Uuid(1);
  table.Put(user, {.segment_id = 1});
  const size_t one_table = table.MemoryBytes() - MembershipTable::BlockBytes(1, 0);
  CHECK(one_table >= 24);  // at least one 16-byte key and 8-byte pointer
  CHECK(one_table < 1024);

  // Blocks alone change while the table does not.
  table.Put(user, {.segment_id = 2, .expires_us = kNow});
  CHECK(table.MemoryBytes() == one_table + MembershipTable::BlockBytes(2, 1));
  const std::vector<HeldMembership> five = {{.segment_id = 1},
                                            {.segment_id = 2},
                                            {.segment_id = 3},
                                            {.segment_id = 4},
                                            {.segment_id = 5, .expires_us = kNow}};
  table.Replace(user, five);
  CHECK(table.MemoryBytes() == one_table + MembershipTable::BlockBytes(5, 1));
  table.ReplaceSegments(std::vector<uint32_t>{5}, {});
  CHECK(table.MemoryBytes() == one_table + MembershipTable::BlockBytes(4, 0));
  table.Replace(user, {});
  CHECK(table.MemoryBytes() == 0);

  // Many users of both kinds: at least their slots and blocks, and back to
  // nothing when they go.
  constexpr int kUsers = 20'000;
  constexpr size_t kUsersSize = kUsers;
  for (int i = 0; i < kUsers; ++i) {
    const UserId id = i % 2 == 0 ? Uuid(i) : Id(std::to_string(i));
    table.Put(id, {.segment_id = 1});
    table.Put(id, {.segment_id = 2, .expires_us = kNow});
  }
  const size_t blocks = kUsersSize * MembershipTable::BlockBytes(2, 1);
  const size_t slots = kUsersSize / 2 * (16 + 8 + 1) + kUsersSize / 2 * (8 + 8 + 1);  // key, pointer, control byte
  CHECK(table.MemoryBytes() >= blocks + slots);
  CHECK(table.MemoryBytes() <= blocks + 3 * slots);
  const size_t full = table.MemoryBytes();
  table.ReplaceSegments(std::vector<uint32_t>{2}, {});
  CHECK(table.MemoryBytes() ==
        full - kUsersSize * (MembershipTable::BlockBytes(2, 1) - MembershipTable::BlockBytes(1, 0)));
  table.ReplaceSegments(std::vector<uint32_t>{1}, {});
  CHECK(table.users() == 0);
  CHECK(table.MemoryBytes() == 0);

  // Reserve sizes the tables up front; adding that many users then grows nothing.
  table.Reserve(kUsers, kUsers);
  const size_t reserved = table.MemoryBytes();
  CHECK(reserved >= 2 * slots);
  for (int i = 0; i < kUsers; ++i) {
    table.Put(Uuid(i), {.segment_id = 1});
    table.Put(Id(std::to_string(i)), {.segment_id = 1});
  }
  CHECK(table.MemoryBytes() == reserved + 2 * kUsersSize * MembershipTable::BlockBytes(1, 0));
}

// Readers run while a writer moves every user back and forth between two
// states; each read must see one state or the other, whole.
TEST_CASE("readers see each user's change whole", "[membership_table]") {
  // Users 0..kUsers-1: always in segment 9 and in exactly one of 1 and 2,
  // moved by ReplaceSegments({1, 2}). Users kUsers..2*kUsers-1: in {3, 4}
  // or {5}, moved by Replace.
  constexpr size_t kUsers = 2'000;
  constexpr int kMinRounds = 60;
  MembershipTable table;
  std::vector<UserId> users;
  users.reserve(2 * kUsers);
  for (int i = 0; i < static_cast<int>(2 * kUsers); ++i) {
    users.push_back(i % 3 == 0 ? Id(std::to_string(i)) : Uuid(i));
  }
  const std::vector<HeldMembership> state_a = {{.segment_id = 3}, {.segment_id = 4, .expires_us = kNow + 1}};
  const std::vector<HeldMembership> state_b = {{.segment_id = 5}};
  auto segment_rows = [&](uint32_t segment) {
    std::vector<std::pair<UserId, HeldMembership>> rows;
    for (size_t i = 0; i < kUsers; ++i) rows.emplace_back(users[i], HeldMembership{.segment_id = segment});
    return rows;
  };
  for (size_t i = 0; i < kUsers; ++i) table.Put(users[i], {.segment_id = 9});
  table.ReplaceSegments(std::vector<uint32_t>{1, 2}, segment_rows(1));
  for (size_t i = kUsers; i < 2 * kUsers; ++i) table.Replace(users[i], state_a);

  std::atomic<bool> done = false;
  std::atomic<int> reads = 0;
  std::atomic<int> torn = 0;
  constexpr int kReaders = 3;
  std::vector<std::thread> readers;
  readers.reserve(kReaders);
  for (int r = 0; r < kReaders; ++r) {
    readers.emplace_back([&, r] {
      std::vector<uint32_t> out;
      for (size_t n = r; !done.load(); ++n) {
        const size_t i = n * 7919 % users.size();
        out.clear();
        table.LiveSegments(users[i], kNow, out);
        std::sort(out.begin(), out.end());
        const bool whole = i < kUsers ? (out == Segments{1, 9} || out == Segments{2, 9})
                                      : (out == Segments{3, 4} || out == Segments{5});
        if (!whole) ++torn;
        ++reads;
      }
    });
  }
  // At least kRounds rounds, and until the readers have read a good deal
  // meanwhile (a positive signal, not a sleep).
  int rounds = 0;
  for (; rounds < kMinRounds || reads.load() < 100'000; ++rounds) {
    const bool to_b = rounds % 2 == 0;
    table.ReplaceSegments(std::vector<uint32_t>{1, 2}, segment_rows(to_b ? 2 : 1));
    for (size_t i = kUsers; i < 2 * kUsers; ++i) table.Replace(users[i], to_b ? state_b : state_a);
  }
  done = true;
  for (std::thread& reader : readers) reader.join();
  CHECK(torn.load() == 0);
  CHECK(reads.load() >= 100'000);
  CHECK(table.users() == 2 * kUsers);
  const bool last_to_b = (rounds - 1) % 2 == 0;
  CHECK(table.memberships() == 2 * kUsers + (last_to_b ? kUsers : 2 * kUsers));
}

TEST_CASE("Clear forgets every user and gives the memory back", "[membership_table]") {
  MembershipTable table;
  for (int i = 0; i < 1000; ++i) {
    table.Put(Uuid(i), {.segment_id = 1});
    table.Put(Id(std::to_string(i)), {.segment_id = 2, .expires_us = kNow + 1});
  }
  REQUIRE(table.users() == 2000);
  REQUIRE(table.MemoryBytes() > 0);
  table.Clear();
  CHECK(table.users() == 0);
  CHECK(table.memberships() == 0);
  CHECK(table.MemoryBytes() == 0);
  CHECK(Live(table, Uuid(5)).empty());
  CHECK(Live(table, Id("5")).empty());
  // Usable again.
  table.Put(Uuid(5), {.segment_id = 3});
  CHECK(Live(table, Uuid(5)) == Segments{3});
}
