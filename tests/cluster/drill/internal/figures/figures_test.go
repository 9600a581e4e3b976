package figures

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"segments/tests/drill/internal/record"
)

func req(t int64, kind, outcome string, lat float64) record.Request {
	code := "204"
	if outcome != record.OK {
		code = "503"
	}
	return record.Request{TMs: t, Kind: kind, Outcome: outcome, Code: code, LatencyMs: lat}
}

func find(t *testing.T, w Window, kind string) KindFigures {
	t.Helper()
	for _, k := range w.Kinds {
		if k.Kind == kind {
			return k
		}
	}
	t.Fatalf("window %s has no kind %s", w.Name, kind)
	return KindFigures{}
}

const (
	W  = record.KindWrite
	RH = record.KindReadHTTP
	RG = record.KindReadGRPC
)

func TestWindowsRecoveryAndStreaks(t *testing.T) {
	marks, err := ParseMarks(strings.NewReader(
		"fault,kill_ms,healthy_ms,rejoined_ms\nserver,10000,10500,14000\npostgres,20000,,\n"))
	if err != nil {
		t.Fatal(err)
	}
	reqs := []record.Request{
		// baseline: all fine but one rejected read
		req(1000, W, record.OK, 10),
		req(2000, RH, record.Rejected, 5),
		req(3000, RG, record.OK, 1),
		req(3500, RG, record.Stale, 1), // an answer, wrong: not an error
		// started before the server kill, failed after it: the server's
		req(9990, W, record.Error, 3000), // ends 12990
		// server window: writes fail 10100..11300, then work
		req(10100, W, record.Error, 100),  // ends 10200
		req(10300, W, record.Error, 1000), // ends 11300
		req(11400, W, record.OK, 20),      // ends 11420
		req(12000, W, record.OK, 20),
		req(10050, RH, record.Error, 10), // ends 10060
		req(10070, RH, record.OK, 10),
		req(10075, RH, record.Stale, 5),  // ends 10080
		req(10090, RH, record.Error, 10), // ends 10100: a second run, 10 ms
		req(15000, RG, record.OK, 2),
		// postgres window, to the end of the attempts
		req(20000, W, record.Error, 500), // ends 20500
		req(21000, W, record.Error, 500), // ends 21500
		req(25000, W, record.OK, 10),     // ends 25010
	}
	res := Compute(reqs, marks)
	if len(res.Windows) != 3 {
		t.Fatalf("%d windows, want 3", len(res.Windows))
	}
	base, srv, pg := res.Windows[0], res.Windows[1], res.Windows[2]
	if base.Name != "baseline" || base.StartMs != 1010 || base.EndMs != 10000 {
		t.Fatalf("baseline %+v", base)
	}
	if k := find(t, base, W); k.Attempts != 1 || k.Errors != 0 || k.RecoveryMs != nil {
		t.Fatalf("baseline writes %+v", k)
	}
	if k := find(t, base, RH); k.Attempts != 1 || k.Errors != 1 || k.Rejected != 1 || k.Stale != 0 || k.LongestErrorStreakMs != 5 {
		t.Fatalf("baseline http reads %+v", k)
	}
	if k := find(t, base, RG); k.Attempts != 2 || k.Errors != 0 || k.Stale != 1 || k.LongestErrorStreakMs != 0 {
		t.Fatalf("baseline grpc reads %+v", k)
	}
	if k := find(t, base, KindAll); k.Attempts != 4 || k.Errors != 1 || k.Stale != 1 {
		t.Fatalf("baseline all %+v", k)
	}
	if srv.StartMs != 10000 || srv.EndMs != 20000 || *srv.HealthyAfterMs != 500 || *srv.RejoinedAfterMs != 4000 {
		t.Fatalf("server window %+v", srv)
	}
	// Writes: in outcome order 10200(err) 11300(err) 11420 12020 12990(err):
	// 3 errors of 5; the last ends 12990; the run 10100..11300 is 1200 ms,
	// the lone 3 s timeout 3000 ms.
	k := find(t, srv, W)
	if k.Attempts != 5 || k.Errors != 3 || k.Rejected != 0 || *k.RecoveryMs != 2990 || k.LongestErrorStreakMs != 3000 {
		t.Fatalf("server writes %+v (recovery %d)", k, *k.RecoveryMs)
	}
	k = find(t, srv, RH)
	if k.Attempts != 4 || k.Errors != 2 || k.Stale != 1 || *k.RecoveryMs != 100 || k.LongestErrorStreakMs != 10 {
		t.Fatalf("server http reads %+v (recovery %d)", k, *k.RecoveryMs)
	}
	k = find(t, srv, RG)
	if k.Attempts != 1 || k.Errors != 0 || *k.RecoveryMs != 0 || k.LongestErrorStreakMs != 0 {
		t.Fatalf("server grpc reads %+v", k)
	}
	k = find(t, srv, KindAll)
	if k.Attempts != 10 || k.Errors != 5 || k.Stale != 1 || *k.RecoveryMs != 2990 || k.LongestErrorStreakMs != 3000 {
		t.Fatalf("server all %+v", k)
	}
	if pg.Name != "postgres" || pg.EndMs != 25011 || pg.HealthyAfterMs != nil || pg.RejoinedAfterMs != nil {
		t.Fatalf("postgres window %+v", pg)
	}
	k = find(t, pg, W)
	if k.Attempts != 3 || k.Errors != 2 || *k.RecoveryMs != 1500 || k.LongestErrorStreakMs != 1500 {
		t.Fatalf("postgres writes %+v (recovery %d)", k, *k.RecoveryMs)
	}
	if k := find(t, pg, record.KindUserEvent); k.Attempts != 0 || *k.RecoveryMs != 0 {
		t.Fatalf("postgres user events %+v", k)
	}

	var js bytes.Buffer
	if err := res.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var back Result
	if err := json.Unmarshal(js.Bytes(), &back); err != nil || len(back.Windows) != 3 ||
		*back.Windows[1].Kinds[0].RecoveryMs != 2990 {
		t.Fatalf("figures.json does not read back: %v\n%s", err, js.String())
	}
	var tab bytes.Buffer
	if err := res.WriteTable(&tab); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(tab.String(), "server") || !strings.Contains(tab.String(), "stale") || strings.Count(tab.String(), "\n") != 1+3*5 {
		t.Fatalf("table:\n%s", tab.String())
	}
}

func TestNoMarksIsAllBaseline(t *testing.T) {
	res := Compute([]record.Request{req(100, W, record.OK, 1), req(200, W, record.Error, 1)}, nil)
	if len(res.Windows) != 1 || res.Windows[0].EndMs != 202 {
		t.Fatalf("%+v", res.Windows)
	}
	if k := find(t, res.Windows[0], W); k.Attempts != 2 || k.Errors != 1 {
		t.Fatalf("%+v", k)
	}
}

func TestMalformedMarks(t *testing.T) {
	for name, text := range map[string]string{
		"header":  "fault,kill\nx,1\n",
		"order":   "fault,kill_ms,healthy_ms,rejoined_ms\na,200,,\nb,100,,\n",
		"kill":    "fault,kill_ms,healthy_ms,rejoined_ms\na,,,\n",
		"before":  "fault,kill_ms,healthy_ms,rejoined_ms\na,200,100,\n",
		"fields":  "fault,kill_ms,healthy_ms,rejoined_ms\na,200\n",
		"number":  "fault,kill_ms,healthy_ms,rejoined_ms\na,2e3,,\n",
		"unnamed": "fault,kill_ms,healthy_ms,rejoined_ms\n,200,,\n",
	} {
		if _, err := ParseMarks(strings.NewReader(text)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
