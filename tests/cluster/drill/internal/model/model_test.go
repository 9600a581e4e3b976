package model

import "testing"

const (
	u = "00000000-0000-4000-8000-000000000001"
	a = "DRILL_x_A"
	b = "DRILL_x_B"
)

func TestNothingAckedMeansAddableAndNotHeld(t *testing.T) {
	s := NewState()
	p := Pair{u, a}
	if !s.CanAdd(p, 0) {
		t.Fatal("a pair never written must be addable")
	}
	if s.HeldAtEnd(p) {
		t.Fatal("a pair never written is not held")
	}
	if ad, rm := s.Counts(p); ad != 0 || rm != 0 {
		t.Fatalf("counts %d/%d, want 0/0", ad, rm)
	}
	if h := s.TTLHorizonMs(); h != 0 {
		t.Fatalf("horizon %d, want 0", h)
	}
}

func TestPermanentAddThenRemove(t *testing.T) {
	s := NewState()
	p := Pair{u, a}
	s.Apply(Ack{UserID: u, Slug: a, Op: Add, AckMs: 1000})
	if s.CanAdd(p, 1_000_000) {
		t.Fatal("a permanent member must never be re-added")
	}
	if !s.HeldAtEnd(p) {
		t.Fatal("permanent add: held at the end")
	}
	// The other pair of the same user is untouched.
	if !s.CanAdd(Pair{u, b}, 1000) || s.HeldAtEnd(Pair{u, b}) {
		t.Fatal("another segment of the user changed")
	}
	s.Apply(Ack{UserID: u, Slug: a, Op: Remove, AckMs: 2000})
	if !s.CanAdd(p, 2001) || s.HeldAtEnd(p) {
		t.Fatal("after a remove: addable, not held")
	}
	if ad, rm := s.Counts(p); ad != 1 || rm != 1 {
		t.Fatalf("counts %d/%d, want 1/1", ad, rm)
	}
}

func TestRemoveOfSegmentNotHeldIsNoOp(t *testing.T) {
	s := NewState()
	p := Pair{u, a}
	s.Apply(Ack{UserID: u, Slug: a, Op: Remove, AckMs: 500})
	s.Apply(Ack{UserID: u, Slug: a, Op: Remove, AckMs: 600})
	if !s.CanAdd(p, 601) || s.HeldAtEnd(p) {
		t.Fatal("removes of a segment never held leave it addable and not held")
	}
	if ad, rm := s.Counts(p); ad != 0 || rm != 2 {
		t.Fatalf("counts %d/%d, want 0/2", ad, rm)
	}
}

func TestTTLAddRules(t *testing.T) {
	s := NewState()
	p := Pair{u, a}
	s.Apply(Ack{UserID: u, Slug: a, Op: Add, TTLSec: 3, AckMs: 10_000})
	// The deadline is at most 13,000; re-adding is safe only MarginMs later.
	for _, c := range []struct {
		now  int64
		want bool
	}{{10_000, false}, {13_000, false}, {13_000 + MarginMs, false}, {13_001 + MarginMs, true}} {
		if got := s.CanAdd(p, c.now); got != c.want {
			t.Errorf("CanAdd at %d = %v, want %v", c.now, got, c.want)
		}
	}
	if s.HeldAtEnd(p) {
		t.Fatal("a TTL membership is not held at the end")
	}
	if h := s.TTLHorizonMs(); h != 13_000 {
		t.Fatalf("horizon %d, want 13000", h)
	}
	// Re-added for good after expiry: held; the horizon keeps the old TTL.
	s.Apply(Ack{UserID: u, Slug: a, Op: Add, AckMs: 15_000})
	if !s.HeldAtEnd(p) || s.CanAdd(p, 100_000) {
		t.Fatal("a permanent re-add: held, not addable")
	}
	// A later TTL add elsewhere moves the horizon; an earlier one does not.
	s.Apply(Ack{UserID: u, Slug: b, Op: Add, TTLSec: 6, AckMs: 20_000})
	s.Apply(Ack{UserID: u, Slug: b, Op: Remove, AckMs: 21_000})
	s.Apply(Ack{UserID: u, Slug: b, Op: Add, TTLSec: 2, AckMs: 22_000})
	if h := s.TTLHorizonMs(); h != 26_000 {
		t.Fatalf("horizon %d, want 26000", h)
	}
	if ad, rm := s.Counts(Pair{u, b}); ad != 2 || rm != 1 {
		t.Fatalf("counts %d/%d, want 2/1", ad, rm)
	}
}

func TestParseOp(t *testing.T) {
	for _, o := range []Op{Add, Remove} {
		got, err := ParseOp(o.String())
		if err != nil || got != o {
			t.Fatalf("ParseOp(%q) = %v, %v", o.String(), got, err)
		}
	}
	if _, err := ParseOp("put"); err == nil {
		t.Fatal("ParseOp(put) must fail")
	}
}
