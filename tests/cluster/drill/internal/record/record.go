// Package record holds the drill's files: their rows, writers that can be
// appended to from many goroutines and flushed as the load runs, and
// readers for the check and the figures.
//
//	requests.csv  t_ms,kind,outcome,code,latency_ms          one row per attempt
//	acked.csv     user_id,slug,op,ttl_s,ack_ms,attempts,key  one row per acknowledged write, in ack order
//	given_up.csv  user_id,slug,op,ttl_s,first_ms,attempts,key writes never acknowledged
//	users.txt, segments.txt                                 one id / slug a line
package record

import (
	"bufio"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"

	"segments/tests/drill/internal/model"
)

// File names in the output directory.
const (
	RequestsFile = "requests.csv"
	AckedFile    = "acked.csv"
	GivenUpFile  = "given_up.csv"
	UsersFile    = "users.txt"
	SegmentsFile = "segments.txt"
)

var (
	RequestsHeader = []string{"t_ms", "kind", "outcome", "code", "latency_ms"}
	AckedHeader    = []string{"user_id", "slug", "op", "ttl_s", "ack_ms", "attempts", "key"}
	GivenUpHeader  = []string{"user_id", "slug", "op", "ttl_s", "first_ms", "attempts", "key"}
)

// Kinds of requests.
const (
	KindWrite     = "write"
	KindReadHTTP  = "read_http"
	KindReadGRPC  = "read_grpc"
	KindUserEvent = "user_event"
)

// Kinds in the order they are reported.
var Kinds = []string{KindWrite, KindReadHTTP, KindReadGRPC, KindUserEvent}

// Outcomes of an attempt.
const (
	OK       = "ok"
	Error    = "error"    // transport, timeout, 5xx, 429, gRPC codes of the infrastructure
	Rejected = "rejected" // a 4xx (not 429) or a gRPC client-error code: unexpected in the drill
)

// Request is one attempt.
type Request struct {
	TMs       int64 // Unix epoch ms at the attempt's start
	Kind      string
	Outcome   string
	Code      string // HTTP status, gRPC code name, or "transport"
	LatencyMs float64
}

// EndMs is when the attempt's outcome was known.
func (r Request) EndMs() int64 { return r.TMs + int64(r.LatencyMs+0.5) }

func (r Request) row() []string {
	return []string{strconv.FormatInt(r.TMs, 10), r.Kind, r.Outcome, r.Code,
		strconv.FormatFloat(r.LatencyMs, 'f', 1, 64)}
}

func AckRow(a model.Ack) []string {
	return []string{a.UserID, a.Slug, a.Op.String(), strconv.Itoa(a.TTLSec),
		strconv.FormatInt(a.AckMs, 10), strconv.Itoa(a.Attempts), a.Key}
}

// GivenUp is a write the load stopped retrying: its outcome is unknown.
type GivenUp struct {
	UserID   string
	Slug     string
	Op       model.Op
	TTLSec   int
	FirstMs  int64
	Attempts int
	Key      string
}

func GivenUpRow(g GivenUp) []string {
	return []string{g.UserID, g.Slug, g.Op.String(), strconv.Itoa(g.TTLSec),
		strconv.FormatInt(g.FirstMs, 10), strconv.Itoa(g.Attempts), g.Key}
}

// Log is a CSV file that goroutines append rows to; Flush makes them
// visible to readers of the file.
type Log struct {
	mu sync.Mutex
	f  *os.File
	w  *csv.Writer
}

// Create makes (truncates) path and writes the header.
func Create(path string, header []string) (*Log, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	l := &Log{f: f, w: csv.NewWriter(f)}
	if err := l.Append(header); err != nil {
		f.Close()
		return nil, err
	}
	return l, nil
}

func (l *Log) Append(row []string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(row)
}

func (l *Log) AppendRequest(r Request) error { return l.Append(r.row()) }

func (l *Log) Flush() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.w.Flush()
	return l.w.Error()
}

func (l *Log) Close() error {
	err := l.Flush()
	if cerr := l.f.Close(); err == nil {
		err = cerr
	}
	return err
}

// readCSV reads a CSV file whose first row must be header; fn gets each
// further row (numbered from 2, as an editor counts lines).
func readCSV(path string, header []string, fn func(line int, row []string) error) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	r := csv.NewReader(bufio.NewReader(f))
	r.FieldsPerRecord = len(header)
	r.ReuseRecord = true
	got, err := r.Read()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("%s: empty, want the header %s", path, strings.Join(header, ","))
		}
		return fmt.Errorf("%s: %w", path, err)
	}
	if !slices.Equal(got, header) {
		return fmt.Errorf("%s: header %q, want %q", path, strings.Join(got, ","), strings.Join(header, ","))
	}
	for line := 2; ; line++ {
		row, err := r.Read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		if err := fn(line, row); err != nil {
			return fmt.Errorf("%s:%d: %w", path, line, err)
		}
	}
}

func parseInt(field, s string) (int64, error) {
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: %q is not an integer", field, s)
	}
	return v, nil
}

// ReadRequests reads requests.csv.
func ReadRequests(path string) ([]Request, error) {
	var out []Request
	err := readCSV(path, RequestsHeader, func(_ int, row []string) error {
		t, err := parseInt("t_ms", row[0])
		if err != nil {
			return err
		}
		if !slices.Contains(Kinds, row[1]) {
			return fmt.Errorf("kind %q: want one of %s", row[1], strings.Join(Kinds, ", "))
		}
		if row[2] != OK && row[2] != Error && row[2] != Rejected {
			return fmt.Errorf("outcome %q: want ok, error or rejected", row[2])
		}
		lat, err := strconv.ParseFloat(row[4], 64)
		if err != nil || lat < 0 {
			return fmt.Errorf("latency_ms: %q is not a duration", row[4])
		}
		out = append(out, Request{TMs: t, Kind: row[1], Outcome: row[2], Code: row[3], LatencyMs: lat})
		return nil
	})
	return out, err
}

// ReadAcks reads acked.csv, in file (acknowledgement) order.
func ReadAcks(path string) ([]model.Ack, error) {
	var out []model.Ack
	err := readCSV(path, AckedHeader, func(_ int, row []string) error {
		op, err := model.ParseOp(row[2])
		if err != nil {
			return err
		}
		ttl, err := parseInt("ttl_s", row[3])
		if err != nil {
			return err
		}
		ack, err := parseInt("ack_ms", row[4])
		if err != nil {
			return err
		}
		attempts, err := parseInt("attempts", row[5])
		if err != nil {
			return err
		}
		if row[0] == "" || row[1] == "" || row[6] == "" {
			return errors.New("empty user_id, slug or key")
		}
		out = append(out, model.Ack{UserID: row[0], Slug: row[1], Op: op, TTLSec: int(ttl), AckMs: ack,
			Attempts: int(attempts), Key: row[6]})
		return nil
	})
	return out, err
}

// ReadGivenUp reads given_up.csv (the load writes it, perhaps with the
// header only, when it exits cleanly).
func ReadGivenUp(path string) ([]GivenUp, error) {
	var out []GivenUp
	err := readCSV(path, GivenUpHeader, func(_ int, row []string) error {
		op, err := model.ParseOp(row[2])
		if err != nil {
			return err
		}
		ttl, err := parseInt("ttl_s", row[3])
		if err != nil {
			return err
		}
		first, err := parseInt("first_ms", row[4])
		if err != nil {
			return err
		}
		attempts, err := parseInt("attempts", row[5])
		if err != nil {
			return err
		}
		out = append(out, GivenUp{UserID: row[0], Slug: row[1], Op: op, TTLSec: int(ttl), FirstMs: first,
			Attempts: int(attempts), Key: row[6]})
		return nil
	})
	return out, err
}

// WriteLines writes one item a line.
func WriteLines(path string, items []string) error {
	var b strings.Builder
	for _, it := range items {
		b.WriteString(it)
		b.WriteByte('\n')
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

// ReadLines reads the non-empty lines of path.
func ReadLines(path string) ([]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, l := range strings.Split(string(data), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out, nil
}

// WriteCSV writes a whole CSV file at once.
func WriteCSV(path string, header []string, rows [][]string) error {
	l, err := Create(path, header)
	if err != nil {
		return err
	}
	for _, r := range rows {
		if err := l.Append(r); err != nil {
			l.Close()
			return err
		}
	}
	return l.Close()
}
