package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"segments/gateway"
)

// junkCase is one request that must never produce a 5xx.
type junkCase struct {
	name, method, path, body string
	// want, when set, is the exact status expected.
	want int
}

func nestedArrays(depth int) string {
	return strings.Repeat("[", depth) + strings.Repeat("]", depth)
}

func nestedObjects(depth int) string {
	return strings.Repeat(`{"a":`, depth) + "1" + strings.Repeat("}", depth)
}

// junkCases builds the table around an existing user and segment.
func junkCases(user, slug string) []junkCase {
	u := jsonString(user)
	var cases []junkCase
	add := func(c junkCase) { cases = append(cases, c) }

	// Slugs: create, remove and change-for-user with each nasty string.
	nastySlugs := map[string]string{
		"cyrillic":         "Сегмент",
		"cyrillic mixed":   "AVITO_ГОЛОС",
		"emoji":            "🚀",
		"emoji after ok":   "AVITO_🚀",
		"zero width":       "A\u200bB",
		"rtl override":     "A\u202eB",
		"fullwidth":        "ＡＢＣ",
		"combining":        "e\u0301",
		"nul only":         "\u0000",
		"nul inside":       "A\u0000B",
		"nul at end":       "AVITO\u0000",
		"newline":          "A\nB",
		"tab":              "A\tB",
		"spaces":           "   ",
		"empty":            "",
		"leading space":    " A",
		"sql quote":        "A'",
		"sql drop":         "x'; DROP TABLE segments; --",
		"sql or":           "' OR '1'='1",
		"sql comment":      "A/**/OR/**/1=1",
		"sql semicolon":    "A;DELETE FROM users",
		"percent wildcard": "%",
		"underscore start": "_A",
		"backslash":        `A\B`,
		"unicode escape":   "\\u0041",
		"long 129":         strings.Repeat("A", 129),
		"long 10k":         strings.Repeat("B", 10000),
		"long cyrillic":    strings.Repeat("Я", 5000),
		"long emoji":       strings.Repeat("😀", 3000),
		"html":             "<script>alert(1)</script>",
		"path traversal":   "../../etc/passwd",
		"format string":    "%s%s%s%n",
		"replacement char": "\ufffd",
		"lone surrogate":   "\\ud800", // written raw into JSON below
		"bom":              "\ufeffA",
	}
	names := make([]string, 0, len(nastySlugs))
	for name := range nastySlugs {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		s := jsonString(nastySlugs[name])
		if name == "lone surrogate" {
			s = `"\ud800"` // protojson must refuse or replace it, never crash
		}
		add(junkCase{name: "create slug " + name, method: http.MethodPost, path: "/segments/create", body: `{"slug":` + s + `}`})
		add(junkCase{name: "create description " + name, method: http.MethodPost, path: "/segments/create",
			body: `{"slug":"DESC_` + fmt.Sprint(len(cases)) + `","description":` + s + `}`})
		add(junkCase{name: "remove slug " + name, method: http.MethodDelete, path: "/segments/remove", body: `{"slug":` + s + `}`})
		add(junkCase{name: "add slug " + name, method: http.MethodPost, path: "/segments/change-for-user",
			body: `{"userID":` + u + `,"segmentsToAdd":[{"segmentSlug":` + s + `}]}`})
		add(junkCase{name: "remove-from-user slug " + name, method: http.MethodPost, path: "/segments/change-for-user",
			body: `{"userID":` + u + `,"segmentsToRemove":[{"segmentSlug":` + s + `}]}`})
		add(junkCase{name: "userID " + name, method: http.MethodPost, path: "/segments/create-user", body: `{"userID":` + s + `}`})
		add(junkCase{name: "update status " + name, method: http.MethodPut, path: "/segments/update-user",
			body: `{"userID":` + u + `,"status":` + s + `}`})
		add(junkCase{name: "remove-user " + name, method: http.MethodDelete, path: "/segments/remove-user", body: `{"userID":` + s + `}`})
		if name != "lone surrogate" {
			add(junkCase{name: "get-for-user query " + name, method: http.MethodGet,
				path: "/segments/get-for-user?userID=" + url.QueryEscape(nastySlugs[name])})
		}
	}

	// Structural junk on every route.
	bodies := map[string]string{
		"empty body":          "",
		"null":                "null",
		"true":                "true",
		"number":              "42",
		"string":              `"slug"`,
		"empty array":         "[]",
		"empty object":        "{}",
		"nested arrays":       nestedArrays(50),
		"deep arrays":         nestedArrays(20000),
		"deep objects":        nestedObjects(5000),
		"all fields null":     `{"slug":null,"percentToFill":null,"description":null,"userID":null,"status":null,"segmentsToAdd":null,"segmentsToRemove":null}`,
		"invalid utf8":        "{\"slug\":\"\xff\xfe\xfd\",\"userID\":\"\xc3\x28\"}",
		"invalid utf8 key":    "{\"\xff\":1}",
		"raw nul byte":        "{\"slug\":\"A\x00B\"}",
		"raw control chars":   "{\"slug\":\"A\x01\x02\x1f\"}",
		"bom before json":     "\xef\xbb\xbf{\"slug\":\"BOM\"}",
		"trailing garbage":    `{"slug":"TRAIL"} garbage`,
		"two objects":         `{"slug":"TWO_A"}{"slug":"TWO_B"}`,
		"unterminated string": `{"slug":"A`,
		"only whitespace":     " \n\t ",
		"binary":              "\x00\x01\x02\x03\xff",
		"huge number":         `{"percentToFill":1e999999,"secondsToBeInSegment":1e999999}`,
		"many keys":           "{" + strings.TrimSuffix(strings.Repeat(`"k":1,`, 5000), ",") + "}",
		"sql in key":          `{"slug'; DROP TABLE users; --":"A"}`,
		"numbers as strings":  `{"percentToFill":"0","userID":"1","secondsToBeInSegment":"1"}`,
	}
	bodyNames := make([]string, 0, len(bodies))
	for name := range bodies {
		bodyNames = append(bodyNames, name)
	}
	slices.Sort(bodyNames)
	for _, route := range routes {
		if route.method == http.MethodGet {
			continue
		}
		for _, name := range bodyNames {
			add(junkCase{name: name + " on " + route.path, method: route.method, path: route.path, body: bodies[name]})
		}
	}

	// Numbers: wrong kinds, huge, negative, as strings, special floats.
	for _, p := range []string{`-1`, `-0`, `100.001`, `1e308`, `1e400`, `-1e400`, `"NaN"`, `"Infinity"`, `"-Infinity"`, `"0x10"`,
		`"1e3"`, `" -5"`, `"five"`, `true`, `[]`, `{}`, `0.001`, `99.999`, `"0"`, `1e-400`, `12345678901234567890`} {
		add(junkCase{name: "percentToFill " + p, method: http.MethodPost, path: "/segments/create",
			body: `{"slug":"PCT_` + fmt.Sprint(len(cases)) + `","percentToFill":` + p + `}`})
	}
	for _, s := range []string{`0`, `-1`, `-9223372036854775808`, `9223372036854775807`, `9223372036854775808`,
		`99999999999999999999999`, `1e3`, `1.0`, `1.5`, `"1"`, `"-5"`, `"9223372036854775807"`, `"x"`, `null`, `true`,
		`[1]`, `{"seconds":1}`, `1e999`, `315576000000`, `315360000`} {
		add(junkCase{name: "secondsToBeInSegment " + s, method: http.MethodPost, path: "/segments/change-for-user",
			body: `{"userID":` + u + `,"segmentsToAdd":[{"segmentSlug":` + jsonString(slug) + `,"secondsToBeInSegment":` + s + `}]}`})
	}
	for _, d := range []string{`"0001-01-01T00:00:00Z"`, `"9999-12-31T23:59:59Z"`, `"10000-01-01T00:00:00Z"`,
		`"1969-12-31T23:59:59Z"`, `"2030-02-30T00:00:00Z"`, `"2030-01-01T25:00:00Z"`, `"2030-01-01"`, `"2030-01-01T00:00:00"`,
		`"2030-01-01T00:00:00+25:00"`, `"2030-01-01T00:00:00.1234567890123Z"`, `""`, `"now"`, `0`, `1700000000`, `null`,
		`{"seconds":99999999999}`, `["2030-01-01T00:00:00Z"]`, `"\u0000"`, `"２０３０-01-01T00:00:00Z"`} {
		add(junkCase{name: "deadline " + d, method: http.MethodPost, path: "/segments/change-for-user",
			body: `{"userID":` + u + `,"segmentsToAdd":[{"segmentSlug":` + jsonString(slug) + `,"deadlineForStayingInSegment":` + d + `}]}`})
	}

	// Lists: wrong shapes, nulls, nesting, many items.
	for _, l := range []string{`[null]`, `[[]]`, `[[{"segmentSlug":"A"}]]`, `[{}]`, `[{"segmentSlug":null}]`, `[1,2,3]`,
		`["A","B"]`, `[{"segmentSlug":["A"]}]`, `{"0":{"segmentSlug":"A"}}`, `[` + strings.TrimSuffix(strings.Repeat(`{},`, 2000), ",") + `]`} {
		add(junkCase{name: "segmentsToAdd " + l, method: http.MethodPost, path: "/segments/change-for-user",
			body: `{"userID":` + u + `,"segmentsToAdd":` + l + `}`})
		add(junkCase{name: "segmentsToRemove " + l, method: http.MethodPost, path: "/segments/change-for-user",
			body: `{"userID":` + u + `,"segmentsToRemove":` + l + `}`})
	}
	// A thousand unknown slugs: a thousand not_found entries.
	many := make([]string, 1000)
	for i := range many {
		many[i] = fmt.Sprintf(`{"segmentSlug":"UNKNOWN_%04d"}`, i)
	}
	add(junkCase{name: "a thousand unknown slugs", method: http.MethodPost, path: "/segments/change-for-user",
		body: `{"userID":` + u + `,"segmentsToAdd":[` + strings.Join(many, ",") + `]}`, want: http.StatusNotFound})

	// Queries.
	for _, q := range []string{"", "userID=", "userID", "userID=%00", "userID=%27%20OR%201%3D1--", "userID=" + strings.Repeat("f", 20000),
		"userID=%E2%80%AE", "userID=" + url.QueryEscape(strings.ToUpper(user)) + "%00", "userID[]=x", "userID.x=1", "userID=a;b",
		"userID=%zz", "userID=1&userID=2", "segments=1", "user_id=" + user + "&userID=" + user, "userID=" + user + "&month=13&year=-1"} {
		add(junkCase{name: "get-for-user ?" + q[:min(len(q), 40)], method: http.MethodGet, path: "/segments/get-for-user?" + q})
	}

	// Paths and methods.
	for _, p := range []string{"/segments/%00", "/segments/create%00", "/segments/Сегмент", "/segments/create/../remove",
		"/segments//create", "/" + strings.Repeat("a", 4000), "/segments/create?slug=A", "/%2e%2e/%2e%2e/etc/passwd",
		"/swagger/../segments/create", "/healthz?service=%00", "/healthz?service=unknown"} {
		add(junkCase{name: "path " + p[:min(len(p), 40)], method: http.MethodGet, path: p})
		add(junkCase{name: "POST path " + p[:min(len(p), 40)], method: http.MethodPost, path: p, body: `{"slug":"A"}`})
	}
	for _, m := range []string{"OPTIONS", "HEAD", "TRACE", "PROPFIND", "PATCH"} {
		add(junkCase{name: "method " + m, method: m, path: "/segments/create", body: `{"slug":"A"}`})
	}
	return cases
}

// Unicode and junk input never produce a 5xx; every error is the
// envelope; the service stays healthy and its data consistent.
func TestJunkNeverServerError(t *testing.T) {
	reset(t)
	user := newUUID()
	createUser(t, user)
	createSegment(t, "JUNK_TARGET")
	addSegments(t, user, "JUNK_TARGET")

	cases := junkCases(user, "JUNK_TARGET")
	statuses := map[int]int{}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := call(t, tc.method, tc.path, tc.body) // checks the envelope of every status >= 400
			statuses[r.status]++
			if r.status >= 500 {
				t.Fatalf("%s %s %.200q: status %d, want < 500; body %.500s", tc.method, tc.path, tc.body, r.status, r.body)
			}
			if tc.want != 0 && r.status != tc.want {
				t.Fatalf("status %d, want %d; body %.300s", r.status, tc.want, r.body)
			}
			if r.status >= 400 && tc.method != http.MethodHead {
				for _, e := range checkEnvelope(t, r) {
					if !slices.Contains(typeForStatus[r.status], e.Type) {
						t.Fatalf("status %d with type %q, want one of %v", r.status, e.Type, typeForStatus[r.status])
					}
					for _, leak := range []string{"SQLSTATE", "pq:", "syntax error at", "panic", "goroutine "} {
						if strings.Contains(e.Info, leak) {
							t.Fatalf("info leaks %q: %q", leak, e.Info)
						}
					}
				}
			}
			if tc.want == http.StatusNotFound {
				if n := len(checkEnvelope(t, r)); n != 1000 {
					t.Fatalf("%d entries, want 1000", n)
				}
			}
		})
	}
	t.Logf("%d junk requests, statuses %v", len(cases), statuses)

	// Still healthy, nothing dropped, only valid slugs stored, the user
	// still in the target segment.
	if r := call(t, http.MethodGet, "/healthz", ""); r.status != http.StatusOK {
		t.Fatalf("/healthz after the junk: %s", r)
	}
	if !server.alive() {
		t.Fatalf("the server process is gone: %s", tail(server.log.String(), 2000))
	}
	if n := queryInt(t, `SELECT count(*) FROM segments WHERE slug !~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$'`); n != 0 {
		t.Fatalf("%d segments with invalid slugs", n)
	}
	if n := queryInt(t, `SELECT count(*) FROM users`); n < 1 {
		t.Fatal("the users table lost its user")
	}
	wantSegments(t, user, "JUNK_TARGET")
}

// A query value that is not UTF-8 is junk from the client: 400 parse_error
// (or validation_error), never a 5xx.
func TestJunkQueryInvalidUTF8NeverServerError(t *testing.T) {
	reset(t)
	for _, q := range []string{"userID=%FF", "userID=%C3%28", "userID=0b7f3c1e-5d2a-4c1b-9f3e-7a6b5c4d3e2%FF", "userID=%ED%A0%80"} {
		r := call(t, http.MethodGet, "/segments/get-for-user?"+q, "")
		if r.status >= 500 {
			t.Errorf("?%s: status %d, want 400; body %s", q, r.status, r.body)
			continue
		}
		wantError(t, r, http.StatusBadRequest, checkEnvelope(t, r)[0].Type)
	}
}

// A request of about the default body limit (8 MiB) naming thousands of
// long unknown slugs: one not_found entry per slug, however large the
// error gets, never a 5xx.
func TestHugeErrorListAtDefaultLimit(t *testing.T) {
	reset(t)
	user := newUUID()
	createUser(t, user)
	ctx, cancel := context.WithCancel(context.Background())
	url, done, err := startGateway(ctx, serverAddr, 0, io.Discard) // 0: the default limit
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	defer func() {
		cancel()
		<-done
	}()
	var items []string
	size := 0
	for i := 0; size < gateway.DefaultMaxBodyBytes-(64<<10); i++ {
		item := fmt.Sprintf(`{"segmentSlug":"U%05d_%s"}`, i, strings.Repeat("x", 120))
		items = append(items, item)
		size += len(item) + 1
	}
	body := `{"userID":"` + user + `","segmentsToAdd":[` + strings.Join(items, ",") + `]}`
	r := callAt(t, url, http.MethodPost, "/segments/change-for-user", body)
	if r.status >= 500 {
		t.Fatalf("%d unknown slugs: status %d, want 404; body %.300s", len(items), r.status, r.body)
	}
	entries := wantError(t, r, http.StatusNotFound, "not_found")
	if len(entries) != len(items) {
		t.Fatalf("%d entries, want %d", len(entries), len(items))
	}
}
