#include "readmodel/membership_table.h"

#include <absl/base/thread_annotations.h>
#include <absl/container/flat_hash_map.h>
#include <absl/container/inlined_vector.h>
#include <absl/synchronization/mutex.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <tuple>

namespace segments::readmodel {
namespace {

using domain::UserId;
using Word = uint32_t;
// Most users have a few memberships: a write's working copy stays on the stack.
using Entries = absl::InlinedVector<HeldMembership, 8>;

// A block's first word: the count, and this bit when some memberships expire.
constexpr Word kSomeExpire = Word{1} << 31;

// A user's block (see the header); null for a user with nothing.
using Block = std::unique_ptr<Word[]>;

// Reads a block in place.
class BlockView {
 public:
  explicit BlockView(const Word* block) : start_(block) {
    const Word head = block[0];
    count_ = head & ~kSomeExpire;
    expiring_ = (head & kSomeExpire) != 0 ? block[1] : 0;
    segments_ = block + ((head & kSomeExpire) != 0 ? 2 : 1);
  }

  size_t count() const { return count_; }
  size_t bytes() const { return sizeof(Word) * (static_cast<size_t>(segments_ - start_) + count_ + 2 * expiring_); }

  HeldMembership at(size_t i) const {
    HeldMembership membership{.segment_id = segments_[i]};
    if (i < expiring_) std::memcpy(&membership.expires_us, segments_ + count_ + 2 * i, sizeof(int64_t));
    return membership;
  }

  bool HasAny(absl::Span<const uint32_t> sorted_segments) const {
    return std::any_of(segments_, segments_ + count_, [&](uint32_t segment) {
      return std::binary_search(sorted_segments.begin(), sorted_segments.end(), segment);
    });
  }

  // Appends the memberships that are not in `sorted_segments` to `out`.
  void AppendExcept(absl::Span<const uint32_t> sorted_segments, Entries& out) const {
    for (size_t i = 0; i < count_; ++i) {
      if (!std::binary_search(sorted_segments.begin(), sorted_segments.end(), segments_[i])) out.push_back(at(i));
    }
  }

  void AppendLive(int64_t now_us, std::vector<uint32_t>& out) const {
    for (size_t i = 0; i < expiring_; ++i) {
      int64_t expires_us = 0;
      std::memcpy(&expires_us, segments_ + count_ + 2 * i, sizeof expires_us);
      if (expires_us > now_us) out.push_back(segments_[i]);
    }
    out.insert(out.end(), segments_ + expiring_, segments_ + count_);
  }

 private:
  const Word* start_;
  const Word* segments_;
  size_t count_;
  size_t expiring_;
};

// The block of `entries`, which it sorts and rids of repeated segments (the
// later deadline stays); null when there are none.
Block Encode(Entries& entries) {
  if (entries.empty()) return nullptr;
  std::sort(entries.begin(), entries.end(), [](const HeldMembership& a, const HeldMembership& b) {
    return std::tie(a.segment_id, a.expires_us) < std::tie(b.segment_id, b.expires_us);
  });
  // Keep the last of each run of one segment: the latest deadline.
  auto kept = entries.begin();
  for (auto it = entries.begin(); it != entries.end(); ++it) {
    if (std::next(it) == entries.end() || std::next(it)->segment_id != it->segment_id) *kept++ = *it;
  }
  entries.erase(kept, entries.end());

  const size_t count = entries.size();
  const auto expiring = static_cast<size_t>(std::count_if(
      entries.begin(), entries.end(), [](const HeldMembership& m) { return m.expires_us != kNeverExpires; }));
  Block block = std::make_unique_for_overwrite<Word[]>(MembershipTable::BlockBytes(count, expiring) / sizeof(Word));
  Word* next = block.get();
  *next++ = static_cast<Word>(count) | (expiring > 0 ? kSomeExpire : 0);
  if (expiring > 0) *next++ = static_cast<Word>(expiring);
  Word* deadlines = next + count;
  for (const HeldMembership& m : entries) {
    if (m.expires_us == kNeverExpires) continue;
    *next++ = m.segment_id;
    std::memcpy(deadlines, &m.expires_us, sizeof(int64_t));
    deadlines += 2;
  }
  for (const HeldMembership& m : entries) {
    if (m.expires_us == kNeverExpires) *next++ = m.segment_id;
  }
  return block;
}

struct UuidKey {
  uint64_t high = 0;
  uint64_t low = 0;

  friend bool operator==(const UuidKey&, const UuidKey&) = default;
  template <typename H>
  friend H AbslHashValue(H h, const UuidKey& key) {
    return H::combine(std::move(h), key.high, key.low);
  }
};

// A user id as the table keys it, with its shard.
struct UserKey {
  explicit UserKey(const UserId& id) : integer(id.kind() == UserId::Kind::kInteger) {
    std::memcpy(&uuid.high, id.bytes().data(), sizeof uuid.high);
    std::memcpy(&uuid.low, id.bytes().data() + sizeof uuid.high, sizeof uuid.low);
    // A mix of every bit (MurmurHash3's finaliser), so that sequential ids
    // spread over the shards too. Independent of the maps' own hash.
    uint64_t x = uuid.high ^ (uuid.low * 0x9e3779b97f4a7c15) ^ static_cast<uint64_t>(integer);
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccd;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53;
    x ^= x >> 33;
    shard = static_cast<uint32_t>(x % MembershipTable::kShards);
  }
  UserKey(const UuidKey& key, uint32_t in_shard) : uuid(key), integer(false), shard(in_shard) {}
  // An integer id is held big endian in the first 8 bytes, zeros after.
  UserKey(uint64_t key, uint32_t in_shard) : uuid{.high = key}, integer(true), shard(in_shard) {}

  auto tied() const { return std::tie(shard, integer, uuid.high, uuid.low); }
  friend bool operator<(const UserKey& a, const UserKey& b) { return a.tied() < b.tied(); }
  friend bool operator==(const UserKey& a, const UserKey& b) { return a.tied() == b.tied(); }

  UuidKey uuid;
  bool integer;
  uint32_t shard;
};

// Counts the bytes of the maps' backing arrays into a shard's counter.
template <typename T>
class CountingAllocator {
 public:
  using value_type = T;

  explicit CountingAllocator(size_t* bytes) : bytes_(bytes) {}
  template <typename U>
  CountingAllocator(const CountingAllocator<U>& other) : bytes_(other.counter()) {}  // NOLINT: rebinding

  T* allocate(size_t n) {
    *bytes_ += n * sizeof(T);
    return std::allocator<T>().allocate(n);
  }
  void deallocate(T* p, size_t n) {
    *bytes_ -= n * sizeof(T);
    std::allocator<T>().deallocate(p, n);
  }
  size_t* counter() const { return bytes_; }

  template <typename U>
  friend bool operator==(const CountingAllocator& a, const CountingAllocator<U>& b) {
    return a.counter() == b.counter();
  }

 private:
  size_t* bytes_;
};

template <typename Key>
using BlockMap = absl::flat_hash_map<Key, Block, absl::Hash<Key>, std::equal_to<Key>,
                                     CountingAllocator<std::pair<const Key, Block>>>;

}  // namespace

// Aligned to a cache line: readers of neighbouring shards do not share one.
struct alignas(64) MembershipTable::Shard {
  mutable absl::Mutex mutex;
  // Bytes of the two maps' backing arrays (counted by their allocator).
  size_t table_bytes ABSL_GUARDED_BY(mutex) = 0;
  size_t block_bytes ABSL_GUARDED_BY(mutex) = 0;
  size_t memberships ABSL_GUARDED_BY(mutex) = 0;
  BlockMap<UuidKey> uuids ABSL_GUARDED_BY(mutex){CountingAllocator<std::pair<const UuidKey, Block>>(&table_bytes)};
  BlockMap<uint64_t> integers ABSL_GUARDED_BY(mutex){CountingAllocator<std::pair<const uint64_t, Block>>(&table_bytes)};

  const Word* Find(const UserKey& key) const ABSL_SHARED_LOCKS_REQUIRED(mutex) {
    if (key.integer) {
      auto it = integers.find(key.uuid.high);
      return it == integers.end() ? nullptr : it->second.get();
    }
    auto it = uuids.find(key.uuid);
    return it == uuids.end() ? nullptr : it->second.get();
  }

  // Makes `block` the user's (null: forgets the user).
  void Set(const UserKey& key, Block block) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex) {
    if (key.integer) {
      SetIn(integers, key.uuid.high, std::move(block));
    } else {
      SetIn(uuids, key.uuid, std::move(block));
    }
  }

  // Strips `sorted_segments` from every user of the shard (number `index`)
  // except those for whom `keep(key)` is true.
  template <typename Keep>
  void Strip(uint32_t index, absl::Span<const uint32_t> sorted_segments, Keep keep)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex) {
    StripIn(uuids, index, sorted_segments, keep);
    StripIn(integers, index, sorted_segments, keep);
  }

  void Reserve(size_t uuid_users, size_t integer_users) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex) {
    uuids.reserve(uuid_users);
    integers.reserve(integer_users);
  }

  void Clear() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex) {
    uuids.clear();
    integers.clear();
    ReleaseIfEmpty(uuids);
    ReleaseIfEmpty(integers);
    block_bytes = 0;
    memberships = 0;
  }

 private:
  // Accounts for `block` replacing `old` (either may be null).
  void Account(const Block& old, const Block& block) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex) {
    if (old) {
      const BlockView view(old.get());
      block_bytes -= view.bytes();
      memberships -= view.count();
    }
    if (block) {
      const BlockView view(block.get());
      block_bytes += view.bytes();
      memberships += view.count();
    }
  }

  // An empty map keeps its backing array; give it back.
  template <typename Map>
  static void ReleaseIfEmpty(Map& map) {
    if (map.empty()) map.rehash(0);
  }

  template <typename Map, typename Key>
  void SetIn(Map& map, const Key& key, Block block) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex) {
    auto it = map.find(key);
    if (it == map.end()) {
      if (!block) return;
      Account(nullptr, block);
      map.emplace(key, std::move(block));
      return;
    }
    Account(it->second, block);
    if (block) {
      it->second = std::move(block);
    } else {
      map.erase(it);
      ReleaseIfEmpty(map);
    }
  }

  template <typename Map, typename Keep>
  void StripIn(Map& map, uint32_t index, absl::Span<const uint32_t> sorted_segments, Keep keep)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex) {
    Entries rest;
    for (auto it = map.begin(); it != map.end();) {
      const BlockView view(it->second.get());
      if (!view.HasAny(sorted_segments) || keep(UserKey(it->first, index))) {
        ++it;
        continue;
      }
      rest.clear();
      view.AppendExcept(sorted_segments, rest);
      Block stripped = Encode(rest);
      Account(it->second, stripped);
      if (stripped) {
        it->second = std::move(stripped);
        ++it;
      } else {
        map.erase(it++);
      }
    }
    ReleaseIfEmpty(map);
  }
};

MembershipTable::MembershipTable() : shards_(std::make_unique<Shard[]>(kShards)) {}

MembershipTable::~MembershipTable() = default;

size_t MembershipTable::BlockBytes(size_t count, size_t expiring) {
  const size_t header = expiring > 0 ? 2 : 1;
  return sizeof(Word) * (header + count + 2 * expiring);
}

void MembershipTable::Replace(const UserId& user, absl::Span<const HeldMembership> memberships) {
  Entries entries(memberships.begin(), memberships.end());
  Block block = Encode(entries);
  const UserKey key(user);
  Shard& shard = shards_[key.shard];
  absl::MutexLock lock(&shard.mutex);
  shard.Set(key, std::move(block));
}

void MembershipTable::Put(const UserId& user, HeldMembership membership) {
  const UserKey key(user);
  Shard& shard = shards_[key.shard];
  Entries entries;
  absl::MutexLock lock(&shard.mutex);
  if (const Word* old = shard.Find(key)) {
    const uint32_t segment[] = {membership.segment_id};
    BlockView(old).AppendExcept(segment, entries);
  }
  entries.push_back(membership);
  shard.Set(key, Encode(entries));
}

void MembershipTable::ReplaceSegments(absl::Span<const uint32_t> segments,
                                      std::vector<std::pair<UserId, HeldMembership>> rows) {
  std::vector<uint32_t> sorted_segments(segments.begin(), segments.end());
  std::sort(sorted_segments.begin(), sorted_segments.end());

  // The rows by shard, then by user.
  struct KeyedRow {
    UserKey key;
    HeldMembership membership;
  };
  std::vector<KeyedRow> keyed;
  keyed.reserve(rows.size());
  for (const auto& [user, membership] : rows) keyed.push_back({UserKey(user), membership});
  rows = {};
  std::sort(keyed.begin(), keyed.end(), [](const KeyedRow& a, const KeyedRow& b) { return a.key < b.key; });

  auto rows_begin = keyed.begin();
  Entries entries;
  for (uint32_t s = 0; s < kShards; ++s) {
    auto rows_end = std::find_if(rows_begin, keyed.end(), [s](const KeyedRow& row) { return row.key.shard != s; });
    auto has_rows = [&](const UserKey& key) {
      auto it = std::lower_bound(rows_begin, rows_end, key,
                                 [](const KeyedRow& row, const UserKey& k) { return row.key < k; });
      return it != rows_end && it->key == key;
    };
    Shard& shard = shards_[s];
    absl::MutexLock lock(&shard.mutex);
    // Users with rows get their new block below, in one step.
    shard.Strip(s, sorted_segments, has_rows);
    for (auto user_begin = rows_begin; user_begin != rows_end;) {
      auto user_end =
          std::find_if(user_begin, rows_end, [&](const KeyedRow& row) { return !(row.key == user_begin->key); });
      entries.clear();
      if (const Word* old = shard.Find(user_begin->key)) BlockView(old).AppendExcept(sorted_segments, entries);
      for (auto row = user_begin; row != user_end; ++row) entries.push_back(row->membership);
      shard.Set(user_begin->key, Encode(entries));
      user_begin = user_end;
    }
    rows_begin = rows_end;
  }
}

void MembershipTable::LiveSegments(const UserId& user, int64_t now_us, std::vector<uint32_t>& out) const {
  const UserKey key(user);
  const Shard& shard = shards_[key.shard];
  absl::ReaderMutexLock lock(&shard.mutex);
  if (const Word* block = shard.Find(key)) BlockView(block).AppendLive(now_us, out);
}

size_t MembershipTable::users() const {
  size_t total = 0;
  for (size_t s = 0; s < kShards; ++s) {
    absl::ReaderMutexLock lock(&shards_[s].mutex);
    total += shards_[s].uuids.size() + shards_[s].integers.size();
  }
  return total;
}

size_t MembershipTable::memberships() const {
  size_t total = 0;
  for (size_t s = 0; s < kShards; ++s) {
    absl::ReaderMutexLock lock(&shards_[s].mutex);
    total += shards_[s].memberships;
  }
  return total;
}

size_t MembershipTable::MemoryBytes() const {
  size_t total = 0;
  for (size_t s = 0; s < kShards; ++s) {
    absl::ReaderMutexLock lock(&shards_[s].mutex);
    total += shards_[s].table_bytes + shards_[s].block_bytes;
  }
  return total;
}

void MembershipTable::Clear() {
  for (size_t s = 0; s < kShards; ++s) {
    absl::MutexLock lock(&shards_[s].mutex);
    shards_[s].Clear();
  }
}

void MembershipTable::Reserve(size_t uuid_users, size_t integer_users) {
  // A little over the even share: shards differ by a few standard deviations.
  auto share = [](size_t users) { return users == 0 ? 0 : users / kShards + users / kShards / 16 + 16; };
  for (size_t s = 0; s < kShards; ++s) {
    absl::MutexLock lock(&shards_[s].mutex);
    shards_[s].Reserve(share(uuid_users), share(integer_users));
  }
}

}  // namespace segments::readmodel
