package app

// Integration tests: the whole mock in-process, against the real Kafka broker
// in SEGMENTS_TEST_KAFKA_BROKERS, each test on a topic of its own.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	usermockv1 "segments/usermock/gen/usermock/v1"
	userservicev1 "segments/usermock/gen/userservice/v1"
	"segments/usermock/internal/kafkatest"
	"segments/usermock/internal/publisher"
	"segments/usermock/internal/userid"
)

type running struct {
	app   *App
	admin usermockv1.UserMockAdminClient
	users userservicev1.UserServiceClient
}

func start(t *testing.T, opts Options) *running {
	t.Helper()
	if opts.GRPCListen == "" {
		opts.GRPCListen = "127.0.0.1:0"
	}
	if opts.Logger == nil {
		opts.Logger = log.New(testWriter{t}, "usermock: ", 0)
	}
	a, err := Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(a.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		a.Shutdown()
	})
	return &running{app: a, admin: usermockv1.NewUserMockAdminClient(conn), users: userservicev1.NewUserServiceClient(conn)}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Logf("%s", p)
	return len(p), nil
}

var _ io.Writer = testWriter{}

func seqOf(t *testing.T, r *kgo.Record) int64 {
	t.Helper()
	for _, h := range r.Headers {
		if h.Key == publisher.SeqHeader {
			n, err := strconv.ParseInt(string(h.Value), 10, 64)
			if err != nil {
				t.Fatalf("bad %s header %q", publisher.SeqHeader, h.Value)
			}
			return n
		}
	}
	t.Fatalf("record without a %s header", publisher.SeqHeader)
	return 0
}

// checkRecords checks the key and value of every record, that each event
// number 1..len(records) is there exactly once, and that each user's events
// are in partition order as they were published (increasing numbers). It
// returns the user ids by event number (index 0: event 1).
func checkRecords(t *testing.T, records []*kgo.Record) []string {
	t.Helper()
	byKey := map[string]struct {
		partition int32
		lastSeq   int64
	}{}
	bySeq := make([]string, len(records))
	for _, r := range records {
		key := string(r.Key)
		if want := `{"userID":"` + key + `"}`; string(r.Value) != want {
			t.Fatalf("record value %q, want %q", r.Value, want)
		}
		if canonical, ok := userid.Parse(key); !ok || canonical != key {
			t.Fatalf("record key %q is not a canonical user id", key)
		}
		seq := seqOf(t, r)
		if seq < 1 || seq > int64(len(records)) || bySeq[seq-1] != "" {
			t.Fatalf("event number %d: out of 1..%d or seen twice", seq, len(records))
		}
		bySeq[seq-1] = key
		prev, seen := byKey[key]
		if seen && prev.partition != r.Partition {
			t.Fatalf("user %s: events in partitions %d and %d", key, prev.partition, r.Partition)
		}
		if seen && seq <= prev.lastSeq {
			t.Fatalf("user %s: event %d arrived after event %d", key, seq, prev.lastSeq)
		}
		byKey[key] = struct {
			partition int32
			lastSeq   int64
		}{r.Partition, seq}
	}
	return bySeq
}

func lowercase(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

func TestAdminChangesProduceOneEventEach(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	topic := kafkatest.NewTopic(t, brokers, 6)
	m := start(t, Options{Brokers: brokers, Topic: topic})
	ctx := context.Background()

	const upperA = "A0000000-0000-4000-8000-0000000000AA"
	a := lowercase(upperA)
	var want []string // the user of each change, in order
	must := func(id string, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, id)
	}
	u, err := m.admin.CreateUser(ctx, &usermockv1.CreateUserRequest{UserId: upperA})
	must(a, err)
	if u.GetUserId() != a {
		t.Fatalf("CreateUser answered %q", u.GetUserId())
	}
	u, err = m.admin.CreateUser(ctx, &usermockv1.CreateUserRequest{})
	b := u.GetUserId()
	must(b, err)
	excluded := userservicev1.UserState_USER_STATE_EXCLUDED
	_, err = m.admin.UpdateUser(ctx, &usermockv1.UpdateUserRequest{UserId: upperA, State: excluded})
	must(a, err)
	_, err = m.admin.UpdateUser(ctx, &usermockv1.UpdateUserRequest{UserId: a, State: excluded})
	must(a, err)
	_, err = m.admin.UpdateUser(ctx, &usermockv1.UpdateUserRequest{UserId: b, State: excluded})
	must(b, err)
	_, err = m.admin.DeleteUser(ctx, &usermockv1.DeleteUserRequest{UserId: a})
	must(a, err)
	_, err = m.admin.CreateUser(ctx, &usermockv1.CreateUserRequest{UserId: a})
	must(a, err)
	_, err = m.admin.DeleteUser(ctx, &usermockv1.DeleteUserRequest{UserId: b})
	must(b, err)
	// Failed changes produce nothing.
	if _, err := m.admin.DeleteUser(ctx, &usermockv1.DeleteUserRequest{UserId: b}); status.Code(err) != codes.NotFound {
		t.Fatalf("second delete: %v", err)
	}
	if _, err := m.admin.CreateUser(ctx, &usermockv1.CreateUserRequest{UserId: a}); status.Code(err) != codes.AlreadyExists {
		t.Fatalf("second create: %v", err)
	}

	records := kafkatest.Consume(t, brokers, topic, len(want), 30*time.Second, 2*time.Second)
	if len(records) != len(want) {
		t.Fatalf("%d records for %d changes", len(records), len(want))
	}
	// Each admin call returned after its ack, so event i is change i.
	if got := checkRecords(t, records); !slices.Equal(got, want) {
		t.Fatalf("events by number %v, want %v", got, want)
	}
}

func TestEventsOfOneUserArriveInOrder(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	topic := kafkatest.NewTopic(t, brokers, 6)
	m := start(t, Options{Brokers: brokers, Topic: topic})
	ctx := context.Background()

	// Random changes and admin changes of a few users, all at once.
	var wg sync.WaitGroup
	var randomResp *usermockv1.MakeRandomChangesResponse
	var randomErr error
	wg.Go(func() {
		randomResp, randomErr = m.admin.MakeRandomChanges(ctx, &usermockv1.MakeRandomChangesRequest{Count: 20000, Seed: 11})
	})
	var mu sync.Mutex
	adminChanges := 0
	for w := range 4 {
		wg.Go(func() {
			id := fmt.Sprintf("b0000000-0000-4000-8000-%012d", w)
			state := userservicev1.UserState_USER_STATE_EXCLUDED
			ok := 0
			for i := range 30 {
				var err error
				switch {
				case i%10 == 0:
					_, err = m.admin.CreateUser(ctx, &usermockv1.CreateUserRequest{UserId: id})
				case i%10 == 9:
					_, err = m.admin.DeleteUser(ctx, &usermockv1.DeleteUserRequest{UserId: id})
				default:
					_, err = m.admin.UpdateUser(ctx, &usermockv1.UpdateUserRequest{UserId: id, State: state})
					state = 3 - state // flip
				}
				switch status.Code(err) {
				case codes.OK:
					ok++
				case codes.NotFound, codes.AlreadyExists: // random changes may delete our user
				default:
					t.Errorf("admin change: %v", err)
				}
			}
			mu.Lock()
			adminChanges += ok
			mu.Unlock()
		})
	}
	wg.Wait()
	if randomErr != nil {
		t.Fatal(randomErr)
	}
	if adminChanges < 40 {
		t.Fatalf("only %d admin changes succeeded", adminChanges)
	}
	total := int(randomResp.GetCreated()+randomResp.GetUpdated()+randomResp.GetDeleted()) + adminChanges
	records := kafkatest.Consume(t, brokers, topic, total, 60*time.Second, 2*time.Second)
	if len(records) != total {
		t.Fatalf("%d records for %d changes", len(records), total)
	}
	checkRecords(t, records)
}

func TestMakeRandomChangesProducesNEvents(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	topic := kafkatest.NewTopic(t, brokers, 6)
	m := start(t, Options{Brokers: brokers, Topic: topic, StorePath: filepath.Join(t.TempDir(), "users.log")})
	ctx := context.Background()

	const n = 100000
	began := time.Now()
	resp, err := m.admin.MakeRandomChanges(ctx, &usermockv1.MakeRandomChangesRequest{Count: n, Seed: 2024})
	took := time.Since(began)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("MakeRandomChanges: %d changes, all acknowledged, in %v: %.0f changes/s", n, took, n/took.Seconds())
	if got := resp.GetCreated() + resp.GetUpdated() + resp.GetDeleted(); got != n {
		t.Fatalf("response counts %d changes, want %d", got, n)
	}
	if int64(m.app.Store().Len()) != resp.GetCreated()-resp.GetDeleted() {
		t.Fatalf("store has %d users after %v", m.app.Store().Len(), resp)
	}
	records := kafkatest.Consume(t, brokers, topic, n, 60*time.Second, 2*time.Second)
	if len(records) != n {
		t.Fatalf("%d records for %d changes", len(records), n)
	}
	// Random users are of both kinds, so consumers see both.
	integers := 0
	for _, key := range checkRecords(t, records) {
		if len(key) != 36 {
			integers++
		}
	}
	if integers < n/10 || integers > n/2 {
		t.Errorf("%d of %d events name integer ids, want about a quarter", integers, n)
	}
	// A loose floor: far below what it does (see the log line), far above
	// what waiting for each ack in turn would give.
	if rate := n / took.Seconds(); rate < 5000 {
		t.Errorf("%.0f changes/s", rate)
	}
}

func TestSameSeedSameEvents(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	var runs [2][]string
	for i := range runs {
		topic := kafkatest.NewTopic(t, brokers, 3)
		m := start(t, Options{Brokers: brokers, Topic: topic})
		if _, err := m.admin.MakeRandomChanges(context.Background(), &usermockv1.MakeRandomChangesRequest{Count: 3000, Seed: 77}); err != nil {
			t.Fatal(err)
		}
		runs[i] = checkRecords(t, kafkatest.Consume(t, brokers, topic, 3000, 30*time.Second, time.Second))
	}
	if !slices.Equal(runs[0], runs[1]) {
		t.Fatal("the same seed on two empty stores produced different events")
	}
}

func TestBackgroundRandomChanges(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	topic := kafkatest.NewTopic(t, brokers, 3)
	m := start(t, Options{Brokers: brokers, Topic: topic, RandomRate: 200, RandomSeed: 5})
	time.Sleep(time.Second)
	if err := m.app.Shutdown(); err != nil {
		t.Fatal(err)
	}
	made := m.app.Store().Len()
	records := kafkatest.Consume(t, brokers, topic, 100, 30*time.Second, time.Second)
	// About 200 in a second; every change made was flushed before Shutdown
	// returned, so the records are exactly the changes.
	if len(records) < 100 || len(records) > 400 {
		t.Fatalf("%d events in about a second at 200/s", len(records))
	}
	checkRecords(t, records)
	if made == 0 {
		t.Fatal("no users made")
	}
}

func TestDataSurvivesRestart(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	topic := kafkatest.NewTopic(t, brokers, 1)
	path := filepath.Join(t.TempDir(), "users.log")
	ctx := context.Background()

	m := start(t, Options{Brokers: brokers, Topic: topic, StorePath: path})
	r, err := m.admin.MakeRandomChanges(ctx, &usermockv1.MakeRandomChangesRequest{Count: 500, Seed: 8})
	if err != nil {
		t.Fatal(err)
	}
	const id = "c0000000-0000-4000-8000-000000000001"
	if _, err := m.admin.CreateUser(ctx, &usermockv1.CreateUserRequest{UserId: id}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.admin.UpdateUser(ctx, &usermockv1.UpdateUserRequest{UserId: id, State: userservicev1.UserState_USER_STATE_EXCLUDED}); err != nil {
		t.Fatal(err)
	}
	before := m.app.Store().List("", 1<<30)
	if int64(len(before)) != r.GetCreated()-r.GetDeleted()+1 {
		t.Fatalf("%d users before the restart", len(before))
	}
	if err := m.app.Shutdown(); err != nil {
		t.Fatal(err)
	}

	m2 := start(t, Options{Brokers: brokers, Topic: topic, StorePath: path})
	if after := m2.app.Store().List("", 1<<30); !slices.Equal(after, before) {
		t.Fatalf("%d users after the restart, %d before (or different)", len(after), len(before))
	}
	u, err := m2.users.GetUser(ctx, &userservicev1.GetUserRequest{UserId: id})
	if err != nil || u.GetState() != userservicev1.UserState_USER_STATE_EXCLUDED {
		t.Fatalf("GetUser after the restart: %v %v", u, err)
	}
}

// No broker needed: a broker that is down.
func TestBrokerDown(t *testing.T) {
	m := start(t, Options{
		Brokers: []string{"127.0.0.1:1"}, Topic: "UserAction",
		AckTimeout: 500 * time.Millisecond, ShutdownTimeout: 500 * time.Millisecond,
	})
	ctx := context.Background()
	const id = "d0000000-0000-4000-8000-000000000001"
	_, err := m.admin.CreateUser(ctx, &usermockv1.CreateUserRequest{UserId: id})
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("CreateUser with the broker down: %v, want UNAVAILABLE", err)
	}
	if u, err := m.users.GetUser(ctx, &userservicev1.GetUserRequest{UserId: id}); err != nil || u.GetUserId() != id {
		t.Fatalf("the change was not kept: %v %v", u, err)
	}
	began := time.Now()
	err = m.app.Shutdown()
	if !errors.Is(err, ErrUndelivered) {
		t.Fatalf("Shutdown: %v, want ErrUndelivered", err)
	}
	if d := time.Since(began); d > 5*time.Second {
		t.Fatalf("Shutdown took %v", d)
	}
}
