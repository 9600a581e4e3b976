package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	neturl "net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Report links are signed with a fixed key here, so the tests do not depend
// on what the environment sets for the shared server.
const (
	historyKeyID  = "e2e-history"
	historySecret = "e2e-history-secret-0123456789abcdef0123456789"
	csvHeader     = "user_id;segment;operation;datetime\n"
)

// stack is a server of its own, with the flags a test needs, behind a
// gateway of its own, on the shared database.
type stack struct {
	url    string
	server *serverProcess
}

func startStack(t *testing.T, flags ...string) *stack {
	t.Helper()
	return startStackWithBodyLimit(t, maxBodyBytes, flags...)
}

// startStackWithBodyLimit: the gateway accepts bodies of up to limit bytes.
func startStackWithBodyLimit(t *testing.T, limit int64, flags ...string) *stack {
	t.Helper()
	p, err := launchServer(serverBin, os.Getenv("SEGMENTS_TEST_DATABASE_URL"), flags...)
	if err == nil {
		err = p.waitServing(20 * time.Second)
	}
	if err != nil {
		p.stop()
		t.Fatalf("starting a server with %q: %v\n%s", flags, err, p.log.String())
	}
	ctx, cancel := context.WithCancel(context.Background())
	url, done, err := startGateway(ctx, p.addr, limit, io.Discard)
	if err != nil {
		cancel()
		p.stop()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			t.Error("the stack's gateway did not stop")
		}
		p.stop()
		if st := p.cmd.ProcessState; st == nil || st.ExitCode() != 0 {
			t.Errorf("the stack's server did not exit 0 on SIGTERM: %v\n%s", st, tail(p.log.String(), 4000))
		}
	})
	return &stack{url: url, server: p}
}

// startHistoryStack: links signed by the fixed key, valid 4 h, built from
// the gateway's Host; the TTL expiry job every 200 ms.
func startHistoryStack(t *testing.T, flags ...string) *stack {
	t.Helper()
	return startStack(t, append([]string{
		"--report-link-keys=" + historyKeyID + ":" + historySecret,
		"--report-link-ttl=4h",
		"--report-link-base-url=",
		"--expiry-period=200ms",
	}, flags...)...)
}

func (s *stack) call(t *testing.T, method, path, body string) response {
	t.Helper()
	return callAt(t, s.url, method, path, body)
}

func (s *stack) mutate(t *testing.T, method, path, body string) {
	t.Helper()
	wantNoContent(t, s.call(t, method, path, body))
}

// reportLink asks for a link; query is the query string without "?".
func (s *stack) reportLink(t *testing.T, query string) (*neturl.URL, time.Time) {
	t.Helper()
	r := s.call(t, http.MethodGet, "/segments/get-history-report-link?"+query, "")
	if r.status != http.StatusOK || r.header.Get("Content-Type") != "application/json" {
		t.Fatalf("get-history-report-link?%s: %s", query, r)
	}
	var body struct {
		ReportLink     string `json:"reportLink"`
		ExpirationTime string `json:"expirationTime"`
	}
	dec := json.NewDecoder(bytes.NewReader(r.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil || dec.More() {
		t.Fatalf("get-history-report-link: body %q is not {\"reportLink\",\"expirationTime\"}: %v", r.body, err)
	}
	if !strings.HasSuffix(body.ExpirationTime, "Z") {
		t.Fatalf("expirationTime %q is not UTC", body.ExpirationTime)
	}
	expires, err := time.Parse(time.RFC3339Nano, body.ExpirationTime)
	if err != nil {
		t.Fatalf("expirationTime %q is not RFC 3339: %v", body.ExpirationTime, err)
	}
	link, err := neturl.Parse(body.ReportLink)
	if err != nil {
		t.Fatalf("reportLink %q: %v", body.ReportLink, err)
	}
	// Absolute, on the gateway the client used, at the download path.
	gateway, _ := neturl.Parse(s.url)
	if link.Scheme != "http" || link.Host != gateway.Host || link.Path != "/segments/history-report" ||
		link.User != nil || link.Fragment != "" {
		t.Fatalf("reportLink %q, want http://%s/segments/history-report?...", body.ReportLink, gateway.Host)
	}
	q := link.Query()
	if got := q.Get("expires"); got != strconv.FormatInt(expires.Unix(), 10) {
		t.Fatalf("the link's expires=%s is not expirationTime %v", got, expires)
	}
	if q.Get("key") == "" || q.Get("signature") == "" {
		t.Fatalf("the link %q has no key or signature", body.ReportLink)
	}
	return link, expires
}

// download fetches a link (its host replaced by base's) and returns the
// response; errors are checked as envelopes by callAt.
func download(t *testing.T, base string, link *neturl.URL) response {
	t.Helper()
	return callAt(t, base, http.MethodGet, link.Path+"?"+link.RawQuery, "")
}

var csvDatetime = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$`)

// reportRows checks a CSV report (200, text/csv, attachment named
// fileName, the header line, ';' separators, four fields, UTC RFC 3339
// timestamps with 6 fractional digits in [from, to)) and returns its rows.
func reportRows(t *testing.T, r response, fileName string, from, to time.Time) [][4]string {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("download: %s", r)
	}
	if ct := r.header.Get("Content-Type"); ct != "text/csv; charset=utf-8" {
		t.Fatalf("Content-Type = %q, want text/csv; charset=utf-8", ct)
	}
	if cd := r.header.Get("Content-Disposition"); cd != "attachment; filename="+fileName {
		t.Fatalf("Content-Disposition = %q, want attachment; filename=%s", cd, fileName)
	}
	if cc := r.header.Get("Cache-Control"); cc != "no-store" {
		t.Fatalf("Cache-Control = %q, want no-store", cc)
	}
	text := string(r.body)
	if !strings.HasPrefix(text, csvHeader) {
		t.Fatalf("the report does not start with the header %q: %q", csvHeader, text)
	}
	if strings.ContainsAny(text, "\r\"") {
		t.Fatalf("the report has CR or quotes: %q", text)
	}
	var rows [][4]string
	lines := strings.Split(strings.TrimPrefix(text, csvHeader), "\n")
	if last := lines[len(lines)-1]; last != "" {
		t.Fatalf("the report does not end with a line break: last line %q", last)
	}
	for _, line := range lines[:len(lines)-1] {
		fields := strings.Split(line, ";")
		if len(fields) != 4 {
			t.Fatalf("line %q has %d fields, want 4 (user_id;segment;operation;datetime)", line, len(fields))
		}
		if !csvDatetime.MatchString(fields[3]) {
			t.Fatalf("line %q: datetime %q is not UTC with 6 fractional digits", line, fields[3])
		}
		at, err := time.Parse(time.RFC3339Nano, fields[3])
		if err != nil {
			t.Fatalf("line %q: datetime is not RFC 3339: %v", line, err)
		}
		if at.Before(from) || !at.Before(to) {
			t.Fatalf("line %q is outside the report's month [%v, %v)", line, from, to)
		}
		rows = append(rows, [4]string(fields))
	}
	return rows
}

func csvTime(at time.Time) string { return at.UTC().Format("2006-01-02T15:04:05.000000Z") }

// wantRows compares rows with the expected events as CSV rows, in the
// report's order (time, user, segment).
func wantRows(t *testing.T, what string, got [][4]string, events []historyRow) {
	t.Helper()
	events = slices.Clone(events)
	slices.SortStableFunc(events, func(a, b historyRow) int {
		if c := a.At.Compare(b.At); c != 0 {
			return c
		}
		if c := strings.Compare(a.User, b.User); c != 0 {
			return c
		}
		return strings.Compare(a.Slug, b.Slug)
	})
	want := make([][4]string, 0, len(events))
	for _, e := range events {
		want = append(want, [4]string{e.User, e.Slug, e.Operation, csvTime(e.At)})
	}
	if !slices.Equal(got, want) {
		t.Fatalf("%s: rows\n%s\nwant\n%s", what, formatRows(got), formatRows(want))
	}
}

func formatRows(rows [][4]string) string {
	var b strings.Builder
	for _, r := range rows {
		fmt.Fprintf(&b, "  %s\n", strings.Join(r[:], ";"))
	}
	return b.String()
}

// monthOf gives the report query and bounds of the UTC month holding t.
func monthOf(at time.Time) (year, month int, from, to time.Time) {
	at = at.UTC()
	from = time.Date(at.Year(), at.Month(), 1, 0, 0, 0, 0, time.UTC)
	return at.Year(), int(at.Month()), from, from.AddDate(0, 1, 0)
}

// A known history, built through the API, comes back as the month's CSV
// report: for everyone and for one user (deleted users included), in the
// contract's format and order, without reasons.
func TestHistoryReport(t *testing.T) {
	reset(t)
	s := startHistoryStack(t)
	started := time.Now().UTC()
	year, month, from, to := monthOf(started)

	// u1 < u2, while u2 joins HIST_C first: their HIST_C removals (one
	// transaction, one time) must come in user order, not insertion order.
	u1, u2, u3 := newUUID(), newUUID(), newUUID()
	if u1 > u2 {
		u1, u2 = u2, u1
	}
	for _, u := range []string{u1, u2, u3} {
		s.mutate(t, http.MethodPost, "/segments/create-user", `{"userID":"`+u+`"}`)
	}
	for _, slug := range []string{"HIST_A", "HIST_B", "HIST_C", "HIST_T"} {
		s.mutate(t, http.MethodPost, "/segments/create", `{"slug":"`+slug+`"}`)
	}
	change := func(user, body string) {
		t.Helper()
		s.mutate(t, http.MethodPost, "/segments/change-for-user", `{"userID":"`+user+`",`+body+`}`)
	}
	// Added B, T, A in one transaction: reported A, B, T.
	change(u1, `"segmentsToAdd":[{"segmentSlug":"HIST_B"},{"segmentSlug":"HIST_T","secondsToBeInSegment":1},{"segmentSlug":"HIST_A"}]`)
	change(u2, `"segmentsToAdd":[{"segmentSlug":"HIST_C"},{"segmentSlug":"HIST_A"}]`)
	change(u1, `"segmentsToAdd":[{"segmentSlug":"HIST_C"}],"segmentsToRemove":[{"segmentSlug":"HIST_B"}]`)
	change(u3, `"segmentsToAdd":[{"segmentSlug":"HIST_A"},{"segmentSlug":"HIST_B"}]`)
	// Nothing happens for a change that is refused.
	wantError(t, s.call(t, http.MethodPost, "/segments/change-for-user",
		`{"userID":"`+u2+`","segmentsToAdd":[{"segmentSlug":"HIST_B"},{"segmentSlug":"HIST_A"}]}`),
		http.StatusBadRequest, "validation_error")
	s.mutate(t, http.MethodDelete, "/segments/remove", `{"slug":"HIST_C"}`)
	s.mutate(t, http.MethodDelete, "/segments/remove-user", `{"userID":"`+u3+`"}`)

	// The TTL membership ends by itself (the expiry job), stamped at its
	// deadline.
	eventually(t, 10*time.Second, "the TTL membership's removal is in the history", func() bool {
		return queryInt(t, `SELECT count(*) FROM history WHERE slug = 'HIST_T' AND operation = 'remove'`) == 1
	})

	// What the database holds is what the calls above did.
	type key struct{ user, slug, op, reason string }
	intended := []key{
		{u1, "HIST_A", "add", "manual"}, {u1, "HIST_B", "add", "manual"}, {u1, "HIST_T", "add", "manual"},
		{u2, "HIST_A", "add", "manual"}, {u2, "HIST_C", "add", "manual"},
		{u1, "HIST_B", "remove", "manual"}, {u1, "HIST_C", "add", "manual"},
		{u3, "HIST_A", "add", "manual"}, {u3, "HIST_B", "add", "manual"},
		{u1, "HIST_C", "remove", "segment_deleted"}, {u2, "HIST_C", "remove", "segment_deleted"},
		{u3, "HIST_A", "remove", "user_deleted"}, {u3, "HIST_B", "remove", "user_deleted"},
		{u1, "HIST_T", "remove", "ttl"},
	}
	events := history(t)
	byKey := map[key]historyRow{}
	for _, e := range events {
		byKey[key{e.User, e.Slug, e.Operation, e.Reason}] = e
	}
	if len(events) != len(intended) || len(byKey) != len(intended) {
		t.Fatalf("history %v, want the %d events %v", events, len(intended), intended)
	}
	for _, k := range intended {
		if _, ok := byKey[k]; !ok {
			t.Fatalf("history %v lacks %v", events, k)
		}
	}
	ttlAdd, ttlRemove := byKey[key{u1, "HIST_T", "add", "manual"}], byKey[key{u1, "HIST_T", "remove", "ttl"}]
	if !ttlRemove.At.Equal(ttlAdd.At.Add(time.Second)) {
		t.Fatalf("the TTL removal is stamped %v, want its deadline %v", ttlRemove.At, ttlAdd.At.Add(time.Second))
	}
	if y, m, _, _ := monthOf(time.Now()); y != year || m != month {
		t.Skip("the UTC month changed while the history was being built")
	}

	// Everyone.
	link, expires := s.reportLink(t, fmt.Sprintf("month=%d&year=%d", month, year))
	if q := link.Query(); q.Has("userID") || q.Get("year") != strconv.Itoa(year) || q.Get("month") != strconv.Itoa(month) ||
		q.Get("key") != historyKeyID {
		t.Fatalf("the link's query %v, want year=%d month=%d key=%s and no userID", q, year, month, historyKeyID)
	}
	if left := time.Until(expires); left < 4*time.Hour-time.Minute || left > 4*time.Hour {
		t.Fatalf("the link expires in %v, want the configured 4h", left)
	}
	fileName := fmt.Sprintf("segments-history-%04d-%02d.csv", year, month)
	rows := reportRows(t, download(t, s.url, link), fileName, from, to)
	wantRows(t, "the report for everyone", rows, events)
	for _, row := range rows {
		for _, reason := range []string{"manual", "ttl", "segment_deleted", "user_deleted"} {
			if slices.Contains(row[:], reason) {
				t.Fatalf("row %q carries the reason %q", row, reason)
			}
		}
		if row[2] != "add" && row[2] != "remove" {
			t.Fatalf("row %q: operation %q", row, row[2])
		}
	}
	// HEAD: the same headers, no body.
	head := callAt(t, s.url, http.MethodHead, link.Path+"?"+link.RawQuery, "")
	if head.status != http.StatusOK || len(head.body) != 0 || head.header.Get("Content-Disposition") != "attachment; filename="+fileName {
		t.Fatalf("HEAD of the link: %s %v", head, head.header)
	}

	// One user, any letter case in the request; the deleted user's history
	// is still there.
	for _, u := range []string{u1, u3} {
		link, _ := s.reportLink(t, fmt.Sprintf("userID=%s&month=%d&year=%d", strings.ToUpper(u), month, year))
		if got := link.Query().Get("userID"); got != u {
			t.Fatalf("the link's userID = %q, want the canonical %q", got, u)
		}
		var mine []historyRow
		for _, e := range events {
			if e.User == u {
				mine = append(mine, e)
			}
		}
		name := fmt.Sprintf("segments-history-%04d-%02d-%s.csv", year, month, u)
		wantRows(t, "the report for "+u, reportRows(t, download(t, s.url, link), name, from, to), mine)
	}

	// A user with no history this month, and a month with no events: the
	// header only.
	for _, query := range []string{
		fmt.Sprintf("userID=%s&month=%d&year=%d", newUUID(), month, year),
		fmt.Sprintf("month=%d&year=%d", month, year-1),
		"month=1&year=1970",
		"month=12&year=9999",
	} {
		link, _ := s.reportLink(t, query)
		r := download(t, s.url, link)
		if r.status != http.StatusOK || string(r.body) != csvHeader {
			t.Fatalf("report for %s: %s, want the header only", query, r)
		}
	}
}

// Events at the edges of a month belong to the month that holds them:
// [first instant, first instant of the next month).
func TestHistoryReportMonthBoundaries(t *testing.T) {
	reset(t)
	s := startHistoryStack(t)
	user := newUUID()
	edge := func(at string) time.Time {
		v, err := time.Parse(time.RFC3339Nano, at)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	// Written straight into the database: the API stamps events with the
	// current time only.
	for _, at := range []string{
		"2023-07-31T23:59:59.999999Z", "2023-08-01T00:00:00Z", "2023-08-31T23:59:59.999999Z", "2023-09-01T00:00:00Z",
	} {
		if _, err := db.Exec(`INSERT INTO history (user_id, segment_id, slug, operation, reason, at)
			VALUES ($1, 1, 'EDGE', 'add', 'manual', $2)`, user, edge(at)); err != nil {
			t.Fatalf("inserting an event: %v", err)
		}
	}
	link, _ := s.reportLink(t, "month=8&year=2023")
	rows := reportRows(t, download(t, s.url, link), "segments-history-2023-08.csv",
		edge("2023-08-01T00:00:00Z"), edge("2023-09-01T00:00:00Z"))
	want := [][4]string{
		{user, "EDGE", "add", "2023-08-01T00:00:00.000000Z"},
		{user, "EDGE", "add", "2023-08-31T23:59:59.999999Z"},
	}
	if !slices.Equal(rows, want) {
		t.Fatalf("August 2023:\n%swant\n%s", formatRows(rows), formatRows(want))
	}
}

// A link that was changed in any way is not found, never a report; so is a
// link whose key the server does not hold.
func TestHistoryReportLinkTampered(t *testing.T) {
	reset(t)
	s := startHistoryStack(t)
	user, other := newUUID(), newUUID()
	s.mutate(t, http.MethodPost, "/segments/create-user", `{"userID":"`+user+`"}`)
	s.mutate(t, http.MethodPost, "/segments/create", `{"slug":"TAMPER"}`)
	s.mutate(t, http.MethodPost, "/segments/change-for-user", `{"userID":"`+user+`","segmentsToAdd":[{"segmentSlug":"TAMPER"}]}`)
	year, month, _, _ := monthOf(time.Now())

	mine, _ := s.reportLink(t, fmt.Sprintf("userID=%s&month=%d&year=%d", user, month, year))
	everyone, _ := s.reportLink(t, fmt.Sprintf("month=%d&year=%d", month, year))
	for _, link := range []*neturl.URL{mine, everyone} {
		if r := download(t, s.url, link); r.status != http.StatusOK || !strings.Contains(string(r.body), user+";TAMPER;add;") {
			t.Fatalf("the untouched link %s: %s", link, r)
		}
	}

	flip := func(sig string) string {
		b := []byte(sig)
		if b[0] == 'A' {
			b[0] = 'B'
		} else {
			b[0] = 'A'
		}
		return string(b)
	}
	tampered := []struct {
		name   string
		link   *neturl.URL
		change func(q neturl.Values)
	}{
		{"another user", mine, func(q neturl.Values) { q.Set("userID", other) }},
		{"userID dropped: everyone", mine, func(q neturl.Values) { q.Del("userID") }},
		{"userID added", everyone, func(q neturl.Values) { q.Set("userID", user) }},
		{"another year", mine, func(q neturl.Values) { q.Set("year", strconv.Itoa(year-1)) }},
		{"another month", mine, func(q neturl.Values) { q.Set("month", strconv.Itoa(month%12+1)) }},
		{"month dropped", everyone, func(q neturl.Values) { q.Del("month") }},
		{"later expiry", mine, func(q neturl.Values) {
			n, _ := strconv.ParseInt(q.Get("expires"), 10, 64)
			q.Set("expires", strconv.FormatInt(n+3600, 10))
		}},
		{"earlier expiry", everyone, func(q neturl.Values) {
			n, _ := strconv.ParseInt(q.Get("expires"), 10, 64)
			q.Set("expires", strconv.FormatInt(n-1, 10))
		}},
		{"unknown key", mine, func(q neturl.Values) { q.Set("key", "e2e-other") }},
		{"key dropped", everyone, func(q neturl.Values) { q.Del("key") }},
		{"signature changed", mine, func(q neturl.Values) { q.Set("signature", flip(q.Get("signature"))) }},
		{"signature cut", everyone, func(q neturl.Values) { sig := q.Get("signature"); q.Set("signature", sig[:len(sig)-1]) }},
		{"signature dropped", mine, func(q neturl.Values) { q.Del("signature") }},
	}
	for _, tc := range tampered {
		t.Run(tc.name, func(t *testing.T) {
			q := tc.link.Query()
			tc.change(q)
			changed := *tc.link
			changed.RawQuery = q.Encode()
			r := download(t, s.url, &changed)
			wantOneError(t, r, http.StatusNotFound, "not_found", "*")
			if strings.Contains(string(r.body), "TAMPER") || strings.Contains(string(r.body), user) {
				t.Fatalf("the answer leaks report data: %s", r)
			}
		})
	}
	// Not a number: a parse error, not a lookup.
	q := mine.Query()
	q.Set("expires", "tomorrow")
	changed := *mine
	changed.RawQuery = q.Encode()
	wantOneError(t, download(t, s.url, &changed), http.StatusBadRequest, "parse_error", "*")

	// A server that does not hold the key (the shared one signs with keys
	// of its own) refuses the link.
	wantOneError(t, download(t, baseURL, mine), http.StatusNotFound, "not_found", "*")
}

// Every instance that holds the signing key accepts a link; once the link's
// time is up it is not found.
func TestHistoryReportLinkExpires(t *testing.T) {
	reset(t)
	first := startHistoryStack(t)
	// A second instance: signs with a new key, still verifies the old one,
	// and gives links one second.
	short := startStack(t,
		"--report-link-keys=e2e-new:e2e-new-secret-0123456789abcdef0123456789,"+historyKeyID+":"+historySecret,
		"--report-link-ttl=1s", "--report-link-base-url=")
	year, month, _, _ := monthOf(time.Now())
	query := fmt.Sprintf("month=%d&year=%d", month, year)

	longLink, _ := first.reportLink(t, query)
	if r := download(t, short.url, longLink); r.status != http.StatusOK || string(r.body) != csvHeader {
		t.Fatalf("a link signed with a key the second instance holds: %s", r)
	}

	link, expires := short.reportLink(t, query)
	if got := link.Query().Get("key"); got != "e2e-new" {
		t.Fatalf("the second instance signed with key %q, want its first key e2e-new", got)
	}
	if left := time.Until(expires); left > time.Second {
		t.Fatalf("a 1s link expires in %v", left)
	}
	time.Sleep(time.Until(expires) + 50*time.Millisecond)
	wantOneError(t, download(t, short.url, link), http.StatusNotFound, "not_found", "report link expired at *")
	// The first instance does not hold the new key.
	wantOneError(t, download(t, first.url, link), http.StatusNotFound, "not_found", "*")
}

// A bad month or year is a validation error naming each field; a value
// that is not a number is a parse error.
func TestHistoryReportLinkBadRequest(t *testing.T) {
	s := startHistoryStack(t)
	tests := []struct {
		query, typ string
		infos      []string
	}{
		{"month=13&year=1969", "validation_error", []string{"month: must be 1..12", "year: must be 1970..9999"}},
		{"month=0&year=10000", "validation_error", []string{"month: must be 1..12", "year: must be 1970..9999"}},
		{"", "validation_error", []string{"month: must be 1..12", "year: must be 1970..9999"}},
		{"month=-1&year=2023", "validation_error", []string{"month: must be 1..12"}},
		{"userID=nope&month=8&year=2023", "validation_error", []string{"userID: must be a UUID or a decimal integer 0..9223372036854775807"}},
		{"month=aug&year=2023", "parse_error", nil},
		{"month=8&year=2023.5", "parse_error", nil},
	}
	for _, tc := range tests {
		r := s.call(t, http.MethodGet, "/segments/get-history-report-link?"+tc.query, "")
		entries := wantError(t, r, http.StatusBadRequest, tc.typ)
		if tc.infos == nil {
			continue
		}
		var infos []string
		for _, e := range entries {
			infos = append(infos, e.Info)
		}
		slices.Sort(infos)
		if !slices.Equal(infos, tc.infos) {
			t.Errorf("%q: infos %q, want %q", tc.query, infos, tc.infos)
		}
	}
	wantError(t, s.call(t, http.MethodPost, "/segments/get-history-report-link?month=8&year=2023", ""),
		http.StatusMethodNotAllowed, "method_not_allowed")
}

type apiEvent struct {
	UserID    string `json:"userID"`
	Segment   string `json:"segment"`
	Operation string `json:"operation"`
	Reason    string `json:"reason"`
	At        string `json:"at"`
	Actor     string `json:"actor"`
}

// userHistory reads one page of get-user-history.
func userHistory(t *testing.T, base, query string) ([]apiEvent, string) {
	t.Helper()
	r := callAt(t, base, http.MethodGet, "/segments/get-user-history?"+query, "")
	if r.status != http.StatusOK || r.header.Get("Content-Type") != "application/json" {
		t.Fatalf("get-user-history?%s: %s", query, r)
	}
	var body struct {
		Events        []apiEvent `json:"events"`
		NextPageToken *string    `json:"nextPageToken"`
	}
	dec := json.NewDecoder(bytes.NewReader(r.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil || dec.More() || body.Events == nil || body.NextPageToken == nil {
		t.Fatalf("get-user-history: body %q is not {\"events\": [...], \"nextPageToken\"}: %v", r.body, err)
	}
	return body.Events, *body.NextPageToken
}

func apiEventOf(h historyRow) apiEvent {
	return apiEvent{UserID: h.User, Segment: h.Slug, Operation: h.Operation, Reason: h.Reason, Actor: h.Actor}
}

// ListUserHistory over REST: newest first, with reasons and exact times;
// pages visit every event once; filters; errors.
func TestUserHistory(t *testing.T) {
	reset(t)
	user, other := newUUID(), newUUID()
	createUser(t, user)
	createUser(t, other)
	slugs := []string{"UH_A", "UH_B", "UH_C"}
	for _, s := range slugs {
		createSegment(t, s)
	}
	addSegments(t, other, "UH_A")
	for round := range 4 {
		addSegments(t, user, slugs...)
		body := `{"userID":"` + user + `","segmentsToRemove":[{"segmentSlug":"UH_A"},{"segmentSlug":"UH_B"}]}`
		if round == 3 {
			body = `{"userID":"` + user + `","segmentsToRemove":[{"segmentSlug":"UH_A"},{"segmentSlug":"UH_B"},{"segmentSlug":"UH_C"}]}`
		}
		wantNoContent(t, call(t, http.MethodPost, "/segments/change-for-user", body))
		if round < 3 {
			wantNoContent(t, call(t, http.MethodPost, "/segments/change-for-user",
				`{"userID":"`+user+`","segmentsToRemove":[{"segmentSlug":"UH_C"}]}`))
		}
	}
	addSegments(t, user, "UH_B")
	wantNoContent(t, call(t, http.MethodDelete, "/segments/remove", `{"slug":"UH_B"}`))
	addSegments(t, user, "UH_C")
	wantNoContent(t, call(t, http.MethodDelete, "/segments/remove-user", `{"userID":"`+user+`"}`))

	// The user's events as the database has them, newest first.
	rows, err := db.Query(`SELECT user_id::text, slug, operation::text, reason::text, at, coalesce(actor, 'unknown')
		FROM history WHERE user_id = $1 ORDER BY at DESC, id DESC`, user)
	if err != nil {
		t.Fatal(err)
	}
	var want []historyRow
	for rows.Next() {
		var h historyRow
		if err := rows.Scan(&h.User, &h.Slug, &h.Operation, &h.Reason, &h.At, &h.Actor); err != nil {
			t.Fatal(err)
		}
		want = append(want, h)
	}
	rows.Close()
	// 4 rounds of 3 adds and 3 removes, an add and its segment_deleted
	// removal, an add and its user_deleted removal.
	if len(want) != 4*6+2+2 {
		t.Fatalf("the database has %d events of the user, want 28: %v", len(want), want)
	}
	for i := 1; i < len(want); i++ {
		if want[i].At.After(want[i-1].At) {
			t.Fatal("the database query is not newest first")
		}
	}
	check := func(what string, got []apiEvent, want []historyRow) {
		t.Helper()
		if len(got) != len(want) {
			t.Fatalf("%s: %d events, want %d:\n%v\nwant\n%v", what, len(got), len(want), got, want)
		}
		for i := range want {
			at, err := time.Parse(time.RFC3339Nano, got[i].At)
			if err != nil || !strings.HasSuffix(got[i].At, "Z") {
				t.Fatalf("%s: event %d: at %q is not RFC 3339 UTC", what, i, got[i].At)
			}
			g := got[i]
			g.At = ""
			if g != apiEventOf(want[i]) || !at.Equal(want[i].At) {
				t.Fatalf("%s: event %d = %+v, want %+v at %v", what, i, got[i], want[i], want[i].At.UTC())
			}
		}
	}

	// One page with everything (the default page size is 100); every change
	// was made with the admin token.
	events, next := userHistory(t, baseURL, "userID="+strings.ToUpper(user))
	check("the whole history", events, want)
	for _, e := range events {
		if e.Actor != "e2e-admin" {
			t.Fatalf("event %+v: actor %q, want e2e-admin (the token's subject)", e, e.Actor)
		}
	}
	if next != "" {
		t.Fatalf("one page holds everything, yet nextPageToken = %q", next)
	}
	reasons := map[string]int{}
	for _, e := range events {
		reasons[e.Reason]++
	}
	if reasons["segment_deleted"] != 1 || reasons["user_deleted"] != 1 || reasons["manual"] != 26 {
		t.Fatalf("reasons %v, want 26 manual, 1 segment_deleted, 1 user_deleted", reasons)
	}

	// Pages of every size visit every event exactly once, in order.
	for _, size := range []int{1, 3, 7, 27, 28, 29} {
		var all []apiEvent
		token, pages := "", 0
		for {
			q := fmt.Sprintf("userID=%s&pageSize=%d", user, size)
			if token != "" {
				q += "&pageToken=" + neturl.QueryEscape(token)
			}
			page, next := userHistory(t, baseURL, q)
			pages++
			if len(page) > size || (next != "" && len(page) != size) {
				t.Fatalf("pageSize %d: page %d has %d events, next %q", size, pages, len(page), next)
			}
			all = append(all, page...)
			if next == "" {
				break
			}
			if pages > len(want)+1 {
				t.Fatalf("pageSize %d: more pages than events", size)
			}
			token = next
		}
		check(fmt.Sprintf("pageSize %d", size), all, want)
		if wantPages := max(1, (len(want)+size-1)/size); pages != wantPages {
			t.Fatalf("pageSize %d: %d pages, want %d", size, pages, wantPages)
		}
	}

	// One segment's events; a time window [from, to).
	var onlyA []historyRow
	for _, e := range want {
		if e.Slug == "UH_A" {
			onlyA = append(onlyA, e)
		}
	}
	events, _ = userHistory(t, baseURL, "userID="+user+"&segment=UH_A")
	check("segment=UH_A", events, onlyA)
	from, to := want[len(want)-1-4].At, want[3].At // inclusive from, exclusive to
	var window []historyRow
	for _, e := range want {
		if !e.At.Before(from) && e.At.Before(to) {
			window = append(window, e)
		}
	}
	events, _ = userHistory(t, baseURL, "userID="+user+"&from="+neturl.QueryEscape(from.UTC().Format(time.RFC3339Nano))+
		"&to="+neturl.QueryEscape(to.UTC().Format(time.RFC3339Nano)))
	check("from..to", events, window)

	// Someone else's history is not mixed in; an unknown id has none.
	events, next = userHistory(t, baseURL, "userID="+other)
	if len(events) != 1 || events[0].UserID != other || events[0].Segment != "UH_A" || next != "" {
		t.Fatalf("the other user's history: %+v %q", events, next)
	}
	events, next = userHistory(t, baseURL, "userID="+newUUID())
	if len(events) != 0 || next != "" {
		t.Fatalf("an unknown user's history: %+v %q", events, next)
	}

	// Errors.
	for _, tc := range []struct{ query, typ, info string }{
		{"userID=" + user + "&pageToken=not-a-token", "validation_error", "pageToken: is not a token this service issued"},
		{"userID=" + user + "&pageToken=" + neturl.QueryEscape("aDE6eDp5"), "validation_error", "pageToken: is not a token this service issued"},
		{"userID=" + user + "&pageSize=1001", "validation_error", "pageSize: *"},
		{"userID=" + user + "&pageSize=-1", "validation_error", "pageSize: *"},
		{"userID=nope", "validation_error", "userID: must be a UUID or a decimal integer 0..9223372036854775807"},
		{"", "validation_error", "userID: is required"},
		{"userID=" + user + "&segment=-bad", "validation_error", "segment: *"},
		{"userID=" + user + "&from=2023-09-01T00:00:00Z&to=2023-08-01T00:00:00Z", "validation_error", "to: must be later than from"},
		{"userID=" + user + "&pageSize=ten", "parse_error", "*"},
		{"userID=" + user + "&from=yesterday", "parse_error", "*"},
	} {
		wantOneError(t, call(t, http.MethodGet, "/segments/get-user-history?"+tc.query, ""), http.StatusBadRequest, tc.typ, tc.info)
	}
}

// The TTL expiry job ends a membership by itself once its time is up: the
// row goes, and the user's history gets a `remove` with reason ttl stamped
// at the deadline, add time + 1 s exactly, not when the job ran.
func TestHistoryTTLExpiryJob(t *testing.T) {
	reset(t)
	s := startHistoryStack(t)
	user := newUUID()
	s.mutate(t, http.MethodPost, "/segments/create-user", `{"userID":"`+user+`"}`)
	s.mutate(t, http.MethodPost, "/segments/create", `{"slug":"TTL_JOB"}`)
	s.mutate(t, http.MethodPost, "/segments/create", `{"slug":"TTL_KEEP"}`)
	s.mutate(t, http.MethodPost, "/segments/change-for-user",
		`{"userID":"`+user+`","segmentsToAdd":[{"segmentSlug":"TTL_JOB","secondsToBeInSegment":1},{"segmentSlug":"TTL_KEEP"}]}`)

	events, _ := userHistory(t, s.url, "userID="+user+"&segment=TTL_JOB")
	if len(events) != 1 || events[0].Operation != "add" || events[0].Reason != "manual" {
		t.Fatalf("after adding: %+v", events)
	}
	added, err := time.Parse(time.RFC3339Nano, events[0].At)
	if err != nil {
		t.Fatal(err)
	}
	deadline := added.Add(time.Second)

	// Nobody touches the user: only the job can end the membership, within
	// a few of its 200 ms periods after the deadline.
	eventually(t, time.Until(deadline)+3*time.Second, "the expiry job ends the TTL membership", func() bool {
		return queryInt(t, `SELECT count(*) FROM memberships WHERE user_id = $1`, user) == 1
	})
	if time.Now().Before(deadline) {
		t.Fatalf("the membership ended before its deadline %v", deadline)
	}
	events, next := userHistory(t, s.url, "userID="+user)
	if len(events) != 3 || next != "" {
		t.Fatalf("history %+v, want the TTL removal and two adds", events)
	}
	got := events[0]
	if got.UserID != user || got.Segment != "TTL_JOB" || got.Operation != "remove" || got.Reason != "ttl" {
		t.Fatalf("newest event %+v, want TTL_JOB remove ttl", got)
	}
	at, err := time.Parse(time.RFC3339Nano, got.At)
	if err != nil || !at.Equal(deadline) {
		t.Fatalf("the TTL removal is stamped %q, want the deadline %s", got.At, deadline.Format(time.RFC3339Nano))
	}
	wantJSON(t, s.call(t, http.MethodGet, "/segments/get-for-user?userID="+user, ""), `{"segments":["TTL_KEEP"]}`)
	// The removal is in the month's report at the deadline as well.
	year, month, from, to := monthOf(deadline)
	link, _ := s.reportLink(t, fmt.Sprintf("userID=%s&month=%d&year=%d", user, month, year))
	rows := reportRows(t, download(t, s.url, link), fmt.Sprintf("segments-history-%04d-%02d-%s.csv", year, month, user), from, to)
	if !slices.Contains(rows, [4]string{user, "TTL_JOB", "remove", csvTime(deadline)}) {
		t.Fatalf("the report lacks the TTL removal at %s:\n%s", csvTime(deadline), formatRows(rows))
	}
}
