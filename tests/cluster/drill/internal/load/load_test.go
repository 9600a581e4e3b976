package load

import (
	"context"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"segments/tests/drill/internal/api"
	"segments/tests/drill/internal/model"
	"segments/tests/drill/internal/record"
)

func TestIDs(t *testing.T) {
	if got := UserID("0a1b2c3d", 7); got != "0a1b2c3d-0000-4000-8000-000000000007" {
		t.Fatalf("UserID %q", got)
	}
	if got := UserID("0a1b2c3d", ChurnBase); got != "0a1b2c3d-0000-4000-8000-010000000000" {
		t.Fatalf("churn UserID %q", got)
	}
	uuid := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-8[0-9a-f]{3}-[0-9a-f]{12}$`)
	if !uuid.MatchString(UserID("ffffffff", ChurnBase+99)) {
		t.Fatal("not a version-4 style UUID")
	}
	if s := Slugs("0a1b2c3d"); len(s) != 4 || s[0] != "DRILL_0a1b2c3d_A" || s[3] != "DRILL_0a1b2c3d_D" {
		t.Fatalf("Slugs %v", s)
	}
}

// Every op the worker picks is valid whatever the timing: an add only of a
// segment the user surely lacks. Simulated acknowledgements 300 ms apart.
func TestNextOpOnlyAddsWhatTheUserSurelyLacks(t *testing.T) {
	r := &runner{cfg: Config{TTLShare: 0.3}, slugs: Slugs("0a1b2c3d")}
	user := UserID("0a1b2c3d", 1)
	w := &worker{r: r, user: user, writes: model.NewWrites(user), rng: rand.New(rand.NewPCG(1, 2))}
	held := map[string]int64{} // slug -> surely-ended-after ms (-1: for good)
	counts := map[string]int{}
	now := int64(1_000_000)
	for i := 0; i < 2000; i++ {
		now += 300
		slug, op, ttl := w.nextOp(now)
		counts[op.String()]++
		if ttl > 0 {
			counts["ttl"]++
			if ttl < 2 || ttl > 6 {
				t.Fatalf("ttl %d outside 2..6", ttl)
			}
		}
		if op == model.Add {
			if until, ok := held[slug]; ok && (until < 0 || now <= until) {
				t.Fatalf("step %d: add of %s while it may be held", i, slug)
			}
			held[slug] = -1
			if ttl > 0 {
				held[slug] = now + int64(ttl)*1000 + model.MarginMs
			}
		} else {
			delete(held, slug)
		}
		w.writes.Acked(model.Ack{UserID: w.user, Slug: slug, Op: op, TTLSec: ttl, SentMs: now - 10, AckMs: now})
	}
	// A mix: both ops common, TTL adds about 30% of adds.
	if counts["add"] < 500 || counts["remove"] < 500 {
		t.Fatalf("ops %v", counts)
	}
	if share := float64(counts["ttl"]) / float64(counts["add"]); share < 0.2 || share > 0.4 {
		t.Fatalf("TTL share %.2f of adds (%v)", share, counts)
	}
}

const runID = "0a1b2c3d"

// testRunner is a runner whose REST front is handler, its files in a
// temporary folder (closed by closeFiles).
func testRunner(t *testing.T, handler http.HandlerFunc) *runner {
	t.Helper()
	srv := httptest.NewServer(handler)
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	r := &runner{cfg: Config{RunID: runID, OutDir: dir, Log: io.Discard}, slugs: Slugs(runID),
		rest: api.NewREST(strings.TrimPrefix(srv.URL, "http://"), "token"), giveUp: context.Background()}
	var err error
	if r.requests, err = record.Create(filepath.Join(dir, record.RequestsFile), record.RequestsHeader); err != nil {
		t.Fatal(err)
	}
	if r.acked, err = record.Create(filepath.Join(dir, record.AckedFile), record.WriteHeader); err != nil {
		t.Fatal(err)
	}
	if r.stale, err = record.Create(filepath.Join(dir, record.StaleFile), record.StaleHeader); err != nil {
		t.Fatal(err)
	}
	return r
}

func (r *runner) closeFiles(t *testing.T) {
	t.Helper()
	for _, l := range []*record.Log{r.requests, r.acked, r.stale} {
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func newWorker(r *runner, stop context.Context) *worker {
	user := UserID(runID, 1)
	return &worker{r: r, stop: stop, user: user, index: 1, writes: model.NewWrites(user),
		rng: rand.New(rand.NewPCG(1, 1)), kick: make(chan struct{}, 1)}
}

// A kick still buffered when the load stops (its channel closed) must not
// start a write.
func TestStoppedWorkerStartsNoWrite(t *testing.T) {
	var calls atomic.Int64
	r := testRunner(t, func(w http.ResponseWriter, _ *http.Request) {
		calls.Add(1)
		w.WriteHeader(http.StatusNoContent)
	})
	defer r.closeFiles(t)

	live := newWorker(r, context.Background())
	stopped, cancel := context.WithCancel(context.Background())
	cancel()
	dead := newWorker(r, stopped)
	for _, w := range []*worker{live, dead} {
		w.busy.Store(true)
		w.kick <- struct{}{}
		close(w.kick)
		r.workerWG.Add(1)
		w.loop()
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("%d writes sent, want 1 (the live worker's only)", n)
	}
	if r.acks.Load() != 1 || r.skippedWrites.Load() != 1 || dead.seq != 0 || dead.busy.Load() {
		t.Fatalf("acks %d, skipped %d, stopped worker's writes %d, busy %v", r.acks.Load(), r.skippedWrites.Load(),
			dead.seq, dead.busy.Load())
	}
}

// A write refused with a 4xx is kept for rejected.csv, after a retried 503.
func TestRejectedWriteIsKept(t *testing.T) {
	var calls atomic.Int64
	r := testRunner(t, func(w http.ResponseWriter, _ *http.Request) {
		if calls.Add(1) == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusNotFound)
	})
	w := newWorker(r, context.Background())
	w.write()
	r.closeFiles(t)
	if r.rejected.Load() != 1 || len(r.refused) != 1 || r.acks.Load() != 0 {
		t.Fatalf("rejected %d, kept %+v, acked %d", r.rejected.Load(), r.refused, r.acks.Load())
	}
	got := r.refused[0]
	if got.UserID != w.user || got.Attempts != 2 || got.Code != "404" || got.Key != "drill-"+runID+"-1-1" ||
		got.FirstMs <= 0 || got.EndMs < got.FirstMs {
		t.Fatalf("rejected row %+v", got)
	}
	// Its pair is never judged again.
	if _, compared, _ := w.writes.Judge([]string{got.Slug}, nil, got.EndMs+60_000, got.EndMs+60_001); compared != 0 {
		t.Fatal("the pair of a rejected write was judged")
	}
}

// A read over HTTP answering against a settled acknowledged write is stale:
// outcome stale in requests.csv, its pairs in stale.csv; a right one is ok.
func TestStaleReadIsDetected(t *testing.T) {
	slugs := Slugs(runID)
	var answer atomic.Value
	r := testRunner(t, func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path != "/segments/get-for-user" {
			t.Errorf("path %s", req.URL.Path)
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, answer.Load().(string))
	})
	user := UserID(runID, 1)
	writes := model.NewWrites(user)
	ackMs := time.Now().UnixMilli() - 10_000
	writes.Begin(ackMs - 5)
	writes.Acked(model.Ack{UserID: user, Slug: slugs[0], Op: model.Add, SentMs: ackMs - 5, AckMs: ackMs, Attempts: 1, Key: "k1"})

	answer.Store(`{"segments":["AVITO_X","` + slugs[0] + `"]}`)
	r.read(user, writes, false)
	answer.Store(`{"segments":["` + slugs[1] + `"]}`) // A lost, B never added
	r.read(user, writes, false)
	// gRPC: the same judgement on the answer's slugs.
	r.finishRead(user, writes, record.KindReadGRPC,
		api.Attempt{Start: time.Now(), Latency: time.Millisecond, Outcome: record.OK, Code: "OK"}, []string{slugs[0]})
	// A write of the user under way: nothing is judged.
	writes.Begin(time.Now().UnixMilli())
	r.read(user, writes, false)
	r.closeFiles(t)

	if r.reads.Load() != 4 || r.staleReads.Load() != 1 || r.readErrors.Load() != 0 ||
		r.pairsCompared.Load() != 12 || r.pairsSkipped.Load() != 4 {
		t.Fatalf("reads %d, stale %d, errors %d, pairs compared %d, skipped %d", r.reads.Load(), r.staleReads.Load(),
			r.readErrors.Load(), r.pairsCompared.Load(), r.pairsSkipped.Load())
	}
	reqs, err := record.ReadRequests(filepath.Join(r.cfg.OutDir, record.RequestsFile))
	if err != nil || len(reqs) != 4 {
		t.Fatal(reqs, err)
	}
	for i, want := range []string{record.OK, record.Stale, record.OK, record.OK} {
		if reqs[i].Outcome != want {
			t.Errorf("read %d: outcome %s, want %s", i, reqs[i].Outcome, want)
		}
	}
	if reqs[1].Code != "stale" {
		t.Errorf("stale read's code %q", reqs[1].Code)
	}
	stale, err := record.ReadStale(filepath.Join(r.cfg.OutDir, record.StaleFile))
	if err != nil {
		t.Fatal(err)
	}
	want := []record.StaleRead{
		{UserID: user, Slug: slugs[0], Expected: true, Got: false, TMs: reqs[1].TMs, Kind: record.KindReadHTTP},
		{UserID: user, Slug: slugs[1], Expected: false, Got: true, TMs: reqs[1].TMs, Kind: record.KindReadHTTP},
	}
	if len(stale) != 2 || stale[0] != want[0] || stale[1] != want[1] {
		t.Fatalf("stale.csv %+v, want %+v", stale, want)
	}
}
