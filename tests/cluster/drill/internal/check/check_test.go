package check

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"segments/tests/drill/internal/model"
	"segments/tests/drill/internal/record"
	userservicev1 "segments/usermock/gen/userservice/v1"
)

func TestExpectedFromLoadFiles(t *testing.T) {
	dir := t.TempDir()
	users := []string{"u1", "u2"}
	slugs := []string{"S_A", "S_B"}
	record.WriteLines(filepath.Join(dir, record.UsersFile), users)
	record.WriteLines(filepath.Join(dir, record.SegmentsFile), slugs)
	acks := []model.Ack{
		{UserID: "u1", Slug: "S_A", Op: model.Add, AckMs: 1, Attempts: 1, Key: "k1"},
		{UserID: "u1", Slug: "S_B", Op: model.Add, TTLSec: 5, AckMs: 2, Attempts: 2, Key: "k2"},
		{UserID: "u2", Slug: "S_B", Op: model.Add, AckMs: 3, Attempts: 1, Key: "k3"},
		{UserID: "u2", Slug: "S_B", Op: model.Remove, AckMs: 4, Attempts: 1, Key: "k4"},
		{UserID: "u2", Slug: "S_A", Op: model.Remove, AckMs: 5, Attempts: 1, Key: "k5"},
		{UserID: "u2", Slug: "S_B", Op: model.Add, AckMs: 6, Attempts: 1, Key: "k6"},
	}
	var ws []record.Write
	for _, a := range acks {
		ws = append(ws, record.AckedWrite(a, "204"))
	}
	record.WriteCSV(filepath.Join(dir, record.AckedFile), record.WriteHeader, record.WriteRows(ws))

	// Each of the files the load writes at a clean exit (and stale.csv) must
	// be there.
	for _, f := range []string{record.GivenUpFile, record.RejectedFile, record.StaleFile} {
		if _, err := LoadExpected(dir); err == nil {
			t.Fatalf("without %s (the load did not exit cleanly) the files must be refused", f)
		}
		header := record.WriteHeader
		if f == record.StaleFile {
			header = record.StaleHeader
		}
		record.WriteCSV(filepath.Join(dir, f), header, nil)
	}
	exp, err := LoadExpected(dir)
	if err != nil || len(exp.GivenUp)+len(exp.Rejected)+len(exp.Stale) != 0 {
		t.Fatal(err, exp)
	}
	if f := exp.LoadFailures(); len(f) != 0 {
		t.Fatalf("failures %q with nothing given up, rejected or stale", f)
	}
	if h := exp.Held("u1"); !slices.Equal(h, []string{"S_A"}) {
		t.Fatalf("u1 holds %v, want [S_A] (S_B had a TTL)", h)
	}
	if h := exp.Held("u2"); !slices.Equal(h, []string{"S_B"}) {
		t.Fatalf("u2 holds %v, want [S_B]", h)
	}
	if got := exp.Filter("u1", []string{"S_B", "AVITO_TRIAL", "S_A"}); !slices.Equal(got, []string{"S_A", "S_B"}) {
		t.Fatalf("Filter %v", got)
	}
	if h := exp.State.TTLHorizonMs(); h != 5002 {
		t.Fatalf("horizon %d, want 5002", h)
	}
	expRows, events := exp.Rows()
	wantExp := [][]string{{"u1", "S_A", "true"}, {"u1", "S_B", "false"}, {"u2", "S_A", "false"}, {"u2", "S_B", "true"}}
	if !slices.EqualFunc(expRows, wantExp, slices.Equal) {
		t.Fatalf("expected rows %v, want %v", expRows, wantExp)
	}
	wantEv := [][]string{{"u1", "S_A", "1", "0"}, {"u1", "S_B", "1", "0"}, {"u2", "S_A", "0", "1"}, {"u2", "S_B", "2", "1"}}
	if !slices.EqualFunc(events, wantEv, slices.Equal) {
		t.Fatalf("event rows %v, want %v", events, wantEv)
	}

	// A given-up write makes its pair unknown: neither compared nor written.
	record.WriteCSV(filepath.Join(dir, record.GivenUpFile), record.WriteHeader, record.WriteRows([]record.Write{
		{UserID: "u2", Slug: "S_B", Op: model.Remove, FirstMs: 7, EndMs: 9000, Attempts: 9, Key: "k7", Code: "503"}}))
	exp, err = LoadExpected(dir)
	if err != nil || len(exp.GivenUp) != 1 {
		t.Fatal(err, exp.GivenUp)
	}
	if f := exp.LoadFailures(); len(f) != 1 || !strings.Contains(f[0], "given up") {
		t.Fatalf("failures %q, want the given-up write", f)
	}
	if h := exp.Held("u2"); len(h) != 0 {
		t.Fatalf("u2 holds %v, want [] (S_B unknown)", h)
	}
	if got := exp.Filter("u2", []string{"S_B", "S_A"}); !slices.Equal(got, []string{"S_A"}) {
		t.Fatalf("Filter u2 %v", got)
	}
	expRows, events = exp.Rows()
	if len(expRows) != 3 || len(events) != 3 || expRows[2][1] != "S_A" {
		t.Fatalf("rows with an unknown pair: %v %v", expRows, events)
	}

	os.Remove(filepath.Join(dir, record.AckedFile))
	if _, err := LoadExpected(dir); err == nil {
		t.Fatal("a missing acked.csv must be refused")
	}
}

// A rejected write or a stale read fails the check; a rejected write's pair
// is unknown, as a given-up one's.
func TestRejectedAndStaleFail(t *testing.T) {
	dir := t.TempDir()
	record.WriteLines(filepath.Join(dir, record.UsersFile), []string{"u1"})
	record.WriteLines(filepath.Join(dir, record.SegmentsFile), []string{"S_A", "S_B"})
	record.WriteCSV(filepath.Join(dir, record.AckedFile), record.WriteHeader, record.WriteRows([]record.Write{
		record.AckedWrite(model.Ack{UserID: "u1", Slug: "S_A", Op: model.Add, SentMs: 1, AckMs: 2, Attempts: 1, Key: "k1"}, "204")}))
	record.WriteCSV(filepath.Join(dir, record.GivenUpFile), record.WriteHeader, nil)
	record.WriteCSV(filepath.Join(dir, record.RejectedFile), record.WriteHeader, record.WriteRows([]record.Write{
		{UserID: "u1", Slug: "S_B", Op: model.Add, FirstMs: 3, EndMs: 4, Attempts: 1, Key: "k2", Code: "404"}}))
	record.WriteCSV(filepath.Join(dir, record.StaleFile), record.StaleHeader, nil)

	exp, err := LoadExpected(dir)
	if err != nil {
		t.Fatal(err)
	}
	f := exp.LoadFailures()
	if len(f) != 1 || !strings.Contains(f[0], "1 writes were rejected") || !strings.Contains(f[0], "k2") ||
		!strings.Contains(f[0], record.RejectedFile) {
		t.Fatalf("failures %q, want the rejected write", f)
	}
	if rows, _ := exp.Rows(); len(rows) != 1 || rows[0][1] != "S_A" {
		t.Fatalf("rows %v: the rejected pair must be left out", rows)
	}

	record.WriteCSV(filepath.Join(dir, record.RejectedFile), record.WriteHeader, nil)
	record.WriteCSV(filepath.Join(dir, record.StaleFile), record.StaleHeader, [][]string{
		record.StaleRead{UserID: "u1", Slug: "S_A", Expected: true, Got: false, TMs: 5000, Kind: record.KindReadGRPC}.Row()})
	if exp, err = LoadExpected(dir); err != nil {
		t.Fatal(err)
	}
	f = exp.LoadFailures()
	if len(f) != 1 || !strings.Contains(f[0], "1 stale pairs") || !strings.Contains(f[0], record.StaleFile) {
		t.Fatalf("failures %q, want the stale read", f)
	}
	if rows, _ := exp.Rows(); len(rows) != 2 {
		t.Fatalf("rows %v: a stale read leaves the expectation alone", rows)
	}
}

func TestMockState(t *testing.T) {
	for s, want := range map[userservicev1.UserState]string{
		userservicev1.UserState_USER_STATE_ACTIVE:   "active",
		userservicev1.UserState_USER_STATE_EXCLUDED: "excluded",
	} {
		if got, err := MockState(s); err != nil || got != want {
			t.Fatalf("MockState(%v) = %q, %v; want %q", s, got, err, want)
		}
	}
	if _, err := MockState(userservicev1.UserState_USER_STATE_UNSPECIFIED); err == nil {
		t.Fatal("an unspecified state must be refused")
	}
}
