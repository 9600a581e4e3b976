package e2e

import (
	"crypto/rand"
	"database/sql"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// newUUID returns a random version 4 UUID in canonical lowercase.
func newUUID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

func TestCreateSegment(t *testing.T) {
	reset(t)
	wantNoContent(t, call(t, http.MethodPost, "/segments/create", `{"slug":"AVITO_VOICE_MESSAGES"}`))
	wantNoContent(t, call(t, http.MethodPost, "/segments/create",
		`{"slug":"AVITO_DISCOUNT_30","percentToFill":0,"description":"скидка 30% 🚀"}`))

	rows, err := db.Query(`SELECT slug, coalesce(percent_to_fill, 0)::float8, description FROM segments
		WHERE deleted_at IS NULL ORDER BY slug`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []string
	for rows.Next() {
		var slug, desc string
		var pct float64
		if err := rows.Scan(&slug, &pct, &desc); err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%s|%g|%s", slug, pct, desc))
	}
	want := "AVITO_DISCOUNT_30|0|скидка 30% 🚀,AVITO_VOICE_MESSAGES|0|"
	if strings.Join(got, ",") != want {
		t.Fatalf("segments = %v, want %s", got, want)
	}
}

// percentToFill > 0 is automatic assignment (contract §5): the covered
// active users are members, with history, when the 204 arrives.
func TestCreateSegmentWithPercent(t *testing.T) {
	reset(t)
	users := make([]string, 60)
	for i := range users {
		users[i] = newUUID()
		createUser(t, users[i])
	}
	excluded := users[0]
	if r := call(t, http.MethodPut, "/segments/update-user", `{"userID":"`+excluded+`","status":"excluded"}`); r.status != http.StatusNoContent {
		t.Fatalf("update-user: %d %s", r.status, r.body)
	}
	r := call(t, http.MethodPost, "/segments/create", `{"slug":"AVITO_DISCOUNT_50","percentToFill":50}`)
	if r.status != http.StatusNoContent {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	want := queryInt(t, `SELECT count(*) FROM users u, segments s WHERE s.slug = 'AVITO_DISCOUNT_50'
		AND u.state = 'active' AND segment_bucket(s.salt, u.id) < 5000`)
	got := queryInt(t, `SELECT count(*) FROM memberships m JOIN segments s ON s.id = m.segment_id
		WHERE s.slug = 'AVITO_DISCOUNT_50' AND m.auto`)
	if want == 0 || got != want {
		t.Fatalf("%d automatic members, want %d (of 59 active users)", got, want)
	}
	if n := queryInt(t, `SELECT count(*) FROM history WHERE slug = 'AVITO_DISCOUNT_50' AND reason = 'auto_percent'`); n != want {
		t.Fatalf("%d auto_percent events, want %d", n, want)
	}
	if n := queryInt(t, `SELECT count(*) FROM memberships WHERE user_id = $1`, excluded); n != 0 {
		t.Fatalf("the excluded user got %d memberships", n)
	}
}

func TestRemoveSegment(t *testing.T) {
	reset(t)
	alice, bob := newUUID(), newUUID()
	createUser(t, alice)
	createUser(t, bob)
	createSegment(t, "AVITO_VOICE_MESSAGES")
	createSegment(t, "AVITO_PERFORMANCE_VAS")
	addSegments(t, alice, "AVITO_VOICE_MESSAGES", "AVITO_PERFORMANCE_VAS")
	addSegments(t, bob, "AVITO_VOICE_MESSAGES")

	wantNoContent(t, call(t, http.MethodDelete, "/segments/remove", `{"slug":"AVITO_VOICE_MESSAGES"}`))
	wantSegments(t, alice, "AVITO_PERFORMANCE_VAS")
	wantSegments(t, bob)

	events := history(t)
	var removed []string
	for _, e := range events {
		if e.Operation == "remove" {
			if e.Reason != "segment_deleted" || e.Slug != "AVITO_VOICE_MESSAGES" {
				t.Fatalf("unexpected remove event %v", e)
			}
			removed = append(removed, e.User)
		}
	}
	if len(removed) != 2 || !(removed[0] == alice && removed[1] == bob || removed[0] == bob && removed[1] == alice) {
		t.Fatalf("remove events for %v, want alice and bob; history %v", removed, events)
	}
	if n := queryInt(t, `SELECT count(*) FROM memberships m JOIN segments s ON s.id = m.segment_id WHERE s.slug = 'AVITO_VOICE_MESSAGES'`); n != 0 {
		t.Fatalf("%d memberships of the deleted segment remain", n)
	}

	// Removed again: not found. Created again: a new segment, nobody in it.
	wantOneError(t, call(t, http.MethodDelete, "/segments/remove", `{"slug":"AVITO_VOICE_MESSAGES"}`),
		http.StatusNotFound, "not_found", `slug: segment "AVITO_VOICE_MESSAGES" does not exist`)
	createSegment(t, "AVITO_VOICE_MESSAGES")
	wantSegments(t, alice, "AVITO_PERFORMANCE_VAS")
	if n := queryInt(t, `SELECT count(*) FROM segments WHERE slug = 'AVITO_VOICE_MESSAGES'`); n != 2 {
		t.Fatalf("%d rows for the re-created slug, want the deleted one and the new one", n)
	}
}

func TestChangeForUserAddAndRemove(t *testing.T) {
	reset(t)
	user := newUUID()
	createUser(t, user)
	for _, s := range []string{"C_SEG", "A_SEG", "B_SEG"} {
		createSegment(t, s)
	}
	wantNoContent(t, call(t, http.MethodPost, "/segments/change-for-user",
		`{"userID":"`+user+`","segmentsToAdd":[{"segmentSlug":"C_SEG"},{"segmentSlug":"A_SEG"},{"segmentSlug":"B_SEG"}]}`))
	wantSegments(t, user, "A_SEG", "B_SEG", "C_SEG")

	// Remove one and add nothing; then remove and add in one call.
	wantNoContent(t, call(t, http.MethodPost, "/segments/change-for-user",
		`{"userID":"`+user+`","segmentsToRemove":[{"segmentSlug":"B_SEG"}]}`))
	wantSegments(t, user, "A_SEG", "C_SEG")
	wantNoContent(t, call(t, http.MethodPost, "/segments/change-for-user",
		`{"userID":"`+user+`","segmentsToAdd":[{"segmentSlug":"B_SEG"}],"segmentsToRemove":[{"segmentSlug":"A_SEG"},{"segmentSlug":"C_SEG"}]}`))
	wantSegments(t, user, "B_SEG")

	events := history(t)
	count := map[string]int{}
	for _, e := range events {
		if e.User != user || e.Reason != "manual" {
			t.Fatalf("unexpected event %v", e)
		}
		count[e.Operation+" "+e.Slug]++
	}
	want := map[string]int{"add A_SEG": 1, "add B_SEG": 2, "add C_SEG": 1, "remove B_SEG": 1, "remove A_SEG": 1, "remove C_SEG": 1}
	if fmt.Sprint(count) != fmt.Sprint(want) {
		t.Fatalf("history counts %v, want %v", count, want)
	}
}

// The user id is accepted in any letter case, stored and answered in
// canonical lowercase.
func TestUserIDAnyCase(t *testing.T) {
	reset(t)
	user := newUUID()
	upper := strings.ToUpper(user)
	createUser(t, upper)
	if n := queryInt(t, `SELECT count(*) FROM users WHERE id::text = $1`, user); n != 1 {
		t.Fatalf("user not stored in lowercase")
	}
	createSegment(t, "S1")
	addSegments(t, upper, "S1")
	wantSegments(t, user, "S1")
	wantSegments(t, upper, "S1")
	wantOneError(t, call(t, http.MethodPost, "/segments/create-user", `{"userID":"`+user+`"}`),
		http.StatusConflict, "conflict", "userID: *")
}

// Sorted by byte value: digits, upper case, lower case.
func TestGetForUserSorted(t *testing.T) {
	reset(t)
	user := newUUID()
	createUser(t, user)
	slugs := []string{"b", "A", "a", "B_1", "0x", "B.0", "B-9", "AB"}
	for _, s := range slugs {
		createSegment(t, s)
	}
	addSegments(t, user, slugs...)
	wantJSON(t, call(t, http.MethodGet, "/segments/get-for-user?userID="+user, ""),
		`{"segments":["0x","A","AB","B-9","B.0","B_1","a","b"]}`)
}

func TestGetForUserUnknownUser(t *testing.T) {
	reset(t)
	wantJSON(t, call(t, http.MethodGet, "/segments/get-for-user?userID="+newUUID(), ""), `{"segments":[]}`)
	// Known but in no segment: the same.
	user := newUUID()
	createUser(t, user)
	wantJSON(t, call(t, http.MethodGet, "/segments/get-for-user?userID="+user, ""), `{"segments":[]}`)
}

func TestUsers(t *testing.T) {
	reset(t)
	user := newUUID()
	state := func() string {
		var s string
		err := db.QueryRow(`SELECT state::text FROM users WHERE id = $1`, user).Scan(&s)
		if err == sql.ErrNoRows {
			return "absent"
		}
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	createUser(t, user)
	if s := state(); s != "active" {
		t.Fatalf("state after create = %s, want active", s)
	}
	wantNoContent(t, call(t, http.MethodPut, "/segments/update-user", `{"userID":"`+user+`","status":"excluded"}`))
	if s := state(); s != "excluded" {
		t.Fatalf("state after update = %s, want excluded", s)
	}
	// Setting the state it has is a successful no-op.
	wantNoContent(t, call(t, http.MethodPut, "/segments/update-user", `{"userID":"`+user+`","status":"excluded"}`))
	wantNoContent(t, call(t, http.MethodPut, "/segments/update-user", `{"userID":"`+user+`","status":"active"}`))
	if s := state(); s != "active" {
		t.Fatalf("state after second update = %s, want active", s)
	}
	wantNoContent(t, call(t, http.MethodDelete, "/segments/remove-user", `{"userID":"`+user+`"}`))
	if s := state(); s != "absent" {
		t.Fatalf("state after remove = %s, want absent", s)
	}
	// Created again after deletion.
	createUser(t, user)
	if s := state(); s != "active" {
		t.Fatalf("state after re-create = %s", s)
	}
}

// Memberships are kept in either state (proto: UpdateUser).
func TestExcludedUserKeepsMemberships(t *testing.T) {
	reset(t)
	user := newUUID()
	createUser(t, user)
	createSegment(t, "S")
	addSegments(t, user, "S")
	wantNoContent(t, call(t, http.MethodPut, "/segments/update-user", `{"userID":"`+user+`","status":"excluded"}`))
	if n := queryInt(t, `SELECT count(*) FROM memberships WHERE user_id = $1`, user); n != 1 {
		t.Fatalf("%d memberships after exclusion, want 1", n)
	}
	wantNoContent(t, call(t, http.MethodPut, "/segments/update-user", `{"userID":"`+user+`","status":"active"}`))
	wantSegments(t, user, "S")
}

func TestRemoveUserEndsMembershipsWithHistory(t *testing.T) {
	reset(t)
	user, other := newUUID(), newUUID()
	createUser(t, user)
	createUser(t, other)
	createSegment(t, "S1")
	createSegment(t, "S2")
	addSegments(t, user, "S1", "S2")
	addSegments(t, other, "S1")
	wantNoContent(t, call(t, http.MethodDelete, "/segments/remove-user", `{"userID":"`+user+`"}`))
	wantSegments(t, user)
	wantSegments(t, other, "S1")

	var removed []string
	for _, e := range history(t) {
		if e.Operation == "remove" {
			if e.User != user || e.Reason != "user_deleted" {
				t.Fatalf("unexpected remove event %v", e)
			}
			removed = append(removed, e.Slug)
		}
	}
	if len(removed) != 2 || !(removed[0] == "S1" && removed[1] == "S2" || removed[0] == "S2" && removed[1] == "S1") {
		t.Fatalf("remove events for %v, want S1 and S2", removed)
	}
	// History survives the user.
	if n := queryInt(t, `SELECT count(*) FROM history WHERE user_id = $1`, user); n != 4 {
		t.Fatalf("%d history events of the deleted user, want 4", n)
	}
	if n := queryInt(t, `SELECT count(*) FROM memberships WHERE user_id = $1`, user); n != 0 {
		t.Fatalf("%d memberships of the deleted user remain", n)
	}
}

// A deadline is stored at microsecond precision, exactly as given.
func TestChangeForUserWithDeadline(t *testing.T) {
	reset(t)
	user := newUUID()
	createUser(t, user)
	createSegment(t, "S")
	deadline := time.Now().UTC().Add(time.Hour).Truncate(time.Second).Add(123456789 * time.Nanosecond)
	wantNoContent(t, call(t, http.MethodPost, "/segments/change-for-user",
		`{"userID":"`+user+`","segmentsToAdd":[{"segmentSlug":"S","deadlineForStayingInSegment":"`+deadline.Format(time.RFC3339Nano)+`"}]}`))
	var expires time.Time
	if err := db.QueryRow(`SELECT expires_at FROM memberships WHERE user_id = $1`, user).Scan(&expires); err != nil {
		t.Fatal(err)
	}
	if want := deadline.Truncate(time.Microsecond); !expires.Equal(want) {
		t.Fatalf("expires_at = %v, want %v", expires, want)
	}
	wantSegments(t, user, "S")

	// A zone offset names the same instant.
	createSegment(t, "T")
	zoned := time.Now().Add(2 * time.Hour).Truncate(time.Second).In(time.FixedZone("MSK", 3*3600))
	wantNoContent(t, call(t, http.MethodPost, "/segments/change-for-user",
		`{"userID":"`+user+`","segmentsToAdd":[{"segmentSlug":"T","deadlineForStayingInSegment":"`+zoned.Format(time.RFC3339)+`"}]}`))
	var expiresT time.Time
	if err := db.QueryRow(`SELECT m.expires_at FROM memberships m JOIN segments s ON s.id = m.segment_id WHERE s.slug = 'T'`).Scan(&expiresT); err != nil {
		t.Fatal(err)
	}
	if !expiresT.Equal(zoned) {
		t.Fatalf("expires_at = %v, want %v", expiresT, zoned)
	}
	wantSegments(t, user, "S", "T")
}

// secondsToBeInSegment sets expires_at that many seconds after the change.
func TestChangeForUserWithSeconds(t *testing.T) {
	reset(t)
	user := newUUID()
	createUser(t, user)
	createSegment(t, "S")
	before := time.Now()
	wantNoContent(t, call(t, http.MethodPost, "/segments/change-for-user",
		`{"userID":"`+user+`","segmentsToAdd":[{"segmentSlug":"S","secondsToBeInSegment":3600}]}`))
	after := time.Now()
	var added, expires time.Time
	if err := db.QueryRow(`SELECT added_at, expires_at FROM memberships WHERE user_id = $1`, user).Scan(&added, &expires); err != nil {
		t.Fatal(err)
	}
	if d := expires.Sub(added); d != time.Hour {
		t.Fatalf("expires_at - added_at = %v, want 1h", d)
	}
	// The server's clock and ours agree to within a few seconds.
	if expires.Before(before.Add(time.Hour-5*time.Second)) || expires.After(after.Add(time.Hour+5*time.Second)) {
		t.Fatalf("expires_at = %v, not about an hour after %v", expires, before)
	}
	// Numbers as JSON strings are valid protobuf JSON for int64.
	createSegment(t, "T")
	wantNoContent(t, call(t, http.MethodPost, "/segments/change-for-user",
		`{"userID":"`+user+`","segmentsToAdd":[{"segmentSlug":"T","secondsToBeInSegment":"60"}]}`))
	wantSegments(t, user, "S", "T")
}
