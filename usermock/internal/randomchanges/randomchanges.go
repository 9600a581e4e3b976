// Package randomchanges makes random user changes: creates, state flips and
// deletes, reproducible from a seed, each applied to the store and published
// as an event.
package randomchanges

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand"
	"sync"
	"time"

	"segments/usermock/internal/store"
	"segments/usermock/internal/userid"
)

// Weights of the kinds of change, in percent; an empty store always gets a
// create.
const (
	createPercent = 50
	flipPercent   = 35 // the rest (15%) are deletes
)

// Kind is the kind of a change.
type Kind uint8

const (
	Created Kind = iota + 1
	Updated
	Deleted
)

func (k Kind) String() string {
	switch k {
	case Created:
		return "created"
	case Updated:
		return "updated"
	case Deleted:
		return "deleted"
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// Change is one change made: the user as it is after the change (State 0
// for a delete).
type Change struct {
	Kind Kind
	User store.User
}

// Generator picks changes from a seeded math/rand source. It depends only
// on the seed and on the store's contents (users are picked by their index
// in id order, never by map iteration), so the same seed on the same store
// makes the same changes.
type Generator struct {
	rng *rand.Rand
}

// NewGenerator returns a generator for seed.
func NewGenerator(seed int64) *Generator {
	return &Generator{rng: rand.New(rand.NewSource(seed))}
}

// Step picks one change and applies it through tx.
func (g *Generator) Step(tx *store.Tx) (Change, error) {
	roll := g.rng.Intn(100)
	n := tx.Len()
	switch {
	case n == 0 || roll < createPercent:
		id := userid.Random(g.rng)
		for _, taken := tx.Get(id); taken; _, taken = tx.Get(id) {
			id = userid.Random(g.rng)
		}
		u, err := tx.Create(id)
		return Change{Kind: Created, User: u}, err
	case roll < createPercent+flipPercent:
		u := tx.At(g.rng.Intn(n))
		next := store.Active
		if u.State == store.Active {
			next = store.Excluded
		}
		u, err := tx.SetState(u.ID, next)
		return Change{Kind: Updated, User: u}, err
	default:
		u := tx.At(g.rng.Intn(n))
		err := tx.Delete(u.ID)
		return Change{Kind: Deleted, User: store.User{ID: u.ID}}, err
	}
}

// Publisher enqueues one user's event; done gets the broker's answer and
// must not block.
type Publisher interface {
	Publish(id string, done func(error))
}

// Counts are the changes made, by kind.
type Counts struct {
	Created, Updated, Deleted int64
}

// Total is the number of changes.
func (c Counts) Total() int64 { return c.Created + c.Updated + c.Deleted }

func (c *Counts) add(k Kind) {
	switch k {
	case Created:
		c.Created++
	case Updated:
		c.Updated++
	case Deleted:
		c.Deleted++
	}
}

// Options of Run.
type Options struct {
	// Count is the number of changes; 0: until ctx ends.
	Count int64
	// RatePerSecond limits the pace; 0: as fast as possible.
	RatePerSecond float64
	// Window is the most events not yet acknowledged at any time (default
	// 10000): past it Run waits for the broker.
	Window int
	// Stall bounds each such wait (and the final wait for the last acks):
	// past it Run stops with ErrStalled. 0: wait as long as ctx allows.
	Stall time.Duration
	// OnChange, if set, sees each change (under the store's lock).
	OnChange func(Change)
	// KeepGoing makes Run go on after an event fails, reporting each
	// failure to OnEventError instead of stopping with it.
	KeepGoing    bool
	OnEventError func(error)
}

// ErrStalled means the broker acknowledged nothing for Options.Stall.
var ErrStalled = errors.New("the broker acknowledged no event in time")

// Run makes changes with gen, applies each to st and publishes its event
// with pub inside the same Update (so one user's events are enqueued in the
// order of the changes), at most opts.Window unacknowledged at a time. It
// returns once every event it made is acknowledged, with the counts of the
// changes made even when it fails: the changes are kept, and events not yet
// acknowledged stay queued in the publisher.
func Run(ctx context.Context, st *store.Store, pub Publisher, gen *Generator, opts Options) (Counts, error) {
	if opts.Window <= 0 {
		opts.Window = 10000
	}
	if opts.RatePerSecond < 0 || math.IsNaN(opts.RatePerSecond) || math.IsInf(opts.RatePerSecond, 0) {
		return Counts{}, fmt.Errorf("randomchanges: bad rate %v", opts.RatePerSecond)
	}
	w := &window{slots: make(chan struct{}, opts.Window), stall: opts.Stall}
	done := func(err error) {
		if err != nil {
			if opts.KeepGoing {
				if opts.OnEventError != nil {
					opts.OnEventError(err)
				}
			} else {
				w.fail(err)
			}
		}
		<-w.slots
	}

	var counts Counts
	var runErr error
	start := time.Now()
	for i := int64(0); opts.Count == 0 || i < opts.Count; i++ {
		if err := w.err(); err != nil {
			runErr = err
			break
		}
		if err := ctx.Err(); err != nil {
			runErr = err
			break
		}
		if opts.RatePerSecond > 0 {
			due := start.Add(time.Duration(float64(i) / opts.RatePerSecond * float64(time.Second)))
			if err := sleepUntil(ctx, due); err != nil {
				runErr = err
				break
			}
		}
		if err := w.acquire(ctx); err != nil {
			runErr = err
			break
		}
		var c Change
		err := st.Update(func(tx *store.Tx) error {
			var err error
			if c, err = gen.Step(tx); err != nil {
				return err
			}
			pub.Publish(c.User.ID, done)
			if opts.OnChange != nil {
				opts.OnChange(c)
			}
			return nil
		})
		if err != nil {
			<-w.slots // nothing was published
			runErr = err
			break
		}
		counts.add(c.Kind)
	}
	// Wait for the acks of everything published, also after a failure.
	if err := w.drain(ctx); runErr == nil {
		runErr = err
	}
	if runErr == nil {
		runErr = w.err()
	}
	return counts, runErr
}

// window counts unacknowledged events: a slot is taken before each publish
// and freed by its ack.
type window struct {
	slots chan struct{}
	stall time.Duration

	mu    sync.Mutex
	first error
}

func (w *window) fail(err error) {
	w.mu.Lock()
	if w.first == nil {
		w.first = err
	}
	w.mu.Unlock()
}

func (w *window) err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.first
}

// acquire takes a slot, waiting at most w.stall (0: no limit) for one.
func (w *window) acquire(ctx context.Context) error {
	select {
	case w.slots <- struct{}{}:
		return nil
	default:
	}
	var stall <-chan time.Time
	if w.stall > 0 {
		t := time.NewTimer(w.stall)
		defer t.Stop()
		stall = t.C
	}
	select {
	case w.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-stall:
		return ErrStalled
	}
}

// drain waits until every slot is free: all events acknowledged. Each slot
// is waited for like acquire does, so a broker that keeps acknowledging is
// waited for, and a stopped one is not.
func (w *window) drain(ctx context.Context) error {
	for range cap(w.slots) {
		if err := w.acquire(ctx); err != nil {
			return err
		}
	}
	return nil
}

func sleepUntil(ctx context.Context, due time.Time) error {
	d := time.Until(due)
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
