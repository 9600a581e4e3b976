// The memberships of every user, held in memory for the read model (issue
// 14): which segments a user is in, each with its deadline, so that "which
// segments is this user in now?" is answered without the database. Expiry is
// decided at read time, to the microsecond, as the database does.
//
// The layout is chosen for memory (budget: 32 bytes per membership at 2M
// users x 5 segments; measured in bench/README.md, "The membership table in
// memory"):
// - 256 shards, each behind its own absl::Mutex: readers share it, a writer
//   holds it alone, and a write blocks only the readers of its shard.
// - In each shard, two absl::flat_hash_maps from the user to their block:
//   UUIDs keyed by their 16 bytes (24-byte slots), integer ids by 8 (16-byte
//   slots). The two kinds never share a map, so they never collide.
// - A block is one exactly-sized heap array of 32-bit words per user:
//     [count, top bit set if some expire] [how many expire, only if some do]
//     [the segment ids, those that expire first, each group by id]
//     [the deadlines of those that expire, two words each]
//   A membership without a deadline costs 4 bytes, one with a deadline 12.
//   Keeping the deadline only where there is one (most memberships have
//   none) makes a 5-membership block 24 bytes (what glibc's smallest chunk,
//   32 bytes, holds) instead of 64 with a (segment, deadline) pair each (an
//   80-byte chunk). Measured at 2M users x 5, a fifth of them with a
//   deadline: 20.2 bytes of RSS per membership, against 26.8 with a
//   deadline for every membership.
// A write builds the user's new block and swaps it in, freeing the old one,
// under the shard's writer lock; a reader reads a block under the reader
// lock, so it sees the old block or the new one, whole.
#pragma once

#include <absl/types/span.h>

#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <utility>
#include <vector>

#include "domain/user_id.h"

namespace segments::readmodel {

// The deadline of a membership that never expires.
inline constexpr int64_t kNeverExpires = std::numeric_limits<int64_t>::max();

// One membership of a user, as the table holds it.
struct HeldMembership {
  uint32_t segment_id = 0;
  // Microseconds since the Unix epoch; the membership is live while
  // now < expires_us. kNeverExpires: no deadline.
  int64_t expires_us = kNeverExpires;

  friend bool operator==(const HeldMembership&, const HeldMembership&) = default;
};

// Thread-safe: any number of concurrent readers; writers are serialised per
// shard inside. Every change of one user is atomic for readers.
//
// Where a write is given the same segment twice for a user, the later
// deadline is kept.
class MembershipTable {
 public:
  static constexpr size_t kShards = 256;

  MembershipTable();
  ~MembershipTable();
  MembershipTable(const MembershipTable&) = delete;
  MembershipTable& operator=(const MembershipTable&) = delete;

  // Everything held for `user` becomes `memberships` (empty: the user is
  // forgotten).
  void Replace(const domain::UserId& user, absl::Span<const HeldMembership> memberships);
  // Adds one membership of the user, or overwrites the one of the same
  // segment. Correct in any order; a load whose rows come grouped by user
  // is faster and leaves less garbage with one Replace per user.
  void Put(const domain::UserId& user, HeldMembership membership);
  // Set-wise change of whole segments (a fill, a segment deletion): removes
  // every membership of `segments` from every user, then adds `rows` (each
  // row's segment is expected to be one of `segments`; a row of another
  // segment is merged in like a repeated segment). Done shard by shard, each
  // under its writer lock, so each user's change is atomic for readers: a
  // reader never sees a user with a segment stripped but not yet re-added.
  // Users left with nothing are forgotten. It visits every user held
  // (≈0.4 s at 2M users, each shard's lock held ~1.5 ms): for the changes
  // of a few users, Replace or Put each of them.
  void ReplaceSegments(absl::Span<const uint32_t> segments,
                       std::vector<std::pair<domain::UserId, HeldMembership>> rows);

  // Appends to `out` the segment ids of the user's memberships live at
  // `now_us` (expires_us > now_us), in no particular order. The hot read:
  // one shard reader lock, one hash lookup, no allocation beyond `out`'s
  // growth.
  void LiveSegments(const domain::UserId& user, int64_t now_us, std::vector<uint32_t>& out) const;

  // Users held (with at least one membership, live or not).
  size_t users() const;
  // Memberships held, expired ones included until they are replaced.
  size_t memberships() const;
  // Bytes held: the hash tables' backing arrays and the users' blocks, as
  // requested from the allocator (malloc's own overhead, 8 bytes or so per
  // block, not counted). 0 for an empty table: a shard's table is freed when
  // its last user goes. Tables do not shrink otherwise.
  size_t MemoryBytes() const;
  // Forgets every user (before a full load). Readers meanwhile see each
  // shard before or after.
  void Clear();
  // Sizes the tables for this many users of each kind (spread evenly over
  // the shards), so that an initial load does not grow them step by step.
  void Reserve(size_t uuid_users, size_t integer_users = 0);

  // The size of one user's block: `count` memberships, `expiring` of them
  // with a deadline.
  static size_t BlockBytes(size_t count, size_t expiring);

 private:
  struct Shard;

  std::unique_ptr<Shard[]> shards_;
};

}  // namespace segments::readmodel
