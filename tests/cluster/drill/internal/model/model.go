// Package model is what the drill's client knows about memberships: the
// acknowledged writes of each (user, segment) pair, in the order they were
// acknowledged, and what follows from them: which writes are valid to make
// next, and the state the service must end in.
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

// ExpiryMarginMs is how long after a TTL membership's latest possible
// deadline (acknowledgement + TTL) the client treats it as surely ended.
// The deadline is counted from the commit, which precedes the
// acknowledgement, so the margin only absorbs clock granularity.
const ExpiryMarginMs = 1000

// Ack is one acknowledged logical write: one segment added to or removed
// from one user.
type Ack struct {
	UserID   string
	Slug     string
	Op       Op
	TTLSec   int   // add only; 0: permanent
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
// keeps one per user, owned by that user's worker; the check one for all.
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

// CanAdd reports whether adding the pair at nowMs is surely valid: the user
// surely does not hold the segment (never added, last removed, or the last
// add's TTL surely over).
func (s *State) CanAdd(p Pair, nowMs int64) bool {
	ps := s.pairs[p]
	if ps == nil || ps.last.Op == Remove {
		return true
	}
	return ps.last.TTLSec > 0 && nowMs > ps.last.AckMs+int64(ps.last.TTLSec)*1000+ExpiryMarginMs
}

// MayHold reports whether the user may hold the segment at nowMs (the last
// write was an add whose TTL, if any, may still run). Removing is valid
// either way; this only steers the load towards removals that change
// something.
func (s *State) MayHold(p Pair, nowMs int64) bool {
	return !s.CanAdd(p, nowMs)
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
