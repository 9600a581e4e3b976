package check

import (
	"os"
	"path/filepath"
	"slices"
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
	var rows [][]string
	for _, a := range acks {
		rows = append(rows, record.AckRow(a))
	}
	record.WriteCSV(filepath.Join(dir, record.AckedFile), record.AckedHeader, rows)

	if _, _, err := LoadExpected(dir); err == nil {
		t.Fatal("without given_up.csv (the load did not exit cleanly) the files must be refused")
	}
	record.WriteCSV(filepath.Join(dir, record.GivenUpFile), record.GivenUpHeader, nil)
	exp, givenUp, err := LoadExpected(dir)
	if err != nil || len(givenUp) != 0 {
		t.Fatal(err, givenUp)
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
	record.WriteCSV(filepath.Join(dir, record.GivenUpFile), record.GivenUpHeader, [][]string{
		record.GivenUpRow(record.GivenUp{UserID: "u2", Slug: "S_B", Op: model.Remove, FirstMs: 7, Attempts: 9, Key: "k7"})})
	exp, givenUp, err = LoadExpected(dir)
	if err != nil || len(givenUp) != 1 {
		t.Fatal(err, givenUp)
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
	if _, _, err := LoadExpected(dir); err == nil {
		t.Fatal("a missing acked.csv must be refused")
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
