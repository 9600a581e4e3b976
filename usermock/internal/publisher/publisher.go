// Package publisher produces the user service's events to Kafka: one record
// per change, keyed by the user id, with the value {"userID":"<id>"}.
package publisher

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Publisher is an idempotent producer with acks=all. Records with the same
// key go to the same partition (murmur2 of the key, as Java clients do) and
// an idempotent producer keeps each partition's order, so the events of one
// user reach the broker in the order they were published.
type Publisher struct {
	client *kgo.Client
	topic  string
	// The pending records' lifetime: records never time out on their own
	// (a broker outage only delays them); Close cancels what is left.
	ctx    context.Context
	cancel context.CancelFunc
	once   sync.Once
	seq    atomic.Int64
	// published counts the events the broker acknowledged.
	published atomic.Int64
}

// SeqHeader names a record header holding the event's number, counted from 1
// in each run of the mock in the order of Publish calls. It is there for the
// mock's own tests (it makes per-user order visible); consumers must not rely
// on it, the real user service sends no headers.
const SeqHeader = "usermock-seq"

// New makes a publisher; it connects lazily, so the broker may still be down.
func New(brokers []string, topic string, extra ...kgo.Opt) (*Publisher, error) {
	if topic == "" {
		return nil, fmt.Errorf("publisher: empty topic")
	}
	opts := append([]kgo.Opt{
		kgo.SeedBrokers(brokers...),
		kgo.DefaultProduceTopic(topic),
		kgo.RequiredAcks(kgo.AllISRAcks()), // the default, spelled out
		kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)),
		// Admin calls wait for their record's ack: don't hold it back.
		kgo.ProducerLinger(0),
		// Random changes keep their own window of unacknowledged records
		// (far below this), so Produce never blocks on a full buffer.
		kgo.MaxBufferedRecords(1 << 20),
	}, extra...)
	client, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("publisher: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Publisher{client: client, topic: topic, ctx: ctx, cancel: cancel}, nil
}

// Value returns the event value for a user id: exactly {"userID":"<id>"}.
func Value(id string) []byte {
	return []byte(`{"userID":"` + id + `"}`)
}

// Publish enqueues the event for user id and returns at once; done (if not
// nil) is called with the broker's answer. done runs on the producer's
// delivery goroutine, one call at a time: it must not block.
func (p *Publisher) Publish(id string, done func(error)) {
	rec := &kgo.Record{
		Topic:   p.topic,
		Key:     []byte(id),
		Value:   Value(id),
		Headers: []kgo.RecordHeader{{Key: SeqHeader, Value: strconv.AppendInt(nil, p.seq.Add(1), 10)}},
	}
	p.client.Produce(p.ctx, rec, func(_ *kgo.Record, err error) {
		if err == nil {
			p.published.Add(1)
		}
		if done != nil {
			done(err)
		}
	})
}

// Published returns the number of events the broker acknowledged so far.
func (p *Publisher) Published() int64 {
	return p.published.Load()
}

// Flush waits until every enqueued event is acknowledged, or ctx ends.
func (p *Publisher) Flush(ctx context.Context) error {
	return p.client.Flush(ctx)
}

// Buffered returns the number of events not yet acknowledged.
func (p *Publisher) Buffered() int64 {
	return p.client.BufferedProduceRecords()
}

// CheckTopic asks the broker whether the topic exists, for a helpful message
// at start (events to a missing topic fail after a few retries).
func (p *Publisher) CheckTopic(ctx context.Context) error {
	req := kmsg.NewPtrMetadataRequest()
	t := kmsg.NewMetadataRequestTopic()
	t.Topic = kmsg.StringPtr(p.topic)
	req.Topics = append(req.Topics, t)
	resp, err := req.RequestWith(ctx, p.client)
	if err != nil {
		return fmt.Errorf("broker unreachable: %w", err)
	}
	for _, t := range resp.Topics {
		if err := kerr.ErrorForCode(t.ErrorCode); err != nil {
			return fmt.Errorf("topic %q: %w", p.topic, err)
		}
	}
	return nil
}

// Close fails whatever is still unacknowledged and closes the client; call
// Flush first.
func (p *Publisher) Close() {
	p.once.Do(func() {
		p.cancel()
		p.client.Close()
	})
}

// ParseBrokers splits a comma-separated broker list, dropping blanks.
func ParseBrokers(list string) []string {
	var out []string
	for _, b := range strings.Split(list, ",") {
		if b = strings.TrimSpace(b); b != "" {
			out = append(out, b)
		}
	}
	return out
}
