package e2e

import (
	"bytes"
	"net/http"
	"testing"
)

// keyed sends a request with an Idempotency-Key header; for any status >=
// 400 it checks the envelope.
func keyed(t *testing.T, key, method, path, body string) response {
	t.Helper()
	r, err := fetchWith(baseURL, method, path, body, http.Header{"Idempotency-Key": {key}})
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	if r.status >= 400 {
		checkEnvelope(t, r)
	}
	return r
}

func sameAnswer(t *testing.T, got, want response) {
	t.Helper()
	if got.status != want.status || !bytes.Equal(got.body, want.body) ||
		got.header.Get("Content-Type") != want.header.Get("Content-Type") {
		t.Fatalf("repeat answered %s, the first call %s", got, want)
	}
}

func TestIdempotencyKeyOverHTTP(t *testing.T) {
	reset(t)
	user := newUUID()
	createUser(t, user)
	createSegment(t, "IDEM_A")
	add := `{"userID":"` + user + `","segmentsToAdd":[{"segmentSlug":"IDEM_A"}]}`

	// The header reaches the server: a repeat answers the first 204 and
	// writes no second event (without the key it would be a 400).
	first := keyed(t, "change-1", http.MethodPost, "/segments/change-for-user", add)
	wantNoContent(t, first)
	sameAnswer(t, keyed(t, "change-1", http.MethodPost, "/segments/change-for-user", add), first)
	if n := queryInt(t, `SELECT count(*) FROM history WHERE user_id = $1`, user); n != 1 {
		t.Fatalf("%d history events, want 1", n)
	}
	wantError(t, call(t, http.MethodPost, "/segments/change-for-user", add), http.StatusBadRequest, "validation_error")

	// An error is answered again as it was, body and all, after the
	// segment it missed was created.
	late := `{"userID":"` + user + `","segmentsToAdd":[{"segmentSlug":"IDEM_LATE"}]}`
	missing := keyed(t, "change-2", http.MethodPost, "/segments/change-for-user", late)
	wantOneError(t, missing, http.StatusNotFound, "not_found", `segmentsToAdd[0].segmentSlug: segment "IDEM_LATE" does not exist`)
	createSegment(t, "IDEM_LATE")
	sameAnswer(t, keyed(t, "change-2", http.MethodPost, "/segments/change-for-user", late), missing)
	wantSegments(t, user, "IDEM_A")

	// The key with another body, or on another route.
	wantOneError(t, keyed(t, "change-1", http.MethodPost, "/segments/change-for-user", late),
		http.StatusConflict, "conflict", `idempotency key "change-1" was already used with a different request`)
	wantOneError(t, keyed(t, "change-1", http.MethodDelete, "/segments/remove", `{"slug":"IDEM_A"}`),
		http.StatusConflict, "conflict", `idempotency key "change-1" was already used with a different request`)
	wantSegments(t, user, "IDEM_A")

	// Malformed keys; reads ignore keys.
	for _, bad := range []string{"", "caf\u00e9", string(bytes.Repeat([]byte("k"), 129))} {
		wantOneError(t, keyed(t, bad, http.MethodPost, "/segments/create-user", `{"userID":"`+newUUID()+`"}`),
			http.StatusBadRequest, "validation_error",
			"Idempotency-Key: must be 1 to 128 printable ASCII characters (0x20 to 0x7E)")
	}
	wantJSON(t, keyed(t, "caf\u00e9", http.MethodGet, "/segments/get-for-user?userID="+user, ""), `{"segments":["IDEM_A"]}`)
	if n := queryInt(t, `SELECT count(*) FROM idempotency_keys`); n != 2 {
		t.Fatalf("%d keys stored, want 2", n)
	}
}
