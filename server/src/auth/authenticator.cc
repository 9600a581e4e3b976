#include "auth/authenticator.h"

#include <absl/hash/hash.h>
#include <absl/strings/ascii.h>
#include <absl/strings/match.h>
#include <absl/strings/str_cat.h>
#include <sys/stat.h>

#include <fstream>
#include <sstream>

#include "common/log.h"
#include "common/string_views.h"

namespace segments::auth {
namespace {

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// The token of "Bearer <token>" (the scheme in any case), or an error.
absl::StatusOr<std::string_view> BearerToken(std::string_view authorization) {
  if (authorization.empty()) return absl::UnauthenticatedError("missing bearer token (Authorization: Bearer <token>)");
  constexpr std::string_view kScheme = "bearer ";
  if (authorization.size() <= kScheme.size() || !absl::StartsWithIgnoreCase(Absl(authorization), Absl(kScheme))) {
    return absl::UnauthenticatedError("the authorization is not \"Bearer <token>\"");
  }
  return Std(absl::StripAsciiWhitespace(Absl(authorization.substr(kScheme.size()))));
}

}  // namespace

absl::StatusOr<std::unique_ptr<Authenticator>> Authenticator::Start(AuthenticatorOptions options) {
  if (options.jwks_file.empty() == options.hs256_secret_file.empty()) {
    return absl::InvalidArgumentError("authentication needs exactly one of a JWKS file and an HS256 secret file");
  }
  if (options.policy.issuer.empty() || options.policy.audience.empty()) {
    return absl::InvalidArgumentError("authentication needs the accepted token issuer and audience");
  }
  std::unique_ptr<Authenticator> authenticator(new Authenticator(std::move(options)));
  if (absl::Status loaded = authenticator->ReloadIfChanged(); !loaded.ok()) return loaded;
  authenticator->watcher_ = std::thread([raw = authenticator.get()] { raw->Watch(); });
  return authenticator;
}

Authenticator::~Authenticator() {
  {
    absl::MutexLock lock(&stop_mu_);
    stopping_ = true;
  }
  if (watcher_.joinable()) watcher_.join();
}

const std::string& Authenticator::key_file() const {
  return options_.jwks_file.empty() ? options_.hs256_secret_file : options_.jwks_file;
}

absl::Status Authenticator::ReloadIfChanged() {
  struct stat info {};
  if (::stat(key_file().c_str(), &info) != 0) return absl::NotFoundError(absl::StrCat("cannot stat ", key_file()));
  const FileState state{static_cast<int64_t>(info.st_mtim.tv_sec) * 1'000'000'000 + info.st_mtim.tv_nsec,
                        static_cast<int64_t>(info.st_size), static_cast<uint64_t>(info.st_ino)};
  if (state == file_state_) return absl::OkStatus();
  file_state_ = state;  // a broken file is reported once, not every period
  absl::StatusOr<std::string> text = ReadFile(key_file());
  if (!text.ok()) return text.status();
  absl::StatusOr<std::shared_ptr<const KeySet>> loaded =
      options_.jwks_file.empty() ? KeySet::FromSharedSecret(Std(absl::StripTrailingAsciiWhitespace(*text)))
                                 : KeySet::FromJwks(*text);
  if (!loaded.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(key_file(), ": ", loaded.status().message()));
  }
  {
    absl::MutexLock lock(&keys_mu_);
    keys_ = *std::move(loaded);
  }
  // Tokens verified with the keys before are verified again.
  const uint64_t generation = generation_.fetch_add(1, std::memory_order_acq_rel) + 1;
  log::Info("token keys loaded from {} ({} keys, generation {})", key_file(), keys()->size(), generation);
  return absl::OkStatus();
}

std::shared_ptr<const KeySet> Authenticator::keys() const {
  absl::MutexLock lock(&keys_mu_);
  return keys_;
}

void Authenticator::Watch() {
  for (;;) {
    {
      absl::MutexLock lock(&stop_mu_);
      if (stop_mu_.AwaitWithTimeout(absl::Condition(&stopping_), options_.reload_period)) return;
    }
    if (absl::Status reloaded = ReloadIfChanged(); !reloaded.ok()) {
      refused_.fetch_add(1, std::memory_order_acq_rel);
      log::Error("token keys not reloaded, the previous ones stay: {}", Std(reloaded.message()));
    }
  }
}

Authenticator::Shard& Authenticator::ShardOf(std::string_view token) { return shards_[absl::HashOf(token) % kShards]; }

absl::StatusOr<Principal> Authenticator::Authenticate(std::string_view authorization, absl::Time now) {
  absl::StatusOr<std::string_view> token = BearerToken(authorization);
  if (!token.ok()) return token.status();
  const uint64_t generation = key_generation();
  Shard& shard = ShardOf(*token);
  {
    absl::MutexLock lock(&shard.mu);
    auto found = shard.tokens.find(Absl(*token));
    if (found != shard.tokens.end()) {
      if (found->second.generation == generation &&
          now < found->second.principal.expires + options_.policy.clock_skew) {
        return found->second.principal;
      }
      shard.tokens.erase(found);
    }
  }
  absl::StatusOr<Principal> principal = VerifyToken(*keys(), options_.policy, *token, now);
  if (!principal.ok()) return principal.status();
  absl::MutexLock lock(&shard.mu);
  // Full: start over rather than track ages (a flood of distinct tokens
  // costs verifications, never memory).
  if (shard.tokens.size() >= options_.cache_capacity / kShards) shard.tokens.clear();
  shard.tokens.insert_or_assign(std::string(*token), Cached{*principal, generation});
  return principal;
}

}  // namespace segments::auth
