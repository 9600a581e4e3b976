package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"segments/gateway"
)

// Bulk membership, segment listing, member listing and streaming through
// the REST gateway.

// bulkBody is the JSON of a bulk-add or bulk-remove request; extra is
// appended to the object as is (",\"secondsToBeInSegment\":5").
func bulkBody(slug string, ids []string, extra string) string {
	raw, err := json.Marshal(ids)
	if err != nil {
		panic(err)
	}
	return `{"slug":` + jsonString(slug) + `,"userIDs":` + string(raw) + extra + `}`
}

func bulkAdd(t *testing.T, slug string, ids ...string) {
	t.Helper()
	for len(ids) > 0 { // the main gateway's body limit is 64 KiB
		n := min(len(ids), 1000)
		wantNoContent(t, call(t, http.MethodPost, "/segments/bulk-add", bulkBody(slug, ids[:n], "")))
		ids = ids[n:]
	}
}

func eventCount(t *testing.T, slug, operation, reason string) int {
	t.Helper()
	return queryInt(t, `SELECT count(*) FROM history WHERE slug = $1 AND operation = $2 AND reason = $3`, slug, operation, reason)
}

// infos lists the entries' info texts.
func infos(entries []entry) []string {
	out := make([]string, 0, len(entries))
	for _, e := range entries {
		out = append(out, e.Info)
	}
	return out
}

// bulk-add and bulk-remove: 204; all or nothing; unknown ids named by
// their index; duplicates and empty lists refused; TTLs; members already
// in (or not in) left alone.
func TestBulkAddAndRemove(t *testing.T) {
	reset(t)
	u := createUsers(t, 6)
	const slug = "BULK"
	createSegment(t, slug)

	wantNoContent(t, call(t, http.MethodPost, "/segments/bulk-add", bulkBody(slug, u[:3], "")))
	for _, id := range u[:3] {
		wantSegments(t, id, slug)
	}
	all := members(t, slug)
	sameSet(t, "after bulk-add", memberSet(t, slug), setOf(u[:3]...))
	for id, m := range all {
		if m.Automatic || m.ExpiresAt != nil {
			t.Fatalf("member %s: %+v, want by hand and permanent", id, m)
		}
	}
	if n := eventCount(t, slug, "add", "manual"); n != 3 {
		t.Fatalf("%d add events, want 3", n)
	}

	// A member already in (its id in capitals) is left as it is.
	wantNoContent(t, call(t, http.MethodPost, "/segments/bulk-add", bulkBody(slug, []string{strings.ToUpper(u[0]), u[3]}, "")))
	sameSet(t, "after adding a member again", memberSet(t, slug), setOf(u[:4]...))
	if n := eventCount(t, slug, "add", "manual"); n != 4 {
		t.Fatalf("%d add events, want 4", n)
	}

	// Unknown ids: 404 naming each by its index; nothing is added.
	unknown1, unknown2 := newUUID(), newUUID()
	entries := wantError(t, call(t, http.MethodPost, "/segments/bulk-add", bulkBody(slug, []string{u[4], unknown1, u[5], unknown2}, "")),
		http.StatusNotFound, "not_found")
	want := []string{`userIDs[1]: user "` + unknown1 + `" does not exist`, `userIDs[3]: user "` + unknown2 + `" does not exist`}
	if !slices.Equal(infos(entries), want) {
		t.Fatalf("entries %q, want %q", infos(entries), want)
	}
	sameSet(t, "after unknown ids", memberSet(t, slug), setOf(u[:4]...))

	// Many unknown ids: the first 20 named, then one summary entry.
	var many []string
	for range 150 {
		many = append(many, newUUID())
	}
	entries = wantError(t, call(t, http.MethodPost, "/segments/bulk-add", bulkBody(slug, append([]string{u[4]}, many...), "")),
		http.StatusNotFound, "not_found")
	if len(entries) != 21 || !strings.HasPrefix(entries[0].Info, "userIDs[1]: ") ||
		!strings.HasPrefix(entries[19].Info, "userIDs[20]: ") || entries[20].Info != "userIDs: and 130 more unknown users" {
		t.Fatalf("%d entries, first %q, last %q", len(entries), entries[0].Info, entries[len(entries)-1].Info)
	}

	// Refused shapes.
	for _, tc := range []struct{ body, typ, info string }{
		{bulkBody(slug, []string{u[4], strings.ToUpper(u[4])}, ""), "validation_error",
			`userIDs[1]: user "` + u[4] + `" is already listed at userIDs[0]`},
		{bulkBody(slug, []string{}, ""), "validation_error", "userIDs: *"},
		{bulkBody(slug, []string{"not-a-uuid"}, ""), "validation_error", "userIDs[0]: *"},
		{bulkBody(slug, []string{u[4]}, `,"secondsToBeInSegment":60,"deadlineForStayingInSegment":"2100-01-01T00:00:00Z"`),
			"validation_error", "*"},
		{bulkBody(slug, []string{u[4]}, `,"secondsToBeInSegment":-1`), "validation_error", "secondsToBeInSegment: *"},
		{`{"slug":"BULK","userIDs":"` + u[4] + `"}`, "parse_error", "*"},
	} {
		wantOneError(t, call(t, http.MethodPost, "/segments/bulk-add", tc.body), http.StatusBadRequest, tc.typ, tc.info)
	}
	wantOneError(t, call(t, http.MethodPost, "/segments/bulk-add", bulkBody("NO_SUCH", []string{u[4]}, "")),
		http.StatusNotFound, "not_found", `slug: segment "NO_SUCH" does not exist`)
	sameSet(t, "after refused calls", memberSet(t, slug), setOf(u[:4]...))

	// A TTL for every new membership.
	start := time.Now()
	wantNoContent(t, call(t, http.MethodPost, "/segments/bulk-add", bulkBody(slug, u[4:6], `,"secondsToBeInSegment":600`)))
	all = members(t, slug)
	for _, id := range u[4:6] {
		m := all[id]
		// Exactly 600 s after addedAt: TestBulkAddTTLCountsFromTheAddition.
		if m.ExpiresAt == nil || m.ExpiresAt.Sub(start) < 9*time.Minute || m.ExpiresAt.Sub(start) > 11*time.Minute {
			t.Fatalf("member %s with a TTL of 600 s: %+v", id, m)
		}
	}

	// bulk-remove: members leave, others are left alone; unknown ids fail
	// the whole call.
	wantNoContent(t, call(t, http.MethodPost, "/segments/bulk-remove", bulkBody(slug, []string{u[0], u[1]}, "")))
	wantNoContent(t, call(t, http.MethodPost, "/segments/bulk-remove", bulkBody(slug, []string{u[1], u[2]}, "")))
	sameSet(t, "after bulk-remove", memberSet(t, slug), setOf(u[3:6]...))
	if n := eventCount(t, slug, "remove", "manual"); n != 3 {
		t.Fatalf("%d remove events, want 3", n)
	}
	wantOneError(t, call(t, http.MethodPost, "/segments/bulk-remove", bulkBody(slug, []string{u[3], unknown1}, "")),
		http.StatusNotFound, "not_found", `userIDs[1]: user "`+unknown1+`" does not exist`)
	wantOneError(t, call(t, http.MethodPost, "/segments/bulk-remove", bulkBody(slug, []string{u[3], u[3]}, "")),
		http.StatusBadRequest, "validation_error", `userIDs[1]: *`)
	sameSet(t, "after refused removes", memberSet(t, slug), setOf(u[3:6]...))
}

// A bulk-add TTL counts from the moment the members are added, as in
// change-for-user: expiresAt - addedAt is the TTL exactly, however long the
// call waited for the segment (held exclusively here by the test, as a long
// percentage change or a deletion of the segment would).
func TestBulkAddTTLCountsFromTheAddition(t *testing.T) {
	reset(t)
	u := createUsers(t, 2)
	const slug = "BULK_TTL"
	createSegment(t, slug)

	wantNoContent(t, call(t, http.MethodPost, "/segments/bulk-add", bulkBody(slug, u[:1], `,"secondsToBeInSegment":600`)))
	if m := members(t, slug)[u[0]]; m.ExpiresAt == nil || m.ExpiresAt.Sub(m.AddedAt) != 10*time.Minute {
		t.Errorf("secondsToBeInSegment 600: addedAt %v, expiresAt %v; want 600 s apart", m.AddedAt, m.ExpiresAt)
	}

	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback() }()
	if _, err := tx.Exec(`SELECT lock_live_segments(ARRAY[$1], true)`, slug); err != nil {
		t.Fatal(err)
	}
	done := make(chan response, 1)
	go func() {
		r, err := fetch(baseURL, http.MethodPost, "/segments/bulk-add", bulkBody(slug, u[1:], `,"secondsToBeInSegment":1`))
		if err != nil {
			r = response{status: -1, body: []byte(err.Error())}
		}
		done <- r
	}()
	// Held until the call is seen waiting for the lock (not a fixed sleep: on
	// a slow machine it may not have got there yet), then 1.5 s more: longer
	// than the TTL.
	eventually(t, 30*time.Second, "bulk-add waiting for the segment's lock", func() bool {
		return queryInt(t, `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock' AND wait_event = 'advisory'`) > 0
	})
	time.Sleep(1500 * time.Millisecond)
	_ = tx.Rollback()
	r := <-done
	if r.status != http.StatusNoContent {
		t.Fatalf("bulk-add with secondsToBeInSegment 1 after a 1.5 s wait for the segment: %s, want 204", r)
	}
	if n := eventCount(t, slug, "add", "manual"); n != 2 {
		t.Fatalf("%d add events, want 2", n)
	}
}

// Removed by bulk-remove, automatic members and members by hand alike stay
// out when the percentage is raised.
func TestBulkRemoveSticks(t *testing.T) {
	reset(t)
	users := createUsers(t, 300)
	const slug = "BULK_AUTO"
	wantNoContent(t, call(t, http.MethodPost, "/segments/create", `{"slug":"BULK_AUTO","percentToFill":50}`))
	s := salt(t, slug)
	in := keys(covered(s, users, 50))
	out := keys(minus(setOf(users...), covered(s, users, 50)))
	byHand := out[0]
	addSegments(t, byHand, slug)
	removed := append(slices.Clone(in[:5]), byHand)
	wantNoContent(t, call(t, http.MethodPost, "/segments/bulk-remove", bulkBody(slug, removed, "")))
	for _, id := range removed {
		wantSegments(t, id)
	}

	setPercent(t, slug, 100)
	sameSet(t, "at 100%", memberSet(t, slug), minus(setOf(users...), setOf(removed...)))
	setPercent(t, slug, 0)
	setPercent(t, slug, 100)
	sameSet(t, "at 0% then 100%", memberSet(t, slug), minus(setOf(users...), setOf(removed...)))
	// By hand they can come back.
	wantNoContent(t, call(t, http.MethodPost, "/segments/bulk-add", bulkBody(slug, removed, "")))
	sameSet(t, "added back by hand", memberSet(t, slug), setOf(users...))
}

// startGatewayWith runs a gateway of its own over the shared server.
func startGatewayWith(t *testing.T, opts gateway.Options) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	opts.Listener, opts.Upstream = lis, serverAddr
	opts.ShutdownTimeout = 5 * time.Second
	opts.Logger = slog.New(slog.NewJSONHandler(io.Discard, nil))
	go func() { done <- gateway.Run(ctx, opts) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("the gateway stopped with %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Error("the gateway did not stop")
		}
	})
	return "http://" + lis.Addr().String()
}

// streamMembers reads stream-members at base: newline-delimited
// {"result":{"members":[...]}} objects, at most 1000 members each. It
// returns the members in order and the number of lines.
func streamMembers(t *testing.T, client *http.Client, base, slug string) ([]apiMember, int) {
	t.Helper()
	resp, err := client.Get(base + "/segments/stream-members?slug=" + slug)
	if err != nil {
		t.Fatalf("stream-members %s: %v", slug, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/x-ndjson" {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("stream-members %s: %d %q %.300q", slug, resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	var out []apiMember
	lines := 0
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 4<<20)
	for sc.Scan() {
		lines++
		var line struct {
			Result *struct {
				Members []apiMember `json:"members"`
			} `json:"result"`
		}
		decodeStrict(t, fmt.Sprintf("stream-members line %d", lines), sc.Bytes(), &line)
		if line.Result == nil || line.Result.Members == nil || len(line.Result.Members) > 1000 {
			t.Fatalf("stream-members line %d: %.300q", lines, sc.Bytes())
		}
		out = append(out, line.Result.Members...)
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("stream-members %s: reading: %v", slug, err)
	}
	return out, lines
}

// 100,000 ids in one bulk call: over the main gateway's small body limit it
// is 413; a gateway with the default limit takes it, even with an
// UpstreamTimeout far below the call's duration (bulk calls and streams
// get LongUpstreamTimeout), and streams the 100,000 members.
func TestBulkCallsWith100000Users(t *testing.T) {
	reset(t)
	ids := insertUsers(t, 100_000)
	const slug = "BULK_BIG"
	createSegment(t, slug)
	body := bulkBody(slug, ids, "")
	if len(body) < 3_900_000 {
		t.Fatalf("body of %d bytes", len(body))
	}
	wantOneError(t, call(t, http.MethodPost, "/segments/bulk-add", body),
		http.StatusRequestEntityTooLarge, "payload_too_large", "*")

	big := startGatewayWith(t, gateway.Options{UpstreamTimeout: 50 * time.Millisecond})
	client := &http.Client{Timeout: 11 * time.Minute}
	post := func(path string) time.Duration {
		t.Helper()
		start := time.Now()
		req, _ := http.NewRequest(http.MethodPost, big+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent {
			t.Fatalf("%s with 100,000 ids: %d %.500q", path, resp.StatusCode, raw)
		}
		return time.Since(start)
	}

	took := post("/segments/bulk-add")
	t.Logf("bulk-add of 100,000 users (%d bytes): %v", len(body), took)
	if n := queryInt(t, `SELECT count(*) FROM memberships m JOIN segments s ON s.id = m.segment_id WHERE s.slug = $1`, slug); n != len(ids) {
		t.Fatalf("%d members, want %d", n, len(ids))
	}
	if n := eventCount(t, slug, "add", "manual"); n != len(ids) {
		t.Fatalf("%d add events, want %d", n, len(ids))
	}

	start := time.Now()
	streamed, lines := streamMembers(t, client, big, slug)
	t.Logf("stream-members of 100,000 users: %v, %d lines", time.Since(start), lines)
	got := make([]string, 0, len(streamed))
	for _, m := range streamed {
		got = append(got, m.UserID)
	}
	if !slices.Equal(got, ids) {
		t.Fatalf("streamed %d members, want the %d users in order", len(got), len(ids))
	}

	took = post("/segments/bulk-remove")
	t.Logf("bulk-remove of 100,000 users: %v", took)
	if n := queryInt(t, `SELECT count(*) FROM memberships`); n != 0 {
		t.Fatalf("%d memberships left", n)
	}
}

// list: pages in slug order; the last page has an empty nextPageToken;
// bad tokens and sizes are the envelope.
func TestListSegmentsPaging(t *testing.T) {
	reset(t)
	for _, s := range []string{"LS_E", "LS_A", "LS_C", "LS_F", "LS_B", "LS_D"} {
		createSegment(t, s)
	}
	wantNoContent(t, call(t, http.MethodDelete, "/segments/remove", `{"slug":"LS_F"}`))

	type apiSegment struct {
		Slug                     string    `json:"slug"`
		PercentToFill            float64   `json:"percentToFill"`
		Description              string    `json:"description"`
		CreatedAt                time.Time `json:"createdAt"`
		IncludeSegments          []string  `json:"includeSegments"`
		ExcludeSegments          []string  `json:"excludeSegments"`
		AutoSecondsToBeInSegment *string   `json:"autoSecondsToBeInSegment"`
	}
	page := func(query string) ([]string, string) {
		t.Helper()
		r := call(t, http.MethodGet, "/segments/list?"+query, "")
		if r.status != http.StatusOK || r.header.Get("Content-Type") != "application/json" {
			t.Fatalf("list?%s: %s", query, r)
		}
		var body struct {
			Segments      []apiSegment `json:"segments"`
			NextPageToken *string      `json:"nextPageToken"`
		}
		decodeStrict(t, "list", r.body, &body)
		if body.Segments == nil || body.NextPageToken == nil {
			t.Fatalf("list?%s: %s", query, r)
		}
		var slugs []string
		for _, s := range body.Segments {
			if s.CreatedAt.IsZero() {
				t.Fatalf("list?%s: segment without createdAt: %s", query, r)
			}
			slugs = append(slugs, s.Slug)
		}
		return slugs, *body.NextPageToken
	}

	var walked [][]string
	token := ""
	for i := 0; ; i++ {
		q := "pageSize=2"
		if token != "" {
			q += "&pageToken=" + token
		}
		var slugs []string
		slugs, token = page(q)
		walked = append(walked, slugs)
		if token == "" || i > 5 {
			break
		}
	}
	if fmt.Sprint(walked) != "[[LS_A LS_B] [LS_C LS_D] [LS_E]]" {
		t.Fatalf("pages %v, want [[LS_A LS_B] [LS_C LS_D] [LS_E]] with an empty token on the last", walked)
	}
	if slugs, token := page(""); fmt.Sprint(slugs) != "[LS_A LS_B LS_C LS_D LS_E]" || token != "" {
		t.Fatalf("default page: %v, token %q", slugs, token)
	}

	_, memberToken := func() ([]apiMember, string) {
		bulkAdd(t, "LS_A", createUsers(t, 2)...)
		return membersPageAt(t, baseURL, "LS_A", 1, "")
	}()
	for _, tc := range []struct{ query, typ, info string }{
		{"pageToken=garbage", "validation_error", "pageToken: *"},
		{"pageToken=" + memberToken, "validation_error", "pageToken: *"},
		{"pageSize=1001", "validation_error", "pageSize: *"},
		{"pageSize=-1", "validation_error", "pageSize: *"},
		{"pageSize=two", "parse_error", "*"},
	} {
		wantOneError(t, call(t, http.MethodGet, "/segments/list?"+tc.query, ""), http.StatusBadRequest, tc.typ, tc.info)
	}
}

// Paging through a segment of 1,000 members, 50 a page, while other users
// join and leave it: each user who is a member throughout is returned
// exactly once, pages are in user order, nobody twice.
func TestListMembersPagingUnderConcurrentWrites(t *testing.T) {
	reset(t)
	ids := insertUsers(t, 1500)
	var stable, churn []string
	for i, id := range ids {
		if i%3 == 0 {
			churn = append(churn, id)
		} else {
			stable = append(stable, id)
		}
	}
	const slug = "PAGED"
	createSegment(t, slug)
	bulkAdd(t, slug, stable...)

	stop := make(chan struct{})
	var ops atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for {
				select {
				case <-stop:
					return
				default:
				}
				batch := make([]string, 25)
				for i := range batch {
					batch[i] = churn[rng.IntN(len(churn))]
				}
				slices.Sort(batch)
				batch = slices.Compact(batch)
				path := "/segments/bulk-add"
				if rng.IntN(2) == 0 {
					path = "/segments/bulk-remove"
				}
				r, err := fetch(baseURL, http.MethodPost, path, bulkBody(slug, batch, ""))
				if err == nil && r.status != http.StatusNoContent {
					err = fmt.Errorf("%s: %s", path, r)
				}
				if err != nil {
					errs <- err
					return
				}
				ops.Add(1)
			}
		}()
	}

	seen := map[string]int{}
	var order []string
	token, pages := "", 0
	var firstToken string
	for {
		var list []apiMember
		list, token = membersPageAt(t, baseURL, slug, 50, token)
		if pages == 0 {
			firstToken = token
		}
		pages++
		for _, m := range list {
			seen[m.UserID]++
			order = append(order, m.UserID)
		}
		if token == "" {
			break
		}
		// The next page only after another write: pages and writes
		// interleave however slow the machine.
		written := ops.Load()
		eventually(t, 30*time.Second, "a write between two pages", func() bool { return ops.Load() > written })
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	t.Logf("%d pages, %d members seen, %d concurrent bulk calls", pages, len(order), ops.Load())
	if ops.Load() == 0 {
		t.Fatal("no write ran during the walk")
	}
	if !slices.IsSorted(order) {
		t.Fatal("members are not in user order across pages")
	}
	for id, n := range seen {
		if n != 1 {
			t.Fatalf("user %s returned %d times", id, n)
		}
	}
	for _, id := range stable {
		if seen[id] != 1 {
			t.Fatalf("user %s, a member throughout, returned %d times", id, seen[id])
		}
	}
	if pages < 20 {
		t.Fatalf("only %d pages of 50 for at least 1,000 members", pages)
	}

	// A token of a segment since deleted is refused, even once the slug is
	// taken again.
	wantNoContent(t, call(t, http.MethodDelete, "/segments/remove", `{"slug":"PAGED"}`))
	createSegment(t, slug)
	wantOneError(t, call(t, http.MethodGet, "/segments/list-members?slug=PAGED&pageToken="+firstToken, ""),
		http.StatusBadRequest, "validation_error", "pageToken: *")
	wantOneError(t, call(t, http.MethodGet, "/segments/list-members?slug=PAGED&pageToken=garbage", ""),
		http.StatusBadRequest, "validation_error", "pageToken: *")
	wantOneError(t, call(t, http.MethodGet, "/segments/list-members?slug=NO_SUCH", ""),
		http.StatusNotFound, "not_found", `slug: segment "NO_SUCH" does not exist`)
	wantOneError(t, call(t, http.MethodGet, "/segments/list-members?slug=PAGED&pageSize=10001", ""),
		http.StatusBadRequest, "validation_error", "pageSize: *")
}

// stream-members: newline-delimited {"result":{"members":[...]}} objects,
// every member once, in user order; an empty segment is one empty batch;
// errors before the first batch are the envelope.
func TestStreamMembers(t *testing.T) {
	reset(t)
	ids := insertUsers(t, 2500)
	const slug = "STREAMED"
	createSegment(t, slug)
	bulkAdd(t, slug, ids...)

	streamed, lines := streamMembers(t, httpClient, baseURL, slug)
	got := make([]string, 0, len(streamed))
	for _, m := range streamed {
		if m.Automatic || m.AddedAt.IsZero() {
			t.Fatalf("streamed member %+v", m)
		}
		got = append(got, m.UserID)
	}
	if !slices.Equal(got, ids) || lines != 3 {
		t.Fatalf("streamed %d members in %d lines, want the %d users in order in 3 lines", len(got), lines, len(ids))
	}

	createSegment(t, "STREAM_EMPTY")
	r := call(t, http.MethodGet, "/segments/stream-members?slug=STREAM_EMPTY", "")
	if r.status != http.StatusOK || string(r.body) != `{"result":{"members":[]}}`+"\n" {
		t.Fatalf("empty segment: %s", r)
	}

	wantOneError(t, call(t, http.MethodGet, "/segments/stream-members?slug=NO_SUCH", ""),
		http.StatusNotFound, "not_found", `slug: segment "NO_SUCH" does not exist`)
	wantOneError(t, call(t, http.MethodGet, "/segments/stream-members?slug=", ""),
		http.StatusBadRequest, "validation_error", "slug: *")
	wantOneError(t, call(t, http.MethodGet, "/segments/stream-members?slug=A&slug=B", ""),
		http.StatusBadRequest, "parse_error", "*")
	wantError(t, call(t, http.MethodPost, "/segments/stream-members?slug=STREAMED", ""),
		http.StatusMethodNotAllowed, "method_not_allowed")
}
