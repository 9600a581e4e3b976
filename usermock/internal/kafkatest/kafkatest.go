// Package kafkatest helps tests that need a real Kafka broker: it finds the
// broker in SEGMENTS_TEST_KAFKA_BROKERS, makes a topic of their own, and
// reads what was produced to it.
package kafkatest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// EnvBrokers names the variable holding the broker list (host:port,...).
const EnvBrokers = "SEGMENTS_TEST_KAFKA_BROKERS"

// Brokers returns the test broker list, failing the test when it is unset.
func Brokers(t testing.TB) []string {
	t.Helper()
	v := strings.TrimSpace(os.Getenv(EnvBrokers))
	if v == "" {
		t.Fatalf("%s is not set: these tests need a real Kafka broker "+
			"(scripts/kafka.sh start prints its host:port; scripts/test.sh sets it)", EnvBrokers)
	}
	return strings.Split(v, ",")
}

// NewTopic creates a uniquely named topic with the given partitions and
// deletes it when the test ends.
func NewTopic(t testing.TB, brokers []string, partitions int32) string {
	t.Helper()
	client, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	adm := kadm.NewClient(client)
	var suffix [6]byte
	rand.Read(suffix[:])
	name := "usermock-test-" + hex.EncodeToString(suffix[:])
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := adm.CreateTopic(ctx, partitions, 1, nil, name)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		client.Close()
		t.Fatalf("creating topic %s on %v: %v", name, brokers, err)
	}
	// The broker learns of the new topic a moment after the controller made
	// it; wait, so that the first produce does not see an unknown topic.
	for {
		topics, err := adm.ListTopics(ctx, name)
		d, ok := topics[name]
		if err == nil && ok && d.Err == nil && len(d.Partitions) == int(partitions) && leadersKnown(d) {
			break
		}
		if ctx.Err() != nil {
			client.Close()
			t.Fatalf("topic %s: not ready after 30 s", name)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Cleanup(func() {
		defer client.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := adm.DeleteTopics(ctx, name); err != nil {
			t.Logf("deleting topic %s: %v", name, err)
		}
	})
	return name
}

func leadersKnown(d kadm.TopicDetail) bool {
	for _, p := range d.Partitions {
		if p.Err != nil || p.Leader < 0 {
			return false
		}
	}
	return true
}

// Consume reads the topic from its start until it has want records (failing
// the test after timeout), then keeps reading for quiet to catch any extra
// record. Records of one partition come in offset order.
func Consume(t testing.TB, brokers []string, topic string, want int, timeout, quiet time.Duration) []*kgo.Record {
	t.Helper()
	client, err := kgo.NewClient(
		kgo.SeedBrokers(brokers...),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	var out []*kgo.Record
	deadline := time.Now().Add(timeout)
	var quietUntil time.Time
	for {
		until := deadline
		if len(out) >= want {
			if quietUntil.IsZero() {
				quietUntil = time.Now().Add(quiet)
			}
			until = quietUntil
		}
		if time.Now().After(until) {
			break
		}
		ctx, cancel := context.WithDeadline(context.Background(), until)
		fetches := client.PollFetches(ctx)
		cancel()
		for _, fe := range fetches.Errors() {
			if !errors.Is(fe.Err, context.DeadlineExceeded) && !errors.Is(fe.Err, context.Canceled) {
				t.Fatalf("consuming %s: partition %d: %v", topic, fe.Partition, fe.Err)
			}
		}
		out = append(out, fetches.Records()...)
	}
	if len(out) < want {
		t.Fatalf("topic %s: got %d records within %v, want %d", topic, len(out), timeout, want)
	}
	return out
}
