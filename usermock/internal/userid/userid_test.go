package userid

import (
	"math/rand"
	"regexp"
	"testing"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"0b7f9f5e-1234-4abc-8def-0123456789ab", "0b7f9f5e-1234-4abc-8def-0123456789ab"},
		{"0B7F9F5E-1234-4ABC-8DEF-0123456789AB", "0b7f9f5e-1234-4abc-8def-0123456789ab"},
		{"00000000-0000-0000-0000-000000000000", "00000000-0000-0000-0000-000000000000"},
	} {
		got, ok := Parse(tc.in)
		if !ok || got != tc.want {
			t.Errorf("Parse(%q) = %q, %v; want %q", tc.in, got, ok, tc.want)
		}
	}
	for _, bad := range []string{
		"", "x", "0b7f9f5e12344abc8def0123456789ab", "{0b7f9f5e-1234-4abc-8def-0123456789ab}",
		"0b7f9f5e-1234-4abc-8def-0123456789a", "0b7f9f5e-1234-4abc-8def-0123456789abc",
		"0b7f9f5e_1234-4abc-8def-0123456789ab", "0b7f9f5g-1234-4abc-8def-0123456789ab",
		" b7f9f5e-1234-4abc-8def-0123456789ab",
	} {
		if got, ok := Parse(bad); ok {
			t.Errorf("Parse(%q) = %q, true; want false", bad, got)
		}
	}
}

var v4 = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestRandomIsSeededV4(t *testing.T) {
	a, b := rand.New(rand.NewSource(42)), rand.New(rand.NewSource(42))
	seen := map[string]bool{}
	for range 1000 {
		x, y := Random(a), Random(b)
		if x != y {
			t.Fatalf("same seed, different ids: %s %s", x, y)
		}
		if !v4.MatchString(x) {
			t.Fatalf("not a canonical v4 UUID: %s", x)
		}
		if seen[x] {
			t.Fatalf("repeated id %s", x)
		}
		seen[x] = true
	}
	if Random(rand.New(rand.NewSource(1))) == Random(rand.New(rand.NewSource(2))) {
		t.Fatal("different seeds gave the same id")
	}
}

func TestNew(t *testing.T) {
	x, y := New(), New()
	if !v4.MatchString(x) || !v4.MatchString(y) || x == y {
		t.Fatalf("New() = %s, %s", x, y)
	}
}
