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
#include <optional>
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
// use case runs there (Store::InTransaction or InSingleCall) first claims
// the key in its transaction:
// - the key is new: the unit runs its work; when the work succeeds, the
//   transaction stays open, holding the claim, until Settle writes the
//   outcome in it and commits (a concurrent call with the key waits for
//   that commit); when it fails, it rolls back as always, claim included,
//   and another unit may claim again;
// - the work published a segment task whose end the answer needs
//   (AnswerAfterTask): the unit commits, the key stored *pending* on the
//   task; the task's chunks run outside the call (SegmentTasks), and
//   Settle stores the answer unless a repeat stored one first;
// - an earlier call stored an outcome under the key: the unit rolls back at
//   once without running its work, and returns an error that means nothing
//   (the use case's result is to be ignored): Settle answers the earlier
//   outcome;
// - the key is pending on a task: the unit rolls back at once likewise, and
//   the use case finishes that task and answers from it (pending_task).
// Once a unit has kept the claim (held, pending, or found), the call runs no
// other unit.
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
  // Called by the work of a unit that published segment task `task`: the
  // unit commits with the key pending on it instead of holding the claim.
  virtual void AnswerAfterTask(int64_t task) = 0;
  // The task a unit found the key pending on: an earlier call with the key
  // published it and has not answered yet. nullopt otherwise.
  virtual std::optional<int64_t> pending_task() const = 0;

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
  // No keyed call for the units of work that run on this thread while it
  // lives: the chunks of a segment task are never part of a call's claim.
  class Suspend {
   public:
    Suspend();
    ~Suspend();
    Suspend(const Suspend&) = delete;
    Suspend& operator=(const Suspend&) = delete;

   private:
    KeyedCall* previous_;
  };
  // The call of the innermost Scope on this thread; null outside any (or
  // while a Suspend lives).
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
