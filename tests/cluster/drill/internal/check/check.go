// Package check is `segments-drill check`: the state every instance answers
// against the state the acknowledged writes imply, and the files the SQL
// checks of scripts/cluster.sh compare the database with.
package check

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc/health/grpc_health_v1"

	segmentationv1 "segments/gateway/gen/segmentation/v1"
	usermockv1 "segments/usermock/gen/usermock/v1"
	userservicev1 "segments/usermock/gen/userservice/v1"

	"segments/tests/drill/internal/api"
	"segments/tests/drill/internal/model"
	"segments/tests/drill/internal/record"
)

// Files the check writes.
const (
	ExpectedFile       = "expected.csv"
	ExpectedEventsFile = "expected_events.csv"
	MockUsersFile      = "mock_users.csv"
)

// ReadModelHealth is the health service name that is SERVING while an
// instance answers GetUserSegments from its read model.
const ReadModelHealth = "segmentation.v1.MembershipReadModel"

// Config is the check's flags.
type Config struct {
	OutDir    string
	Instances []string
	Token     string
	MockAddr  string
	Timeout   time.Duration
	Log       io.Writer
	// Convergence: how long a mismatching instance is asked again.
	Convergence time.Duration
}

// Expected is the state the acknowledged writes imply, once every TTL ran out.
type Expected struct {
	Users []string
	Slugs []string
	State *model.State
	// Unknown pairs: a write of theirs was given up or rejected, so whether
	// it was applied is unknown. Not compared, not in the files (the check
	// fails anyway).
	Unknown map[model.Pair]bool
	// What the load found wrong: writes given up or rejected, stale reads.
	GivenUp, Rejected []record.Write
	Stale             []record.StaleRead
}

// Held is the sorted drill slugs the user must be in (unknown pairs left out).
func (e Expected) Held(user string) []string {
	var out []string
	for _, s := range e.Slugs {
		p := model.Pair{UserID: user, Slug: s}
		if !e.Unknown[p] && e.State.HeldAtEnd(p) {
			out = append(out, s)
		}
	}
	slices.Sort(out)
	return out
}

// Filter keeps the drill slugs of the user's answer, sorted (unknown pairs
// left out).
func (e Expected) Filter(user string, got []string) []string {
	var out []string
	for _, s := range got {
		if slices.Contains(e.Slugs, s) && !e.Unknown[model.Pair{UserID: user, Slug: s}] {
			out = append(out, s)
		}
	}
	slices.Sort(out)
	return out
}

// Rows of expected.csv (user_id,slug,held) and expected_events.csv
// (user_id,slug,acked_adds,acked_removes): every load user with every drill
// segment, users in file order, segments in segments.txt order; unknown
// pairs left out.
func (e Expected) Rows() (expected, events [][]string) {
	for _, u := range e.Users {
		for _, s := range e.Slugs {
			p := model.Pair{UserID: u, Slug: s}
			if e.Unknown[p] {
				continue
			}
			expected = append(expected, []string{u, s, strconv.FormatBool(e.State.HeldAtEnd(p))})
			adds, removes := e.State.Counts(p)
			events = append(events, []string{u, s, strconv.Itoa(adds), strconv.Itoa(removes)})
		}
	}
	return expected, events
}

// LoadExpected reads the load's files. given_up.csv, rejected.csv and
// stale.csv must be there (perhaps with the header only): the load writes
// the first two when it exits cleanly.
func LoadExpected(dir string) (Expected, error) {
	var e Expected
	var err error
	if e.Users, err = record.ReadLines(filepath.Join(dir, record.UsersFile)); err != nil {
		return e, err
	}
	if e.Slugs, err = record.ReadLines(filepath.Join(dir, record.SegmentsFile)); err != nil {
		return e, err
	}
	acks, err := record.ReadAcks(filepath.Join(dir, record.AckedFile))
	if err != nil {
		return e, err
	}
	if e.GivenUp, err = record.ReadWrites(filepath.Join(dir, record.GivenUpFile)); err != nil {
		return e, fmt.Errorf("%w (the load writes it when it exits cleanly)", err)
	}
	if e.Rejected, err = record.ReadWrites(filepath.Join(dir, record.RejectedFile)); err != nil {
		return e, fmt.Errorf("%w (the load writes it when it exits cleanly)", err)
	}
	if e.Stale, err = record.ReadStale(filepath.Join(dir, record.StaleFile)); err != nil {
		return e, err
	}
	e.State = model.NewState()
	for _, a := range acks {
		e.State.Apply(a)
	}
	e.Unknown = map[model.Pair]bool{}
	for _, w := range slices.Concat(e.GivenUp, e.Rejected) {
		e.Unknown[model.Pair{UserID: w.UserID, Slug: w.Slug}] = true
	}
	return e, nil
}

// LoadFailures are what the load itself saw go wrong, one message each
// (none: nothing); each fails the check.
func (e Expected) LoadFailures() []string {
	var out []string
	if n := len(e.GivenUp); n > 0 {
		out = append(out, fmt.Sprintf("%d writes were given up by the load (their outcome is unknown; their pairs are "+
			"left out below and in the files), first %s; see %s", n, e.GivenUp[0].Key, record.GivenUpFile))
	}
	if n := len(e.Rejected); n > 0 {
		w := e.Rejected[0]
		out = append(out, fmt.Sprintf("%d writes were rejected (4xx other than 429; their pairs are left out below "+
			"and in the files), first %s (%s %s of %s): %s; see %s", n, w.Key, w.Op, w.Slug, w.UserID, w.Code,
			record.RejectedFile))
	}
	if n := len(e.Stale); n > 0 {
		s := e.Stale[0]
		out = append(out, fmt.Sprintf("%d stale pairs in reads during the load (an instance answered against a "+
			"settled acknowledged write), first %s of %s at %d ms (%s): held %v, expected %v; see %s", n, s.Slug,
			s.UserID, s.TMs, s.Kind, s.Got, s.Expected, record.StaleFile))
	}
	return out
}

// Run checks; ok false when an instance mismatches or is not healthy, or
// the load saw a failure (LoadFailures).
func Run(ctx context.Context, cfg Config) (bool, error) {
	exp, err := LoadExpected(cfg.OutDir)
	if err != nil {
		return false, err
	}
	ok := true
	for _, f := range exp.LoadFailures() {
		ok = false
		fmt.Fprintf(cfg.Log, "FAIL: %s\n", f)
	}
	expRows, eventRows := exp.Rows()
	if err := record.WriteCSV(filepath.Join(cfg.OutDir, ExpectedFile), []string{"user_id", "slug", "held"}, expRows); err != nil {
		return false, err
	}
	if err := record.WriteCSV(filepath.Join(cfg.OutDir, ExpectedEventsFile),
		[]string{"user_id", "slug", "acked_adds", "acked_removes"}, eventRows); err != nil {
		return false, err
	}

	deadline := time.Now().Add(cfg.Timeout)
	dctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()

	if cfg.MockAddr != "" {
		n, err := writeMockUsers(dctx, cfg.MockAddr, filepath.Join(cfg.OutDir, MockUsersFile))
		if err != nil {
			return false, fmt.Errorf("the mock's users: %w", err)
		}
		fmt.Fprintf(cfg.Log, "mock users: %d written to %s\n", n, MockUsersFile)
	}

	type instance struct {
		addr    string
		healthy bool
		client  segmentationv1.SegmentServiceClient
	}
	var insts []*instance
	for _, addr := range cfg.Instances {
		conn, err := api.Dial(addr)
		if err != nil {
			return false, err
		}
		defer conn.Close()
		in := &instance{addr: addr, client: segmentationv1.NewSegmentServiceClient(conn)}
		insts = append(insts, in)
		hc := grpc_health_v1.NewHealthClient(conn)
		for {
			cctx, ccancel := context.WithTimeout(dctx, time.Second)
			resp, err := hc.Check(cctx, &grpc_health_v1.HealthCheckRequest{Service: ReadModelHealth})
			ccancel()
			if err == nil && resp.GetStatus() == grpc_health_v1.HealthCheckResponse_SERVING {
				in.healthy = true
				break
			}
			if dctx.Err() != nil {
				fmt.Fprintf(cfg.Log, "FAIL: %s: %s not SERVING within %s (last: %v %v)\n", addr, ReadModelHealth,
					cfg.Timeout, resp.GetStatus(), err)
				ok = false
				break
			}
			time.Sleep(250 * time.Millisecond)
		}
	}

	// Every TTL membership the load made has passed its deadline after this.
	if wait := time.Until(time.UnixMilli(exp.State.TTLHorizonMs() + model.MarginMs)); wait > 0 {
		fmt.Fprintf(cfg.Log, "waiting %.1fs for the last TTL deadline\n", wait.Seconds())
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-time.After(wait):
		}
	}

	for _, in := range insts {
		if !in.healthy {
			continue
		}
		var mismatches []string
		for _, u := range exp.Users {
			want := exp.Held(u)
			var got []string
			var err error
			until := time.Now().Add(cfg.Convergence)
			for {
				cctx, ccancel := context.WithTimeout(api.WithToken(ctx, cfg.Token), api.CallTimeout)
				var resp *segmentationv1.GetUserSegmentsResponse
				resp, err = in.client.GetUserSegments(cctx, &segmentationv1.GetUserSegmentsRequest{UserId: u})
				ccancel()
				if err == nil {
					got = exp.Filter(u, resp.GetSegments())
					if slices.Equal(got, want) {
						break
					}
				}
				if time.Now().After(until) {
					break
				}
				time.Sleep(200 * time.Millisecond)
			}
			switch {
			case err != nil:
				mismatches = append(mismatches, fmt.Sprintf("%s: error %v", u, err))
			case !slices.Equal(got, want):
				mismatches = append(mismatches, fmt.Sprintf("%s: got [%s], want [%s]", u,
					strings.Join(got, " "), strings.Join(want, " ")))
			}
		}
		fmt.Fprintf(cfg.Log, "instance %s: %d users checked, %d mismatches\n", in.addr, len(exp.Users), len(mismatches))
		for i, m := range mismatches {
			if i == 5 {
				fmt.Fprintf(cfg.Log, "  ... %d more\n", len(mismatches)-5)
				break
			}
			fmt.Fprintf(cfg.Log, "  %s\n", m)
		}
		if len(mismatches) > 0 {
			ok = false
		}
	}
	return ok, nil
}

// MockState is a user's state as the service's database spells it.
func MockState(s userservicev1.UserState) (string, error) {
	switch s {
	case userservicev1.UserState_USER_STATE_ACTIVE:
		return "active", nil
	case userservicev1.UserState_USER_STATE_EXCLUDED:
		return "excluded", nil
	}
	return "", fmt.Errorf("unexpected user state %v", s)
}

// writeMockUsers writes every user of the mock (user_id,state).
func writeMockUsers(ctx context.Context, addr, path string) (int, error) {
	conn, err := api.Dial(addr)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	mock := usermockv1.NewUserMockAdminClient(conn)
	var rows [][]string
	token := ""
	for {
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		resp, err := mock.ListUsers(cctx, &usermockv1.ListUsersRequest{PageSize: 1000, PageToken: token})
		cancel()
		if err != nil {
			return 0, err
		}
		for _, u := range resp.GetUsers() {
			st, err := MockState(u.GetState())
			if err != nil {
				return 0, fmt.Errorf("user %s: %w", u.GetUserId(), err)
			}
			rows = append(rows, []string{u.GetUserId(), st})
		}
		if token = resp.GetNextPageToken(); token == "" {
			break
		}
	}
	return len(rows), record.WriteCSV(path, []string{"user_id", "state"}, rows)
}
