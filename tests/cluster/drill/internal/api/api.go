// Package api holds the drill's clients: REST through the gateways, gRPC to
// the servers and to the mock's admin service, each call classified into
// the outcomes of requests.csv.
package api

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"segments/tests/drill/internal/record"
)

// CallTimeout bounds each attempt against the service.
const CallTimeout = 3 * time.Second

// ReadToken reads a JWT file (surrounding whitespace dropped).
func ReadToken(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	tok := strings.TrimSpace(string(data))
	if tok == "" {
		return "", fmt.Errorf("%s: empty token", path)
	}
	return tok, nil
}

// Attempt is the classified outcome of one call.
type Attempt struct {
	Start   time.Time
	Latency time.Duration
	Outcome string // record.OK, record.Error, record.Rejected
	Code    string // HTTP status, gRPC code name, or "transport"
	Status  int    // HTTP status; 0 for gRPC or a transport error
	Body    []byte // HTTP answer body
	Err     error  // transport or gRPC error
}

// Request is the attempt as a row of requests.csv.
func (a Attempt) Request(kind string) record.Request {
	return record.Request{TMs: a.Start.UnixMilli(), Kind: kind, Outcome: a.Outcome, Code: a.Code,
		LatencyMs: float64(a.Latency.Microseconds()) / 1000}
}

// REST calls the gateways' HTTP API.
type REST struct {
	base   string
	token  string
	client *http.Client
}

// NewREST makes a client of http://addr with the admin token.
func NewREST(addr, token string) *REST {
	tr := &http.Transport{
		MaxIdleConns:        256,
		MaxIdleConnsPerHost: 256,
		IdleConnTimeout:     30 * time.Second,
	}
	return &REST{base: "http://" + addr, token: token, client: &http.Client{Transport: tr, Timeout: CallTimeout}}
}

// Do sends one request; key, when not empty, is the Idempotency-Key.
func (c *REST) Do(ctx context.Context, method, path string, body []byte, key string) Attempt {
	a := Attempt{Start: time.Now()}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		a.Outcome, a.Code, a.Err = record.Error, "transport", err
		return a
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	resp, err := c.client.Do(req)
	if err == nil {
		var data []byte
		data, err = io.ReadAll(resp.Body)
		resp.Body.Close()
		if err == nil {
			a.Status, a.Code, a.Body = resp.StatusCode, strconv.Itoa(resp.StatusCode), data
		}
	}
	a.Latency = time.Since(a.Start)
	switch {
	case err != nil:
		a.Outcome, a.Code, a.Err = record.Error, "transport", err
	case a.Status >= 200 && a.Status < 300:
		a.Outcome = record.OK
	case a.Status >= 400 && a.Status < 500 && a.Status != http.StatusTooManyRequests:
		a.Outcome = record.Rejected
	default:
		a.Outcome = record.Error
	}
	return a
}

// Dial opens a gRPC client connection (plaintext; connects lazily).
func Dial(addr string) (*grpc.ClientConn, error) {
	return grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
}

// WithToken adds the bearer token to an outgoing gRPC context.
func WithToken(ctx context.Context, token string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
}

// GRPCAttempt classifies a finished gRPC call begun at start.
func GRPCAttempt(start time.Time, err error) Attempt {
	a := Attempt{Start: start, Latency: time.Since(start), Err: err}
	code := status.Code(err)
	a.Code = code.String()
	switch code {
	case codes.OK:
		a.Outcome = record.OK
	case codes.InvalidArgument, codes.NotFound, codes.AlreadyExists, codes.FailedPrecondition,
		codes.OutOfRange, codes.PermissionDenied, codes.Unauthenticated, codes.Unimplemented:
		a.Outcome = record.Rejected
	default: // Unavailable, DeadlineExceeded, Internal, Aborted, ResourceExhausted, ...
		a.Outcome = record.Error
	}
	return a
}

// Describe is a short description of a failed attempt for logs.
func (a Attempt) Describe() string {
	switch {
	case a.Err != nil:
		return a.Code + ": " + a.Err.Error()
	case len(a.Body) > 0:
		return a.Code + " " + strings.TrimSpace(string(a.Body))
	}
	return a.Code
}
