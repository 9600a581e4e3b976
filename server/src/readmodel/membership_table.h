// TEMPORARY stand-in (lead's scratch, replaced by the helper's table).
#pragma once
#include <absl/container/flat_hash_map.h>
#include <absl/synchronization/mutex.h>
#include <absl/types/span.h>
#include <cstdint>
#include <limits>
#include <utility>
#include <vector>
#include "domain/user_id.h"
namespace segments::readmodel {
inline constexpr int64_t kNeverExpires = std::numeric_limits<int64_t>::max();
struct HeldMembership {
  uint32_t segment_id = 0;
  int64_t expires_us = kNeverExpires;
};
class MembershipTable {
 public:
  void Replace(const domain::UserId& user, absl::Span<const HeldMembership> memberships) {
    absl::MutexLock l(&mu_);
    if (memberships.empty()) map_.erase(user); else map_.insert_or_assign(user, std::vector<HeldMembership>(memberships.begin(), memberships.end()));
  }
  void ReplaceSegments(absl::Span<const uint32_t> segments, std::vector<std::pair<domain::UserId, HeldMembership>> rows) {
    absl::MutexLock l(&mu_);
    for (auto it = map_.begin(); it != map_.end();) {
      auto& v = it->second;
      v.erase(std::remove_if(v.begin(), v.end(), [&](const HeldMembership& m) { return std::find(segments.begin(), segments.end(), m.segment_id) != segments.end(); }), v.end());
      if (v.empty()) map_.erase(it++); else ++it;
    }
    for (auto& [u, m] : rows) map_[u].push_back(m);
  }
  void LiveSegments(const domain::UserId& user, int64_t now_us, std::vector<uint32_t>& out) const {
    absl::ReaderMutexLock l(&mu_);
    auto it = map_.find(user);
    if (it == map_.end()) return;
    for (const auto& m : it->second) if (m.expires_us > now_us) out.push_back(m.segment_id);
  }
  void Clear() { absl::MutexLock l(&mu_); map_.clear(); }
  size_t users() const { absl::ReaderMutexLock l(&mu_); return map_.size(); }
  size_t memberships() const { absl::ReaderMutexLock l(&mu_); size_t n = 0; for (auto& [k, v] : map_) n += v.size(); return n; }
  size_t MemoryBytes() const { return 0; }
 private:
  mutable absl::Mutex mu_;
  absl::flat_hash_map<domain::UserId, std::vector<HeldMembership>> map_;
};
}  // namespace segments::readmodel
