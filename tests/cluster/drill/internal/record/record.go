// Package record holds the drill's files: their rows, writers that can be
// appended to from many goroutines and flushed as the load runs, and
// readers for the check and the figures.
//
//	requests.csv  t_ms,kind,outcome,code,latency_ms   one row per attempt
//	acked.csv     WriteHeader                         one row per acknowledged write, in ack order
//	given_up.csv  WriteHeader                         writes the load stopped retrying (outcome unknown)
//	rejected.csv  WriteHeader                         writes refused with a 4xx other than 429
//	stale.csv     user_id,slug,expected,got,t_ms,kind one row per wrong pair of a stale read
//	users.txt, segments.txt                          one id / slug a line
//
// WriteHeader is user_id,slug,op,ttl_s,first_ms,end_ms,attempts,key,code:
// first_ms when the first attempt was sent, end_ms when the load stopped
// waiting (the 2xx, the refusal, the give-up), code the last attempt's.
// given_up.csv and rejected.csv are written when the load exits cleanly;
// the check refuses to run without them.
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
	RejectedFile = "rejected.csv"
	StaleFile    = "stale.csv"
	UsersFile    = "users.txt"
	SegmentsFile = "segments.txt"
)

var (
	RequestsHeader = []string{"t_ms", "kind", "outcome", "code", "latency_ms"}
	WriteHeader    = []string{"user_id", "slug", "op", "ttl_s", "first_ms", "end_ms", "attempts", "key", "code"}
	StaleHeader    = []string{"user_id", "slug", "expected", "got", "t_ms", "kind"}
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
	// Stale: a read answered (2xx, OK) but wrongly for a pair whose
	// expectation was settled (model.Writes.Judge); its code is "stale".
	Stale = "stale"
)

// Outcomes in the order they are reported.
var Outcomes = []string{OK, Error, Rejected, Stale}

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

// Write is one logical write as acked.csv, given_up.csv and rejected.csv
// hold it.
type Write struct {
	UserID   string
	Slug     string
	Op       model.Op
	TTLSec   int
	FirstMs  int64 // just before the first attempt was sent
	EndMs    int64 // the acknowledgement, the refusal or the give-up
	Attempts int
	Key      string
	Code     string // the last attempt's
}

// AckedWrite is the row of an acknowledged write.
func AckedWrite(a model.Ack, code string) Write {
	return Write{UserID: a.UserID, Slug: a.Slug, Op: a.Op, TTLSec: a.TTLSec, FirstMs: a.SentMs, EndMs: a.AckMs,
		Attempts: a.Attempts, Key: a.Key, Code: code}
}

// Ack is the write as acknowledged (a row of acked.csv).
func (w Write) Ack() model.Ack {
	return model.Ack{UserID: w.UserID, Slug: w.Slug, Op: w.Op, TTLSec: w.TTLSec, SentMs: w.FirstMs, AckMs: w.EndMs,
		Attempts: w.Attempts, Key: w.Key}
}

// Row is the write as a row under WriteHeader.
func (w Write) Row() []string {
	return []string{w.UserID, w.Slug, w.Op.String(), strconv.Itoa(w.TTLSec), strconv.FormatInt(w.FirstMs, 10),
		strconv.FormatInt(w.EndMs, 10), strconv.Itoa(w.Attempts), w.Key, w.Code}
}

// WriteRows are the rows of writes.
func WriteRows(ws []Write) [][]string {
	rows := make([][]string, 0, len(ws))
	for _, w := range ws {
		rows = append(rows, w.Row())
	}
	return rows
}

// StaleRead is one pair a read answered wrongly (a row of stale.csv).
type StaleRead struct {
	UserID   string
	Slug     string
	Expected bool // held
	Got      bool
	TMs      int64 // the read's start
	Kind     string
}

// Row is the stale pair as a row under StaleHeader.
func (s StaleRead) Row() []string {
	return []string{s.UserID, s.Slug, strconv.FormatBool(s.Expected), strconv.FormatBool(s.Got),
		strconv.FormatInt(s.TMs, 10), s.Kind}
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
		if !slices.Contains(Outcomes, row[2]) {
			return fmt.Errorf("outcome %q: want one of %s", row[2], strings.Join(Outcomes, ", "))
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

// ReadWrites reads acked.csv (in file order, the acknowledgement order),
// given_up.csv or rejected.csv.
func ReadWrites(path string) ([]Write, error) {
	var out []Write
	err := readCSV(path, WriteHeader, func(_ int, row []string) error {
		w := Write{UserID: row[0], Slug: row[1], Key: row[7], Code: row[8]}
		var err error
		if w.Op, err = model.ParseOp(row[2]); err != nil {
			return err
		}
		var n [4]int64
		for i, field := range []string{"ttl_s", "first_ms", "end_ms", "attempts"} {
			if n[i], err = parseInt(field, row[3+i]); err != nil {
				return err
			}
		}
		w.TTLSec, w.FirstMs, w.EndMs, w.Attempts = int(n[0]), n[1], n[2], int(n[3])
		if w.UserID == "" || w.Slug == "" || w.Key == "" {
			return errors.New("empty user_id, slug or key")
		}
		out = append(out, w)
		return nil
	})
	return out, err
}

// ReadAcks reads acked.csv, in file (acknowledgement) order.
func ReadAcks(path string) ([]model.Ack, error) {
	ws, err := ReadWrites(path)
	acks := make([]model.Ack, 0, len(ws))
	for _, w := range ws {
		acks = append(acks, w.Ack())
	}
	return acks, err
}

// ReadStale reads stale.csv.
func ReadStale(path string) ([]StaleRead, error) {
	var out []StaleRead
	err := readCSV(path, StaleHeader, func(_ int, row []string) error {
		s := StaleRead{UserID: row[0], Slug: row[1], Kind: row[5]}
		var err error
		if s.Expected, err = strconv.ParseBool(row[2]); err != nil {
			return fmt.Errorf("expected: %q is not true or false", row[2])
		}
		if s.Got, err = strconv.ParseBool(row[3]); err != nil {
			return fmt.Errorf("got: %q is not true or false", row[3])
		}
		if s.TMs, err = parseInt("t_ms", row[4]); err != nil {
			return err
		}
		out = append(out, s)
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
