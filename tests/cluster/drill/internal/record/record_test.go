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

func TestAcksAndGivenUpRoundTrip(t *testing.T) {
	dir := t.TempDir()
	acks := []model.Ack{
		{UserID: "u1", Slug: "DRILL_r_A", Op: model.Add, TTLSec: 4, AckMs: 1000, Attempts: 3, Key: "k-1"},
		{UserID: "u1", Slug: "DRILL_r_A", Op: model.Remove, AckMs: 2000, Attempts: 1, Key: "k,2"},
	}
	var rows [][]string
	for _, a := range acks {
		rows = append(rows, AckRow(a))
	}
	if err := WriteCSV(filepath.Join(dir, AckedFile), AckedHeader, rows); err != nil {
		t.Fatal(err)
	}
	got, err := ReadAcks(filepath.Join(dir, AckedFile))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, acks) {
		t.Fatalf("read back %+v, want %+v", got, acks)
	}

	g := GivenUp{UserID: "u2", Slug: "DRILL_r_B", Op: model.Add, TTLSec: 0, FirstMs: 5, Attempts: 40, Key: "k-3"}
	if err := WriteCSV(filepath.Join(dir, GivenUpFile), GivenUpHeader, [][]string{GivenUpRow(g)}); err != nil {
		t.Fatal(err)
	}
	gs, err := ReadGivenUp(filepath.Join(dir, GivenUpFile))
	if err != nil || len(gs) != 1 || gs[0] != g {
		t.Fatalf("given up read back %+v, %v", gs, err)
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
