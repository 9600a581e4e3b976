package model

import (
	"slices"
	"sync"
	"testing"
)

const (
	c = "DRILL_x_C"
	d = "DRILL_x_D"
)

var all = []string{a, b, c, d}

// judge1 judges one slug; returns (held, settled) as Judge saw it: settled
// with the answer "not held" gives a mismatch iff held.
func judge1(t *testing.T, w *Writes, slug string, start, end int64) (held, settled bool) {
	t.Helper()
	stale, compared, skipped := w.Judge([]string{slug}, nil, start, end)
	if compared+skipped != 1 {
		t.Fatalf("compared %d + skipped %d, want 1", compared, skipped)
	}
	return len(stale) == 1, compared == 1
}

func TestExpectNeverWritten(t *testing.T) {
	w := NewWrites(u)
	if held, ok := judge1(t, w, a, 5000, 5010); !ok || held {
		t.Fatalf("never written: held %v settled %v, want settled not held", held, ok)
	}
}

func TestExpectRecentAck(t *testing.T) {
	w := NewWrites(u)
	w.Begin(9_900)
	w.Acked(Ack{UserID: u, Slug: a, Op: Add, SentMs: 9_900, AckMs: 10_000})
	for _, c := range []struct {
		start   int64
		settled bool
	}{{10_100, false}, {10_000 + MarginMs, false}, {10_001 + MarginMs, true}, {60_000, true}} {
		held, ok := judge1(t, w, a, c.start, c.start+5)
		if ok != c.settled || (ok && !held) {
			t.Errorf("read at %d: held %v settled %v, want settled %v (held)", c.start, held, ok, c.settled)
		}
	}
	// The rule on the pair alone, with the user's activity long past.
	last, _ := w.state.Last(Pair{u, a})
	if _, ok := Expect(last, true, 0, 0, 10_500, 10_510); ok {
		t.Fatal("an acknowledgement 500 ms before the read must leave the pair unsettled")
	}
}

func TestExpectWriteInFlight(t *testing.T) {
	w := NewWrites(u)
	w.Begin(1_000)
	w.Acked(Ack{UserID: u, Slug: a, Op: Add, SentMs: 1_000, AckMs: 1_100})
	// A write of another segment of the user, under way from 20,000.
	w.Begin(20_000)
	for _, r := range [][2]int64{{19_000, 20_000}, {20_100, 20_200}, {40_000, 40_010}} {
		for _, s := range []string{a, b} {
			if _, ok := judge1(t, w, s, r[0], r[1]); ok {
				t.Errorf("%s read %v with a write of the user under way from 20000: settled", s, r)
			}
		}
	}
	// A read that ended before the write began is unaffected by it.
	if held, ok := judge1(t, w, a, 19_000, 19_999); !ok || !held {
		t.Fatalf("read before the write began: held %v settled %v, want settled held", held, ok)
	}
	// Acknowledged at 20,500: the user's reads are unsettled until 1.5 s after.
	w.Acked(Ack{UserID: u, Slug: b, Op: Remove, SentMs: 20_000, AckMs: 20_500})
	if _, ok := judge1(t, w, a, 20_500+MarginMs, 22_100); ok {
		t.Fatal("a read starting MarginMs after the user's last write ended: settled")
	}
	if held, ok := judge1(t, w, a, 20_501+MarginMs, 22_100); !ok || !held {
		t.Fatalf("read after the margin: held %v settled %v", held, ok)
	}
	// A write given up (never ended) keeps the user unsettled for good.
	w.Begin(30_000)
	if _, ok := judge1(t, w, a, 100_000, 100_010); ok {
		t.Fatal("a write never ended must leave the user unsettled")
	}
}

func TestExpectTTLNearDeadline(t *testing.T) {
	w := NewWrites(u)
	// Sent at 10,000, acknowledged at 10,400, 6 s: the deadline is in
	// 16,000..16,400.
	w.Begin(10_000)
	w.Acked(Ack{UserID: u, Slug: a, Op: Add, TTLSec: 6, SentMs: 10_000, AckMs: 10_400})
	for _, c := range []struct {
		start, end    int64
		settled, held bool
	}{
		{11_900, 11_910, false, false},                           // too soon after the ack
		{12_000, 12_010, true, true},                             // before the deadline
		{14_400, 14_499, true, true},                             // ends 1,501 ms before the earliest deadline
		{14_400, 14_500, false, false},                           // ends 1,500 ms before it
		{12_000, 15_000, false, false},                           // a slow read reaching near the deadline
		{16_200, 16_210, false, false},                           // in the deadline's range
		{16_400 + MarginMs, 16_400 + MarginMs + 5, false, false}, // 1,500 ms after the latest deadline
		{16_401 + MarginMs, 16_401 + MarginMs + 5, true, false},  // surely ended
	} {
		held, ok := judge1(t, w, a, c.start, c.end)
		if ok != c.settled || (ok && held != c.held) {
			t.Errorf("read %d..%d: held %v settled %v, want held %v settled %v", c.start, c.end, held, ok, c.held, c.settled)
		}
	}
}

func TestJudgeDetectsStaleAnswers(t *testing.T) {
	w := NewWrites(u)
	w.Begin(1_000)
	w.Acked(Ack{UserID: u, Slug: a, Op: Add, SentMs: 1_000, AckMs: 1_010})
	w.Begin(2_000)
	w.Acked(Ack{UserID: u, Slug: b, Op: Add, SentMs: 2_000, AckMs: 2_010})
	w.Begin(3_000)
	w.Acked(Ack{UserID: u, Slug: b, Op: Remove, SentMs: 3_000, AckMs: 3_010})
	w.Begin(4_000)
	w.Rejected(d, 4_010)

	// Right: a held, b and c not; d unknown; other segments ignored.
	stale, compared, skipped := w.Judge(all, []string{"AVITO_X", a, d}, 10_000, 10_010)
	if len(stale) != 0 || compared != 3 || skipped != 1 {
		t.Fatalf("right answer: stale %v, compared %d, skipped %d", stale, compared, skipped)
	}
	// Stale: a missing, b still there (its removal lost), c never added.
	stale, _, _ = w.Judge(all, []string{b, c}, 10_000, 10_010)
	want := []Mismatch{{a, true, false}, {b, false, true}, {c, false, true}}
	if !slices.Equal(stale, want) {
		t.Fatalf("stale %v, want %v", stale, want)
	}
	// The same answer right after the removal is not judged.
	stale, compared, skipped = w.Judge(all, []string{b, c}, 3_100, 3_110)
	if len(stale) != 0 || compared != 0 || skipped != 4 {
		t.Fatalf("unsettled: stale %v, compared %d, skipped %d", stale, compared, skipped)
	}
}

// Reads judge while the worker writes (go test -race).
func TestWritesConcurrentUse(t *testing.T) {
	w := NewWrites(u)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for i := int64(1); i <= 1000; i++ {
			w.Begin(i * 10)
			if w.CanAdd(a, i*10) {
				w.Acked(Ack{UserID: u, Slug: a, Op: Add, SentMs: i * 10, AckMs: i*10 + 1})
			} else {
				w.Acked(Ack{UserID: u, Slug: a, Op: Remove, SentMs: i * 10, AckMs: i*10 + 1})
			}
		}
	}()
	go func() {
		defer wg.Done()
		for i := int64(1); i <= 1000; i++ {
			w.Judge(all, []string{a}, i*10, i*10+1)
		}
	}()
	wg.Wait()
}
