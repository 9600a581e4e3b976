// Package publishertest has a publisher for tests of the packages that
// publish: it records the ids and acknowledges them without a broker.
package publishertest

import (
	"slices"
	"sync"
)

// Fake records the published ids and acknowledges each with AckErr, at once,
// or never while Hold is set.
type Fake struct {
	AckErr error
	Hold   bool

	mu  sync.Mutex
	ids []string
}

func (p *Fake) Publish(id string, done func(error)) {
	p.mu.Lock()
	p.ids = append(p.ids, id)
	p.mu.Unlock()
	if !p.Hold {
		go done(p.AckErr)
	}
}

// Published returns the ids published so far, in order.
func (p *Fake) Published() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.ids)
}
