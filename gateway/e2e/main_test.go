// Package e2e drives the REST gateway end to end: the real segments-server
// binary (SEGMENTS_SERVER_BIN) on the real PostgreSQL
// (SEGMENTS_TEST_DATABASE_URL), with the real gateway in process. Tests run
// one after another and truncate the tables first; they share one server
// and one gateway started by TestMain.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	neturl "net/url"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	_ "github.com/lib/pq"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health/grpc_health_v1"

	"segments/gateway"
	"segments/gateway/internal/testutil"
)

// maxBodyBytes is the main gateway's body limit: small enough to test 413,
// large enough for the long inputs of the junk tests.
const maxBodyBytes = 64 << 10

// The shared stack, set up by TestMain.
var (
	baseURL    string               // the gateway, http://127.0.0.1:N
	serverBin  string               // SEGMENTS_SERVER_BIN
	server     *serverProcess       // the shared server
	serverAddr string               // its gRPC address
	db         *sql.DB              // the test database
	gatewayLog *testutil.SyncBuffer // the gateway's JSON logs
	httpClient *http.Client         // no redirects followed, bounded time
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	bin := os.Getenv("SEGMENTS_SERVER_BIN")
	dbURL := os.Getenv("SEGMENTS_TEST_DATABASE_URL")
	if bin == "" || dbURL == "" {
		fmt.Fprintln(os.Stderr, "FAIL: e2e tests need SEGMENTS_SERVER_BIN (the segments-server binary) and "+
			"SEGMENTS_TEST_DATABASE_URL (a database with db/schema.sql applied); run them through ctest or scripts/test.sh")
		return 1
	}
	serverBin = bin
	if err := makeTokens(bin); err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: making tokens: %v\n", err)
		return 1
	}
	defer os.RemoveAll(tokensDir)
	// Every client of the tests, the default one too, sends a token.
	http.DefaultTransport = withAdminToken{http.DefaultTransport}
	httpClient = &http.Client{
		Timeout:       30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}

	var err error
	if db, err = sql.Open("postgres", libpqDefaults(dbURL)); err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: opening %s: %v\n", dbURL, err)
		return 1
	}
	defer db.Close()
	pingCtx, cancelPing := context.WithTimeout(context.Background(), 15*time.Second)
	err = db.PingContext(pingCtx)
	cancelPing()
	if err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: the test database is not reachable: %v\n", err)
		return 1
	}

	server, err = launchServer(bin, dbURL)
	if err == nil {
		err = server.waitServing(20 * time.Second)
	}
	if err != nil {
		server.stop()
		fmt.Fprintf(os.Stderr, "FAIL: starting %s: %v\nserver output:\n%s\n", bin, err, server.log.String())
		return 1
	}
	defer server.stop()
	serverAddr = server.addr

	ctx, cancel := context.WithCancel(context.Background())
	gatewayLog = &testutil.SyncBuffer{}
	url, done, err := startGateway(ctx, serverAddr, maxBodyBytes, gatewayLog)
	if err != nil {
		cancel()
		fmt.Fprintf(os.Stderr, "FAIL: starting the gateway: %v\n", err)
		return 1
	}
	baseURL = url

	code := m.Run()

	cancel()
	select {
	case err := <-done:
		if err != nil {
			fmt.Fprintf(os.Stderr, "FAIL: the gateway stopped with %v\n", err)
			code = 1
		}
	case <-time.After(15 * time.Second):
		fmt.Fprintln(os.Stderr, "FAIL: the gateway did not stop within 15 s of cancel")
		code = 1
	}
	// SIGTERM: the server drains and exits 0.
	server.stop()
	if st := server.cmd.ProcessState; st == nil || st.ExitCode() != 0 {
		fmt.Fprintf(os.Stderr, "FAIL: the server did not exit 0 on SIGTERM: %v\n", st)
		code = 1
	}
	if code != 0 {
		fmt.Fprintf(os.Stderr, "--- server output (last 4000 bytes):\n%s\n", tail(server.log.String(), 4000))
	}
	return code
}

var portLine = regexp.MustCompile(`serving gRPC on port (\d+)`)

// serverProcess is a running segments-server.
type serverProcess struct {
	addr   string               // 127.0.0.1:port
	cmd    *exec.Cmd            // the process
	log    *testutil.SyncBuffer // everything it printed
	exited chan struct{}        // closed once it exited
}

// stop sends SIGTERM and waits for the exit, killing it after 15 s.
func (p *serverProcess) stop() {
	if p.cmd.Process == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(15 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// alive reports whether the process has not exited.
func (p *serverProcess) alive() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// launchServer runs the server binary on a port of the kernel's choosing
// and reads the port from its log. extra flags are appended.
func launchServer(bin, dbURL string, extra ...string) (*serverProcess, error) {
	p := &serverProcess{log: &testutil.SyncBuffer{}, exited: make(chan struct{})}
	args := append([]string{
		"--grpc-listen=127.0.0.1:0",
		"--database-url=" + dbURL,
		"--health-check-period=100ms",
		"--shutdown-grace=5s",
		"--log-level=info",
	}, authFlags()...)
	args = append(args, extra...)
	p.cmd = exec.Command(bin, args...)
	pr, pw := io.Pipe()
	p.cmd.Stdout = pw
	p.cmd.Stderr = pw
	if err := p.cmd.Start(); err != nil {
		return p, err
	}
	go func() {
		_ = p.cmd.Wait()
		pw.Close()
		close(p.exited)
	}()
	port := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		found := false
		for sc.Scan() {
			line := sc.Text()
			_, _ = p.log.Write([]byte(line + "\n"))
			if m := portLine.FindStringSubmatch(line); m != nil && !found {
				found = true
				port <- m[1]
			}
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	select {
	case pt := <-port:
		p.addr = net.JoinHostPort("127.0.0.1", pt)
		return p, nil
	case <-p.exited:
		return p, errors.New("the server exited at start")
	case <-time.After(15 * time.Second):
		p.stop()
		return p, errors.New("the server did not log its port within 15 s")
	}
}

// waitServing polls the server's gRPC health until SERVING.
func (p *serverProcess) waitServing(timeout time.Duration) error {
	return p.waitHealth("", timeout)
}

// waitHealth polls the gRPC health of service ("": the whole server) until
// SERVING.
func (p *serverProcess) waitHealth(service string, timeout time.Duration) error {
	conn, err := grpc.NewClient(p.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	health := grpc_health_v1.NewHealthClient(conn)
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		resp, err := health.Check(ctx, &grpc_health_v1.HealthCheckRequest{Service: service})
		cancel()
		if err == nil && resp.GetStatus() == grpc_health_v1.HealthCheckResponse_SERVING {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("health %q not SERVING within %v (last: %v, %v)", service, timeout, resp.GetStatus(), err)
		}
		select {
		case <-p.exited:
			return errors.New("the server exited while waiting for health")
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// startGateway runs gateway.Run on a loopback listener; done receives Run's
// result once ctx is cancelled.
func startGateway(ctx context.Context, upstream string, limit int64, logs io.Writer) (url string, done <-chan error, err error) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	ch := make(chan error, 1)
	go func() {
		ch <- gateway.Run(ctx, gateway.Options{
			Listener:        lis,
			Upstream:        upstream,
			UpstreamTimeout: 10 * time.Second,
			MaxBodyBytes:    limit,
			ShutdownTimeout: 5 * time.Second,
			Logger:          slog.New(slog.NewJSONHandler(logs, nil)),
		})
	}()
	return "http://" + lis.Addr().String(), ch, nil
}

// libpqDefaults gives lib/pq libpq's default sslmode, prefer (lib/pq's own
// default is require), unless the URL names one; the server uses libpq.
func libpqDefaults(dbURL string) string {
	if strings.Contains(dbURL, "sslmode=") || os.Getenv("PGSSLMODE") != "" {
		return dbURL
	}
	if u, err := neturl.Parse(dbURL); err == nil && (u.Scheme == "postgres" || u.Scheme == "postgresql") {
		q := u.Query()
		q.Set("sslmode", "prefer")
		u.RawQuery = q.Encode()
		return u.String()
	}
	return dbURL + " sslmode=prefer"
}

// reset empties every table the service writes. TRUNCATE locks the tables
// one by one, so a server job's transaction that locks two of them in the
// other order can deadlock with it (PostgreSQL cancels one side): try again.
func reset(t *testing.T) {
	t.Helper()
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		_, err = db.Exec(`TRUNCATE history, memberships, auto_opt_outs, segment_tasks, segments, users, idempotency_keys`)
		if err == nil || !strings.Contains(err.Error(), "40P01") {
			break
		}
	}
	if err != nil {
		t.Fatalf("truncating: %v", err)
	}
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[len(s)-n:]
}

// ---- HTTP helpers

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) String() string {
	return fmt.Sprintf("%d %s %q", r.status, r.header.Get("Content-Type"), r.body)
}

// fetch sends one request to the gateway at base; body "" sends none.
func fetch(base, method, path, body string) (response, error) {
	return fetchWith(base, method, path, body, nil)
}

// fetchWith is fetch with these headers too.
func fetchWith(base, method, path, body string, header http.Header) (response, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, base+path, rd)
	if err != nil {
		return response{}, err
	}
	for name, values := range header {
		req.Header[name] = values
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return response{}, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return response{}, fmt.Errorf("reading the body: %w", err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: raw}, nil
}

// callAt sends one request and, for any status >= 400, checks the envelope.
func callAt(t *testing.T, base, method, path, body string) response {
	t.Helper()
	r, err := fetch(base, method, path, body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	if r.status >= 400 && method != http.MethodHead {
		// Contract §3: every error is the envelope, whoever produced it.
		checkEnvelope(t, r)
	}
	return r
}

func call(t *testing.T, method, path, body string) response {
	t.Helper()
	return callAt(t, baseURL, method, path, body)
}

type entry struct{ Type, Info string }

// checkEnvelope asserts Content-Type application/json and a body of exactly
// {"errors":[{"type":..,"info":..},...]} with a non-empty list of non-empty
// strings, and returns the entries.
func checkEnvelope(t *testing.T, r response) []entry {
	t.Helper()
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("error response %d: Content-Type = %q, want application/json; body %q", r.status, ct, r.body)
	}
	var top map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(r.body))
	if err := dec.Decode(&top); err != nil || dec.More() {
		t.Fatalf("error response %d: body is not one JSON object (%v): %q", r.status, err, r.body)
	}
	if len(top) != 1 || top["errors"] == nil {
		t.Fatalf("error response %d: body must have exactly the key \"errors\": %q", r.status, r.body)
	}
	var list []map[string]json.RawMessage
	if err := json.Unmarshal(top["errors"], &list); err != nil || len(list) == 0 {
		t.Fatalf("error response %d: \"errors\" is not a non-empty array of objects (%v): %q", r.status, err, r.body)
	}
	out := make([]entry, 0, len(list))
	for i, item := range list {
		var e entry
		if len(item) != 2 || json.Unmarshal(item["type"], &e.Type) != nil || json.Unmarshal(item["info"], &e.Info) != nil ||
			e.Type == "" || e.Info == "" {
			t.Fatalf("error response %d: errors[%d] must be exactly {\"type\": string, \"info\": string}, both non-empty: %q",
				r.status, i, r.body)
		}
		out = append(out, e)
	}
	return out
}

// typeForStatus is the contract's table read backwards.
var typeForStatus = map[int][]string{
	400: {"parse_error", "validation_error"},
	401: {"unauthenticated"},
	403: {"permission_denied"},
	404: {"not_found"},
	405: {"method_not_allowed"},
	409: {"conflict"},
	413: {"payload_too_large"},
	500: {"internal_error"},
	501: {"not_implemented"},
	503: {"unavailable"},
}

// wantError asserts the status and that every entry has type typ; it
// returns the entries.
func wantError(t *testing.T, r response, status int, typ string) []entry {
	t.Helper()
	if r.status != status {
		t.Fatalf("status = %d, want %d (%s); response %s", r.status, status, typ, r)
	}
	entries := checkEnvelope(t, r)
	for _, e := range entries {
		if e.Type != typ {
			t.Fatalf("entry %q, want every type %q; response %s", e, typ, r)
		}
	}
	return entries
}

// wantOneError asserts a single entry of type typ whose info matches info,
// "*" standing for any text.
func wantOneError(t *testing.T, r response, status int, typ, info string) {
	t.Helper()
	entries := wantError(t, r, status, typ)
	if len(entries) != 1 {
		t.Fatalf("want one entry, got %q", entries)
	}
	if !infoMatchesGlob(entries[0].Info, info) {
		t.Fatalf("info = %q, want %q", entries[0].Info, info)
	}
}

func wantNoContent(t *testing.T, r response) {
	t.Helper()
	if r.status != http.StatusNoContent || len(r.body) != 0 || r.header.Get("Content-Type") != "" {
		t.Fatalf("want 204 with an empty body and no Content-Type, got %s", r)
	}
}

func wantJSON(t *testing.T, r response, body string) {
	t.Helper()
	if r.status != http.StatusOK || r.header.Get("Content-Type") != "application/json" || string(r.body) != body {
		t.Fatalf("want 200 application/json %s, got %s", body, r)
	}
}

// ---- API helpers

func jsonString(s string) string {
	raw, err := json.Marshal(s)
	if err != nil {
		panic(err)
	}
	return string(raw)
}

func createSegment(t *testing.T, slug string) {
	t.Helper()
	wantNoContent(t, call(t, http.MethodPost, "/segments/create", `{"slug":`+jsonString(slug)+`}`))
}

func createUser(t *testing.T, id string) {
	t.Helper()
	wantNoContent(t, call(t, http.MethodPost, "/segments/create-user", `{"userID":`+jsonString(id)+`}`))
}

func addSegments(t *testing.T, user string, slugs ...string) {
	t.Helper()
	items := make([]string, 0, len(slugs))
	for _, s := range slugs {
		items = append(items, `{"segmentSlug":`+jsonString(s)+`}`)
	}
	wantNoContent(t, call(t, http.MethodPost, "/segments/change-for-user",
		`{"userID":`+jsonString(user)+`,"segmentsToAdd":[`+strings.Join(items, ",")+`]}`))
}

func segmentsOf(t *testing.T, user string) []string {
	t.Helper()
	r := call(t, http.MethodGet, "/segments/get-for-user?userID="+user, "")
	if r.status != http.StatusOK || r.header.Get("Content-Type") != "application/json" {
		t.Fatalf("get-for-user %s: %s", user, r)
	}
	var body struct {
		Segments []string `json:"segments"`
	}
	dec := json.NewDecoder(bytes.NewReader(r.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil || body.Segments == nil {
		t.Fatalf("get-for-user %s: body %q is not {\"segments\": [...]}: %v", user, r.body, err)
	}
	return body.Segments
}

func wantSegments(t *testing.T, user string, want ...string) {
	t.Helper()
	if want == nil {
		want = []string{}
	}
	raw, _ := json.Marshal(map[string][]string{"segments": want})
	wantJSON(t, call(t, http.MethodGet, "/segments/get-for-user?userID="+user, ""), string(raw))
}

// ---- database helpers

type historyRow struct {
	User, Slug, Operation, Reason string
	At                            time.Time
	Actor                         string // not compared by wantHistory
}

func (h historyRow) String() string {
	return fmt.Sprintf("%s %s %s %s", h.User, h.Slug, h.Operation, h.Reason)
}

// history lists every event, oldest first.
func history(t *testing.T) []historyRow {
	t.Helper()
	rows, err := db.Query(`SELECT user_id::text, slug, operation::text, reason::text, at, coalesce(actor, 'unknown') ` +
		`FROM history ORDER BY at, id`)
	if err != nil {
		t.Fatalf("reading history: %v", err)
	}
	defer rows.Close()
	var out []historyRow
	for rows.Next() {
		var h historyRow
		if err := rows.Scan(&h.User, &h.Slug, &h.Operation, &h.Reason, &h.At, &h.Actor); err != nil {
			t.Fatal(err)
		}
		out = append(out, h)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// wantHistory compares user, slug, operation and reason of every event, in
// order.
func wantHistory(t *testing.T, want ...historyRow) []historyRow {
	t.Helper()
	got := history(t)
	if len(got) != len(want) {
		t.Fatalf("history has %d events %v, want %d %v", len(got), got, len(want), want)
	}
	for i := range want {
		if got[i].String() != want[i].String() {
			t.Fatalf("history[%d] = %v, want %v (all: %v)", i, got[i], want[i], got)
		}
	}
	return got
}

func queryInt(t *testing.T, q string, args ...any) int {
	t.Helper()
	var n int
	if err := db.QueryRow(q, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

// eventually polls cond every 25 ms until it holds or timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, timeout)
		}
		<-tick.C
	}
}
