package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	usermockv1 "segments/usermock/gen/usermock/v1"
	userservicev1 "segments/usermock/gen/userservice/v1"
	"segments/usermock/internal/publisher/publishertest"
	"segments/usermock/internal/store"
)

type fixture struct {
	users  userservicev1.UserServiceClient
	admin  usermockv1.UserMockAdminClient
	health healthpb.HealthClient
	store  *store.Store
	pub    *publishertest.Fake
	srv    *Server
}

func newFixture(t *testing.T, pub *publishertest.Fake) *fixture {
	t.Helper()
	st, err := store.Open("", nil)
	if err != nil {
		t.Fatal(err)
	}
	hs := health.NewServer()
	srv := New(st, pub, Options{AckTimeout: 200 * time.Millisecond, Health: hs, Logf: t.Logf})
	g := grpc.NewServer()
	srv.Register(g)
	healthpb.RegisterHealthServer(g, hs)
	lis := bufconn.Listen(1 << 20)
	go g.Serve(lis)
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		g.Stop()
	})
	return &fixture{
		users: userservicev1.NewUserServiceClient(conn), admin: usermockv1.NewUserMockAdminClient(conn),
		health: healthpb.NewHealthClient(conn), store: st, pub: pub, srv: srv,
	}
}

func wantCode(t *testing.T, err error, code codes.Code, what string) {
	t.Helper()
	if status.Code(err) != code {
		t.Errorf("%s: %v, want %v", what, err, code)
	}
}

const (
	upperID = "0B7F9F5E-1234-4ABC-8DEF-0123456789AB"
	lowerID = "0b7f9f5e-1234-4abc-8def-0123456789ab"
	otherID = "11111111-2222-4333-8444-555555555555"
)

var ctx = context.Background()

func TestGetUser(t *testing.T) {
	f := newFixture(t, &publishertest.Fake{})
	if _, err := f.admin.CreateUser(ctx, &usermockv1.CreateUserRequest{UserId: upperID}); err != nil {
		t.Fatal(err)
	}
	for _, asked := range []string{upperID, lowerID, "0b7f9f5e-1234-4ABC-8def-0123456789Ab"} {
		u, err := f.users.GetUser(ctx, &userservicev1.GetUserRequest{UserId: asked})
		if err != nil || u.GetUserId() != lowerID || u.GetState() != userservicev1.UserState_USER_STATE_ACTIVE {
			t.Errorf("GetUser(%s) = %v, %v", asked, u, err)
		}
	}
	_, err := f.users.GetUser(ctx, &userservicev1.GetUserRequest{UserId: otherID})
	wantCode(t, err, codes.NotFound, "unknown user")
	for _, bad := range []string{"", "nope", lowerID + "0", strings.ReplaceAll(lowerID, "-", "")} {
		_, err := f.users.GetUser(ctx, &userservicev1.GetUserRequest{UserId: bad})
		wantCode(t, err, codes.InvalidArgument, fmt.Sprintf("GetUser(%q)", bad))
	}
	if _, err := f.admin.UpdateUser(ctx, &usermockv1.UpdateUserRequest{UserId: lowerID, State: userservicev1.UserState_USER_STATE_EXCLUDED}); err != nil {
		t.Fatal(err)
	}
	if u, err := f.users.GetUser(ctx, &userservicev1.GetUserRequest{UserId: lowerID}); err != nil || u.GetState() != userservicev1.UserState_USER_STATE_EXCLUDED {
		t.Errorf("after UpdateUser: %v, %v", u, err)
	}
}

// The task statement's users are numbers: an integer id is a user of its
// own, never the UUID that ends in the same digits.
func TestIntegerIDs(t *testing.T) {
	f := newFixture(t, &publishertest.Fake{})
	const uuid1000 = "00000000-0000-0000-0000-000000001000"
	for _, id := range []string{"1000", uuid1000, "9223372036854775807"} {
		if _, err := f.admin.CreateUser(ctx, &usermockv1.CreateUserRequest{UserId: id}); err != nil {
			t.Fatalf("CreateUser(%s): %v", id, err)
		}
	}
	_, err := f.admin.CreateUser(ctx, &usermockv1.CreateUserRequest{UserId: "1000"})
	wantCode(t, err, codes.AlreadyExists, "CreateUser(1000) again")
	if _, err := f.admin.UpdateUser(ctx, &usermockv1.UpdateUserRequest{UserId: "1000", State: userservicev1.UserState_USER_STATE_EXCLUDED}); err != nil {
		t.Fatal(err)
	}
	if u, err := f.users.GetUser(ctx, &userservicev1.GetUserRequest{UserId: "1000"}); err != nil || u.GetUserId() != "1000" || u.GetState() != userservicev1.UserState_USER_STATE_EXCLUDED {
		t.Errorf("GetUser(1000) = %v, %v", u, err)
	}
	if u, err := f.users.GetUser(ctx, &userservicev1.GetUserRequest{UserId: uuid1000}); err != nil || u.GetState() != userservicev1.UserState_USER_STATE_ACTIVE {
		t.Errorf("GetUser(%s) = %v, %v", uuid1000, u, err)
	}
	resp, err := f.users.BatchGetUsers(ctx, &userservicev1.BatchGetUsersRequest{UserIds: []string{"1000", "1002", uuid1000}})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]userservicev1.UserState{}
	for _, u := range resp.GetUsers() {
		got[u.GetUserId()] = u.GetState()
	}
	if len(got) != 2 || got["1000"] != userservicev1.UserState_USER_STATE_EXCLUDED || got[uuid1000] != userservicev1.UserState_USER_STATE_ACTIVE ||
		!slices.Equal(resp.GetMissingUserIds(), []string{"1002"}) {
		t.Errorf("BatchGetUsers: users %v, missing %v", resp.GetUsers(), resp.GetMissingUserIds())
	}
	for _, bad := range []string{"01000", "+1000", "-1", "1.0", "1e3", " 1000", "9223372036854775808"} {
		_, err := f.users.GetUser(ctx, &userservicev1.GetUserRequest{UserId: bad})
		wantCode(t, err, codes.InvalidArgument, fmt.Sprintf("GetUser(%q)", bad))
		if err != nil && !strings.Contains(status.Convert(err).Message(), "must be a UUID or a decimal integer 0..9223372036854775807") {
			t.Errorf("GetUser(%q): message %q", bad, status.Convert(err).Message())
		}
		_, err = f.admin.CreateUser(ctx, &usermockv1.CreateUserRequest{UserId: bad})
		wantCode(t, err, codes.InvalidArgument, fmt.Sprintf("CreateUser(%q)", bad))
	}
	if got, want := f.pub.Published(), []string{"1000", uuid1000, "9223372036854775807", "1000"}; !slices.Equal(got, want) {
		t.Errorf("published %v, want %v", got, want)
	}
}

func TestBatchGetUsers(t *testing.T) {
	f := newFixture(t, &publishertest.Fake{})
	for _, id := range []string{lowerID, otherID} {
		if _, err := f.admin.CreateUser(ctx, &usermockv1.CreateUserRequest{UserId: id}); err != nil {
			t.Fatal(err)
		}
	}
	f.admin.UpdateUser(ctx, &usermockv1.UpdateUserRequest{UserId: otherID, State: userservicev1.UserState_USER_STATE_EXCLUDED})
	missingUpper := "AAAAAAAA-0000-4000-8000-000000000000"
	resp, err := f.users.BatchGetUsers(ctx, &userservicev1.BatchGetUsersRequest{
		UserIds: []string{upperID, missingUpper, otherID, lowerID, missingUpper},
	})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]userservicev1.UserState{}
	for _, u := range resp.GetUsers() {
		got[u.GetUserId()] = u.GetState()
	}
	if len(resp.GetUsers()) != 2 || got[lowerID] != userservicev1.UserState_USER_STATE_ACTIVE || got[otherID] != userservicev1.UserState_USER_STATE_EXCLUDED {
		t.Errorf("users %v", resp.GetUsers())
	}
	if !slices.Equal(resp.GetMissingUserIds(), []string{missingUpper}) {
		t.Errorf("missing %v, want the id as asked, once", resp.GetMissingUserIds())
	}

	// Empty is fine; 1000 is the limit; a bad id names its index.
	if resp, err := f.users.BatchGetUsers(ctx, &userservicev1.BatchGetUsersRequest{}); err != nil || len(resp.GetUsers())+len(resp.GetMissingUserIds()) != 0 {
		t.Errorf("empty batch: %v, %v", resp, err)
	}
	ids := make([]string, 1000)
	for i := range ids {
		ids[i] = fmt.Sprintf("00000000-0000-4000-8000-%012d", i)
	}
	if resp, err := f.users.BatchGetUsers(ctx, &userservicev1.BatchGetUsersRequest{UserIds: ids}); err != nil || len(resp.GetMissingUserIds()) != 1000 {
		t.Errorf("1000 ids: %v missing, %v", len(resp.GetMissingUserIds()), err)
	}
	_, err = f.users.BatchGetUsers(ctx, &userservicev1.BatchGetUsersRequest{UserIds: append(ids, lowerID)})
	wantCode(t, err, codes.InvalidArgument, "1001 ids")
	_, err = f.users.BatchGetUsers(ctx, &userservicev1.BatchGetUsersRequest{UserIds: []string{lowerID, "x"}})
	wantCode(t, err, codes.InvalidArgument, "bad id")
	if !strings.Contains(status.Convert(err).Message(), "userIDs[1]") {
		t.Errorf("message %q does not name userIDs[1]", status.Convert(err).Message())
	}
}

func TestOutage(t *testing.T) {
	f := newFixture(t, &publishertest.Fake{})
	if _, err := f.admin.CreateUser(ctx, &usermockv1.CreateUserRequest{UserId: lowerID}); err != nil {
		t.Fatal(err)
	}
	healthOf := func() healthpb.HealthCheckResponse_ServingStatus {
		r, err := f.health.Check(ctx, &healthpb.HealthCheckRequest{Service: "userservice.v1.UserService"})
		if err != nil {
			t.Fatal(err)
		}
		return r.GetStatus()
	}
	if healthOf() != healthpb.HealthCheckResponse_SERVING {
		t.Fatal("not SERVING before the outage")
	}
	if _, err := f.admin.SetOutage(ctx, &usermockv1.SetOutageRequest{Down: true}); err != nil {
		t.Fatal(err)
	}
	_, err := f.users.GetUser(ctx, &userservicev1.GetUserRequest{UserId: lowerID})
	wantCode(t, err, codes.Unavailable, "GetUser in an outage")
	_, err = f.users.GetUser(ctx, &userservicev1.GetUserRequest{UserId: "bad"})
	wantCode(t, err, codes.Unavailable, "GetUser of a bad id in an outage")
	_, err = f.users.BatchGetUsers(ctx, &userservicev1.BatchGetUsersRequest{UserIds: []string{lowerID}})
	wantCode(t, err, codes.Unavailable, "BatchGetUsers in an outage")
	if healthOf() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Error("health not NOT_SERVING during the outage")
	}
	// The admin service still works.
	if _, err := f.admin.UpdateUser(ctx, &usermockv1.UpdateUserRequest{UserId: lowerID, State: userservicev1.UserState_USER_STATE_EXCLUDED}); err != nil {
		t.Fatalf("UpdateUser in an outage: %v", err)
	}
	if r, err := f.admin.ListUsers(ctx, &usermockv1.ListUsersRequest{}); err != nil || len(r.GetUsers()) != 1 {
		t.Fatalf("ListUsers in an outage: %v %v", r, err)
	}

	if _, err := f.admin.SetOutage(ctx, &usermockv1.SetOutageRequest{Down: false}); err != nil {
		t.Fatal(err)
	}
	if u, err := f.users.GetUser(ctx, &userservicev1.GetUserRequest{UserId: lowerID}); err != nil || u.GetState() != userservicev1.UserState_USER_STATE_EXCLUDED {
		t.Fatalf("after the outage: %v %v", u, err)
	}
	if healthOf() != healthpb.HealthCheckResponse_SERVING {
		t.Error("health not SERVING after the outage")
	}
}

func TestAdminChangesPublishOneEventEach(t *testing.T) {
	f := newFixture(t, &publishertest.Fake{})
	u, err := f.admin.CreateUser(ctx, &usermockv1.CreateUserRequest{})
	if err != nil {
		t.Fatal(err)
	}
	random := u.GetUserId()
	if _, ok := f.store.Get(random); !ok || len(random) != 36 || strings.ToLower(random) != random {
		t.Fatalf("CreateUser with no id made %q", random)
	}
	steps := []func() error{
		func() error {
			_, err := f.admin.CreateUser(ctx, &usermockv1.CreateUserRequest{UserId: upperID})
			return err
		},
		func() error {
			_, err := f.admin.UpdateUser(ctx, &usermockv1.UpdateUserRequest{UserId: upperID, State: userservicev1.UserState_USER_STATE_EXCLUDED})
			return err
		},
		func() error { // the same state again still publishes
			_, err := f.admin.UpdateUser(ctx, &usermockv1.UpdateUserRequest{UserId: lowerID, State: userservicev1.UserState_USER_STATE_EXCLUDED})
			return err
		},
		func() error {
			_, err := f.admin.DeleteUser(ctx, &usermockv1.DeleteUserRequest{UserId: upperID})
			return err
		},
	}
	for i, step := range steps {
		if err := step(); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}
	if got, want := f.pub.Published(), []string{random, lowerID, lowerID, lowerID, lowerID}; !slices.Equal(got, want) {
		t.Fatalf("published %v, want %v", got, want)
	}
	// Failed changes publish nothing.
	before := len(f.pub.Published())
	_, err = f.admin.CreateUser(ctx, &usermockv1.CreateUserRequest{UserId: random})
	wantCode(t, err, codes.AlreadyExists, "CreateUser of an existing user")
	_, err = f.admin.UpdateUser(ctx, &usermockv1.UpdateUserRequest{UserId: lowerID, State: userservicev1.UserState_USER_STATE_ACTIVE})
	wantCode(t, err, codes.NotFound, "UpdateUser of a deleted user")
	_, err = f.admin.DeleteUser(ctx, &usermockv1.DeleteUserRequest{UserId: lowerID})
	wantCode(t, err, codes.NotFound, "DeleteUser of a deleted user")
	if n := len(f.pub.Published()); n != before {
		t.Fatalf("failed changes published %d events", n-before)
	}
}

func TestAdminValidation(t *testing.T) {
	f := newFixture(t, &publishertest.Fake{})
	f.admin.CreateUser(ctx, &usermockv1.CreateUserRequest{UserId: lowerID})
	for name, call := range map[string]func() error{
		"CreateUser bad id": func() error {
			_, err := f.admin.CreateUser(ctx, &usermockv1.CreateUserRequest{UserId: "not-a-uuid"})
			return err
		},
		"UpdateUser bad id": func() error {
			_, err := f.admin.UpdateUser(ctx, &usermockv1.UpdateUserRequest{UserId: "x", State: userservicev1.UserState_USER_STATE_ACTIVE})
			return err
		},
		"UpdateUser no state": func() error {
			_, err := f.admin.UpdateUser(ctx, &usermockv1.UpdateUserRequest{UserId: lowerID})
			return err
		},
		"UpdateUser unknown state": func() error {
			_, err := f.admin.UpdateUser(ctx, &usermockv1.UpdateUserRequest{UserId: lowerID, State: 7})
			return err
		},
		"DeleteUser empty id": func() error {
			_, err := f.admin.DeleteUser(ctx, &usermockv1.DeleteUserRequest{})
			return err
		},
		"ListUsers negative size": func() error {
			_, err := f.admin.ListUsers(ctx, &usermockv1.ListUsersRequest{PageSize: -1})
			return err
		},
		"ListUsers size 1001": func() error {
			_, err := f.admin.ListUsers(ctx, &usermockv1.ListUsersRequest{PageSize: 1001})
			return err
		},
		"ListUsers bad token": func() error {
			_, err := f.admin.ListUsers(ctx, &usermockv1.ListUsersRequest{PageToken: "garbage"})
			return err
		},
		"ListUsers uppercase token": func() error {
			_, err := f.admin.ListUsers(ctx, &usermockv1.ListUsersRequest{PageToken: upperID})
			return err
		},
		"MakeRandomChanges count 0": func() error {
			_, err := f.admin.MakeRandomChanges(ctx, &usermockv1.MakeRandomChangesRequest{})
			return err
		},
		"MakeRandomChanges count too big": func() error {
			_, err := f.admin.MakeRandomChanges(ctx, &usermockv1.MakeRandomChangesRequest{Count: MaxRandomChangesCount + 1})
			return err
		},
		"MakeRandomChanges negative rate": func() error {
			_, err := f.admin.MakeRandomChanges(ctx, &usermockv1.MakeRandomChangesRequest{Count: 1, RatePerSecond: -1})
			return err
		},
	} {
		wantCode(t, call(), codes.InvalidArgument, name)
	}
	if n := len(f.pub.Published()); n != 1 {
		t.Fatalf("invalid calls published events: %d in all", n)
	}
	if f.store.Len() != 1 {
		t.Fatalf("invalid calls changed the store: %d users", f.store.Len())
	}
}

func TestListUsersPages(t *testing.T) {
	f := newFixture(t, &publishertest.Fake{})
	if _, err := f.admin.MakeRandomChanges(ctx, &usermockv1.MakeRandomChangesRequest{Count: 500, Seed: 3}); err != nil {
		t.Fatal(err)
	}
	var listed []string
	token := ""
	for pages := 0; ; pages++ {
		r, err := f.admin.ListUsers(ctx, &usermockv1.ListUsersRequest{PageSize: 7, PageToken: token})
		if err != nil {
			t.Fatal(err)
		}
		if r.GetNextPageToken() != "" && len(r.GetUsers()) != 7 {
			t.Fatalf("a page that is not the last has %d users", len(r.GetUsers()))
		}
		for _, u := range r.GetUsers() {
			listed = append(listed, u.GetUserId())
		}
		if token = r.GetNextPageToken(); token == "" {
			break
		}
	}
	var want []string
	for _, u := range f.store.List("", 1<<30) {
		want = append(want, u.ID)
	}
	if len(want) == 0 || !slices.Equal(listed, want) {
		t.Fatalf("listed %d users, the store has %d (or not in id order)", len(listed), len(want))
	}
	// Default page size.
	if r, _ := f.admin.ListUsers(ctx, &usermockv1.ListUsersRequest{}); len(want) > 100 && len(r.GetUsers()) != 100 {
		t.Fatalf("default page has %d users", len(r.GetUsers()))
	}
}

func TestMakeRandomChanges(t *testing.T) {
	f := newFixture(t, &publishertest.Fake{})
	r, err := f.admin.MakeRandomChanges(ctx, &usermockv1.MakeRandomChangesRequest{Count: 1000, Seed: 99})
	if err != nil {
		t.Fatal(err)
	}
	if r.GetCreated()+r.GetUpdated()+r.GetDeleted() != 1000 || r.GetSeed() != 99 {
		t.Fatalf("response %v", r)
	}
	if n := len(f.pub.Published()); n != 1000 {
		t.Fatalf("published %d events, want 1000", n)
	}
	if int64(f.store.Len()) != r.GetCreated()-r.GetDeleted() {
		t.Fatalf("store has %d users after %v", f.store.Len(), r)
	}
	// Seed 0: one from the clock, returned.
	r, err = f.admin.MakeRandomChanges(ctx, &usermockv1.MakeRandomChangesRequest{Count: 10})
	if err != nil || r.GetSeed() == 0 {
		t.Fatalf("seed 0: %v %v", r, err)
	}
}

func TestUnacknowledgedChangeIsKept(t *testing.T) {
	f := newFixture(t, &publishertest.Fake{Hold: true})
	start := time.Now()
	_, err := f.admin.CreateUser(ctx, &usermockv1.CreateUserRequest{UserId: lowerID})
	wantCode(t, err, codes.Unavailable, "CreateUser without an ack")
	if d := time.Since(start); d < 200*time.Millisecond || d > 5*time.Second {
		t.Errorf("answered after %v, want the ack timeout (200ms)", d)
	}
	if _, ok := f.store.Get(lowerID); !ok {
		t.Fatal("the change was not kept")
	}
	_, err = f.admin.MakeRandomChanges(ctx, &usermockv1.MakeRandomChangesRequest{Count: 100000, Seed: 1})
	wantCode(t, err, codes.Unavailable, "MakeRandomChanges without acks")

	f2 := newFixture(t, &publishertest.Fake{AckErr: errors.New("topic gone")})
	_, err = f2.admin.DeleteUser(ctx, &usermockv1.DeleteUserRequest{UserId: lowerID})
	wantCode(t, err, codes.NotFound, "DeleteUser of an unknown user")
	_, err = f2.admin.CreateUser(ctx, &usermockv1.CreateUserRequest{UserId: lowerID})
	wantCode(t, err, codes.Unavailable, "CreateUser with a failed event")
	if !strings.Contains(status.Convert(err).Message(), "topic gone") {
		t.Errorf("message %q hides the cause", status.Convert(err).Message())
	}
}

func TestStopRandomChanges(t *testing.T) {
	f := newFixture(t, &publishertest.Fake{})
	done := make(chan error, 1)
	go func() {
		_, err := f.admin.MakeRandomChanges(ctx, &usermockv1.MakeRandomChangesRequest{Count: 1000, RatePerSecond: 100, Seed: 1})
		done <- err
	}()
	// Stopped while it runs: once it has made a change (not after a fixed
	// sleep: on a slow machine the call may not have started by then, and a
	// call after the stop fails with the same code).
	for deadline := time.Now().Add(10 * time.Second); len(f.pub.Published()) == 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("MakeRandomChanges made no change within 10 s")
		}
	}
	f.srv.StopRandomChanges()
	select {
	case err := <-done:
		wantCode(t, err, codes.Unavailable, "MakeRandomChanges stopped by a shutdown")
	case <-time.After(5 * time.Second):
		t.Fatal("MakeRandomChanges did not stop")
	}
	_, err := f.admin.MakeRandomChanges(ctx, &usermockv1.MakeRandomChangesRequest{Count: 1})
	wantCode(t, err, codes.Unavailable, "MakeRandomChanges after a shutdown began")
}
