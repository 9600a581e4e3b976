// Package model is what the drill's client knows about memberships: the
// acknowledged writes of each (user, segment) pair, in the order they were
// acknowledged, and what follows from them: which writes are valid to make
// next, what a read may answer while the load runs (Writes), and the state
// the service must end in.
//
// Each user's writes are made one at a time by one worker, so the order of
// the acknowledgements of a pair is the order the service applied them.
package model

import "fmt"

// Op is a write's change to one membership.
type Op int

const (
	Add Op = iota + 1
	Remove
)

func (o Op) String() string {
	switch o {
	case Add:
		return "add"
	case Remove:
		return "remove"
	}
	return fmt.Sprintf("Op(%d)", int(o))
}

// ParseOp is the inverse of Op.String.
func ParseOp(s string) (Op, error) {
	switch s {
	case "add":
		return Add, nil
	case "remove":
		return Remove, nil
	}
	return 0, fmt.Errorf("op %q: want add or remove", s)
}

// MarginMs is the drill client's one safety margin for timing, in ms.
//
// A write is committed between its first send and its acknowledgement, so
// a TTL membership's deadline lies between send + TTL and ack + TTL; every
// instance answers with a change within 1 s of its commit (an answer from
// memory includes every change committed more than --read-model-max-lag,
// 1 s, before it: docs/read-model.md). The margin covers that second plus
// clock granularity and scheduling. It is used
//   - to re-add a TTL membership only MarginMs after its latest deadline
//     (State.CanAdd),
//   - by the check, which waits MarginMs past the last TTL deadline,
//   - to judge reads during the load (Writes.Judge): a pair is compared only
//     if its last acknowledgement, every write of the user and any TTL
//     deadline are at least MarginMs away from the read.
const MarginMs = 1500

// Ack is one acknowledged logical write: one segment added to or removed
// from one user.
type Ack struct {
	UserID   string
	Slug     string
	Op       Op
	TTLSec   int   // add only; 0: permanent
	SentMs   int64 // Unix epoch ms just before the first attempt was sent
	AckMs    int64 // Unix epoch ms when the 2xx answer arrived
	Attempts int   // requests sent for it, the acknowledged one included
	Key      string
}

// Pair names one membership.
type Pair struct {
	UserID string
	Slug   string
}

type pairState struct {
	last    Ack
	adds    int
	removes int
}

// State folds acknowledged writes. Not safe for concurrent use: the load
// keeps one per user inside a Writes; the check one for all.
type State struct {
	pairs      map[Pair]*pairState
	ttlHorizon int64
}

func NewState() *State { return &State{pairs: map[Pair]*pairState{}} }

// Apply records an acknowledged write; acks of a pair must come in
// acknowledgement order.
func (s *State) Apply(a Ack) {
	p := Pair{a.UserID, a.Slug}
	ps := s.pairs[p]
	if ps == nil {
		ps = &pairState{}
		s.pairs[p] = ps
	}
	ps.last = a
	if a.Op == Add {
		ps.adds++
		if a.TTLSec > 0 {
			s.ttlHorizon = max(s.ttlHorizon, a.AckMs+int64(a.TTLSec)*1000)
		}
	} else {
		ps.removes++
	}
}

// Last is the pair's last acknowledged write; false when there is none.
func (s *State) Last(p Pair) (Ack, bool) {
	if ps := s.pairs[p]; ps != nil {
		return ps.last, true
	}
	return Ack{}, false
}

// CanAdd reports whether adding the pair at nowMs is surely valid: the user
// surely does not hold the segment (never added, last removed, or the last
// add's TTL surely over).
func (s *State) CanAdd(p Pair, nowMs int64) bool {
	ps := s.pairs[p]
	if ps == nil || ps.last.Op == Remove {
		return true
	}
	return ps.last.TTLSec > 0 && nowMs > ps.last.AckMs+int64(ps.last.TTLSec)*1000+MarginMs
}

// HeldAtEnd is the expected membership once every TTL has run out: held iff
// the last acknowledged write is an add without TTL.
func (s *State) HeldAtEnd(p Pair) bool {
	ps := s.pairs[p]
	return ps != nil && ps.last.Op == Add && ps.last.TTLSec == 0
}

// Counts are the acknowledged adds and removes of the pair.
func (s *State) Counts(p Pair) (adds, removes int) {
	if ps := s.pairs[p]; ps != nil {
		return ps.adds, ps.removes
	}
	return 0, 0
}

// TTLHorizonMs is the latest possible deadline of any acknowledged TTL add
// (ack + TTL), 0 when there is none. After it every TTL membership the
// client made has ended.
func (s *State) TTLHorizonMs() int64 { return s.ttlHorizon }
