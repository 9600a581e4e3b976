package e2e

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"
)

// The original service's clients: Go programs that build requests from
// structs without `omitempty`, so every field travels, zero values too.
// These types describe those wire shapes (field names and JSON keys as the
// original's API documents them); the tests send them through the gateway
// exactly as encoding/json writes them.
type (
	originalCreateSegment struct {
		Slug          string  `json:"slug"`
		PercentToFill float64 `json:"percentToFill"`
	}
	originalAddEntry struct {
		SegmentSlug                 string    `json:"segmentSlug"`
		SecondsToBeInSegment        int       `json:"secondsToBeInSegment"`
		DeadlineForStayingInSegment time.Time `json:"deadlineForStayingInSegment"`
	}
	originalRemoveEntry struct {
		SegmentSlug string `json:"segmentSlug"`
	}
	originalChange struct {
		UserID           string                `json:"userID"`
		SegmentsToAdd    []originalAddEntry    `json:"segmentsToAdd"`
		SegmentsToRemove []originalRemoveEntry `json:"segmentsToRemove"`
	}
	originalUser struct {
		UserID string `json:"userID"`
	}
	originalUpdateUser struct {
		UserID string `json:"userID"`
		Status string `json:"status"`
	}
	// A client that declared its structs without tags: encoding/json writes
	// the Go field names, and the original matched them case-insensitively.
	untaggedAddEntry struct {
		SegmentSlug                 string
		SecondsToBeInSegment        int
		DeadlineForStayingInSegment time.Time
	}
	untaggedChange struct {
		UserID           string
		SegmentsToAdd    []untaggedAddEntry
		SegmentsToRemove []originalRemoveEntry
	}
)

// send writes v as encoding/json does and calls the gateway.
func send(t *testing.T, method, path string, v any) response {
	t.Helper()
	body, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("encoding %T: %v", v, err)
	}
	return call(t, method, path, string(body))
}

// expiresAt is the stored deadline of a membership, or nil when permanent.
func expiresAt(t *testing.T, user, slug string) *time.Time {
	t.Helper()
	var at *time.Time
	err := db.QueryRow(`SELECT m.expires_at FROM memberships m JOIN segments s ON s.id = m.segment_id
		WHERE m.user_id = $1 AND s.slug = $2 AND s.deleted_at IS NULL`, user, slug).Scan(&at)
	if err != nil {
		t.Fatalf("membership of %s in %s: %v", user, slug, err)
	}
	return at
}

func historyCount(t *testing.T, user string) int {
	t.Helper()
	return queryInt(t, `SELECT count(*) FROM history WHERE user_id = $1`, user)
}

// What a Go client of the original sends, field for field, is accepted and
// means what it meant there.
func TestOriginalClientRequests(t *testing.T) {
	reset(t)
	const user = "1000" // the task statement's users are numbers
	wantNoContent(t, send(t, http.MethodPost, "/segments/create-user", originalUser{UserID: user}))
	for _, slug := range []string{"PERMANENT", "BY_SECONDS", "BY_DEADLINE", "NEVER_HELD"} {
		wantNoContent(t, send(t, http.MethodPost, "/segments/create", originalCreateSegment{Slug: slug}))
	}

	// Both TTL fields at their zero values: permanent. A TTL in one field
	// with the other at zero: that TTL.
	deadline := time.Now().Add(time.Hour).UTC().Truncate(time.Microsecond)
	start := time.Now()
	wantNoContent(t, send(t, http.MethodPost, "/segments/change-for-user", originalChange{
		UserID: user,
		SegmentsToAdd: []originalAddEntry{
			{SegmentSlug: "PERMANENT"},
			{SegmentSlug: "BY_SECONDS", SecondsToBeInSegment: 600},
			{SegmentSlug: "BY_DEADLINE", DeadlineForStayingInSegment: deadline},
		},
	}))
	wantSegments(t, user, "BY_DEADLINE", "BY_SECONDS", "PERMANENT")
	if at := expiresAt(t, user, "PERMANENT"); at != nil {
		t.Fatalf("PERMANENT expires at %v, want never", *at)
	}
	if at := expiresAt(t, user, "BY_SECONDS"); at == nil || at.Before(start.Add(599*time.Second)) ||
		at.After(time.Now().Add(600*time.Second)) {
		t.Fatalf("BY_SECONDS expires at %v, want 600 s after the call", at)
	}
	if at := expiresAt(t, user, "BY_DEADLINE"); at == nil || !at.Equal(deadline) {
		t.Fatalf("BY_DEADLINE expires at %v, want %v", at, deadline)
	}
	events := historyCount(t, user)

	// Nil slices travel as null; empty ones as []: nothing happens.
	wantNoContent(t, send(t, http.MethodPost, "/segments/change-for-user", originalChange{UserID: user}))
	wantNoContent(t, send(t, http.MethodPost, "/segments/change-for-user",
		originalChange{UserID: user, SegmentsToAdd: []originalAddEntry{}, SegmentsToRemove: []originalRemoveEntry{}}))
	// Removing a segment the user is not in, or one slug twice: accepted,
	// and only the real change is recorded.
	wantNoContent(t, send(t, http.MethodPost, "/segments/change-for-user", originalChange{
		UserID:           user,
		SegmentsToRemove: []originalRemoveEntry{{"NEVER_HELD"}, {"PERMANENT"}, {"PERMANENT"}},
	}))
	wantSegments(t, user, "BY_DEADLINE", "BY_SECONDS")
	if got := historyCount(t, user); got != events+1 {
		t.Fatalf("history has %d events for the user, want %d (one removal)", got, events+1)
	}

	// What the original refused stays refused: adding a held segment, one
	// slug in both lists.
	wantOneError(t, send(t, http.MethodPost, "/segments/change-for-user", originalChange{
		UserID: user, SegmentsToAdd: []originalAddEntry{{SegmentSlug: "BY_SECONDS"}},
	}), http.StatusBadRequest, "validation_error", `segmentsToAdd[0].segmentSlug: user is already in segment "BY_SECONDS"`)
	wantError(t, send(t, http.MethodPost, "/segments/change-for-user", originalChange{
		UserID:           user,
		SegmentsToAdd:    []originalAddEntry{{SegmentSlug: "NEVER_HELD"}},
		SegmentsToRemove: []originalRemoveEntry{{"NEVER_HELD"}},
	}), http.StatusBadRequest, "validation_error")

	// The user's state, and removal, in the original's shapes.
	wantNoContent(t, send(t, http.MethodPut, "/segments/update-user", originalUpdateUser{UserID: user, Status: "excluded"}))
	wantNoContent(t, send(t, http.MethodDelete, "/segments/remove-user", originalUser{UserID: user}))
	wantSegments(t, user)
}

// A client that declared its structs without JSON tags sends the Go field
// names; the original read them case-insensitively, and so do we.
func TestOriginalUntaggedClientRequests(t *testing.T) {
	reset(t)
	const user = "1002"
	wantNoContent(t, send(t, http.MethodPost, "/segments/create-user", struct{ UserID string }{user}))
	wantNoContent(t, send(t, http.MethodPost, "/segments/create", struct {
		Slug          string
		PercentToFill float64
	}{Slug: "UNTAGGED"}))
	wantNoContent(t, send(t, http.MethodPost, "/segments/change-for-user", untaggedChange{
		UserID: user, SegmentsToAdd: []untaggedAddEntry{{SegmentSlug: "UNTAGGED", SecondsToBeInSegment: 60}},
	}))
	wantSegments(t, user, "UNTAGGED")
	if at := expiresAt(t, user, "UNTAGGED"); at == nil {
		t.Fatalf("UNTAGGED has no deadline: SecondsToBeInSegment was lost")
	}
}
