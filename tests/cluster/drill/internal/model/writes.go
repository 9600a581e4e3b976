package model

import (
	"slices"
	"sync"
)

// Writes is one user's writes as the load's reads need them: the
// acknowledged ones folded into a State, the one under way, when the last
// finished one ended. The user's worker changes it (Begin, then Acked,
// Rejected or nothing: given up); reads of the user judge their answers
// against it (Judge). Safe for concurrent use.
type Writes struct {
	mu       sync.Mutex
	user     string
	state    *State
	inFlight int64           // when the write under way was first sent (ms); 0: none
	lastEnd  int64           // when the latest write no longer under way ended (ms)
	unknown  map[string]bool // slugs with a rejected write: whether it was applied is not known
}

func NewWrites(user string) *Writes {
	return &Writes{user: user, state: NewState(), unknown: map[string]bool{}}
}

// CanAdd is State.CanAdd for the user's segment slug.
func (w *Writes) CanAdd(slug string, nowMs int64) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.state.CanAdd(Pair{w.user, slug}, nowMs)
}

// Begin marks a write under way from sentMs, taken before its first
// attempt is sent. A write that is given up is never ended: the user's
// reads are not judged again.
func (w *Writes) Begin(sentMs int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.inFlight = sentMs
}

// Acked ends the write under way with its acknowledgement.
func (w *Writes) Acked(a Ack) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.state.Apply(a)
	w.inFlight, w.lastEnd = 0, max(w.lastEnd, a.AckMs)
}

// Rejected ends the write under way with a refusal at endMs. The refusal
// may follow attempts that failed without an answer, so the pair's state
// is unknown from then on: it is never judged again.
func (w *Writes) Rejected(slug string, endMs int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.unknown[slug] = true
	w.inFlight, w.lastEnd = 0, max(w.lastEnd, endMs)
}

// Mismatch is a settled pair a read answered wrongly.
type Mismatch struct {
	Slug     string
	Expected bool // held
	Got      bool
}

// Judge compares the answer of a read of the user (every slug it returned)
// that started at startMs and ended at endMs with the acknowledged writes,
// for each of slugs whose expectation is settled (Expect); the others are
// skipped. Call it after the read ended.
func (w *Writes) Judge(slugs, answer []string, startMs, endMs int64) (stale []Mismatch, compared, skipped int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, s := range slugs {
		last, ok := w.state.Last(Pair{w.user, s})
		held, settled := Expect(last, ok, w.inFlight, w.lastEnd, startMs, endMs)
		if !settled || w.unknown[s] {
			skipped++
			continue
		}
		compared++
		if got := slices.Contains(answer, s); got != held {
			stale = append(stale, Mismatch{Slug: s, Expected: held, Got: got})
		}
	}
	return stale, compared, skipped
}

// Expect is what a read that started at startMs and ended at endMs must
// answer for a pair whose last acknowledged write is last (ok false: none
// yet), given the user's write under way since inFlightMs (0: none) and the
// end of the user's latest finished write, lastEndMs. The expectation is
// settled only when, with MarginMs to spare,
//   - no write of the user was under way from startMs-MarginMs to endMs (a
//     write begun after the read ended does not matter);
//   - the pair's last acknowledgement precedes startMs by more than MarginMs;
//   - for a TTL add, the whole read is more than MarginMs away from the
//     deadline, which lies between SentMs+TTL and AckMs+TTL (the read's
//     answer is taken somewhere between its start and its end).
//
// held is meaningful only when settled.
func Expect(last Ack, ok bool, inFlightMs, lastEndMs, startMs, endMs int64) (held, settled bool) {
	from := startMs - MarginMs
	if inFlightMs != 0 && inFlightMs <= endMs {
		return false, false
	}
	if lastEndMs >= from {
		return false, false
	}
	if !ok {
		return false, true
	}
	if last.AckMs >= from {
		return false, false
	}
	if last.Op != Add {
		return false, true
	}
	if last.TTLSec == 0 {
		return true, true
	}
	ttl := int64(last.TTLSec) * 1000
	earliest, latest := last.SentMs+ttl, last.AckMs+ttl
	switch {
	case endMs+MarginMs < earliest:
		return true, true
	case from > latest:
		return false, true
	}
	return false, false
}
