// segments-events-probe: the Kafka and user-service-mock side of
// bench/run_user_events_bench.sh. One subcommand per run; every answer is a
// line of key=value fields (times are Unix epoch milliseconds), errors go to
// stderr with exit status 1 (2: bad usage).
//
//	reset   --brokers=B --topic=T --partitions=6 --group=G
//	        deletes the group (its committed offsets) and the topic, creates
//	        the topic again, empty, and waits until every partition has a
//	        leader: a fresh start for a run
//	lag     --brokers=B --topic=T --group=G [--watch [--interval=100ms]
//	        [--until-end=N] [--timeout=30m]]
//	        the group's lag on the topic: sum over partitions of (high
//	        watermark - committed offset; 0 when none is committed). One line,
//	        or with --watch one line per poll until the lag is 0 with at least
//	        N records in the topic (exit 1 at --timeout)
//	changes --mock=ADDR --count=N [--rate=0] [--seed=1] [--brokers=B --topic=T --group=G]
//	        usermock.v1.UserMockAdmin/MakeRandomChanges, timed; it returns once
//	        the broker acknowledged every event. With --brokers, the lag right
//	        after it returned, from the same process
//	users   --mock=ADDR
//	        every user of the mock (ListUsers, pages of 1000): "ID STATE" lines,
//	        STATE active or excluded
//
// Lines:
//
//	lag:     t_ms=... lag=... end=... committed=... partitions=... committed_partitions=...
//	changes: t0_ms=... t1_ms=... seconds=... created=... updated=... deleted=... seed=... [lag fields, t_ms=...]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	usermockv1 "segments/usermock/gen/usermock/v1"
	userservicev1 "segments/usermock/gen/userservice/v1"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "reset":
		err = runReset(os.Args[2:])
	case "lag":
		err = runLag(os.Args[2:])
	case "changes":
		err = runChanges(os.Args[2:])
	case "users":
		err = runUsers(os.Args[2:])
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "segments-events-probe %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: segments-events-probe reset|lag|changes|users [flags] (see the source's header)")
	os.Exit(2)
}

func parse(fs *flag.FlagSet, args []string) {
	if err := fs.Parse(args); err != nil {
		os.Exit(2)
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "unexpected arguments: %q\n", fs.Args())
		os.Exit(2)
	}
}

func nowMs() int64 { return time.Now().UnixMilli() }

type kafkaFlags struct {
	brokers, topic, group *string
}

func addKafkaFlags(fs *flag.FlagSet) kafkaFlags {
	return kafkaFlags{
		brokers: fs.String("brokers", "", "Kafka bootstrap brokers host:port[,host:port...]"),
		topic:   fs.String("topic", "UserAction", "topic"),
		group:   fs.String("group", "segments", "consumer group"),
	}
}

func (k kafkaFlags) admin() (*kadm.Client, error) {
	if *k.brokers == "" {
		return nil, errors.New("--brokers is required")
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(*k.brokers, ",")...))
	if err != nil {
		return nil, err
	}
	return kadm.NewClient(cl), nil
}

// --- reset --------------------------------------------------------------------

func runReset(args []string) error {
	fs := flag.NewFlagSet("reset", flag.ContinueOnError)
	k := addKafkaFlags(fs)
	partitions := fs.Int("partitions", 6, "partitions of the topic")
	parse(fs, args)
	adm, err := k.admin()
	if err != nil {
		return err
	}
	defer adm.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	// The group first: it must have no members (the server is stopped). On
	// a new broker the group coordinator is not there yet: retried.
	for {
		groups, err := adm.DeleteGroups(ctx, *k.group)
		if err == nil {
			if r, ok := groups[*k.group]; ok && r.Err != nil && !errors.Is(r.Err, kerr.GroupIDNotFound) {
				err = r.Err
			}
		}
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return fmt.Errorf("deleting group %s: %w", *k.group, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	topics, err := adm.DeleteTopics(ctx, *k.topic)
	if err != nil {
		return fmt.Errorf("deleting topic %s: %w", *k.topic, err)
	}
	if r, ok := topics[*k.topic]; ok && r.Err != nil && !errors.Is(r.Err, kerr.UnknownTopicOrPartition) {
		return fmt.Errorf("deleting topic %s: %w", *k.topic, r.Err)
	}
	// The deletion completes in the background: retry the creation until the
	// name is free again.
	for {
		_, err = adm.CreateTopic(ctx, int32(*partitions), 1, nil, *k.topic)
		if err == nil {
			break
		}
		if !errors.Is(err, kerr.TopicAlreadyExists) || ctx.Err() != nil {
			return fmt.Errorf("creating topic %s: %w", *k.topic, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// Until every partition has a leader and an end offset (0).
	for {
		ends, err := adm.ListEndOffsets(ctx, *k.topic)
		ready := err == nil && ends.Error() == nil && len(ends[*k.topic]) == *partitions
		if ready {
			fmt.Printf("topic=%s partitions=%d group=%s reset=ok\n", *k.topic, *partitions, *k.group)
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("topic %s not ready: %v", *k.topic, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// --- lag ----------------------------------------------------------------------

type lagSample struct {
	tMs                 int64
	lag, end, committed int64
	partitions          int
	committedPartitions int
}

func (s lagSample) String() string {
	return fmt.Sprintf("t_ms=%d lag=%d end=%d committed=%d partitions=%d committed_partitions=%d",
		s.tMs, s.lag, s.end, s.committed, s.partitions, s.committedPartitions)
}

// sampleLag asks for the high watermarks and the group's committed offsets,
// one request each; t_ms is the time the answers were complete.
func sampleLag(ctx context.Context, adm *kadm.Client, topic, group string) (lagSample, error) {
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return lagSample{}, fmt.Errorf("end offsets of %s: %w", topic, err)
	}
	committed, err := adm.FetchOffsetsForTopics(ctx, group, topic)
	if errors.Is(err, kerr.GroupIDNotFound) {
		committed, err = nil, nil // no group yet: nothing committed
	}
	if err != nil {
		return lagSample{}, fmt.Errorf("committed offsets of group %s: %w", group, err)
	}
	s := lagSample{tMs: nowMs()}
	for p, end := range ends[topic] {
		s.partitions++
		s.end += end.Offset
		at := int64(0)
		if c, ok := committed.Lookup(topic, p); ok && c.Err == nil && c.At >= 0 {
			at = c.At
			s.committedPartitions++
		}
		s.committed += at
		if end.Offset > at {
			s.lag += end.Offset - at
		}
	}
	return s, nil
}

func runLag(args []string) error {
	fs := flag.NewFlagSet("lag", flag.ContinueOnError)
	k := addKafkaFlags(fs)
	watch := fs.Bool("watch", false, "poll until the lag is 0 (with --until-end records at least)")
	interval := fs.Duration("interval", 100*time.Millisecond, "time between the starts of two polls")
	untilEnd := fs.Int64("until-end", 0, "with --watch: records the topic must hold before lag 0 ends the watch")
	timeout := fs.Duration("timeout", 30*time.Minute, "with --watch: give up after this long")
	parse(fs, args)
	adm, err := k.admin()
	if err != nil {
		return err
	}
	defer adm.Close()
	if !*watch {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		s, err := sampleLag(ctx, adm, *k.topic, *k.group)
		if err != nil {
			return err
		}
		fmt.Println(s)
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	tick := time.NewTicker(*interval)
	defer tick.Stop()
	for {
		s, err := sampleLag(ctx, adm, *k.topic, *k.group)
		if err != nil {
			// A poll can fail while the group coordinator moves or loads;
			// the next one decides.
			if ctx.Err() != nil {
				return fmt.Errorf("lag not 0 within %v: %w", *timeout, err)
			}
			fmt.Fprintf(os.Stderr, "poll failed: %v\n", err)
		} else {
			fmt.Println(s)
			if s.lag == 0 && s.end >= *untilEnd {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("lag not 0 within %v", *timeout)
		case <-tick.C:
		}
	}
}

// --- the mock -----------------------------------------------------------------

func dialMock(addr string) (*grpc.ClientConn, error) {
	if addr == "" {
		return nil, errors.New("--mock is required")
	}
	return grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20)))
}

func runChanges(args []string) error {
	fs := flag.NewFlagSet("changes", flag.ContinueOnError)
	mock := fs.String("mock", "", "the mock's gRPC address host:port")
	count := fs.Int64("count", 100000, "changes")
	rate := fs.Float64("rate", 0, "changes per second; 0: as fast as the mock goes")
	seed := fs.Int64("seed", 1, "seed of the random changes")
	k := addKafkaFlags(fs)
	parse(fs, args)
	conn, err := dialMock(*mock)
	if err != nil {
		return err
	}
	defer conn.Close()
	var adm *kadm.Client
	if *k.brokers != "" {
		if adm, err = k.admin(); err != nil {
			return err
		}
		defer adm.Close()
		// Connected and the coordinator found before the clock starts.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		_, err = sampleLag(ctx, adm, *k.topic, *k.group)
		cancel()
		if err != nil {
			return err
		}
	}
	client := usermockv1.NewUserMockAdminClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	t0 := time.Now()
	resp, err := client.MakeRandomChanges(ctx, &usermockv1.MakeRandomChangesRequest{
		Count: *count, RatePerSecond: *rate, Seed: *seed,
	})
	t1 := time.Now()
	if err != nil {
		return fmt.Errorf("MakeRandomChanges: %w", err)
	}
	line := fmt.Sprintf("t0_ms=%d t1_ms=%d seconds=%.3f created=%d updated=%d deleted=%d seed=%d",
		t0.UnixMilli(), t1.UnixMilli(), t1.Sub(t0).Seconds(), resp.GetCreated(), resp.GetUpdated(),
		resp.GetDeleted(), resp.GetSeed())
	if adm != nil {
		lctx, lcancel := context.WithTimeout(context.Background(), 30*time.Second)
		s, err := sampleLag(lctx, adm, *k.topic, *k.group)
		lcancel()
		if err != nil {
			return err
		}
		line += " " + s.String()
	}
	fmt.Println(line)
	return nil
}

func runUsers(args []string) error {
	fs := flag.NewFlagSet("users", flag.ContinueOnError)
	mock := fs.String("mock", "", "the mock's gRPC address host:port")
	parse(fs, args)
	conn, err := dialMock(*mock)
	if err != nil {
		return err
	}
	defer conn.Close()
	client := usermockv1.NewUserMockAdminClient(conn)
	out := make([]byte, 0, 1<<20)
	token := ""
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		resp, err := client.ListUsers(ctx, &usermockv1.ListUsersRequest{PageSize: 1000, PageToken: token})
		cancel()
		if err != nil {
			return fmt.Errorf("ListUsers: %w", err)
		}
		for _, u := range resp.GetUsers() {
			var state string
			switch u.GetState() {
			case userservicev1.UserState_USER_STATE_ACTIVE:
				state = "active"
			case userservicev1.UserState_USER_STATE_EXCLUDED:
				state = "excluded"
			default:
				return fmt.Errorf("user %s has state %v", u.GetUserId(), u.GetState())
			}
			out = append(out, u.GetUserId()...)
			out = append(out, ' ')
			out = append(out, state...)
			out = append(out, '\n')
		}
		if token = resp.GetNextPageToken(); token == "" {
			break
		}
	}
	_, err = os.Stdout.Write(out)
	return err
}
