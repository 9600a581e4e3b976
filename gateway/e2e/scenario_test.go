package e2e

import (
	"net/http"
	"slices"
	"testing"
	"time"
)

// The original README's example scenarios, in their order, through the
// gateway; the history is checked in the database as it grows.
func TestReadmeScenario(t *testing.T) {
	reset(t)
	user, stranger := newUUID(), newUUID()

	// /segments/create-user (the README creates users by hand for its demo).
	createUser(t, user)

	// /segments/create: several segments; a slug twice is a conflict.
	for _, slug := range []string{"AVITO_VOICE_MESSAGES", "AVITO_PERFORMANCE_VAS", "AVITO_DISCOUNT_30", "AVITO_DISCOUNT_50"} {
		createSegment(t, slug)
	}
	wantOneError(t, call(t, http.MethodPost, "/segments/create", `{"slug":"AVITO_DISCOUNT_30"}`),
		http.StatusConflict, "conflict", `slug: segment "AVITO_DISCOUNT_30" already exists`)

	// /segments/remove: one segment goes; a second time it is unknown.
	wantNoContent(t, call(t, http.MethodDelete, "/segments/remove", `{"slug":"AVITO_DISCOUNT_50"}`))
	wantOneError(t, call(t, http.MethodDelete, "/segments/remove", `{"slug":"AVITO_DISCOUNT_50"}`),
		http.StatusNotFound, "not_found", `slug: segment "AVITO_DISCOUNT_50" does not exist`)

	// /segments/change-for-user: the segment and the user exist, add.
	wantNoContent(t, call(t, http.MethodPost, "/segments/change-for-user",
		`{"userID":"`+user+`","segmentsToAdd":[{"segmentSlug":"AVITO_VOICE_MESSAGES"},{"segmentSlug":"AVITO_PERFORMANCE_VAS"}]}`))
	wantSegments(t, user, "AVITO_PERFORMANCE_VAS", "AVITO_VOICE_MESSAGES")
	wantHistory(t,
		historyRow{User: user, Slug: "AVITO_VOICE_MESSAGES", Operation: "add", Reason: "manual"},
		historyRow{User: user, Slug: "AVITO_PERFORMANCE_VAS", Operation: "add", Reason: "manual"})

	// The segment and/or the user do not exist.
	wantOneError(t, call(t, http.MethodPost, "/segments/change-for-user",
		`{"userID":"`+stranger+`","segmentsToAdd":[{"segmentSlug":"AVITO_DISCOUNT_30"}]}`),
		http.StatusNotFound, "not_found", `userID: user "`+stranger+`" does not exist`)
	wantOneError(t, call(t, http.MethodPost, "/segments/change-for-user",
		`{"userID":"`+user+`","segmentsToAdd":[{"segmentSlug":"AVITO_DISCOUNT_50"}]}`),
		http.StatusNotFound, "not_found", `segmentsToAdd[0].segmentSlug: segment "AVITO_DISCOUNT_50" does not exist`)

	// Removing an existing segment from the user.
	wantNoContent(t, call(t, http.MethodPost, "/segments/change-for-user",
		`{"userID":"`+user+`","segmentsToRemove":[{"segmentSlug":"AVITO_PERFORMANCE_VAS"}]}`))
	wantSegments(t, user, "AVITO_VOICE_MESSAGES")
	wantHistory(t,
		historyRow{User: user, Slug: "AVITO_VOICE_MESSAGES", Operation: "add", Reason: "manual"},
		historyRow{User: user, Slug: "AVITO_PERFORMANCE_VAS", Operation: "add", Reason: "manual"},
		historyRow{User: user, Slug: "AVITO_PERFORMANCE_VAS", Operation: "remove", Reason: "manual"})

	// Adding a segment for a limited time (the README used 5 minutes; one
	// second here): listed at first, gone once the time is up.
	wantNoContent(t, call(t, http.MethodPost, "/segments/change-for-user",
		`{"userID":"`+user+`","segmentsToAdd":[{"segmentSlug":"AVITO_DISCOUNT_30","secondsToBeInSegment":1}]}`))
	var expiresAt time.Time
	if err := db.QueryRow(`SELECT m.expires_at FROM memberships m JOIN segments s ON s.id = m.segment_id
		WHERE m.user_id = $1 AND s.slug = 'AVITO_DISCOUNT_30'`, user).Scan(&expiresAt); err != nil {
		t.Fatalf("the TTL membership is not stored: %v", err)
	}
	got := segmentsOf(t, user)
	if time.Now().Before(expiresAt.Add(-200*time.Millisecond)) && !slices.Equal(got, []string{"AVITO_DISCOUNT_30", "AVITO_VOICE_MESSAGES"}) {
		t.Fatalf("right after adding with a TTL: segments %v", got)
	}
	eventually(t, 10*time.Second, "the TTL segment disappears from get-for-user", func() bool {
		return !slices.Contains(segmentsOf(t, user), "AVITO_DISCOUNT_30")
	})
	if time.Now().Before(expiresAt) {
		t.Fatalf("the TTL segment disappeared before its deadline %v", expiresAt)
	}
	wantSegments(t, user, "AVITO_VOICE_MESSAGES")

	// Added again after expiry: allowed (the user is no longer in it); the
	// expiry is in the history as a TTL removal stamped with the deadline.
	addSegments(t, user, "AVITO_DISCOUNT_30")
	wantSegments(t, user, "AVITO_DISCOUNT_30", "AVITO_VOICE_MESSAGES")
	events := wantHistory(t,
		historyRow{User: user, Slug: "AVITO_VOICE_MESSAGES", Operation: "add", Reason: "manual"},
		historyRow{User: user, Slug: "AVITO_PERFORMANCE_VAS", Operation: "add", Reason: "manual"},
		historyRow{User: user, Slug: "AVITO_PERFORMANCE_VAS", Operation: "remove", Reason: "manual"},
		historyRow{User: user, Slug: "AVITO_DISCOUNT_30", Operation: "add", Reason: "manual"},
		historyRow{User: user, Slug: "AVITO_DISCOUNT_30", Operation: "remove", Reason: "ttl"},
		historyRow{User: user, Slug: "AVITO_DISCOUNT_30", Operation: "add", Reason: "manual"})
	if !events[4].At.Equal(expiresAt) {
		t.Fatalf("the TTL removal is stamped %v, want the deadline %v", events[4].At, expiresAt)
	}
	if want := expiresAt.Add(-time.Second); !events[3].At.Equal(want) {
		t.Fatalf("the TTL add is stamped %v, want one second before the deadline, %v", events[3].At, want)
	}

	// /segments/update-user: excluded, then active again; memberships stay.
	wantNoContent(t, call(t, http.MethodPut, "/segments/update-user", `{"userID":"`+user+`","status":"excluded"}`))
	wantNoContent(t, call(t, http.MethodPut, "/segments/update-user", `{"userID":"`+user+`","status":"active"}`))
	wantSegments(t, user, "AVITO_DISCOUNT_30", "AVITO_VOICE_MESSAGES")

	// /segments/remove-user: the user leaves every segment, and the
	// history (still reportable) says why.
	wantNoContent(t, call(t, http.MethodDelete, "/segments/remove-user", `{"userID":"`+user+`"}`))
	wantSegments(t, user)
	events = history(t)
	if len(events) != 8 {
		t.Fatalf("history has %d events, want 8: %v", len(events), events)
	}
	var tailSlugs []string
	for _, e := range events[6:] {
		if e.User != user || e.Operation != "remove" || e.Reason != "user_deleted" {
			t.Fatalf("event %v, want a user_deleted removal", e)
		}
		tailSlugs = append(tailSlugs, e.Slug)
	}
	slices.Sort(tailSlugs)
	if !slices.Equal(tailSlugs, []string{"AVITO_DISCOUNT_30", "AVITO_VOICE_MESSAGES"}) {
		t.Fatalf("user_deleted removals for %v", tailSlugs)
	}
	wantOneError(t, call(t, http.MethodDelete, "/segments/remove-user", `{"userID":"`+user+`"}`),
		http.StatusNotFound, "not_found", `userID: user "`+user+`" does not exist`)
}

// Two TTL forms in one call, and a TTL next to a permanent membership: each
// expires on its own.
func TestTTLExpiryIsPerMembership(t *testing.T) {
	reset(t)
	user := newUUID()
	createUser(t, user)
	for _, s := range []string{"SHORT", "DEADLINE", "FOREVER"} {
		createSegment(t, s)
	}
	deadline := time.Now().Add(1500 * time.Millisecond).UTC()
	wantNoContent(t, call(t, http.MethodPost, "/segments/change-for-user", `{"userID":"`+user+`","segmentsToAdd":[`+
		`{"segmentSlug":"SHORT","secondsToBeInSegment":1},`+
		`{"segmentSlug":"DEADLINE","deadlineForStayingInSegment":"`+deadline.Format(time.RFC3339Nano)+`"},`+
		`{"segmentSlug":"FOREVER"}]}`))
	eventually(t, 10*time.Second, "both TTL segments expire", func() bool {
		return slices.Equal(segmentsOf(t, user), []string{"FOREVER"})
	})
	if time.Now().Before(deadline) {
		t.Fatalf("DEADLINE disappeared before %v", deadline)
	}
	// Removing an expired segment: the user is not in it any more, so
	// nothing happens, as in the original service.
	wantNoContent(t, call(t, http.MethodPost, "/segments/change-for-user",
		`{"userID":"`+user+`","segmentsToRemove":[{"segmentSlug":"SHORT"}]}`))
	if got := segmentsOf(t, user); !slices.Equal(got, []string{"FOREVER"}) {
		t.Fatalf("segments after removing an expired one = %q, want [FOREVER]", got)
	}
}
