// Turns the `authorization` metadata of a call into a verified Principal.
// The keys come from a file (a JWKS, or for development an HS256 secret)
// that is watched: a changed file is read again within `reload_period`, so
// keys rotate without a restart; a file that does not parse is logged and
// the keys before it stay. Verified tokens are remembered until their `exp`
// (or until the keys change), so the hot read pays a hash lookup, not a
// signature check, per call.
#pragma once

#include <absl/base/thread_annotations.h>
#include <absl/container/flat_hash_map.h>
#include <absl/status/statusor.h>
#include <absl/synchronization/mutex.h>
#include <absl/time/time.h>

#include <array>
#include <atomic>
#include <memory>
#include <string>
#include <string_view>
#include <thread>

#include "auth/key_set.h"
#include "auth/principal.h"
#include "auth/token_verifier.h"

namespace segments::auth {

struct AuthenticatorOptions {
  TokenPolicy policy;
  // Exactly one of the two.
  std::string jwks_file;
  std::string hs256_secret_file;  // development only
  absl::Duration reload_period = absl::Seconds(2);
  size_t cache_capacity = 65536;  // verified tokens remembered
};

class Authenticator {
 public:
  // Fails if the key file is missing or does not parse.
  static absl::StatusOr<std::unique_ptr<Authenticator>> Start(AuthenticatorOptions options);
  ~Authenticator();
  Authenticator(const Authenticator&) = delete;
  Authenticator& operator=(const Authenticator&) = delete;

  // `authorization` is the metadata's value ("Bearer <jwt>"), empty when the
  // call has none. UNAUTHENTICATED with the reason when it does not verify.
  absl::StatusOr<Principal> Authenticate(std::string_view authorization, absl::Time now);

  // How many times keys were (re)loaded: 1 after Start. For tests.
  uint64_t key_generation() const { return generation_.load(std::memory_order_acquire); }
  // How many changed key files were refused (logged, keys kept). For tests.
  uint64_t refused_key_files() const { return refused_.load(std::memory_order_acquire); }

 private:
  struct FileState {
    int64_t mtime_ns = 0;
    int64_t size = -1;
    uint64_t inode = 0;
    bool operator==(const FileState& o) const { return mtime_ns == o.mtime_ns && size == o.size && inode == o.inode; }
  };
  struct Cached {
    Principal principal;
    uint64_t generation;
  };
  struct Shard {
    absl::Mutex mu;
    absl::flat_hash_map<std::string, Cached> tokens ABSL_GUARDED_BY(mu);
  };
  static constexpr size_t kShards = 16;

  explicit Authenticator(AuthenticatorOptions options) : options_(std::move(options)) {}
  const std::string& key_file() const;
  // Reads the key file if it changed since the last read.
  absl::Status ReloadIfChanged();
  std::shared_ptr<const KeySet> keys() const;
  void Watch();
  Shard& ShardOf(std::string_view token);

  const AuthenticatorOptions options_;
  mutable absl::Mutex keys_mu_;
  std::shared_ptr<const KeySet> keys_ ABSL_GUARDED_BY(keys_mu_);
  std::atomic<uint64_t> generation_{0};
  std::atomic<uint64_t> refused_{0};
  FileState file_state_;  // watcher thread only (and Start)
  std::array<Shard, kShards> shards_;

  absl::Mutex stop_mu_;
  bool stopping_ ABSL_GUARDED_BY(stop_mu_) = false;
  std::thread watcher_;
};

}  // namespace segments::auth
