package gateway

import (
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
)

// withKeys sends a request with each of keys as an Idempotency-Key header.
func withKeys(t *testing.T, method, url, body string, keys ...string) response {
	t.Helper()
	var header http.Header
	if len(keys) > 0 {
		header = http.Header{"Idempotency-Key": keys}
	}
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	return doWith(t, method, url, r, header)
}

func (f *fakeBackend) takeKeys() [][]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := f.keys
	f.keys = nil
	return out
}

func TestIdempotencyKeyReachesTheServerOnMutations(t *testing.T) {
	h := newHarness(t, Options{})
	mutations := []struct{ method, path, body string }{
		{http.MethodPost, "/segments/create", `{"slug":"A"}`},
		{http.MethodDelete, "/segments/remove", `{"slug":"A"}`},
		{http.MethodPost, "/segments/change-for-user", `{"userID":"1000"}`},
		{http.MethodPost, "/segments/create-user", `{"userID":"1000"}`},
		{http.MethodPut, "/segments/update-user", `{"userID":"1000","status":"active"}`},
		{http.MethodDelete, "/segments/remove-user", `{"userID":"1000"}`},
	}
	longest := " " + strings.Repeat("x", 126) + "~"
	for _, m := range mutations {
		for _, key := range []string{"order-42", longest} {
			noContent(t, withKeys(t, m.method, h.url+m.path, m.body, key))
			if got := h.backend.takeKeys(); len(got) != 1 || !slices.Equal(got[0], []string{strings.TrimSpace(key)}) {
				t.Errorf("%s %s with key %q: the server got %q", m.method, m.path, key, got)
			}
		}
		// No header, no key.
		noContent(t, withKeys(t, m.method, h.url+m.path, m.body))
		if got := h.backend.takeKeys(); len(got) != 1 || len(got[0]) != 0 {
			t.Errorf("%s %s without a key: the server got %q", m.method, m.path, got)
		}
	}
}

func TestMalformedIdempotencyKeysAreRefusedBeforeTheServer(t *testing.T) {
	h := newHarness(t, Options{})
	for _, keys := range [][]string{
		{""},
		{strings.Repeat("k", 129)},
		{"caf\u00e9"},
		{"tab\there"},
		{"one", "two"},
	} {
		r := withKeys(t, http.MethodPost, h.url+"/segments/create-user", `{"userID":"1000"}`, keys...)
		e := oneOfType(t, envelope(t, r, http.StatusBadRequest), "validation_error")
		want := "Idempotency-Key: must be 1 to 128 printable ASCII characters (0x20 to 0x7E)"
		if len(keys) > 1 {
			want = "Idempotency-Key: give one key, not several"
		}
		if e.Info != want {
			t.Errorf("keys %q: info %q, want %q", keys, e.Info, want)
		}
	}
	if got := h.backend.take(); len(got) != 0 {
		t.Errorf("the server got %d calls", len(got))
	}
}

func TestReadsIgnoreIdempotencyKeys(t *testing.T) {
	h := newHarness(t, Options{})
	for _, key := range []string{"order-42", "caf\u00e9", ""} {
		r := withKeys(t, http.MethodGet, h.url+"/segments/get-for-user?userID=1000", "", key)
		if r.status != http.StatusOK {
			t.Fatalf("key %q: status %d, body %q", key, r.status, r.body)
		}
		if got := h.backend.takeKeys(); len(got) != 1 || len(got[0]) != 0 {
			t.Errorf("key %q: the server got %q", key, got)
		}
	}
}
