// Package load is `segments-drill load`: segments and users set up, then
// writes, reads and user events at a fixed rate until stopped, every attempt
// recorded (record package). Each read that answers is judged against the
// acknowledged writes of its user (model.Writes.Judge): a wrong answer on a
// settled pair is a stale read, recorded in requests.csv and stale.csv.
package load

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	segmentationv1 "segments/gateway/gen/segmentation/v1"
	usermockv1 "segments/usermock/gen/usermock/v1"
	userservicev1 "segments/usermock/gen/userservice/v1"

	"segments/tests/drill/internal/api"
	"segments/tests/drill/internal/model"
	"segments/tests/drill/internal/record"
)

// Config is the load's flags.
type Config struct {
	HTTPAddr, GRPCAddr, MockAddr string
	Token                        string
	OutDir                       string
	RunID                        string // 8 lowercase hex digits
	Users                        int
	Rate                         float64 // reads + writes per second
	WriteShare                   float64 // of Rate
	TTLShare                     float64 // of adds
	ChurnRate                    float64 // user events per second
	Seed                         uint64
	Duration                     time.Duration // 0: until ctx is done
	SetupTimeout                 time.Duration
	GiveUpAfter                  time.Duration // retrying in-flight writes after the stop
	Log                          io.Writer
}

// Slugs are the run's segments.
func Slugs(runID string) []string {
	var out []string
	for _, s := range []string{"A", "B", "C", "D"} {
		out = append(out, "DRILL_"+runID+"_"+s)
	}
	return out
}

// UserID is the run's user number i: load users count from 1, churn users
// from ChurnBase.
func UserID(runID string, i uint64) string {
	return fmt.Sprintf("%s-0000-4000-8000-%012x", runID, i)
}

// ChurnBase is the first churn user's number.
const ChurnBase = uint64(1) << 40

// Summary is what the load did.
type Summary struct {
	RunID                          string
	Acked, WriteAttempts, Rejected int64
	GivenUp                        int
	Reads, ReadErrors, StaleReads  int64
	// Pairs of the answered reads compared with the acknowledged writes,
	// and skipped because their expectation was not settled.
	PairsCompared, PairsSkipped int64
	UserEvents, UserEventErrors int64
	SkippedWrites, SkippedReads int64
	Elapsed                     time.Duration
}

type runner struct {
	cfg      Config
	rest     *api.REST
	seg      segmentationv1.SegmentServiceClient
	mock     usermockv1.UserMockAdminClient
	slugs    []string
	requests *record.Log
	acked    *record.Log
	stale    *record.Log

	giveUp   context.Context // canceled GiveUpAfter after the stop
	mu       sync.Mutex
	givenUp  []record.Write
	refused  []record.Write // rejected writes
	warnings atomic.Int64

	acks, writeAttempts, rejected atomic.Int64
	reads, readErrors, staleReads atomic.Int64
	pairsCompared, pairsSkipped   atomic.Int64
	userEvents, userEventErrors   atomic.Int64
	skippedWrites, skippedReads   atomic.Int64
	readsInFlight                 atomic.Int64
	readWG, workerWG, churnWG     sync.WaitGroup
}

// maxReadsInFlight bounds concurrent reads (a fault makes them wait up to
// api.CallTimeout); a read due when all are busy is skipped and counted.
const maxReadsInFlight = 64

// Run sets up, loads until ctx is done or cfg.Duration has passed, then
// finishes the writes under way and writes the files.
func Run(ctx context.Context, cfg Config) (Summary, error) {
	start := time.Now()
	if err := os.MkdirAll(cfg.OutDir, 0o755); err != nil {
		return Summary{}, err
	}
	r := &runner{cfg: cfg, rest: api.NewREST(cfg.HTTPAddr, cfg.Token), slugs: Slugs(cfg.RunID)}
	gconn, err := api.Dial(cfg.GRPCAddr)
	if err != nil {
		return Summary{}, err
	}
	defer gconn.Close()
	mconn, err := api.Dial(cfg.MockAddr)
	if err != nil {
		return Summary{}, err
	}
	defer mconn.Close()
	r.seg = segmentationv1.NewSegmentServiceClient(gconn)
	r.mock = usermockv1.NewUserMockAdminClient(mconn)

	users := make([]string, cfg.Users)
	for i := range users {
		users[i] = UserID(cfg.RunID, uint64(i+1))
	}
	if err := r.setup(ctx, users); err != nil {
		return Summary{}, err
	}

	if r.requests, err = record.Create(filepath.Join(cfg.OutDir, record.RequestsFile), record.RequestsHeader); err != nil {
		return Summary{}, err
	}
	if r.acked, err = record.Create(filepath.Join(cfg.OutDir, record.AckedFile), record.WriteHeader); err != nil {
		return Summary{}, err
	}
	if r.stale, err = record.Create(filepath.Join(cfg.OutDir, record.StaleFile), record.StaleHeader); err != nil {
		return Summary{}, err
	}
	flushDone := make(chan struct{})
	stopFlush := make(chan struct{})
	go func() {
		defer close(flushDone)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				r.flush()
			case <-stopFlush:
				return
			}
		}
	}()

	loadCtx := ctx
	if cfg.Duration > 0 {
		var cancel context.CancelFunc
		loadCtx, cancel = context.WithTimeout(ctx, cfg.Duration)
		defer cancel()
	}
	giveUp, cancelGiveUp := context.WithCancel(context.Background())
	defer cancelGiveUp()
	r.giveUp = giveUp
	stopped := context.AfterFunc(loadCtx, func() { time.AfterFunc(cfg.GiveUpAfter, cancelGiveUp) })
	defer stopped()

	workers := make([]*worker, len(users))
	for i, u := range users {
		w := &worker{r: r, stop: loadCtx, user: u, index: i + 1, writes: model.NewWrites(u),
			rng: rand.New(rand.NewPCG(cfg.Seed, uint64(i+1))), kick: make(chan struct{}, 1)}
		workers[i] = w
		r.workerWG.Add(1)
		go w.loop()
	}
	if cfg.ChurnRate > 0 {
		r.churnWG.Add(1)
		go r.churn(loadCtx)
	}
	fmt.Fprintf(cfg.Log, "segments-drill load: run %s: loading (%.0f ops/s, %.0f%% writes, %.1f user events/s)\n",
		cfg.RunID, cfg.Rate, cfg.WriteShare*100, cfg.ChurnRate)
	r.dispatch(loadCtx, workers)

	// Stop: no new operations (a worker ignores a kick still buffered); the
	// writes under way are retried until acknowledged or given up.
	for _, w := range workers {
		close(w.kick)
	}
	r.workerWG.Wait()
	r.readWG.Wait()
	r.churnWG.Wait()
	close(stopFlush)
	<-flushDone

	errs := []error{r.requests.Close(), r.acked.Close(), r.stale.Close(),
		record.WriteCSV(filepath.Join(cfg.OutDir, record.GivenUpFile), record.WriteHeader, record.WriteRows(r.givenUp)),
		record.WriteCSV(filepath.Join(cfg.OutDir, record.RejectedFile), record.WriteHeader, record.WriteRows(r.refused))}
	for _, e := range errs {
		if e != nil {
			return Summary{}, e
		}
	}
	return Summary{
		RunID: cfg.RunID, Acked: r.acks.Load(), WriteAttempts: r.writeAttempts.Load(), Rejected: r.rejected.Load(),
		GivenUp: len(r.givenUp), Reads: r.reads.Load(), ReadErrors: r.readErrors.Load(), StaleReads: r.staleReads.Load(),
		PairsCompared: r.pairsCompared.Load(), PairsSkipped: r.pairsSkipped.Load(),
		UserEvents: r.userEvents.Load(), UserEventErrors: r.userEventErrors.Load(),
		SkippedWrites: r.skippedWrites.Load(), SkippedReads: r.skippedReads.Load(),
		Elapsed: time.Since(start),
	}, nil
}

func (r *runner) flush() {
	if err := r.requests.Flush(); err != nil {
		r.warn("flushing %s: %v", record.RequestsFile, err)
	}
	if err := r.acked.Flush(); err != nil {
		r.warn("flushing %s: %v", record.AckedFile, err)
	}
	if err := r.stale.Flush(); err != nil {
		r.warn("flushing %s: %v", record.StaleFile, err)
	}
}

// warn logs the first 20 warnings, then every 100th.
func (r *runner) warn(format string, args ...any) {
	n := r.warnings.Add(1)
	if n <= 20 || n%100 == 0 {
		fmt.Fprintf(r.cfg.Log, "segments-drill load: warning %d: %s\n", n, fmt.Sprintf(format, args...))
	}
}

func (r *runner) record(kind string, a api.Attempt) {
	if err := r.requests.AppendRequest(a.Request(kind)); err != nil {
		r.warn("writing %s: %v", record.RequestsFile, err)
	}
}

// setup creates the segments (REST) and the users (in the mock, reaching
// the service through Kafka), and waits until the service knows every user.
func (r *runner) setup(ctx context.Context, users []string) error {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.SetupTimeout)
	defer cancel()
	for _, slug := range r.slugs {
		body, _ := json.Marshal(map[string]string{"slug": slug})
		key := "drill-" + r.cfg.RunID + "-create-" + slug
		err := retry(ctx, func() (bool, error) {
			a := r.rest.Do(ctx, http.MethodPost, "/segments/create", body, key)
			switch {
			case a.Outcome == record.OK || a.Status == http.StatusConflict: // conflict: exists (a rerun)
				return true, nil
			case a.Outcome == record.Rejected:
				return false, fmt.Errorf("creating segment %s: %s", slug, a.Describe())
			}
			return false, nil
		})
		if err != nil {
			return fmt.Errorf("setup: %w", err)
		}
	}
	if err := record.WriteLines(filepath.Join(r.cfg.OutDir, record.SegmentsFile), r.slugs); err != nil {
		return err
	}

	t0 := time.Now()
	for _, u := range users {
		err := retry(ctx, func() (bool, error) {
			cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
			defer cancel()
			_, err := r.mock.CreateUser(cctx, &usermockv1.CreateUserRequest{UserId: u})
			switch status.Code(err) {
			case codes.OK, codes.AlreadyExists:
				return true, nil
			case codes.InvalidArgument:
				return false, fmt.Errorf("creating user %s in the mock: %v", u, err)
			}
			return false, nil // UNAVAILABLE: kept, its event queued; the retry answers ALREADY_EXISTS
		})
		if err != nil {
			return fmt.Errorf("setup: %w", err)
		}
	}
	mockUsersCreated := time.Since(t0)
	if err := record.WriteLines(filepath.Join(r.cfg.OutDir, record.UsersFile), users); err != nil {
		return err
	}

	// A user is known once a removal for them is accepted: an unknown user
	// answers 404, a removal of a segment not held changes nothing.
	pending := users
	for len(pending) > 0 {
		var still []string
		for _, u := range pending {
			body, _ := json.Marshal(map[string]any{"userID": u,
				"segmentsToRemove": []map[string]string{{"segmentSlug": r.slugs[0]}}})
			a := r.rest.Do(ctx, http.MethodPost, "/segments/change-for-user", body, "")
			switch {
			case a.Outcome == record.OK:
			case a.Status == http.StatusNotFound || a.Outcome == record.Error:
				still = append(still, u)
			default:
				return fmt.Errorf("setup: probing user %s: %s", u, a.Describe())
			}
		}
		pending = still
		if len(pending) == 0 {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("setup: %d of %d users still unknown to the service after %s (first %s)",
				len(pending), len(users), r.cfg.SetupTimeout, pending[0])
		case <-time.After(200 * time.Millisecond):
		}
	}
	fmt.Fprintf(r.cfg.Log, "segments-drill load: run %s: %d segments, %d users created in the mock (%.1fs) and known to the service (%.1fs)\n",
		r.cfg.RunID, len(r.slugs), len(users), mockUsersCreated.Seconds(), time.Since(t0).Seconds())
	return nil
}

// retry calls fn every 200 ms until it reports done or an error, or ctx ends.
func retry(ctx context.Context, fn func() (bool, error)) error {
	for {
		done, err := fn()
		if err != nil || done {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("gave up: %w", ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// dispatch issues operations at cfg.Rate until ctx is done: a write goes to
// an idle user's worker, a read runs on its own.
func (r *runner) dispatch(ctx context.Context, workers []*worker) {
	rng := rand.New(rand.NewPCG(r.cfg.Seed, 0))
	tick := time.NewTicker(time.Duration(float64(time.Second) / r.cfg.Rate))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if rng.Float64() < r.cfg.WriteShare {
			w := pickIdle(rng, workers)
			if w == nil {
				r.skippedWrites.Add(1)
				continue
			}
			w.kick <- struct{}{}
			continue
		}
		if r.readsInFlight.Load() >= maxReadsInFlight {
			r.skippedReads.Add(1)
			continue
		}
		w := workers[rng.IntN(len(workers))]
		viaGRPC := rng.IntN(2) == 0
		r.readsInFlight.Add(1)
		r.readWG.Add(1)
		go func() {
			defer r.readWG.Done()
			defer r.readsInFlight.Add(-1)
			r.read(w.user, w.writes, viaGRPC)
		}()
	}
}

// pickIdle claims a random idle worker, nil when all are busy.
func pickIdle(rng *rand.Rand, workers []*worker) *worker {
	off := rng.IntN(len(workers))
	for i := range workers {
		w := workers[(off+i)%len(workers)]
		if w.busy.CompareAndSwap(false, true) {
			return w
		}
	}
	return nil
}

// read reads the user's segments and judges the answer (finishRead).
func (r *runner) read(user string, writes *model.Writes, viaGRPC bool) {
	var a api.Attempt
	var answer []string
	kind := record.KindReadHTTP
	if viaGRPC {
		kind = record.KindReadGRPC
		ctx, cancel := context.WithTimeout(api.WithToken(context.Background(), r.cfg.Token), api.CallTimeout)
		start := time.Now()
		resp, err := r.seg.GetUserSegments(ctx, &segmentationv1.GetUserSegmentsRequest{UserId: user})
		cancel()
		a = api.GRPCAttempt(start, err)
		answer = resp.GetSegments()
	} else {
		a = r.rest.Do(context.Background(), http.MethodGet, "/segments/get-for-user?userID="+user, nil, "")
		if a.Outcome == record.OK {
			var body struct {
				Segments []string `json:"segments"`
			}
			if err := json.Unmarshal(a.Body, &body); err != nil {
				a.Outcome, a.Code, a.Err = record.Rejected, "bad_body", fmt.Errorf("answer %q: %w", a.Body, err)
			}
			answer = body.Segments
		}
	}
	r.finishRead(user, writes, kind, a, answer)
}

// finishRead counts and records a finished read. An answer (every slug it
// returned) is compared with the user's acknowledged writes on the pairs
// whose expectation is settled; a mismatch makes the read stale: outcome
// record.Stale in requests.csv, each wrong pair in stale.csv.
func (r *runner) finishRead(user string, writes *model.Writes, kind string, a api.Attempt, answer []string) {
	r.reads.Add(1)
	switch a.Outcome {
	case record.OK:
		startMs := a.Start.UnixMilli()
		endMs := a.Start.Add(a.Latency).UnixMilli() + 1 // rounded up
		stale, compared, skipped := writes.Judge(r.slugs, answer, startMs, endMs)
		r.pairsCompared.Add(int64(compared))
		r.pairsSkipped.Add(int64(skipped))
		if len(stale) == 0 {
			break
		}
		r.staleReads.Add(1)
		a.Outcome, a.Code = record.Stale, record.Stale
		for _, m := range stale {
			row := record.StaleRead{UserID: user, Slug: m.Slug, Expected: m.Expected, Got: m.Got, TMs: startMs, Kind: kind}
			if err := r.stale.Append(row.Row()); err != nil {
				r.warn("writing %s: %v", record.StaleFile, err)
			}
		}
		r.warn("%s of %s at %d ms stale: %+v (answer %q)", kind, user, startMs, stale, answer)
	case record.Rejected:
		r.readErrors.Add(1)
		r.warn("%s of %s rejected: %s", kind, user, a.Describe())
	default:
		r.readErrors.Add(1)
	}
	r.record(kind, a)
}

// worker owns one user's writes: one at a time, so their order is known.
type worker struct {
	r      *runner
	stop   context.Context // the load's: once done, no new write begins
	user   string
	index  int
	writes *model.Writes
	rng    *rand.Rand
	seq    int
	busy   atomic.Bool
	kick   chan struct{}
}

// loop makes a write per kick until the channel is closed. A kick received
// once the load is stopping (one buffered when the channel was closed, or
// sent just before the stop) is counted as a skipped write, not made.
func (w *worker) loop() {
	defer w.r.workerWG.Done()
	for range w.kick {
		if w.stop.Err() == nil {
			w.write()
		} else {
			w.r.skippedWrites.Add(1)
		}
		w.busy.Store(false)
	}
}

type segmentToAdd struct {
	SegmentSlug          string `json:"segmentSlug"`
	SecondsToBeInSegment int    `json:"secondsToBeInSegment,omitempty"`
}

type segmentToRemove struct {
	SegmentSlug string `json:"segmentSlug"`
}

type changeRequest struct {
	UserID           string            `json:"userID"`
	SegmentsToAdd    []segmentToAdd    `json:"segmentsToAdd,omitempty"`
	SegmentsToRemove []segmentToRemove `json:"segmentsToRemove,omitempty"`
}

// nextOp picks a write that is valid whatever the timing: an add only of a
// segment the user surely lacks; a removal of anything (mostly of what the
// user may hold, sometimes of what they lack: a no-op).
func (w *worker) nextOp(nowMs int64) (slug string, op model.Op, ttl int) {
	var addable, held []string
	for _, s := range w.r.slugs {
		if w.writes.CanAdd(s, nowMs) {
			addable = append(addable, s)
		} else {
			held = append(held, s)
		}
	}
	if len(addable) > 0 && (len(held) == 0 || w.rng.Float64() < 0.55) {
		slug = addable[w.rng.IntN(len(addable))]
		if w.rng.Float64() < w.r.cfg.TTLShare {
			ttl = 2 + w.rng.IntN(5) // 2..6 s
		}
		return slug, model.Add, ttl
	}
	if len(held) > 0 && w.rng.Float64() < 0.85 {
		return held[w.rng.IntN(len(held))], model.Remove, 0
	}
	return w.r.slugs[w.rng.IntN(len(w.r.slugs))], model.Remove, 0
}

// write makes one logical write and retries it, with its key, until it is
// acknowledged, rejected, or given up (GiveUpAfter past the stop).
func (w *worker) write() {
	r := w.r
	slug, op, ttl := w.nextOp(time.Now().UnixMilli())
	w.seq++
	key := fmt.Sprintf("drill-%s-%d-%d", r.cfg.RunID, w.index, w.seq)
	req := changeRequest{UserID: w.user}
	if op == model.Add {
		req.SegmentsToAdd = []segmentToAdd{{SegmentSlug: slug, SecondsToBeInSegment: ttl}}
	} else {
		req.SegmentsToRemove = []segmentToRemove{{SegmentSlug: slug}}
	}
	body, _ := json.Marshal(req)
	backoff := 100 * time.Millisecond
	firstMs := time.Now().UnixMilli()
	w.writes.Begin(firstMs)
	for attempt := 1; ; attempt++ {
		a := r.rest.Do(context.Background(), http.MethodPost, "/segments/change-for-user", body, key)
		r.writeAttempts.Add(1)
		r.record(record.KindWrite, a)
		row := record.Write{UserID: w.user, Slug: slug, Op: op, TTLSec: ttl, FirstMs: firstMs,
			EndMs: time.Now().UnixMilli(), Attempts: attempt, Key: key, Code: a.Code}
		switch a.Outcome {
		case record.OK:
			w.writes.Acked(row.Ack())
			if err := r.acked.Append(row.Row()); err != nil {
				r.warn("writing %s: %v", record.AckedFile, err)
			}
			r.acks.Add(1)
			return
		case record.Rejected:
			w.writes.Rejected(slug, row.EndMs)
			r.rejected.Add(1)
			r.mu.Lock()
			r.refused = append(r.refused, row)
			r.mu.Unlock()
			r.warn("write %s (%s %s of %s) rejected: %s", key, op, slug, w.user, a.Describe())
			return
		}
		select {
		case <-r.giveUp.Done():
			// Left under way in w.writes: its outcome is unknown.
			row.EndMs = time.Now().UnixMilli()
			r.mu.Lock()
			r.givenUp = append(r.givenUp, row)
			r.mu.Unlock()
			r.warn("write %s (%s %s of %s) given up after %d attempts; last: %s", key, op, slug, w.user, attempt,
				a.Describe())
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Second)
	}
}

// churn makes user events through the mock at cfg.ChurnRate: creates new
// churn users, flips one's state, deletes one. A call whose outcome is
// unknown (no answer) takes its user out of the pool.
func (r *runner) churn(ctx context.Context) {
	defer r.churnWG.Done()
	rng := rand.New(rand.NewPCG(r.cfg.Seed, 1<<62))
	type churnUser struct {
		id       string
		excluded bool
	}
	var pool []churnUser
	next := ChurnBase
	tick := time.NewTicker(time.Duration(float64(time.Second) / r.cfg.ChurnRate))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		// A call under way at the stop is finished, not canceled.
		cctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		start := time.Now()
		var err error
		roll := rng.Float64()
		i := -1
		switch {
		case len(pool) == 0 || roll < 0.4:
			id := UserID(r.cfg.RunID, next)
			next++
			_, err = r.mock.CreateUser(cctx, &usermockv1.CreateUserRequest{UserId: id})
			if c := status.Code(err); c == codes.OK || c == codes.Unavailable || c == codes.AlreadyExists {
				pool = append(pool, churnUser{id: id})
			}
		case roll < 0.8:
			i = rng.IntN(len(pool))
			state := userservicev1.UserState_USER_STATE_EXCLUDED
			if pool[i].excluded {
				state = userservicev1.UserState_USER_STATE_ACTIVE
			}
			_, err = r.mock.UpdateUser(cctx, &usermockv1.UpdateUserRequest{UserId: pool[i].id, State: state})
			switch status.Code(err) {
			case codes.OK, codes.Unavailable: // UNAVAILABLE: kept, its event queued
				pool[i].excluded = !pool[i].excluded
				i = -1
			}
		default:
			i = rng.IntN(len(pool))
			_, err = r.mock.DeleteUser(cctx, &usermockv1.DeleteUserRequest{UserId: pool[i].id})
		}
		// Out of the pool: deleted, or in a state the client no longer knows.
		if i >= 0 {
			pool = append(pool[:i], pool[i+1:]...)
		}
		cancel()
		a := api.GRPCAttempt(start, err)
		r.userEvents.Add(1)
		if a.Outcome != record.OK {
			r.userEventErrors.Add(1)
			r.warn("user event: %s", a.Describe())
		}
		r.record(record.KindUserEvent, a)
	}
}
