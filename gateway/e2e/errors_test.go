package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// Bodies that are not JSON or have wrong JSON types: 400 parse_error.
func TestParseErrors(t *testing.T) {
	reset(t)
	user := newUUID()
	createUser(t, user)
	createSegment(t, "S")
	tests := []struct{ method, path, body string }{
		{http.MethodPost, "/segments/create", `not json`},
		{http.MethodPost, "/segments/create", `{"slug":5}`},
		{http.MethodPost, "/segments/create", `{"slug":"A"`},
		{http.MethodPost, "/segments/create", `{"slug":["A"]}`},
		{http.MethodPost, "/segments/create", `{"percentToFill":"lots","slug":"A"}`},
		{http.MethodDelete, "/segments/remove", `<slug>S</slug>`},
		{http.MethodDelete, "/segments/remove", `{"slug":true}`},
		{http.MethodPost, "/segments/change-for-user", `{"userID":"` + user + `","segmentsToAdd":"x"}`},
		{http.MethodPost, "/segments/change-for-user", `{"userID":"` + user + `","segmentsToAdd":["S"]}`},
		{http.MethodPost, "/segments/change-for-user", `{"userID":"` + user + `","segmentsToAdd":[{"segmentSlug":"S","secondsToBeInSegment":"soon"}]}`},
		{http.MethodPost, "/segments/change-for-user", `{"userID":"` + user + `","segmentsToAdd":[{"segmentSlug":"S","secondsToBeInSegment":1.5}]}`},
		{http.MethodPost, "/segments/change-for-user", `{"userID":"` + user + `","segmentsToAdd":[{"segmentSlug":"S","deadlineForStayingInSegment":"next week"}]}`},
		{http.MethodPost, "/segments/change-for-user", `{"userID":"` + user + `","segmentsToRemove":{"segmentSlug":"S"}}`},
		{http.MethodPost, "/segments/change-for-user", `{"userID":12345}`},
		{http.MethodPost, "/segments/create-user", `{"userID":null,}`},
		{http.MethodPut, "/segments/update-user", `{"userID":"` + user + `","status":1}`},
		{http.MethodDelete, "/segments/remove-user", `["` + user + `"]`},
	}
	for _, tc := range tests {
		r := call(t, tc.method, tc.path, tc.body)
		entries := wantError(t, r, http.StatusBadRequest, "parse_error")
		if len(entries) != 1 {
			t.Errorf("%s %s: want one entry, got %q", tc.path, tc.body, entries)
		}
		for _, internal := range []string{"proto", "(line ", "strconv"} {
			if strings.Contains(entries[0].Info, internal) {
				t.Errorf("%s %s: info %q has protobuf-go's or strconv's words", tc.path, tc.body, entries[0].Info)
			}
		}
	}
	// Nothing changed.
	wantSegments(t, user)
	if n := queryInt(t, `SELECT count(*) FROM segments`); n != 1 {
		t.Fatalf("%d segments, want only S", n)
	}
	// A bad query: a field given twice.
	wantError(t, call(t, http.MethodGet, "/segments/get-for-user?userID="+user+"&userID="+user, ""),
		http.StatusBadRequest, "parse_error")
}

func TestValidationErrors(t *testing.T) {
	reset(t)
	user := newUUID()
	createUser(t, user)
	createSegment(t, "A")
	createSegment(t, "B")
	createSegment(t, "MEMBER")
	addSegments(t, user, "MEMBER")
	future := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	tests := []struct {
		name, method, path, body string
		infos                    []string // exact, or a prefix when ending in "*"
	}{
		{"bad UUID on create-user", http.MethodPost, "/segments/create-user", `{"userID":"not-a-uuid"}`,
			[]string{"userID: must be a UUID or a decimal integer 0..9223372036854775807"}},
		{"UUID without dashes", http.MethodPost, "/segments/create-user", `{"userID":"` + strings.ReplaceAll(user, "-", "") + `"}`,
			[]string{"userID: must be a UUID or a decimal integer 0..9223372036854775807"}},
		{"missing userID", http.MethodPost, "/segments/create-user", `{}`, []string{"userID: is required"}},
		{"bad UUID on update-user", http.MethodPut, "/segments/update-user", `{"userID":"x","status":"active"}`,
			[]string{"userID: must be a UUID or a decimal integer 0..9223372036854775807"}},
		{"bad status", http.MethodPut, "/segments/update-user", `{"userID":"` + user + `","status":"banned"}`,
			[]string{"status: *"}},
		{"bad UUID on remove-user", http.MethodDelete, "/segments/remove-user", `{"userID":"` + user + `x"}`,
			[]string{"userID: must be a UUID or a decimal integer 0..9223372036854775807"}},
		{"slug starts with a dash", http.MethodPost, "/segments/create", `{"slug":"-bad"}`,
			[]string{"slug: must start with a letter or a digit"}},
		{"slug with a space", http.MethodPost, "/segments/create", `{"slug":"AVITO VOICE"}`, []string{"slug: *"}},
		{"slug too long", http.MethodPost, "/segments/create", `{"slug":"` + strings.Repeat("A", 129) + `"}`, []string{"slug: *"}},
		{"missing slug", http.MethodPost, "/segments/create", `{}`, []string{"slug: is required"}},
		{"negative percent", http.MethodPost, "/segments/create", `{"slug":"P","percentToFill":-1}`, []string{"percentToFill: *"}},
		{"percent over 100", http.MethodPost, "/segments/create", `{"slug":"P","percentToFill":100.01}`, []string{"percentToFill: *"}},
		{"three decimals", http.MethodPost, "/segments/create", `{"slug":"P","percentToFill":12.345}`, []string{"percentToFill: *"}},
		{"bad slug on remove", http.MethodDelete, "/segments/remove", `{"slug":"no spaces allowed"}`, []string{"slug: *"}},
		{"bad UUID on change-for-user", http.MethodPost, "/segments/change-for-user", `{"userID":"nope","segmentsToAdd":[{"segmentSlug":"A"}]}`,
			[]string{"userID: must be a UUID or a decimal integer 0..9223372036854775807"}},
		{"bad UUID on get-for-user", http.MethodGet, "/segments/get-for-user?userID=nope", "",
			[]string{"userID: must be a UUID or a decimal integer 0..9223372036854775807"}},
		{"integer with a leading zero", http.MethodPost, "/segments/create-user", `{"userID":"01000"}`,
			[]string{"userID: must be a UUID or a decimal integer 0..9223372036854775807"}},
		{"integer with a sign", http.MethodPost, "/segments/create-user", `{"userID":"+1000"}`,
			[]string{"userID: must be a UUID or a decimal integer 0..9223372036854775807"}},
		{"negative integer", http.MethodPut, "/segments/update-user", `{"userID":"-1","status":"active"}`,
			[]string{"userID: must be a UUID or a decimal integer 0..9223372036854775807"}},
		{"integer past 2^63-1", http.MethodPost, "/segments/create-user", `{"userID":"9223372036854775808"}`,
			[]string{"userID: must be a UUID or a decimal integer 0..9223372036854775807"}},
		{"decimal fraction", http.MethodGet, "/segments/get-for-user?userID=1.0", "",
			[]string{"userID: must be a UUID or a decimal integer 0..9223372036854775807"}},
		{"exponent", http.MethodGet, "/segments/get-for-user?userID=1e3", "",
			[]string{"userID: must be a UUID or a decimal integer 0..9223372036854775807"}},
		{"leading space", http.MethodGet, "/segments/get-for-user?userID=%201000", "",
			[]string{"userID: must be a UUID or a decimal integer 0..9223372036854775807"}},
		{"both TTL forms", http.MethodPost, "/segments/change-for-user",
			`{"userID":"` + user + `","segmentsToAdd":[{"segmentSlug":"A","secondsToBeInSegment":60,"deadlineForStayingInSegment":"` + future + `"}]}`,
			[]string{"segmentsToAdd[0].secondsToBeInSegment: *"}},
		{"negative seconds", http.MethodPost, "/segments/change-for-user",
			`{"userID":"` + user + `","segmentsToAdd":[{"segmentSlug":"A","secondsToBeInSegment":-1}]}`,
			[]string{"segmentsToAdd[0].secondsToBeInSegment: *"}},
		{"more than ten years", http.MethodPost, "/segments/change-for-user",
			`{"userID":"` + user + `","segmentsToAdd":[{"segmentSlug":"A","secondsToBeInSegment":` + fmt.Sprint(11*366*24*3600) + `}]}`,
			[]string{"segmentsToAdd[0].secondsToBeInSegment: *"}},
		{"deadline in the past", http.MethodPost, "/segments/change-for-user",
			`{"userID":"` + user + `","segmentsToAdd":[{"segmentSlug":"A","deadlineForStayingInSegment":"2001-01-01T00:00:00Z"}]}`,
			[]string{"segmentsToAdd[0].deadlineForStayingInSegment: must be in the future"}},
		{"deadline too far", http.MethodPost, "/segments/change-for-user",
			`{"userID":"` + user + `","segmentsToAdd":[{"segmentSlug":"A","deadlineForStayingInSegment":"2099-01-01T00:00:00Z"}]}`,
			[]string{"segmentsToAdd[0].deadlineForStayingInSegment: *"}},
		{"duplicate slug in the add list", http.MethodPost, "/segments/change-for-user",
			`{"userID":"` + user + `","segmentsToAdd":[{"segmentSlug":"A"},{"segmentSlug":"B"},{"segmentSlug":"A"}]}`,
			[]string{`segmentsToAdd[2].segmentSlug: *"A"*`}},
		{"slug in both lists", http.MethodPost, "/segments/change-for-user",
			`{"userID":"` + user + `","segmentsToAdd":[{"segmentSlug":"A"}],"segmentsToRemove":[{"segmentSlug":"A"}]}`,
			[]string{`segmentsToRemove[0].segmentSlug: *`}},
		{"adding a segment the user is in", http.MethodPost, "/segments/change-for-user",
			`{"userID":"` + user + `","segmentsToAdd":[{"segmentSlug":"MEMBER"}]}`,
			[]string{`segmentsToAdd[0].segmentSlug: *"MEMBER"*`}},
		{"two problems, two entries", http.MethodPost, "/segments/change-for-user",
			`{"userID":"` + user + `","segmentsToAdd":[{"segmentSlug":"A","secondsToBeInSegment":-1},{"segmentSlug":"A"}]}`,
			[]string{`segmentsToAdd[0].secondsToBeInSegment: *`, `segmentsToAdd[1].segmentSlug: *"A"*`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			entries := wantError(t, call(t, tc.method, tc.path, tc.body), http.StatusBadRequest, "validation_error")
			if len(entries) != len(tc.infos) {
				t.Fatalf("entries = %q, want %d", entries, len(tc.infos))
			}
			for i, want := range tc.infos {
				if !infoMatchesGlob(entries[i].Info, want) {
					t.Errorf("entries[%d].info = %q, want %q", i, entries[i].Info, want)
				}
			}
		})
	}
	// Nothing of it happened.
	wantSegments(t, user, "MEMBER")
	if n := queryInt(t, `SELECT count(*) FROM history`); n != 1 {
		t.Fatalf("%d history events, want only the first add", n)
	}
	if n := queryInt(t, `SELECT count(*) FROM users`); n != 1 {
		t.Fatalf("%d users, want 1", n)
	}
}

// infoMatchesGlob matches want with "*" standing for any text.
func infoMatchesGlob(got, want string) bool {
	parts := strings.Split(want, "*")
	if !strings.HasPrefix(got, parts[0]) {
		return false
	}
	got = got[len(parts[0]):]
	for i, p := range parts[1:] {
		if i == len(parts)-2 {
			return strings.HasSuffix(got, p)
		}
		idx := strings.Index(got, p)
		if idx < 0 {
			return false
		}
		got = got[idx+len(p):]
	}
	return got == ""
}

func TestNotFoundErrors(t *testing.T) {
	reset(t)
	user, stranger := newUUID(), newUUID()
	createUser(t, user)
	createSegment(t, "KNOWN")

	wantOneError(t, call(t, http.MethodPost, "/segments/change-for-user",
		`{"userID":"`+stranger+`","segmentsToAdd":[{"segmentSlug":"KNOWN"}]}`),
		http.StatusNotFound, "not_found", `userID: user "`+stranger+`" does not exist`)
	wantOneError(t, call(t, http.MethodPut, "/segments/update-user", `{"userID":"`+stranger+`","status":"active"}`),
		http.StatusNotFound, "not_found", `userID: user "`+stranger+`" does not exist`)
	wantOneError(t, call(t, http.MethodDelete, "/segments/remove-user", `{"userID":"`+stranger+`"}`),
		http.StatusNotFound, "not_found", `userID: user "`+stranger+`" does not exist`)
	wantOneError(t, call(t, http.MethodDelete, "/segments/remove", `{"slug":"NOPE"}`),
		http.StatusNotFound, "not_found", `slug: segment "NOPE" does not exist`)

	// Three unknown slugs: three entries, each naming its path (contract §3).
	r := call(t, http.MethodPost, "/segments/change-for-user", `{"userID":"`+user+`",`+
		`"segmentsToAdd":[{"segmentSlug":"X1"},{"segmentSlug":"KNOWN"},{"segmentSlug":"X2"}],`+
		`"segmentsToRemove":[{"segmentSlug":"X3"}]}`)
	entries := wantError(t, r, http.StatusNotFound, "not_found")
	want := []string{
		`segmentsToAdd[0].segmentSlug: segment "X1" does not exist`,
		`segmentsToAdd[2].segmentSlug: segment "X2" does not exist`,
		`segmentsToRemove[0].segmentSlug: segment "X3" does not exist`,
	}
	if len(entries) != len(want) {
		t.Fatalf("entries = %q, want %q", entries, want)
	}
	for i := range want {
		if entries[i].Info != want[i] {
			t.Errorf("entries[%d].info = %q, want %q", i, entries[i].Info, want[i])
		}
	}
	// All or nothing: KNOWN was not added.
	wantSegments(t, user)
	if n := queryInt(t, `SELECT count(*) FROM history`); n != 0 {
		t.Fatalf("%d history events after failed changes", n)
	}

	// A deleted segment is unknown.
	createSegment(t, "GONE")
	wantNoContent(t, call(t, http.MethodDelete, "/segments/remove", `{"slug":"GONE"}`))
	wantOneError(t, call(t, http.MethodPost, "/segments/change-for-user",
		`{"userID":"`+user+`","segmentsToAdd":[{"segmentSlug":"GONE"}]}`),
		http.StatusNotFound, "not_found", `segmentsToAdd[0].segmentSlug: segment "GONE" does not exist`)

	// Slugs are case-sensitive.
	wantOneError(t, call(t, http.MethodDelete, "/segments/remove", `{"slug":"known"}`),
		http.StatusNotFound, "not_found", `slug: segment "known" does not exist`)

	// Unknown paths.
	for _, p := range []string{"/segments/nope", "/nope", "/segments/create/x"} {
		wantError(t, call(t, http.MethodGet, p, ""), http.StatusNotFound, "not_found")
		wantError(t, call(t, http.MethodPost, p, `{}`), http.StatusNotFound, "not_found")
	}
}

func TestConflictErrors(t *testing.T) {
	reset(t)
	user := newUUID()
	createSegment(t, "TAKEN")
	wantOneError(t, call(t, http.MethodPost, "/segments/create", `{"slug":"TAKEN"}`),
		http.StatusConflict, "conflict", `slug: segment "TAKEN" already exists`)
	// Case-sensitive: another slug.
	createSegment(t, "taken")

	createUser(t, user)
	wantOneError(t, call(t, http.MethodPost, "/segments/create-user", `{"userID":"`+user+`"}`),
		http.StatusConflict, "conflict", `userID: user "`+user+`" already exists`)
	wantOneError(t, call(t, http.MethodPost, "/segments/create-user", `{"userID":"`+strings.ToUpper(user)+`"}`),
		http.StatusConflict, "conflict", `userID: user "`+user+`" already exists`)
	if n := queryInt(t, `SELECT count(*) FROM segments`); n != 2 {
		t.Fatalf("%d segments, want 2", n)
	}
}

var routes = []struct{ method, path, body string }{
	{http.MethodPost, "/segments/create", `{"slug":"S"}`},
	{http.MethodDelete, "/segments/remove", `{"slug":"S"}`},
	{http.MethodPost, "/segments/change-for-user", `{"userID":"00000000-0000-0000-0000-000000000000","segmentsToAdd":[{"segmentSlug":"S"}]}`},
	{http.MethodGet, "/segments/get-for-user?userID=00000000-0000-0000-0000-000000000000", ""},
	{http.MethodPost, "/segments/create-user", `{"userID":"00000000-0000-0000-0000-000000000000"}`},
	{http.MethodPut, "/segments/update-user", `{"userID":"00000000-0000-0000-0000-000000000000","status":"active"}`},
	{http.MethodDelete, "/segments/remove-user", `{"userID":"00000000-0000-0000-0000-000000000000"}`},
}

func TestWrongMethodIs405(t *testing.T) {
	reset(t)
	for _, route := range routes {
		for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch} {
			if m == route.method {
				continue
			}
			body := route.body
			if body == "" {
				body = "{}"
			}
			wantError(t, call(t, m, route.path, body), http.StatusMethodNotAllowed, "method_not_allowed")
		}
	}
	if n := queryInt(t, `SELECT (SELECT count(*) FROM segments) + (SELECT count(*) FROM users)`); n != 0 {
		t.Fatalf("a wrong method changed the database")
	}
}

func TestBodyOverLimitIs413(t *testing.T) {
	reset(t)
	// Exactly the limit: accepted (padding is JSON whitespace).
	body := `{"slug":"AT_THE_LIMIT"}`
	wantNoContent(t, call(t, http.MethodPost, "/segments/create", body+strings.Repeat(" ", maxBodyBytes-len(body))))
	// One byte more: refused before the server.
	body = `{"slug":"OVER_THE_LIMIT"}`
	wantOneError(t, call(t, http.MethodPost, "/segments/create", body+strings.Repeat(" ", maxBodyBytes-len(body)+1)),
		http.StatusRequestEntityTooLarge, "payload_too_large", "*")
	wantError(t, call(t, http.MethodPost, "/segments/change-for-user", `{"userID":"`+strings.Repeat("x", 2*maxBodyBytes)+`"}`),
		http.StatusRequestEntityTooLarge, "payload_too_large")
	if n := queryInt(t, `SELECT count(*) FROM segments WHERE slug = 'OVER_THE_LIMIT'`); n != 0 {
		t.Fatal("a body over the limit reached the server")
	}
	if n := queryInt(t, `SELECT count(*) FROM segments WHERE slug = 'AT_THE_LIMIT'`); n != 1 {
		t.Fatal("a body at the limit did not reach the server")
	}

	// A gateway with a tiny limit, on every mutation.
	const tiny = 32
	ctx, cancel := context.WithCancel(context.Background())
	url, done, err := startGateway(ctx, serverAddr, tiny, io.Discard)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	defer func() {
		cancel()
		<-done
	}()
	exact := `{"slug":"TINY"}` + strings.Repeat(" ", tiny-len(`{"slug":"TINY"}`))
	wantNoContent(t, callAt(t, url, http.MethodPost, "/segments/create", exact))
	wantNoContent(t, callAt(t, url, http.MethodDelete, "/segments/remove", `{"slug":"TINY"}`))
	for _, route := range routes {
		if route.method == http.MethodGet {
			continue
		}
		body := route.body + strings.Repeat(" ", max(0, tiny+1-len(route.body)))
		wantOneError(t, callAt(t, url, route.method, route.path, body), http.StatusRequestEntityTooLarge, "payload_too_large", "*32 bytes*")
	}
	// A read has no body to limit.
	wantJSON(t, callAt(t, url, http.MethodGet, "/segments/get-for-user?userID="+newUUID(), ""), `{"segments":[]}`)
}

// A chunked body (no Content-Length) over the limit is refused as well.
func TestChunkedBodyOverLimitIs413(t *testing.T) {
	reset(t)
	pr, pw := io.Pipe()
	go func() {
		_, _ = pw.Write([]byte(`{"slug":"CHUNKED","description":"`))
		chunk := []byte(strings.Repeat("d", 4096))
		for written := 0; written <= maxBodyBytes; written += len(chunk) {
			if _, err := pw.Write(chunk); err != nil {
				break
			}
		}
		_, _ = pw.Write([]byte(`"}`))
		pw.Close()
	}()
	req, err := http.NewRequest(http.MethodPost, baseURL+"/segments/create", pr)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	r := response{status: resp.StatusCode, header: resp.Header, body: raw}
	wantError(t, r, http.StatusRequestEntityTooLarge, "payload_too_large")
	if n := queryInt(t, `SELECT count(*) FROM segments`); n != 0 {
		t.Fatal("a chunked body over the limit reached the server")
	}
}

// A gateway whose upstream is down answers 503 unavailable everywhere,
// /healthz included, and does not name the upstream.
func TestUpstreamDownIs503(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := lis.Addr().String()
	lis.Close()
	ctx, cancel := context.WithCancel(context.Background())
	url, done, err := startGateway(ctx, closed, maxBodyBytes, io.Discard)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	defer func() {
		cancel()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			t.Error("the second gateway did not stop")
		}
	}()
	_, port, _ := net.SplitHostPort(closed)
	for _, route := range append(routes, struct{ method, path, body string }{http.MethodGet, "/healthz", ""}) {
		r := callAt(t, url, route.method, route.path, route.body)
		wantOneError(t, r, http.StatusServiceUnavailable, "unavailable", "*")
		if strings.Contains(string(r.body), port) || strings.Contains(string(r.body), "127.0.0.1") {
			t.Errorf("%s %s: the body names the upstream: %s", route.method, route.path, r.body)
		}
	}
	// Routing and parsing still work without the upstream.
	wantError(t, callAt(t, url, http.MethodGet, "/nope", ""), http.StatusNotFound, "not_found")
	wantError(t, callAt(t, url, http.MethodPost, "/segments/create", "nope"), http.StatusBadRequest, "parse_error")
}

func TestHealthz(t *testing.T) {
	r := call(t, http.MethodGet, "/healthz", "")
	if r.status != http.StatusOK || r.header.Get("Content-Type") != "application/json" ||
		strings.ReplaceAll(strings.TrimSpace(string(r.body)), " ", "") != `{"status":"SERVING"}` {
		t.Fatalf("/healthz = %s, want 200 {\"status\":\"SERVING\"}", r)
	}
}

// The gateway's access log never carries user ids from the query or bodies.
func TestAccessLogHasNoUserData(t *testing.T) {
	reset(t)
	user := newUUID()
	createUser(t, user)
	call(t, http.MethodGet, "/segments/get-for-user?userID="+user, "")
	logs := gatewayLog.String()
	if !strings.Contains(logs, `"path":"/segments/get-for-user"`) {
		t.Fatalf("no access log line for get-for-user: %s", tail(logs, 2000))
	}
	if strings.Contains(logs, user) {
		t.Fatalf("the access log contains the user id")
	}
}

// Data after the JSON value makes the body not JSON: parse_error, and
// nothing is created (the gateway must not act on the first value alone).
func TestParseErrorTrailingData(t *testing.T) {
	reset(t)
	for i, body := range []string{`{"slug":"TRAIL_%d"} garbage`, `{"slug":"TRAIL_%d"}{"slug":"OTHER"}`, `{"slug":"TRAIL_%d"}]`} {
		r := call(t, http.MethodPost, "/segments/create", fmt.Sprintf(body, i))
		if r.status != http.StatusBadRequest {
			t.Errorf("%q: %s, want 400 parse_error", fmt.Sprintf(body, i), r)
			continue
		}
		wantError(t, r, http.StatusBadRequest, "parse_error")
	}
	if n := queryInt(t, `SELECT count(*) FROM segments`); n != 0 {
		t.Fatalf("%d segments created from bodies that are not JSON", n)
	}
}

// A server whose database is unreachable reports NOT_SERVING: /healthz is
// 503, and calls that need the database are 503 unavailable (safe to
// retry), never 500, and name neither the database nor its address.
func TestDatabaseDownIs503(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadDB := lis.Addr().String()
	lis.Close()
	_, deadPort, _ := net.SplitHostPort(deadDB)
	p, err := launchServer(serverBin, "postgresql://postgres@"+deadDB+"/segments_nowhere?connect_timeout=2",
		"--db-connect-timeout=1s", "--db-acquire-timeout=2s")
	defer p.stop()
	if err != nil {
		t.Fatalf("starting a server without its database: %v\n%s", err, p.log.String())
	}
	ctx, cancel := context.WithCancel(context.Background())
	url, done, err := startGateway(ctx, p.addr, maxBodyBytes, io.Discard)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	defer func() {
		cancel()
		<-done
	}()

	wantOneError(t, callAt(t, url, http.MethodGet, "/healthz", ""), http.StatusServiceUnavailable, "unavailable", "*")
	for _, route := range routes {
		r := callAt(t, url, route.method, route.path, route.body)
		wantOneError(t, r, http.StatusServiceUnavailable, "unavailable", "*")
		for _, secret := range []string{deadPort, "segments_nowhere", "postgres", "connect"} {
			if strings.Contains(string(r.body), secret) {
				t.Errorf("%s %s: the body names %q: %s", route.method, route.path, secret, r.body)
			}
		}
	}
	// Input errors are still reported as such without a database.
	wantError(t, callAt(t, url, http.MethodPost, "/segments/create", `{"slug":"-bad"}`), http.StatusBadRequest, "validation_error")
	if !p.alive() {
		t.Fatalf("the server died without its database: %s", p.log.String())
	}
}
