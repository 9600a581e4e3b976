package record

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"segments/tests/drill/internal/model"
)

func TestRequestsRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), RequestsFile)
	l, err := Create(path, RequestsHeader)
	if err != nil {
		t.Fatal(err)
	}
	in := []Request{
		{TMs: 1700000000123, Kind: KindWrite, Outcome: OK, Code: "204", LatencyMs: 12.5},
		{TMs: 1700000000200, Kind: KindReadGRPC, Outcome: Error, Code: "Unavailable", LatencyMs: 0.3},
		{TMs: 1700000000300, Kind: KindReadHTTP, Outcome: Error, Code: "transport", LatencyMs: 3000},
		{TMs: 1700000000400, Kind: KindUserEvent, Outcome: Rejected, Code: "NotFound", LatencyMs: 1},
		{TMs: 1700000000500, Kind: KindReadHTTP, Outcome: Stale, Code: "stale", LatencyMs: 2.5},
	}
	for _, r := range in {
		if err := l.AppendRequest(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	wantText := "t_ms,kind,outcome,code,latency_ms\n1700000000123,write,ok,204,12.5\n"
	if !strings.HasPrefix(string(data), wantText) {
		t.Fatalf("file starts %q, want %q", string(data), wantText)
	}
	out, err := ReadRequests(path)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(in, out) {
		t.Fatalf("read back %+v, want %+v", out, in)
	}
	if e := out[2].EndMs(); e != 1700000003300 {
		t.Fatalf("EndMs %d, want 1700000003300", e)
	}
}

func TestWritesRoundTrip(t *testing.T) {
	dir := t.TempDir()
	acks := []model.Ack{
		{UserID: "u1", Slug: "DRILL_r_A", Op: model.Add, TTLSec: 4, SentMs: 900, AckMs: 1000, Attempts: 3, Key: "k-1"},
		{UserID: "u1", Slug: "DRILL_r_A", Op: model.Remove, SentMs: 1900, AckMs: 2000, Attempts: 1, Key: "k,2"},
	}
	var ws []Write
	for _, a := range acks {
		ws = append(ws, AckedWrite(a, "204"))
	}
	if err := WriteCSV(filepath.Join(dir, AckedFile), WriteHeader, WriteRows(ws)); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(filepath.Join(dir, AckedFile))
	wantText := "user_id,slug,op,ttl_s,first_ms,end_ms,attempts,key,code\nu1,DRILL_r_A,add,4,900,1000,3,k-1,204\n"
	if !strings.HasPrefix(string(data), wantText) {
		t.Fatalf("file starts %q, want %q", data, wantText)
	}
	got, err := ReadAcks(filepath.Join(dir, AckedFile))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, acks) {
		t.Fatalf("read back %+v, want %+v", got, acks)
	}

	// given_up.csv and rejected.csv: the same rows.
	for _, w := range []Write{
		{UserID: "u2", Slug: "DRILL_r_B", Op: model.Add, FirstMs: 5, EndMs: 125000, Attempts: 40, Key: "k-3", Code: "503"},
		{UserID: "u3", Slug: "DRILL_r_C", Op: model.Remove, FirstMs: 7, EndMs: 9, Attempts: 1, Key: "k-4", Code: "404"},
	} {
		path := filepath.Join(dir, "w.csv")
		if err := WriteCSV(path, WriteHeader, WriteRows([]Write{w})); err != nil {
			t.Fatal(err)
		}
		gs, err := ReadWrites(path)
		if err != nil || len(gs) != 1 || gs[0] != w {
			t.Fatalf("read back %+v, %v; want %+v", gs, err, w)
		}
	}
	if err := WriteCSV(filepath.Join(dir, "none.csv"), WriteHeader, nil); err != nil {
		t.Fatal(err)
	}
	if gs, err := ReadWrites(filepath.Join(dir, "none.csv")); err != nil || len(gs) != 0 {
		t.Fatalf("header only: %v %v", gs, err)
	}
}

func TestStaleRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), StaleFile)
	in := []StaleRead{
		{UserID: "u1", Slug: "DRILL_r_A", Expected: true, Got: false, TMs: 1700000000123, Kind: KindReadGRPC},
		{UserID: "u2", Slug: "DRILL_r_B", Expected: false, Got: true, TMs: 1700000000456, Kind: KindReadHTTP},
	}
	var rows [][]string
	for _, s := range in {
		rows = append(rows, s.Row())
	}
	if err := WriteCSV(path, StaleHeader, rows); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	if want := "user_id,slug,expected,got,t_ms,kind\nu1,DRILL_r_A,true,false,1700000000123,read_grpc\n"; !strings.HasPrefix(string(data), want) {
		t.Fatalf("file starts %q, want %q", data, want)
	}
	out, err := ReadStale(path)
	if err != nil || !slices.Equal(out, in) {
		t.Fatalf("read back %+v, %v", out, err)
	}
	os.WriteFile(path, []byte("user_id,slug,expected,got,t_ms,kind\nu1,S,yes,false,1,read_http\n"), 0o644)
	if _, err := ReadStale(path); err == nil {
		t.Fatal("expected=yes accepted")
	}
}

func TestMalformedFilesAreRefused(t *testing.T) {
	dir := t.TempDir()
	for name, text := range map[string]string{
		"header":  "t_ms,kind,outcome,code\n1,write,ok,204\n",
		"kind":    "t_ms,kind,outcome,code,latency_ms\n1,delete,ok,204,1.0\n",
		"outcome": "t_ms,kind,outcome,code,latency_ms\n1,write,fine,204,1.0\n",
		"time":    "t_ms,kind,outcome,code,latency_ms\nsoon,write,ok,204,1.0\n",
		"fields":  "t_ms,kind,outcome,code,latency_ms\n1,write,ok,204\n",
		"empty":   "",
	} {
		path := filepath.Join(dir, name+".csv")
		os.WriteFile(path, []byte(text), 0o644)
		if _, err := ReadRequests(path); err == nil {
			t.Errorf("%s: malformed file accepted", name)
		}
	}
}

func TestLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), UsersFile)
	if err := WriteLines(path, []string{"a", "b"}); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	if string(data) != "a\nb\n" {
		t.Fatalf("file %q", data)
	}
	got, err := ReadLines(path)
	if err != nil || !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("ReadLines %v %v", got, err)
	}
}
