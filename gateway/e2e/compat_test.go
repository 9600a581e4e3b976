package e2e

import (
	"bytes"
	"encoding/json"
	"net/http"
	neturl "net/url"
	"strings"
	"testing"
)

// The HTTP habits of the original service's clients, through the real
// gateway and server: JSON keys in any case, trailing slashes, HEAD, Allow
// on a 405; and what they must not see: gRPC metadata, Go's error texts,
// nulls.

// Keys match as Go's encoding/json matches them (the original decoded its
// bodies with it): exact, else case-insensitive, in nested objects too; of
// two keys for one field the last one wins.
func TestKeysMatchAsEncodingJSON(t *testing.T) {
	reset(t)
	user, other := newUUID(), newUUID()
	wantNoContent(t, call(t, http.MethodPost, "/segments/create", `{"Slug":"KEYS_TTL"}`))
	wantNoContent(t, call(t, http.MethodPost, "/segments/create", `{"SLUG":"KEYS_PERMANENT"}`))
	wantNoContent(t, call(t, http.MethodPost, "/segments/create-user", `{"UserID":"`+user+`"}`))
	wantNoContent(t, call(t, http.MethodPost, "/segments/create-user", `{"userId":"`+other+`"}`))
	wantNoContent(t, call(t, http.MethodPost, "/segments/change-for-user", `{"USERID":"`+user+`","SegmentsToAdd":[`+
		`{"segmentslug":"KEYS_TTL","SECONDSTOBEINSEGMENT":3600},{"SegmentSlug":"KEYS_PERMANENT","colour":"red"}]}`))
	wantSegments(t, user, "KEYS_PERMANENT", "KEYS_TTL")
	if m := members(t, "KEYS_TTL")[user]; m.ExpiresAt == nil {
		t.Fatalf("SECONDSTOBEINSEGMENT did not reach the server: %+v", m)
	}
	if m := members(t, "KEYS_PERMANENT")[user]; m.ExpiresAt != nil {
		t.Fatalf("a permanent member expires: %+v", m)
	}

	// userID then userId: the last one names the user.
	wantNoContent(t, call(t, http.MethodPost, "/segments/change-for-user",
		`{"userID":"`+user+`","userId":"`+other+`","segmentsToAdd":[{"segmentSlug":"KEYS_PERMANENT"},{"segmentSlug":"KEYS_TTL"}]}`))
	wantSegments(t, other, "KEYS_PERMANENT", "KEYS_TTL")
	wantNoContent(t, call(t, http.MethodPost, "/segments/change-for-user",
		`{"userID":"`+other+`","SegmentsToRemove":[{"SEGMENTSLUG":"KEYS_PERMANENT"}],"segmentsToRemove":[{"segmentSlug":"KEYS_TTL"}]}`))
	wantSegments(t, other, "KEYS_PERMANENT") // the first list was replaced by the second
	wantNoContent(t, call(t, http.MethodDelete, "/segments/remove", `{"slug":"NOT_THIS","Slug":"KEYS_TTL"}`))
	wantSegments(t, user, "KEYS_PERMANENT")
	wantNoContent(t, call(t, http.MethodPut, "/segments/update-user", `{"USERID":"`+user+`","STATUS":"excluded"}`))
	if n := queryInt(t, `SELECT count(*) FROM users WHERE id = $1 AND state = 'excluded'`, user); n != 1 {
		t.Fatalf("STATUS did not reach the server")
	}
	wantNoContent(t, call(t, http.MethodDelete, "/segments/remove-user", `{"user_id":"`+user+`"}`))
	if n := queryInt(t, `SELECT count(*) FROM users`); n != 1 {
		t.Fatalf("%d users left, want 1", n)
	}
}

// What the gateway cannot read is said with the field and what it must be,
// never with protobuf-go's or strconv's words.
func TestParseErrorsSayWhichFieldAndWhy(t *testing.T) {
	reset(t)
	user := newUUID()
	createUser(t, user)
	for _, tc := range []struct{ method, path, body, info string }{
		{http.MethodPost, "/segments/create", `{"slug": 30}`, `slug: must be a string, got 30`},
		{http.MethodPost, "/segments/create", `{"slug":"A","PercentToFill":"lots"}`, `percentToFill: must be a number, got "lots"`},
		{http.MethodPost, "/segments/change-for-user", `{"userID":"` + user + `","segmentsToAdd":[{"segmentSlug":"S"},{"segmentSlug":"T","secondsToBeInSegment":"soon"}]}`,
			`segmentsToAdd[1].secondsToBeInSegment: must be an integer, got "soon"`},
		{http.MethodPost, "/segments/change-for-user", `{"userID":"` + user + `","segmentsToAdd":[{"segmentSlug":"S","deadlineForStayingInSegment":"next week"}]}`,
			`segmentsToAdd[0].deadlineForStayingInSegment: must be an RFC 3339 time from 0001 to 9999 such as "2030-01-02T03:04:05Z", got "next week"`},
		{http.MethodPost, "/segments/bulk-add", `{"slug":"S","userIDs":["` + user + `",7]}`, `userIDs[1]: must be a string, got 7`},
		{http.MethodGet, "/segments/get-history-report-link?month=&year=2023", "", `month: must be an integer, got ""`},
		{http.MethodGet, "/segments/get-history-report-link?month=8&year=99999999999", "",
			`year: must be an integer from -2147483648 to 2147483647, got "99999999999"`},
		{http.MethodGet, "/segments/get-user-history?userID=" + user + "&from=yesterday", "",
			`from: must be an RFC 3339 time from 0001 to 9999 such as "2030-01-02T03:04:05Z", got "yesterday"`},
		{http.MethodGet, "/segments/get-for-user?userID=" + user + "&user_id=" + user, "", `user_id: the same parameter as userID; give it once`},
		{http.MethodGet, "/segments/history-report?year=2023&month=8&expires=soon", "", `report link: expires: must be an integer, got "soon"`},
	} {
		wantOneError(t, call(t, tc.method, tc.path, tc.body), http.StatusBadRequest, "parse_error", tc.info)
	}
	if n := queryInt(t, `SELECT count(*) FROM segments`); n != 0 {
		t.Fatalf("%d segments were created", n)
	}
}

// A trailing slash on a known path is served as the path without it.
func TestTrailingSlash(t *testing.T) {
	reset(t)
	user := newUUID()
	wantNoContent(t, call(t, http.MethodPost, "/segments/create/", `{"slug":"SLASHED"}`))
	wantNoContent(t, call(t, http.MethodPost, "/segments/create-user/", `{"userID":"`+user+`"}`))
	wantNoContent(t, call(t, http.MethodPost, "/segments/change-for-user/", `{"userID":"`+user+`","segmentsToAdd":[{"segmentSlug":"SLASHED"}]}`))
	wantJSON(t, call(t, http.MethodGet, "/segments/get-for-user/?userID="+user, ""), `{"segments":["SLASHED"]}`)
	wantError(t, call(t, http.MethodGet, "/segments/create/", ""), http.StatusMethodNotAllowed, "method_not_allowed")
	wantError(t, call(t, http.MethodPost, "/segments/nope/", `{}`), http.StatusNotFound, "not_found")
	wantNoContent(t, call(t, http.MethodDelete, "/segments/remove/", `{"slug":"SLASHED"}`))
	wantSegments(t, user)
}

// HEAD on every GET route answers what GET answers, without the body; the
// report link too.
func TestHeadOnEveryGetRoute(t *testing.T) {
	reset(t)
	user := newUUID()
	createUser(t, user)
	createSegment(t, "HEADED")
	addSegments(t, user, "HEADED")
	r := call(t, http.MethodGet, "/segments/get-history-report-link?month=1&year=2024", "")
	var link struct{ ReportLink string }
	if err := json.Unmarshal(r.body, &link); err != nil || link.ReportLink == "" {
		t.Fatalf("get-history-report-link: %s", r)
	}
	parsed, err := neturl.Parse(link.ReportLink)
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{
		"/segments/get-for-user?userID=" + user,
		"/segments/get-segment?slug=HEADED",
		"/segments/get-segment?slug=NO_SUCH",
		"/segments/list",
		"/segments/list-members?slug=HEADED",
		"/segments/stream-members?slug=HEADED",
		"/segments/get-history-report-link?month=1&year=2024",
		"/segments/get-history-report-link?month=13&year=2024",
		"/segments/get-user-history?userID=" + user,
		parsed.RequestURI(),
		"/healthz",
		"/healthz/",
		"/swagger/index.html",
		"/swagger/index.css",
		"/swagger/doc.json",
	} {
		get := call(t, http.MethodGet, path, "")
		head := call(t, http.MethodHead, path, "")
		if head.status != get.status || head.header.Get("Content-Type") != get.header.Get("Content-Type") || len(head.body) != 0 {
			t.Errorf("HEAD %s: %s; GET: %s", path, head, get)
		}
		if cl := head.header.Get("Content-Length"); cl != "" && cl != get.header.Get("Content-Length") {
			t.Errorf("HEAD %s: Content-Length %s, GET %s", path, cl, get.header.Get("Content-Length"))
		}
	}
}

// Every 405 says in Allow what the path takes.
func TestMethodNotAllowedHasAllow(t *testing.T) {
	reset(t)
	for path, allow := range map[string]string{
		"/segments/create":                  "POST",
		"/segments/remove":                  "DELETE",
		"/segments/change-for-user":         "POST",
		"/segments/get-for-user":            "GET, HEAD",
		"/segments/create-user":             "POST",
		"/segments/update-user":             "PUT",
		"/segments/remove-user":             "DELETE",
		"/segments/get-history-report-link": "GET, HEAD",
		"/segments/history-report":          "GET, HEAD",
		"/segments/stream-members/":         "GET, HEAD",
		"/healthz":                          "GET, HEAD",
		"/swagger/index.html":               "GET, HEAD",
	} {
		for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch, http.MethodOptions} {
			if strings.Contains(", "+allow+", ", ", "+m+", ") {
				continue
			}
			r := call(t, m, path, `{}`)
			wantError(t, r, http.StatusMethodNotAllowed, "method_not_allowed")
			if got := r.header.Get("Allow"); got != allow {
				t.Errorf("%s %s: Allow %q, want %q", m, path, got, allow)
			}
		}
	}
	if n := queryInt(t, `SELECT (SELECT count(*) FROM segments) + (SELECT count(*) FROM users)`); n != 0 {
		t.Fatalf("a wrong method changed the database")
	}
}

// The server's gRPC metadata (content-type at least) never becomes a
// header or a trailer of an answer.
func TestNoGRPCMetadataInAnswers(t *testing.T) {
	reset(t)
	user := newUUID()
	createUser(t, user)
	createSegment(t, "META")
	for _, c := range []struct{ method, path, body string }{
		{http.MethodGet, "/segments/get-for-user?userID=" + user, ""},
		{http.MethodPost, "/segments/change-for-user", `{"userID":"` + user + `","segmentsToAdd":[{"segmentSlug":"META"}]}`},
		{http.MethodPost, "/segments/create", `{"slug":"META"}`},
		{http.MethodGet, "/segments/stream-members?slug=META", ""},
		{http.MethodGet, "/segments/list", ""},
		{http.MethodGet, "/healthz", ""},
	} {
		req, err := http.NewRequest(c.method, baseURL+c.path, strings.NewReader(c.body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("TE", "trailers")
		resp, err := httpClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body bytes.Buffer
		_, _ = body.ReadFrom(resp.Body)
		resp.Body.Close()
		for _, fields := range []http.Header{resp.Header, resp.Trailer} {
			for name, values := range fields {
				if strings.HasPrefix(strings.ToLower(name), "grpc-") || strings.EqualFold(name, "Trailer") {
					t.Errorf("%s %s (%d): the answer carries %s: %v", c.method, c.path, resp.StatusCode, name, values)
				}
			}
		}
	}
}

// A permanent member has no expiresAt (absent, not null) in list-members
// and stream-members; empty lists and zero numbers are still written.
func TestAbsentExpiresAtIsLeftOut(t *testing.T) {
	reset(t)
	permanent, timed := newUUID(), newUUID()
	createUser(t, permanent)
	createUser(t, timed)
	createSegment(t, "MIXED")
	addSegments(t, permanent, "MIXED")
	wantNoContent(t, call(t, http.MethodPost, "/segments/change-for-user",
		`{"userID":"`+timed+`","segmentsToAdd":[{"segmentSlug":"MIXED","secondsToBeInSegment":3600}]}`))
	for _, path := range []string{"/segments/list-members?slug=MIXED", "/segments/stream-members?slug=MIXED"} {
		r := call(t, http.MethodGet, path, "")
		if r.status != http.StatusOK || bytes.Contains(r.body, []byte("null")) {
			t.Fatalf("%s: %s", path, r)
		}
		var found int
		for _, line := range bytes.Split(bytes.TrimSpace(r.body), []byte("\n")) {
			var page struct {
				Members []map[string]json.RawMessage `json:"members"`
				Result  *struct {
					Members []map[string]json.RawMessage `json:"members"`
				} `json:"result"`
			}
			if err := json.Unmarshal(line, &page); err != nil {
				t.Fatalf("%s: %v in %s", path, err, r)
			}
			list := page.Members
			if page.Result != nil {
				list = page.Result.Members
			}
			for _, m := range list {
				var id string
				_ = json.Unmarshal(m["userID"], &id)
				_, has := m["expiresAt"]
				if (id == timed) != has {
					t.Errorf("%s: member %s: expiresAt present %v", path, id, has)
				}
				found++
			}
		}
		if found != 2 {
			t.Fatalf("%s: %d members, want 2: %s", path, found, r)
		}
	}
	wantJSON(t, call(t, http.MethodGet, "/segments/get-for-user?userID="+newUUID(), ""), `{"segments":[]}`)
	r := call(t, http.MethodGet, "/segments/get-segment?slug=MIXED", "")
	for _, want := range []string{`"percentToFill":0`, `"description":""`, `"includeSegments":[]`, `"memberCount":"2"`} {
		if !bytes.Contains(r.body, []byte(want)) {
			t.Errorf("get-segment: %s lacks %s", r.body, want)
		}
	}
}

// Swagger UI's page finds its stylesheet.
func TestSwaggerIndexCSS(t *testing.T) {
	r := call(t, http.MethodGet, "/swagger/index.css", "")
	if r.status != http.StatusOK || !strings.HasPrefix(r.header.Get("Content-Type"), "text/css") || len(r.body) == 0 {
		t.Fatalf("/swagger/index.css: %d %q", r.status, r.header.Get("Content-Type"))
	}
}
