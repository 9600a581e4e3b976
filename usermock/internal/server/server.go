// Package server implements the mock's two gRPC services on one store and
// publisher: UserService (what the segments service reads) and UserMockAdmin
// (what tests and operators drive).
package server

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	usermockv1 "segments/usermock/gen/usermock/v1"
	userservicev1 "segments/usermock/gen/userservice/v1"
	"segments/usermock/internal/randomchanges"
	"segments/usermock/internal/store"
	"segments/usermock/internal/userid"
)

// Limits of the API.
const (
	MaxBatchGetUsers       = 1000
	DefaultListPageSize    = 100
	MaxListPageSize        = 1000
	MaxRandomChangesCount  = 10_000_000
	DefaultAckTimeout      = 10 * time.Second
	randomChangesWindow    = 20000
	userServiceHealthName  = "userservice.v1.UserService"
	adminServiceHealthName = "usermock.v1.UserMockAdmin"
)

// HealthSetter is the part of grpc/health's server the mock uses: the
// UserService reports NOT_SERVING during an outage.
type HealthSetter interface {
	SetServingStatus(service string, status healthpb.HealthCheckResponse_ServingStatus)
}

// Options of New.
type Options struct {
	// AckTimeout bounds how long an admin change waits for its event's ack
	// (default 10 s); past it the call fails with UNAVAILABLE, the change
	// stays, and the event is still delivered when the broker is back.
	AckTimeout time.Duration
	// Health, if set, follows the outage switch.
	Health HealthSetter
	// Logf, if set, logs notable events.
	Logf func(format string, args ...any)
}

// Server holds the state the two services share.
type Server struct {
	store *store.Store
	pub   randomchanges.Publisher
	opts  Options

	outageMu sync.Mutex // orders SetOutage calls and their health updates
	outage   atomic.Bool

	// Cancelled by StopRandomChanges: running MakeRandomChanges calls end.
	life     context.Context
	stopLife context.CancelFunc
}

// New makes a server over st, publishing every change with pub.
func New(st *store.Store, pub randomchanges.Publisher, opts Options) *Server {
	if opts.AckTimeout <= 0 {
		opts.AckTimeout = DefaultAckTimeout
	}
	s := &Server{store: st, pub: pub, opts: opts}
	s.life, s.stopLife = context.WithCancel(context.Background())
	s.setHealth()
	return s
}

// StopRandomChanges ends running MakeRandomChanges calls (they answer
// UNAVAILABLE) and makes new ones fail, for a shutdown.
func (s *Server) StopRandomChanges() { s.stopLife() }

// Register adds both services to g.
func (s *Server) Register(g grpc.ServiceRegistrar) {
	userservicev1.RegisterUserServiceServer(g, &userService{s: s})
	usermockv1.RegisterUserMockAdminServer(g, &adminService{s: s})
}

func (s *Server) setHealth() {
	if s.opts.Health == nil {
		return
	}
	st := healthpb.HealthCheckResponse_SERVING
	if s.outage.Load() {
		st = healthpb.HealthCheckResponse_NOT_SERVING
	}
	s.opts.Health.SetServingStatus(userServiceHealthName, st)
	s.opts.Health.SetServingStatus(adminServiceHealthName, healthpb.HealthCheckResponse_SERVING)
}

func (s *Server) logf(format string, args ...any) {
	if s.opts.Logf != nil {
		s.opts.Logf(format, args...)
	}
}

func toProto(u store.User) *userservicev1.User {
	st := userservicev1.UserState_USER_STATE_ACTIVE
	if u.State == store.Excluded {
		st = userservicev1.UserState_USER_STATE_EXCLUDED
	}
	return &userservicev1.User{UserId: u.ID, State: st}
}

func parseID(field, id string) (string, error) {
	canonical, ok := userid.Parse(id)
	if !ok {
		return "", status.Errorf(codes.InvalidArgument, "%s: must be a UUID or a decimal integer 0..9223372036854775807, got %q", field, id)
	}
	return canonical, nil
}

// --- UserService ------------------------------------------------------------

type userService struct {
	userservicev1.UnimplementedUserServiceServer
	s *Server
}

func (u *userService) checkUp() error {
	if u.s.outage.Load() {
		return status.Error(codes.Unavailable, "the user service is down (mock outage)")
	}
	return nil
}

func (u *userService) GetUser(_ context.Context, req *userservicev1.GetUserRequest) (*userservicev1.User, error) {
	if err := u.checkUp(); err != nil {
		return nil, err
	}
	id, err := parseID("userID", req.GetUserId())
	if err != nil {
		return nil, err
	}
	user, ok := u.s.store.Get(id)
	if !ok {
		return nil, status.Errorf(codes.NotFound, "user %s not found", id)
	}
	return toProto(user), nil
}

func (u *userService) BatchGetUsers(_ context.Context, req *userservicev1.BatchGetUsersRequest) (*userservicev1.BatchGetUsersResponse, error) {
	if err := u.checkUp(); err != nil {
		return nil, err
	}
	asked := req.GetUserIds()
	if len(asked) > MaxBatchGetUsers {
		return nil, status.Errorf(codes.InvalidArgument, "userIDs: at most %d ids, got %d", MaxBatchGetUsers, len(asked))
	}
	ids := make([]string, len(asked))
	for i, a := range asked {
		id, err := parseID(fmt.Sprintf("userIDs[%d]", i), a)
		if err != nil {
			return nil, err
		}
		ids[i] = id
	}
	// Each user once, each missing id once as it was asked for.
	resp := &userservicev1.BatchGetUsersResponse{}
	seen := make(map[string]bool, len(ids))
	for i, id := range ids {
		if user, ok := u.s.store.Get(id); ok {
			if !seen[id] {
				resp.Users = append(resp.Users, toProto(user))
			}
			seen[id] = true
		} else if !seen[asked[i]] {
			resp.MissingUserIds = append(resp.MissingUserIds, asked[i])
			seen[asked[i]] = true
		}
	}
	return resp, nil
}

// --- UserMockAdmin ------------------------------------------------------------

type adminService struct {
	usermockv1.UnimplementedUserMockAdminServer
	s *Server
}

// change applies one change and publishes its event inside one store
// update, then waits for the broker's ack (bounded by AckTimeout).
func (a *adminService) change(ctx context.Context, apply func(tx *store.Tx) (store.User, error)) (store.User, error) {
	acked := make(chan error, 1)
	var user store.User
	err := a.s.store.Update(func(tx *store.Tx) error {
		var err error
		if user, err = apply(tx); err != nil {
			return err
		}
		a.s.pub.Publish(user.ID, func(err error) { acked <- err })
		return nil
	})
	switch {
	case errors.Is(err, store.ErrExists):
		return user, status.Error(codes.AlreadyExists, "user already exists")
	case errors.Is(err, store.ErrNotFound):
		return user, status.Error(codes.NotFound, "user not found")
	case err != nil:
		return user, status.Error(codes.Internal, err.Error())
	}
	t := time.NewTimer(a.s.opts.AckTimeout)
	defer t.Stop()
	select {
	case err := <-acked:
		if err != nil {
			a.s.logf("event for user %s failed: %v", user.ID, err)
			return user, status.Errorf(codes.Unavailable, "the change to user %s is kept, but its event failed: %v", user.ID, err)
		}
		return user, nil
	case <-t.C:
		a.s.logf("event for user %s not acknowledged within %v", user.ID, a.s.opts.AckTimeout)
		return user, status.Errorf(codes.Unavailable, "the change to user %s is kept, but the broker did not acknowledge its event within %v; it stays queued until the broker is back", user.ID, a.s.opts.AckTimeout)
	case <-ctx.Done():
		return user, status.FromContextError(ctx.Err()).Err()
	}
}

func (a *adminService) CreateUser(ctx context.Context, req *usermockv1.CreateUserRequest) (*userservicev1.User, error) {
	var id string
	if req.GetUserId() == "" {
		id = userid.New()
	} else {
		var err error
		if id, err = parseID("userID", req.GetUserId()); err != nil {
			return nil, err
		}
	}
	user, err := a.change(ctx, func(tx *store.Tx) (store.User, error) { return tx.Create(id) })
	if err != nil {
		return nil, err
	}
	return toProto(user), nil
}

func (a *adminService) UpdateUser(ctx context.Context, req *usermockv1.UpdateUserRequest) (*userservicev1.User, error) {
	id, err := parseID("userID", req.GetUserId())
	if err != nil {
		return nil, err
	}
	var st store.State
	switch req.GetState() {
	case userservicev1.UserState_USER_STATE_ACTIVE:
		st = store.Active
	case userservicev1.UserState_USER_STATE_EXCLUDED:
		st = store.Excluded
	default:
		return nil, status.Errorf(codes.InvalidArgument, "state: must be USER_STATE_ACTIVE or USER_STATE_EXCLUDED, got %v", req.GetState())
	}
	user, err := a.change(ctx, func(tx *store.Tx) (store.User, error) { return tx.SetState(id, st) })
	if err != nil {
		return nil, err
	}
	return toProto(user), nil
}

func (a *adminService) DeleteUser(ctx context.Context, req *usermockv1.DeleteUserRequest) (*usermockv1.DeleteUserResponse, error) {
	id, err := parseID("userID", req.GetUserId())
	if err != nil {
		return nil, err
	}
	_, err = a.change(ctx, func(tx *store.Tx) (store.User, error) { return store.User{ID: id}, tx.Delete(id) })
	if err != nil {
		return nil, err
	}
	return &usermockv1.DeleteUserResponse{}, nil
}

func (a *adminService) ListUsers(_ context.Context, req *usermockv1.ListUsersRequest) (*usermockv1.ListUsersResponse, error) {
	size := int(req.GetPageSize())
	if size < 0 || size > MaxListPageSize {
		return nil, status.Errorf(codes.InvalidArgument, "pageSize: must be 1..%d, or 0 for %d", MaxListPageSize, DefaultListPageSize)
	}
	if size == 0 {
		size = DefaultListPageSize
	}
	// The token is the last id of the previous page.
	after := req.GetPageToken()
	if after != "" {
		if canonical, ok := userid.Parse(after); !ok || canonical != after {
			return nil, status.Error(codes.InvalidArgument, "pageToken: not a token from a previous page")
		}
	}
	users := a.s.store.List(after, size+1)
	resp := &usermockv1.ListUsersResponse{}
	if len(users) > size {
		users = users[:size]
		resp.NextPageToken = users[size-1].ID
	}
	for _, u := range users {
		resp.Users = append(resp.Users, toProto(u))
	}
	return resp, nil
}

func (a *adminService) MakeRandomChanges(ctx context.Context, req *usermockv1.MakeRandomChangesRequest) (*usermockv1.MakeRandomChangesResponse, error) {
	count, rate := req.GetCount(), req.GetRatePerSecond()
	if count < 1 || count > MaxRandomChangesCount {
		return nil, status.Errorf(codes.InvalidArgument, "count: must be 1..%d", MaxRandomChangesCount)
	}
	if rate < 0 || math.IsNaN(rate) || math.IsInf(rate, 0) {
		return nil, status.Error(codes.InvalidArgument, "ratePerSecond: must be a finite number >= 0")
	}
	seed := req.GetSeed()
	if seed == 0 {
		seed = time.Now().UnixNano()
	}
	if a.s.life.Err() != nil {
		return nil, status.Error(codes.Unavailable, "the mock is shutting down")
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(a.s.life, cancel)()
	counts, err := randomchanges.Run(ctx, a.s.store, a.s.pub, randomchanges.NewGenerator(seed), randomchanges.Options{
		Count:         count,
		RatePerSecond: rate,
		Window:        randomChangesWindow,
		Stall:         a.s.opts.AckTimeout,
	})
	resp := &usermockv1.MakeRandomChangesResponse{
		Created: counts.Created, Updated: counts.Updated, Deleted: counts.Deleted, Seed: seed,
	}
	if err != nil {
		a.s.logf("random changes (seed %d) stopped after %d of %d: %v", seed, counts.Total(), count, err)
		switch {
		case a.s.life.Err() != nil:
			return nil, status.Errorf(codes.Unavailable, "made %d changes (kept): the mock is shutting down", counts.Total())
		case ctx.Err() != nil:
			return nil, status.FromContextError(ctx.Err()).Err()
		case errors.Is(err, randomchanges.ErrStalled):
			return nil, status.Errorf(codes.Unavailable, "made %d changes (kept), but the broker acknowledged no event for %v; their events stay queued until it is back", counts.Total(), a.s.opts.AckTimeout)
		default:
			return nil, status.Errorf(codes.Unavailable, "made %d changes (kept), but an event failed: %v", counts.Total(), err)
		}
	}
	return resp, nil
}

func (a *adminService) SetOutage(_ context.Context, req *usermockv1.SetOutageRequest) (*usermockv1.SetOutageResponse, error) {
	a.s.outageMu.Lock()
	defer a.s.outageMu.Unlock()
	if a.s.outage.Swap(req.GetDown()) != req.GetDown() {
		a.s.logf("user service outage: %v", req.GetDown())
	}
	a.s.setHealth()
	return &usermockv1.SetOutageResponse{}, nil
}
