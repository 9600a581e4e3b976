package load

import (
	"math/rand/v2"
	"regexp"
	"testing"

	"segments/tests/drill/internal/model"
)

func TestIDs(t *testing.T) {
	if got := UserID("0a1b2c3d", 7); got != "0a1b2c3d-0000-4000-8000-000000000007" {
		t.Fatalf("UserID %q", got)
	}
	if got := UserID("0a1b2c3d", ChurnBase); got != "0a1b2c3d-0000-4000-8000-010000000000" {
		t.Fatalf("churn UserID %q", got)
	}
	uuid := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-8[0-9a-f]{3}-[0-9a-f]{12}$`)
	if !uuid.MatchString(UserID("ffffffff", ChurnBase+99)) {
		t.Fatal("not a version-4 style UUID")
	}
	if s := Slugs("0a1b2c3d"); len(s) != 4 || s[0] != "DRILL_0a1b2c3d_A" || s[3] != "DRILL_0a1b2c3d_D" {
		t.Fatalf("Slugs %v", s)
	}
}

// Every op the worker picks is valid whatever the timing: an add only of a
// segment the user surely lacks. Simulated acknowledgements 300 ms apart.
func TestNextOpOnlyAddsWhatTheUserSurelyLacks(t *testing.T) {
	r := &runner{cfg: Config{TTLShare: 0.3}, slugs: Slugs("0a1b2c3d")}
	w := &worker{r: r, user: UserID("0a1b2c3d", 1), state: model.NewState(), rng: rand.New(rand.NewPCG(1, 2))}
	held := map[string]int64{} // slug -> surely-ended-after ms (-1: for good)
	counts := map[string]int{}
	now := int64(1_000_000)
	for i := 0; i < 2000; i++ {
		now += 300
		slug, op, ttl := w.nextOp(now)
		counts[op.String()]++
		if ttl > 0 {
			counts["ttl"]++
			if ttl < 2 || ttl > 6 {
				t.Fatalf("ttl %d outside 2..6", ttl)
			}
		}
		if op == model.Add {
			if until, ok := held[slug]; ok && (until < 0 || now <= until) {
				t.Fatalf("step %d: add of %s while it may be held", i, slug)
			}
			held[slug] = -1
			if ttl > 0 {
				held[slug] = now + int64(ttl)*1000 + model.ExpiryMarginMs
			}
		} else {
			delete(held, slug)
		}
		w.state.Apply(model.Ack{UserID: w.user, Slug: slug, Op: op, TTLSec: ttl, AckMs: now})
	}
	// A mix: both ops common, TTL adds about 30% of adds.
	if counts["add"] < 500 || counts["remove"] < 500 {
		t.Fatalf("ops %v", counts)
	}
	if share := float64(counts["ttl"]) / float64(counts["add"]); share < 0.2 || share > 0.4 {
		t.Fatalf("TTL share %.2f of adds (%v)", share, counts)
	}
}
