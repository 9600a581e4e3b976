// What idempotency keys need from persistence (docs/behaviour.md#idempotency-keys):
// the outcome of the first call with a key, stored in the transaction of its
// work, and the calls that repeat it answered from there. Implemented by
// storage::PgStore.
#pragma once

#include <absl/status/status.h>
#include <absl/status/statusor.h>
#include <absl/time/time.h>

#include <cstdint>
#include <memory>
#include <string>

namespace segments::domain {

struct IdempotencyKey {
  // Whose key it is: keys of different scopes never meet. "" for every
  // caller until calls are authenticated; then the principal.
  std::string scope;
  std::string key;
  // Tells requests apart: the same key with another fingerprint is refused.
  std::string fingerprint;
};

// What a call answered, as the transport encoded it; opaque here. Only
// outcomes that IsFinalOutcome accepts are stored.
struct CallOutcome {
  int code = 0;  // a status code, absl's and gRPC's alike
  std::string message;
  std::string details;   // the error details, as the transport sends them
  std::string response;  // the serialized response (only with code 0)

  bool operator==(const CallOutcome&) const = default;
};

// One call that carries a key, from its first look at the key to its
// answer. While it is current on a thread (Scope), the unit of work that a
// use case runs there (Store::InTransaction or InSingleCall; at most one)
// first claims the key in its transaction:
// - the key is new: the unit runs its work; when the work succeeds, the
//   transaction stays open, holding the claim, until Settle writes the
//   outcome in it and commits (a concurrent call with the key waits for
//   that commit); when it fails, it rolls back as always;
// - an earlier call stored an outcome under the key: the unit rolls back at
//   once without running its work, and returns an error that means nothing
//   (the use case's result is to be ignored): Settle answers the earlier
//   outcome.
class KeyedCall {
 public:
  virtual ~KeyedCall() = default;

  // Ends the call with `outcome`, what the call did (IsFinalOutcome of its
  // code), and returns what to answer: `outcome`, now stored with the key
  // (committed together with the work that the claim holds; in a
  // transaction of its own when no work is held); or the outcome an earlier
  // call with the same key and fingerprint stored, unchanged; or
  // ALREADY_EXISTS (KeyReused) when that earlier call's fingerprint differs.
  // Any other error: nothing was stored, the held work rolled back.
  virtual absl::StatusOr<CallOutcome> Settle(const CallOutcome& outcome) = 0;
  // Ends the call storing nothing: the held work, if any, rolls back. Also
  // what the destructor does to a call that was not settled.
  virtual void Abandon() = 0;
  // Whether a unit of work found an outcome stored under the key: then
  // Settle answers that one, whatever outcome it is given.
  virtual bool answered_earlier() const = 0;

  // The keyed call of the units of work that run on this thread while the
  // scope lives.
  class Scope {
   public:
    explicit Scope(KeyedCall& call);
    ~Scope();
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;

   private:
    KeyedCall* previous_;
  };
  // The call of the innermost Scope on this thread; null outside any.
  static KeyedCall* Current();
};

class IdempotencyStore {
 public:
  virtual ~IdempotencyStore() = default;

  // A call with `key`, made at `now` (the key's age counts from there).
  // Does no I/O until a unit of work or Settle needs it.
  virtual std::unique_ptr<KeyedCall> StartKeyedCall(IdempotencyKey key, absl::Time now) = 0;

  // Forgets up to `limit` keys made before `cutoff`; returns how many.
  // Several instances may run it at once: each skips the keys another is
  // deleting.
  virtual absl::StatusOr<int64_t> DeleteKeysMadeBefore(absl::Time cutoff, int limit) = 0;
};

}  // namespace segments::domain
