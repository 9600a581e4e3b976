package randomchanges

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"segments/usermock/internal/publisher/publishertest"
	"segments/usermock/internal/store"
)

func memStore(t *testing.T) *store.Store {
	t.Helper()
	s, err := store.Open("", nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func id(n int) string { return fmt.Sprintf("00000000-0000-4000-8000-%012d", n) }

// steps runs n generator steps on s and returns the changes.
func steps(t *testing.T, s *store.Store, seed int64, n int) []Change {
	t.Helper()
	g := NewGenerator(seed)
	var out []Change
	for range n {
		err := s.Update(func(tx *store.Tx) error {
			c, err := g.Step(tx)
			out = append(out, c)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func TestSameSeedSameStoreSameChanges(t *testing.T) {
	// Two stores with the same users, reached by different histories (and so
	// different map layouts and insertion orders).
	a, b := memStore(t), memStore(t)
	a.Update(func(tx *store.Tx) error {
		for i := range 300 {
			tx.Create(id(i))
		}
		tx.SetState(id(7), store.Excluded)
		return nil
	})
	b.Update(func(tx *store.Tx) error {
		for i := 1000; i < 1100; i++ {
			tx.Create(id(i))
		}
		for i := 299; i >= 0; i-- {
			tx.Create(id(i))
		}
		for i := 1000; i < 1100; i++ {
			tx.Delete(id(i))
		}
		tx.SetState(id(7), store.Excluded)
		return nil
	})

	ca, cb := steps(t, a, 42, 5000), steps(t, b, 42, 5000)
	if !slices.Equal(ca, cb) {
		t.Fatal("the same seed on the same store made different changes")
	}
	if !slices.Equal(a.List("", 1<<30), b.List("", 1<<30)) {
		t.Fatal("the stores differ after the same changes")
	}

	// Another seed on a copy of the same start makes other changes.
	c := memStore(t)
	c.Update(func(tx *store.Tx) error {
		for i := range 300 {
			tx.Create(id(i))
		}
		return nil
	})
	if cc := steps(t, c, 43, 5000); slices.Equal(cc, ca) {
		t.Fatal("seeds 42 and 43 made the same changes")
	}
}

func TestChangeMixAndValidity(t *testing.T) {
	s := memStore(t)
	changes := steps(t, s, 1, 20000)
	if changes[0].Kind != Created {
		t.Fatalf("first change on an empty store is %v, want created", changes[0].Kind)
	}
	// Replay the changes on a model: each must be valid where it happened.
	model := map[string]store.State{}
	var counts Counts
	for i, c := range changes {
		prev, existed := model[c.User.ID]
		switch c.Kind {
		case Created:
			if existed {
				t.Fatalf("change %d creates existing user %s", i, c.User.ID)
			}
			if c.User.State != store.Active {
				t.Fatalf("change %d creates a user in state %v", i, c.User.State)
			}
			model[c.User.ID] = store.Active
		case Updated:
			if !existed || c.User.State == prev {
				t.Fatalf("change %d: update of %s from %v (exists %v) to %v is not a flip", i, c.User.ID, prev, existed, c.User.State)
			}
			model[c.User.ID] = c.User.State
		case Deleted:
			if !existed {
				t.Fatalf("change %d deletes unknown user %s", i, c.User.ID)
			}
			delete(model, c.User.ID)
		}
		counts.add(c.Kind)
	}
	if s.Len() != len(model) {
		t.Fatalf("store has %d users, the changes leave %d", s.Len(), len(model))
	}
	for _, u := range s.List("", 1<<30) {
		if model[u.ID] != u.State {
			t.Fatalf("user %s: store %v, changes %v", u.ID, u.State, model[u.ID])
		}
	}
	// 50/35/15 within a few percent.
	within := func(n int64, percent float64) bool {
		got := float64(n) * 100 / 20000
		return got > percent-2 && got < percent+2
	}
	if !within(counts.Created, 50) || !within(counts.Updated, 35) || !within(counts.Deleted, 15) {
		t.Fatalf("mix %+v, want about 50/35/15 %%", counts)
	}
}

func TestRunPublishesEveryChangeInOrder(t *testing.T) {
	s := memStore(t)
	pub := &publishertest.Fake{}
	var changed []string
	counts, err := Run(context.Background(), s, pub, NewGenerator(5), Options{
		Count: 3000, Window: 16,
		OnChange: func(c Change) { changed = append(changed, c.User.ID) },
	})
	if err != nil {
		t.Fatal(err)
	}
	if counts.Total() != 3000 {
		t.Fatalf("counts %+v", counts)
	}
	if got := pub.Published(); !slices.Equal(got, changed) {
		t.Fatalf("published %d ids, changed %d, or in another order", len(got), len(changed))
	}
	if int64(s.Len()) != counts.Created-counts.Deleted {
		t.Fatalf("store has %d users, counts %+v", s.Len(), counts)
	}
	// The same seed from the same (empty) start publishes the same ids.
	pub2 := &publishertest.Fake{}
	if _, err := Run(context.Background(), memStore(t), pub2, NewGenerator(5), Options{Count: 3000}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(pub2.Published(), changed) {
		t.Fatal("a second run with the same seed published other ids")
	}
}

func TestRunRate(t *testing.T) {
	start := time.Now()
	counts, err := Run(context.Background(), memStore(t), &publishertest.Fake{}, NewGenerator(1), Options{Count: 21, RatePerSecond: 100})
	if err != nil || counts.Total() != 21 {
		t.Fatalf("%+v %v", counts, err)
	}
	// 21 changes at 100/s: the last one is due 200 ms after the first.
	if d := time.Since(start); d < 195*time.Millisecond || d > 2*time.Second {
		t.Fatalf("took %v, want about 200ms", d)
	}
}

func TestRunFailsOnEventError(t *testing.T) {
	boom := errors.New("boom")
	s := memStore(t)
	counts, err := Run(context.Background(), s, &publishertest.Fake{AckErr: boom}, NewGenerator(1), Options{Count: 1000, Window: 1})
	if !errors.Is(err, boom) {
		t.Fatalf("err %v, want boom", err)
	}
	if counts.Total() == 0 || counts.Total() >= 1000 {
		t.Fatalf("counts %+v: want it to stop early but after a change", counts)
	}
	if int64(s.Len()) != counts.Created-counts.Deleted {
		t.Fatal("changes made before the failure are not kept")
	}

	// KeepGoing reports every failure and makes every change.
	var mu sync.Mutex
	failures := 0
	counts, err = Run(context.Background(), memStore(t), &publishertest.Fake{AckErr: boom}, NewGenerator(1), Options{
		Count: 100, KeepGoing: true,
		OnEventError: func(error) { mu.Lock(); failures++; mu.Unlock() },
	})
	if err != nil || counts.Total() != 100 || failures != 100 {
		t.Fatalf("KeepGoing: %+v %v, %d failures", counts, err, failures)
	}
}

func TestRunStallsWithoutAcks(t *testing.T) {
	s := memStore(t)
	start := time.Now()
	counts, err := Run(context.Background(), s, &publishertest.Fake{Hold: true}, NewGenerator(1), Options{
		Count: 1000, Window: 10, Stall: 100 * time.Millisecond,
	})
	if !errors.Is(err, ErrStalled) {
		t.Fatalf("err %v, want ErrStalled", err)
	}
	if counts.Total() != 10 || s.Len() == 0 {
		t.Fatalf("counts %+v: want the window's 10 changes, kept", counts)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("took %v", d)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err = Run(ctx, memStore(t), &publishertest.Fake{Hold: true}, NewGenerator(1), Options{Count: 1000, Window: 10})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err %v, want the context's", err)
	}
}

func TestRunRejectsBadRate(t *testing.T) {
	if _, err := Run(context.Background(), memStore(t), &publishertest.Fake{}, NewGenerator(1), Options{Count: 1, RatePerSecond: -1}); err == nil {
		t.Fatal("negative rate accepted")
	}
}
