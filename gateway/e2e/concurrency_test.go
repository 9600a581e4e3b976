package e2e

import (
	"fmt"
	"net/http"
	"sync"
	"testing"
)

// request is one call for parallel.
type request struct{ method, path, body string }

// parallel sends the requests at once and returns their responses, each
// error response checked for the envelope.
func parallel(t *testing.T, n int, fn func(i int) request) []response {
	t.Helper()
	out := make([]response, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			req := fn(i)
			<-start
			out[i], errs[i] = fetch(baseURL, req.method, req.path, req.body)
		}(i)
	}
	close(start)
	wg.Wait()
	for i := range out {
		if errs[i] != nil {
			t.Fatalf("request %d: %v", i, errs[i])
		}
		if out[i].status >= 400 {
			checkEnvelope(t, out[i])
		}
	}
	return out
}

func countStatuses(rs []response) map[int]int {
	m := map[int]int{}
	for _, r := range rs {
		m[r.status]++
	}
	return m
}

// Racing creations of one slug or one user: exactly one wins, the others
// get conflict, never a 5xx.
func TestConcurrentCreatesConflict(t *testing.T) {
	reset(t)
	const n = 16
	rs := parallel(t, n, func(int) request {
		return request{http.MethodPost, "/segments/create", `{"slug":"RACE"}`}
	})
	if got := countStatuses(rs); got[204] != 1 || got[409] != n-1 {
		t.Fatalf("statuses %v, want one 204 and %d 409", got, n-1)
	}
	for _, r := range rs {
		if r.status == 409 {
			wantOneError(t, r, 409, "conflict", `slug: segment "RACE" already exists`)
		}
	}

	user := newUUID()
	rs = parallel(t, n, func(int) request {
		return request{http.MethodPost, "/segments/create-user", `{"userID":"` + user + `"}`}
	})
	if got := countStatuses(rs); got[204] != 1 || got[409] != n-1 {
		t.Fatalf("create-user statuses %v, want one 204 and %d 409", got, n-1)
	}
}

// Racing changes of one user: each adds its own segment, all succeed; racing
// adds of one segment: one succeeds, the rest are told the user is in it.
func TestConcurrentChangesOfOneUser(t *testing.T) {
	reset(t)
	const n = 12
	user := newUUID()
	createUser(t, user)
	want := make([]string, n)
	for i := range want {
		want[i] = fmt.Sprintf("P%02d", i)
		createSegment(t, want[i])
	}
	createSegment(t, "SAME")
	rs := parallel(t, n, func(i int) request {
		return request{http.MethodPost, "/segments/change-for-user",
			`{"userID":"` + user + `","segmentsToAdd":[{"segmentSlug":"` + want[i] + `"}]}`}
	})
	if got := countStatuses(rs); got[204] != n {
		t.Fatalf("statuses %v, want %d 204", got, n)
	}
	wantSegments(t, user, want...)

	rs = parallel(t, n, func(int) request {
		return request{http.MethodPost, "/segments/change-for-user",
			`{"userID":"` + user + `","segmentsToAdd":[{"segmentSlug":"SAME"}]}`}
	})
	if got := countStatuses(rs); got[204] != 1 || got[400] != n-1 {
		t.Fatalf("statuses %v, want one 204 and %d 400", got, n-1)
	}
	if c := queryInt(t, `SELECT count(*) FROM history WHERE slug = 'SAME'`); c != 1 {
		t.Fatalf("%d history events for SAME, want 1", c)
	}
}

// A segment deleted while users are being added to it: every add either
// happened before (and was then ended by the deletion, with history) or is
// refused as not_found. Nobody is left in a deleted segment.
func TestConcurrentDeleteAndAdd(t *testing.T) {
	reset(t)
	const users = 8
	ids := make([]string, users)
	for i := range ids {
		ids[i] = newUUID()
		createUser(t, ids[i])
	}
	for round := 0; round < 5; round++ {
		slug := fmt.Sprintf("RACE_%d", round)
		createSegment(t, slug)
		rs := parallel(t, users+1, func(i int) request {
			if i == users {
				return request{http.MethodDelete, "/segments/remove", `{"slug":"` + slug + `"}`}
			}
			return request{http.MethodPost, "/segments/change-for-user",
				`{"userID":"` + ids[i] + `","segmentsToAdd":[{"segmentSlug":"` + slug + `"}]}`}
		})
		if rs[users].status != http.StatusNoContent {
			t.Fatalf("round %d: remove answered %s", round, rs[users])
		}
		added := 0
		for _, r := range rs[:users] {
			switch r.status {
			case http.StatusNoContent:
				added++
			case http.StatusNotFound:
				wantOneError(t, r, 404, "not_found", `segmentsToAdd[0].segmentSlug: segment "`+slug+`" does not exist`)
			default:
				t.Fatalf("round %d: add answered %s", round, r)
			}
		}
		if c := queryInt(t, `SELECT count(*) FROM memberships m JOIN segments s ON s.id = m.segment_id WHERE s.slug = $1`, slug); c != 0 {
			t.Fatalf("round %d: %d memberships in the deleted segment", round, c)
		}
		adds := queryInt(t, `SELECT count(*) FROM history WHERE slug = $1 AND operation = 'add'`, slug)
		removes := queryInt(t, `SELECT count(*) FROM history WHERE slug = $1 AND operation = 'remove' AND reason = 'segment_deleted'`, slug)
		if adds != added || removes != added {
			t.Fatalf("round %d: %d adds answered 204, history has %d adds and %d segment_deleted removals", round, added, adds, removes)
		}
	}
	for _, id := range ids {
		wantSegments(t, id)
	}
}
