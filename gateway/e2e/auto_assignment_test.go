package e2e

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	neturl "net/url"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// Automatic assignment (contract §5) through the REST gateway: percentages
// raised and lowered, new and returning users, include and exclude filters,
// the TTL of automatic memberships. Members are read with list-members; the
// exact set is computed from the segment's salt (read from the database, as
// the API does not expose it) with the documented bucket function
// (docs/bucketing.md).

// ---- helpers shared with bulk_listing_test.go

// apiMember is one entry of list-members and stream-members.
type apiMember struct {
	UserID    string     `json:"userID"`
	AddedAt   time.Time  `json:"addedAt"`
	ExpiresAt *time.Time `json:"expiresAt"`
	Automatic bool       `json:"automatic"`
}

// decodeStrict decodes exactly one JSON value with no unknown fields.
func decodeStrict(t *testing.T, what string, raw []byte, v any) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil || dec.More() {
		t.Fatalf("%s: body %.500q does not decode strictly: %v", what, raw, err)
	}
}

// membersPageAt reads one page of list-members from the gateway at base.
func membersPageAt(t *testing.T, base, slug string, size int, token string) ([]apiMember, string) {
	t.Helper()
	q := neturl.Values{"slug": {slug}, "pageSize": {fmt.Sprint(size)}}
	if token != "" {
		q.Set("pageToken", token)
	}
	r := callAt(t, base, http.MethodGet, "/segments/list-members?"+q.Encode(), "")
	if r.status != http.StatusOK || r.header.Get("Content-Type") != "application/json" {
		t.Fatalf("list-members %s: %s", q.Encode(), r)
	}
	var body struct {
		Members       []apiMember `json:"members"`
		NextPageToken *string     `json:"nextPageToken"`
	}
	decodeStrict(t, "list-members", r.body, &body)
	if body.Members == nil || body.NextPageToken == nil {
		t.Fatalf("list-members: body %.300q lacks members or nextPageToken", r.body)
	}
	if len(body.Members) > size {
		t.Fatalf("list-members: %d members on a page of %d", len(body.Members), size)
	}
	return body.Members, *body.NextPageToken
}

// members walks every page of list-members (500 a page) and returns the
// members by user id; ids come sorted and once.
func members(t *testing.T, slug string) map[string]apiMember {
	t.Helper()
	out := map[string]apiMember{}
	last, token := "", ""
	for page := 0; ; page++ {
		if page > 10_000 {
			t.Fatalf("list-members %s: no last page after %d pages", slug, page)
		}
		var list []apiMember
		list, token = membersPageAt(t, baseURL, slug, 500, token)
		for _, m := range list {
			if m.UserID <= last {
				t.Fatalf("list-members %s: %s after %s (not sorted, or twice)", slug, m.UserID, last)
			}
			last = m.UserID
			out[m.UserID] = m
		}
		if token == "" {
			return out
		}
	}
}

// memberSet is the ids of members(t, slug).
func memberSet(t *testing.T, slug string) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	for id := range members(t, slug) {
		out[id] = true
	}
	return out
}

// createUsers makes n users through /segments/create-user, 8 at a time.
func createUsers(t *testing.T, n int) []string {
	t.Helper()
	ids := make([]string, n)
	for i := range ids {
		ids[i] = newUUID()
	}
	errs := make(chan error, n)
	work := make(chan string)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range work {
				r, err := fetch(baseURL, http.MethodPost, "/segments/create-user", `{"userID":"`+id+`"}`)
				if err == nil && r.status != http.StatusNoContent {
					err = fmt.Errorf("create-user %s: %s", id, r)
				}
				if err != nil {
					errs <- err
				}
			}
		}()
	}
	for _, id := range ids {
		work <- id
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	return ids
}

// insertUsers makes n active users directly in the database (no automatic
// assignment runs), returned sorted.
func insertUsers(t *testing.T, n int) []string {
	t.Helper()
	rows, err := db.Query(`INSERT INTO users (id, state, created_at, updated_at)
		SELECT gen_random_uuid(), 'active', now(), now() FROM generate_series(1, $1) RETURNING id::text`, n)
	if err != nil {
		t.Fatalf("inserting %d users: %v", n, err)
	}
	defer rows.Close()
	ids := make([]string, 0, n)
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	slices.Sort(ids)
	return ids
}

func setUserState(t *testing.T, user, state string) {
	t.Helper()
	wantNoContent(t, call(t, http.MethodPut, "/segments/update-user", `{"userID":"`+user+`","status":"`+state+`"}`))
}

func setPercent(t *testing.T, slug string, percent float64) {
	t.Helper()
	wantNoContent(t, call(t, http.MethodPut, "/segments/update-percent",
		fmt.Sprintf(`{"slug":%s,"percentToFill":%g}`, jsonString(slug), percent)))
}

func removeByHand(t *testing.T, user, slug string) {
	t.Helper()
	wantNoContent(t, call(t, http.MethodPost, "/segments/change-for-user",
		`{"userID":"`+user+`","segmentsToRemove":[{"segmentSlug":`+jsonString(slug)+`}]}`))
}

// salt is a live segment's salt, from the database.
func salt(t *testing.T, slug string) string {
	t.Helper()
	var s string
	if err := db.QueryRow(`SELECT salt FROM segments WHERE slug = $1 AND deleted_at IS NULL`, slug).Scan(&s); err != nil {
		t.Fatalf("salt of %s: %v", slug, err)
	}
	return s
}

// bucket is docs/bucketing.md: the first 8 bytes of SHA-256(salt ":" user)
// as a big-endian integer, mod 10000.
func bucket(salt, user string) int {
	sum := sha256.Sum256([]byte(salt + ":" + user))
	return int(binary.BigEndian.Uint64(sum[:8]) % 10000)
}

// covered is the users whose bucket is below percent × 100.
func covered(salt string, users []string, percent float64) map[string]bool {
	out := map[string]bool{}
	limit := int(math.Round(percent * 100))
	for _, u := range users {
		if bucket(salt, u) < limit {
			out[u] = true
		}
	}
	return out
}

func union(sets ...map[string]bool) map[string]bool {
	out := map[string]bool{}
	for _, s := range sets {
		for k := range s {
			out[k] = true
		}
	}
	return out
}

func minus(a, b map[string]bool) map[string]bool {
	out := map[string]bool{}
	for k := range a {
		if !b[k] {
			out[k] = true
		}
	}
	return out
}

func setOf(ids ...string) map[string]bool {
	out := map[string]bool{}
	for _, id := range ids {
		out[id] = true
	}
	return out
}

// sameSet fails with a sample of the differences.
func sameSet(t *testing.T, what string, got, want map[string]bool) {
	t.Helper()
	extra, missing := keys(minus(got, want)), keys(minus(want, got))
	if len(extra) != 0 || len(missing) != 0 {
		t.Fatalf("%s: %d members, want %d; %d unexpected (e.g. %v), %d missing (e.g. %v)",
			what, len(got), len(want), len(extra), head(extra, 3), len(missing), head(missing, 3))
	}
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func head(s []string, n int) []string { return s[:min(n, len(s))] }

// nearShare checks that count is near percent of n: within 3 percentage
// points or 4.5 standard deviations of the binomial, whichever is wider.
func nearShare(t *testing.T, what string, count, n int, percent float64) {
	t.Helper()
	p := percent / 100
	tol := math.Max(0.03*float64(n), 4.5*math.Sqrt(float64(n)*p*(1-p)))
	if math.Abs(float64(count)-p*float64(n)) > tol {
		t.Fatalf("%s: %d of %d, want about %g%% (±%.0f)", what, count, n, percent, tol)
	}
}

// autoEvents counts a segment's auto_percent events by operation.
func autoEvents(t *testing.T, slug string) (adds, removes int) {
	t.Helper()
	adds = queryInt(t, `SELECT count(*) FROM history WHERE slug = $1 AND reason = 'auto_percent' AND operation = 'add'`, slug)
	removes = queryInt(t, `SELECT count(*) FROM history WHERE slug = $1 AND reason = 'auto_percent' AND operation = 'remove'`, slug)
	return adds, removes
}

// The bucket function here is the documented one.
func TestBucketMatchesTheDocumentedVectors(t *testing.T) {
	for _, v := range []struct {
		salt, user string
		want       int
	}{
		{"0000000000000000", "00000000-0000-0000-0000-000000000000", 2377},
		{"9f86d081884c7d65", "0b7f9f5e-1c2d-4e3f-8a9b-0c1d2e3f4a5b", 27},
		{"", "00000000-0000-4000-8000-000000000001", 6537},
		{"3ce1b34701879c05", "0e8a1ab6-642c-4eb6-b450-d4a77def588b", 6470},
	} {
		if got := bucket(v.salt, v.user); got != v.want {
			t.Errorf("bucket(%q, %s) = %d, want %d", v.salt, v.user, got, v.want)
		}
	}
}

// update-percent: 10% → 30% → 10% → 30% over 2,000 users. Each time the
// members are exactly the covered active users plus the members added by
// hand; raising only adds, lowering removes only automatic members; every
// change has auto_percent history.
func TestUpdatePercentRaisesAndLowers(t *testing.T) {
	reset(t)
	users := createUsers(t, 2000)
	excluded := users[:40]
	for _, u := range excluded {
		setUserState(t, u, "excluded")
	}
	active := users[40:]

	const slug = "AUTO_PCT"
	wantNoContent(t, call(t, http.MethodPost, "/segments/create", `{"slug":"AUTO_PCT","percentToFill":10}`))
	s := salt(t, slug)
	e10, e30 := covered(s, active, 10), covered(s, active, 30)
	m10 := memberSet(t, slug)
	sameSet(t, "10%", m10, e10)
	nearShare(t, "10%", len(m10), len(active), 10)

	// By hand: one user whose bucket is covered at 30% only, one never
	// covered. Both stay through every change.
	var between, outside string
	for _, u := range active {
		b := bucket(s, u)
		if between == "" && b >= 1000 && b < 3000 {
			between = u
		}
		if outside == "" && b >= 3000 {
			outside = u
		}
	}
	addSegments(t, between, slug)
	addSegments(t, outside, slug)
	byHand := setOf(between, outside)

	setPercent(t, slug, 30)
	m30 := memberSet(t, slug)
	sameSet(t, "raised to 30%", m30, union(e30, byHand))
	if len(minus(m10, m30)) != 0 {
		t.Fatalf("raising removed members: %v", keys(minus(m10, m30)))
	}
	nearShare(t, "30%", len(minus(m30, byHand)), len(active), 30)

	setPercent(t, slug, 10)
	sameSet(t, "lowered to 10%", memberSet(t, slug), union(e10, byHand))

	setPercent(t, slug, 30)
	all := members(t, slug)
	sameSet(t, "raised to 30% again", memberSet(t, slug), m30)
	for id, m := range all {
		if m.Automatic == byHand[id] {
			t.Fatalf("member %s: automatic=%v, want %v", id, m.Automatic, !byHand[id])
		}
		if m.ExpiresAt != nil {
			t.Fatalf("member %s expires at %v; the segment has no TTL", id, m.ExpiresAt)
		}
	}
	for _, u := range excluded {
		if _, in := all[u]; in {
			t.Fatalf("excluded user %s is a member", u)
		}
	}

	// History: the first fill, two raises and one lowering, all
	// auto_percent; the members by hand have manual events only.
	delta := len(minus(e30, union(e10, byHand)))
	adds, removes := autoEvents(t, slug)
	if wantAdds := len(e10) + 2*delta; adds != wantAdds || removes != delta {
		t.Fatalf("auto_percent events: %d add, %d remove; want %d, %d", adds, removes, wantAdds, delta)
	}
	if n := queryInt(t, `SELECT count(*) FROM history WHERE slug = $1 AND user_id = ANY($2::user_id[]) AND reason <> 'manual'`,
		slug, "{"+between+","+outside+"}"); n != 0 {
		t.Fatalf("%d automatic events for the members by hand", n)
	}
	// One user covered at 30% only, as get-user-history shows it: in, out,
	// in again, newest first.
	mover := keys(minus(e30, union(e10, byHand)))[0]
	events, _ := userHistory(t, baseURL, "userID="+mover+"&segment="+slug)
	var got []string
	for _, e := range events {
		got = append(got, e.Operation+"/"+e.Reason+"/"+e.Actor)
	}
	// Automatic assignment is the system's, whoever changed the percentage.
	if want := []string{"add/auto_percent/system", "remove/auto_percent/system", "add/auto_percent/system"}; !slices.Equal(got, want) {
		t.Fatalf("history of %s: %v, want %v", mover, got, want)
	}

	// Bad input: the envelope, nothing changes.
	for _, tc := range []struct{ body, typ, info string }{
		{`{"slug":"AUTO_PCT","percentToFill":100.001}`, "validation_error", "percentToFill: *"},
		{`{"slug":"AUTO_PCT","percentToFill":-1}`, "validation_error", "percentToFill: *"},
		{`{"slug":"AUTO_PCT"}`, "validation_error", "percentToFill: *"},
		{`{"slug":"NO_SUCH","percentToFill":5}`, "not_found", `slug: segment "NO_SUCH" does not exist`},
		{`{"slug":"AUTO_PCT","percentToFill":"lots"}`, "parse_error", "*"},
	} {
		r := call(t, http.MethodPut, "/segments/update-percent", tc.body)
		status := http.StatusBadRequest
		if tc.typ == "not_found" {
			status = http.StatusNotFound
		}
		wantOneError(t, r, status, tc.typ, tc.info)
	}
	sameSet(t, "after bad requests", memberSet(t, slug), m30)
}

// Users created after an automatic segment exists are assigned by their
// bucket; a member removed by hand stays out, through a state change and a
// raise of the percentage.
func TestAutoAssignmentOfNewAndReturningUsers(t *testing.T) {
	reset(t)
	before := createUsers(t, 100)
	const slug = "AUTO_HALF"
	wantNoContent(t, call(t, http.MethodPost, "/segments/create", `{"slug":"AUTO_HALF","percentToFill":50}`))
	s := salt(t, slug)
	sameSet(t, "at creation", memberSet(t, slug), covered(s, before, 50))

	after := createUsers(t, 200)
	joined := 0
	for _, u := range after {
		in := slices.Contains(segmentsOf(t, u), slug)
		if in != (bucket(s, u) < 5000) {
			t.Fatalf("new user %s (bucket %d): member %v", u, bucket(s, u), in)
		}
		if in {
			joined++
		}
	}
	nearShare(t, "new users who joined", joined, len(after), 50)
	everyone := append(slices.Clone(before), after...)
	sameSet(t, "after new users", memberSet(t, slug), covered(s, everyone, 50))

	// A member removed by hand: not back after excluded → active, nor
	// after a raise to 100%.
	var optedOut string
	for _, u := range after {
		if bucket(s, u) < 5000 {
			optedOut = u
			break
		}
	}
	removeByHand(t, optedOut, slug)
	setUserState(t, optedOut, "excluded")
	setUserState(t, optedOut, "active")
	wantSegments(t, optedOut)

	// A user excluded during the raise is left out, and joins once
	// active again.
	var returning string
	for _, u := range before {
		if bucket(s, u) >= 5000 {
			returning = u
			break
		}
	}
	setUserState(t, returning, "excluded")
	setPercent(t, slug, 100)
	wantSegments(t, optedOut)
	wantSegments(t, returning)
	sameSet(t, "at 100%", memberSet(t, slug), minus(setOf(everyone...), setOf(optedOut, returning)))
	setUserState(t, returning, "active")
	wantSegments(t, returning, slug)

	// By hand, the opted-out user can come back.
	addSegments(t, optedOut, slug)
	sameSet(t, "all", memberSet(t, slug), setOf(everyone...))
}

// includeSegments and excludeSegments: B takes the active members of A,
// C the active users outside A; A cannot be deleted while they name it.
func TestIncludeAndExcludeSegments(t *testing.T) {
	reset(t)
	users := createUsers(t, 60)
	createSegment(t, "INC_A")
	inA := users[:20]
	for _, u := range inA {
		addSegments(t, u, "INC_A")
	}
	// Excluded users, in A and not: never members of B or C.
	excluded := []string{users[0], users[1], users[30]}
	for _, u := range excluded {
		setUserState(t, u, "excluded")
	}
	activeInA := minus(setOf(inA...), setOf(excluded...))
	activeOutside := minus(setOf(users[20:]...), setOf(excluded...))

	wantNoContent(t, call(t, http.MethodPost, "/segments/create",
		`{"slug":"INC_B","percentToFill":100,"includeSegments":["INC_A"]}`))
	sameSet(t, "B = active members of A", memberSet(t, "INC_B"), activeInA)
	wantNoContent(t, call(t, http.MethodPost, "/segments/create",
		`{"slug":"INC_C","percentToFill":100,"excludeSegments":["INC_A"]}`))
	sameSet(t, "C = active users outside A", memberSet(t, "INC_C"), activeOutside)

	// The segments show their filters.
	r := call(t, http.MethodGet, "/segments/get-segment?slug=INC_B", "")
	var got struct {
		Segment struct {
			Slug            string   `json:"slug"`
			IncludeSegments []string `json:"includeSegments"`
			ExcludeSegments []string `json:"excludeSegments"`
		} `json:"segment"`
		MemberCount string `json:"memberCount"`
	}
	if r.status != http.StatusOK || json.Unmarshal(r.body, &got) != nil ||
		!slices.Equal(got.Segment.IncludeSegments, []string{"INC_A"}) || len(got.Segment.ExcludeSegments) != 0 ||
		got.MemberCount != fmt.Sprint(len(activeInA)) {
		t.Fatalf("get-segment INC_B: %s", r)
	}

	// A is named by B and C: deleting it is refused, nothing changes.
	wantOneError(t, call(t, http.MethodDelete, "/segments/remove", `{"slug":"INC_A"}`),
		http.StatusBadRequest, "validation_error", `slug: segment "INC_A" is named in *"INC_B"*`)
	sameSet(t, "A after the refused delete", memberSet(t, "INC_A"), setOf(inA...))

	// Unknown filter segments are reported.
	wantOneError(t, call(t, http.MethodPost, "/segments/create",
		`{"slug":"INC_D","percentToFill":100,"includeSegments":["NO_SUCH"]}`),
		http.StatusNotFound, "not_found", `includeSegments[0]: *NO_SUCH*`)

	wantNoContent(t, call(t, http.MethodDelete, "/segments/remove", `{"slug":"INC_B"}`))
	wantNoContent(t, call(t, http.MethodDelete, "/segments/remove", `{"slug":"INC_C"}`))
	wantNoContent(t, call(t, http.MethodDelete, "/segments/remove", `{"slug":"INC_A"}`))
}

// autoSecondsToBeInSegment: automatic members expire that long after they
// joined; list-members shows it.
func TestAutoMembershipTTL(t *testing.T) {
	reset(t)
	users := createUsers(t, 30)
	start := time.Now()
	wantNoContent(t, call(t, http.MethodPost, "/segments/create",
		`{"slug":"AUTO_TTL","percentToFill":100,"autoSecondsToBeInSegment":3600}`))
	all := members(t, "AUTO_TTL")
	if len(all) != len(users) {
		t.Fatalf("%d members, want %d", len(all), len(users))
	}
	for id, m := range all {
		if !m.Automatic || m.ExpiresAt == nil {
			t.Fatalf("member %s: %+v, want automatic with expiresAt", id, m)
		}
		if ttl := m.ExpiresAt.Sub(m.AddedAt); ttl != time.Hour {
			t.Fatalf("member %s: expiresAt - addedAt = %v, want 1h", id, ttl)
		}
		if d := m.ExpiresAt.Sub(start.Add(time.Hour)); d < -time.Minute || d > time.Minute {
			t.Fatalf("member %s expires at %v, want about %v", id, m.ExpiresAt, start.Add(time.Hour))
		}
	}
	// A user created later gets the same TTL.
	late := createUsers(t, 1)[0]
	m := members(t, "AUTO_TTL")[late]
	if m.ExpiresAt == nil || m.ExpiresAt.Sub(m.AddedAt) != time.Hour {
		t.Fatalf("the late user: %+v", m)
	}
	r := call(t, http.MethodGet, "/segments/get-segment?slug=AUTO_TTL", "")
	if r.status != http.StatusOK || !strings.Contains(string(r.body), `"autoSecondsToBeInSegment":"3600"`) {
		t.Fatalf("get-segment: %s", r)
	}
}
