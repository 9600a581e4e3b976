package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"segments/gateway"
)

// How fresh get-for-user is with the membership read model
// (docs/read-model.md), through the REST gateway: two server instances on
// the one database, each behind a gateway of its own. A write's 204 is
// followed by a read through the same gateway that sees it, always; the
// other instance sees it within a second.

const (
	// SERVING while the server answers GetUserSegments from memory.
	readModelHealth = "segmentation.v1.MembershipReadModel"
	// The contract's bound on how long another instance may show the state
	// before a write (p100).
	crossInstanceBound = time.Second
	// The servers' period of unprompted looks; the median across instances
	// must stay below announcedBound, far from half of it.
	readModelPollPeriod = 800 * time.Millisecond
	announcedBound      = 100 * time.Millisecond
	// How long a poll goes on before the round counts as never seen.
	pollLimit = 5 * time.Second
	// Requests in flight in a sweep over many users.
	sweepWorkers = 8
)

// startReadModelStack is a server with the read model on, behind a
// gateway that takes bulk bodies of any allowed size, once the model
// serves reads from memory. The model looks for changes nobody announced
// only every readModelPollPeriod, so that what another instance shows
// sooner came by announcement.
func startReadModelStack(t *testing.T) *stack {
	t.Helper()
	s := startStackWithBodyLimit(t, gateway.DefaultMaxBodyBytes, "--read-model=on",
		"--read-model-poll-period="+readModelPollPeriod.String())
	if err := s.server.waitHealth(readModelHealth, 20*time.Second); err != nil {
		t.Fatalf("the read model of %s: %v\n%s", s.server.addr, err, tail(s.server.log.String(), 4000))
	}
	return s
}

// answerFor is get-for-user's body for a user in exactly the segments held.
func answerFor(held map[string]bool) string {
	slugs := []string{}
	for slug, in := range held {
		if in {
			slugs = append(slugs, slug)
		}
	}
	slices.Sort(slugs)
	raw, err := json.Marshal(map[string][]string{"segments": slugs})
	if err != nil {
		panic(err)
	}
	return string(raw)
}

// randomChange is a change-for-user body that changes at least one of the
// user's memberships in slugs: adds (permanent, for some seconds, or until
// a deadline) of segments the user is not in, removals of segments the
// user is in, now and then a removal of one the user is not in (a no-op).
// held is updated to what the change leaves.
func randomChange(rng *rand.Rand, user string, slugs []string, held map[string]bool) string {
	for {
		change := originalChange{UserID: user}
		changed := false
		for _, slug := range slugs {
			switch {
			case held[slug] && rng.IntN(2) == 0:
				change.SegmentsToRemove = append(change.SegmentsToRemove, originalRemoveEntry{SegmentSlug: slug})
				held[slug], changed = false, true
			case !held[slug] && rng.IntN(2) == 0:
				add := originalAddEntry{SegmentSlug: slug}
				switch rng.IntN(3) {
				case 1:
					add.SecondsToBeInSegment = 3600 + rng.IntN(3600)
				case 2:
					add.DeadlineForStayingInSegment = time.Now().Add(2 * time.Hour).UTC().Truncate(time.Second)
				}
				change.SegmentsToAdd = append(change.SegmentsToAdd, add)
				held[slug], changed = true, true
			case !held[slug] && rng.IntN(8) == 0:
				change.SegmentsToRemove = append(change.SegmentsToRemove, originalRemoveEntry{SegmentSlug: slug})
			}
		}
		if !changed {
			continue // a no-op: draw again
		}
		raw, err := json.Marshal(change)
		if err != nil {
			panic(err)
		}
		return string(raw)
	}
}

// answerAt is get-for-user's body for user through the gateway at base.
func answerAt(client *http.Client, base, user string) (string, error) {
	resp, err := client.Get(base + "/segments/get-for-user?userID=" + user)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
		return "", fmt.Errorf("get-for-user %s: %d %q", user, resp.StatusCode, body)
	}
	return string(body), nil
}

// awaitAnswer polls get-for-user at base until it answers want, or
// pollLimit after since; it returns the time from since to the first
// answer that matched, and the last answer.
func awaitAnswer(base, user, want string, since time.Time) (time.Duration, string, error) {
	last := ""
	for {
		got, err := answerAt(httpClient, base, user)
		if err != nil {
			return 0, last, err
		}
		if got == want {
			return time.Since(since), got, nil
		}
		last = got
		if time.Since(since) > pollLimit {
			return 0, last, fmt.Errorf("get-for-user %s still answers %s, want %s, %v after the write", user, last, want,
				pollLimit)
		}
		time.Sleep(time.Millisecond)
	}
}

// latencies summarises how long other instances took to show writes.
type latencies []time.Duration

func (l latencies) quantile(q float64) time.Duration {
	s := slices.Clone(l)
	slices.Sort(s)
	return s[int(q*float64(len(s)-1))]
}

func (l latencies) String() string {
	return fmt.Sprintf("%d rounds: median %v, p90 %v, max %v", len(l), l.quantile(0.5).Round(10*time.Microsecond),
		l.quantile(0.9).Round(10*time.Microsecond), l.quantile(1).Round(10*time.Microsecond))
}

// sweep checks that every user answers want through the gateway at base by
// the deadline: a user that does not answer want yet is asked again until
// the deadline; once the deadline has passed, one wrong answer is a miss.
// It returns the misses (a few of them described).
func sweep(base string, users []string, want string, deadline time.Time) (int, []string) {
	var (
		mu     sync.Mutex
		misses int
		notes  []string
		wg     sync.WaitGroup
	)
	// Connections kept for every worker (http.DefaultTransport keeps two).
	client := &http.Client{Timeout: 10 * time.Second, Transport: withAdminToken{&http.Transport{MaxIdleConnsPerHost: sweepWorkers}}}
	defer client.CloseIdleConnections()
	work := make(chan string)
	for range sweepWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for user := range work {
				got, err := answerAt(client, base, user)
				for err == nil && got != want && time.Now().Before(deadline) {
					time.Sleep(time.Millisecond)
					got, err = answerAt(client, base, user)
				}
				if err != nil || got != want {
					mu.Lock()
					misses++
					if len(notes) < 3 {
						notes = append(notes, fmt.Sprintf("%s answered %s (%v)", user, got, err))
					}
					mu.Unlock()
				}
			}
		}()
	}
	for _, user := range users {
		work <- user
	}
	close(work)
	wg.Wait()
	return misses, notes
}

// changeAt sends a change-for-user body through the gateway at base and
// wants 204.
func changeAt(t *testing.T, base, body string) {
	t.Helper()
	wantNoContent(t, callAt(t, base, http.MethodPost, "/segments/change-for-user", body))
}

func TestReadModelFreshnessThroughGateways(t *testing.T) {
	reset(t) // before the servers start: truncating makes a read model load everything again
	a, b := startReadModelStack(t), startReadModelStack(t)
	gateways := []string{a.url, b.url}
	seed := uint64(time.Now().UnixNano())
	t.Logf("random seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 14))

	slugs := []string{"FRESH_A", "FRESH_B", "FRESH_C", "FRESH_D"}
	for _, slug := range slugs {
		wantNoContent(t, callAt(t, a.url, http.MethodPost, "/segments/create", `{"slug":`+jsonString(slug)+`}`))
	}

	t.Run("read your writes", func(t *testing.T) {
		const rounds = 200
		users := insertUsers(t, 2)
		for i, base := range gateways {
			held := map[string]bool{}
			misses := 0
			for round := range rounds {
				body := randomChange(rng, users[i], slugs, held)
				changeAt(t, base, body)
				got, err := answerAt(httpClient, base, users[i])
				if err != nil {
					t.Fatal(err)
				}
				if want := answerFor(held); got != want {
					misses++
					t.Errorf("gateway %d, round %d: after %s the same gateway answered %s, want %s", i, round, body, got, want)
				}
			}
			if misses != 0 {
				t.Errorf("gateway %d: %d of %d reads after a write missed it", i, misses, rounds)
			}
		}
	})

	t.Run("across instances", func(t *testing.T) {
		const rounds = 200
		users := insertUsers(t, 2)
		held := [2]map[string]bool{{}, {}}
		var took latencies
		for round := range rounds {
			writer := round % 2 // A, B, A, ...
			reader := 1 - writer
			user := users[round/2%2] // each user written through both
			h := held[round/2%2]
			body := randomChange(rng, user, slugs, h)
			changeAt(t, gateways[writer], body)
			written := time.Now()
			d, _, err := awaitAnswer(gateways[reader], user, answerFor(h), written)
			if err != nil {
				t.Fatalf("round %d, written through gateway %d: %v", round, writer, err)
			}
			took = append(took, d)
		}
		t.Logf("written through one gateway, seen through the other: %v", took)
		if worst := took.quantile(1); worst > crossInstanceBound {
			t.Errorf("the slowest round took %v, want at most %v (%v)", worst, crossInstanceBound, took)
		}
		if median := took.quantile(0.5); median > announcedBound {
			t.Errorf("the median round took %v, want at most %v: are changes announced to other instances? (%v)",
				median, announcedBound, took)
		}
	})

	// 10,000 users: one change note per user; 10,001: one for the segment
	// (db/schema.sql, migration 6). Added through A, seen through B; then
	// each segment deleted through B, seen through A.
	sizes := []int{10000, 10001}
	bulk := map[int][]string{}
	t.Run("bulk add", func(t *testing.T) {
		for _, n := range sizes {
			slug := fmt.Sprintf("FRESH_BULK_%d", n)
			wantNoContent(t, callAt(t, a.url, http.MethodPost, "/segments/create", `{"slug":`+jsonString(slug)+`}`))
			users := insertUsers(t, n)
			rng.Shuffle(len(users), func(i, j int) { users[i], users[j] = users[j], users[i] })
			bulk[n] = users
			want := answerFor(map[string]bool{slug: true})
			start := time.Now()
			wantNoContent(t, callAt(t, a.url, http.MethodPost, "/segments/bulk-add", bulkBody(slug, users, "")))
			written := time.Now()
			t.Logf("bulk-add of %d users took %v", n, written.Sub(start).Round(time.Millisecond))
			seen, err := awaitAll(b.url, []string{users[0], users[n/2], users[n-1]}, want, written)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("bulk-add of %d users through A seen through B after %v", n, seen.Round(10*time.Microsecond))
			if seen > crossInstanceBound {
				t.Errorf("bulk-add of %d users seen through B after %v, want at most %v", n, seen, crossInstanceBound)
			}
			if misses, notes := sweep(b.url, users, want, written.Add(crossInstanceBound)); misses != 0 {
				t.Errorf("bulk-add of %d users: %d not seen through B within %v, e.g. %s", n, misses, crossInstanceBound,
					strings.Join(notes, "; "))
			}
		}
	})

	t.Run("segment deletion", func(t *testing.T) {
		for _, n := range sizes {
			users := bulk[n]
			if users == nil {
				t.Skip("the bulk add failed")
			}
			slug := fmt.Sprintf("FRESH_BULK_%d", n)
			wantNoContent(t, callAt(t, b.url, http.MethodDelete, "/segments/remove", `{"slug":`+jsonString(slug)+`}`))
			written := time.Now()
			want := answerFor(nil)
			seen, err := awaitAll(a.url, []string{users[0], users[n/2], users[n-1]}, want, written)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("deletion of a segment of %d members through B seen through A after %v", n,
				seen.Round(10*time.Microsecond))
			if seen > crossInstanceBound {
				t.Errorf("deletion of a segment of %d members seen through A after %v, want at most %v", n, seen,
					crossInstanceBound)
			}
			if misses, notes := sweep(a.url, users, want, written.Add(crossInstanceBound)); misses != 0 {
				t.Errorf("deletion of a segment of %d members: %d users still in it through A after %v, e.g. %s", n,
					misses, crossInstanceBound, strings.Join(notes, "; "))
			}
		}
	})

	// The answers above came from memory: neither model stopped serving.
	for i, s := range []*stack{a, b} {
		if err := s.server.waitHealth(readModelHealth, 0); err != nil {
			t.Errorf("server %d at the end: %v", i, err)
		}
		if log := s.server.log.String(); strings.Contains(log, "stopped serving") || strings.Contains(log, "lost the database") {
			t.Errorf("server %d's read model did not serve all along:\n%s", i, tail(log, 4000))
		}
	}
}

// awaitAll polls get-for-user at base for each of users until it answers
// want; it returns the time from since until the last of them did.
func awaitAll(base string, users []string, want string, since time.Time) (time.Duration, error) {
	var worst time.Duration
	for _, user := range users {
		d, _, err := awaitAnswer(base, user, want, since)
		if err != nil {
			return 0, err
		}
		worst = max(worst, d)
	}
	return worst, nil
}
