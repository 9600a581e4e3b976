package userid

import (
	"math/rand"
	"regexp"
	"strconv"
	"testing"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"0b7f9f5e-1234-4abc-8def-0123456789ab", "0b7f9f5e-1234-4abc-8def-0123456789ab"},
		{"0B7F9F5E-1234-4ABC-8DEF-0123456789AB", "0b7f9f5e-1234-4abc-8def-0123456789ab"},
		{"00000000-0000-0000-0000-000000000000", "00000000-0000-0000-0000-000000000000"},
		{"00000000-0000-0000-0000-000000001000", "00000000-0000-0000-0000-000000001000"},
		{"0", "0"},
		{"1000", "1000"},
		{"1002", "1002"},
		{"9223372036854775807", "9223372036854775807"},
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
		"01", "00", "+1", "-1", "1.0", "1e3", " 1", "1 ", "0x10", "9223372036854775808", "99999999999999999999",
	} {
		if got, ok := Parse(bad); ok {
			t.Errorf("Parse(%q) = %q, true; want false", bad, got)
		}
	}
}

var v4 = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestRandomIsSeededAndMixesBothKinds(t *testing.T) {
	a, b := rand.New(rand.NewSource(42)), rand.New(rand.NewSource(42))
	seen := map[string]bool{}
	uuids, integers, short := 0, 0, 0
	for range 1000 {
		x, y := Random(a), Random(b)
		if x != y {
			t.Fatalf("same seed, different ids: %s %s", x, y)
		}
		if canonical, ok := Parse(x); !ok || canonical != x {
			t.Fatalf("not a canonical id: %s", x)
		}
		switch {
		case v4.MatchString(x):
			uuids++
		default:
			n, err := strconv.ParseInt(x, 10, 64)
			if err != nil || n < 0 {
				t.Fatalf("neither a v4 UUID nor an integer id: %s", x)
			}
			integers++
			if len(x) <= 6 {
				short++
			}
		}
		if seen[x] && !isDecimal(x) {
			t.Fatalf("repeated UUID %s", x)
		}
		seen[x] = true
	}
	// About 750 and 250; short integers such as 1000 come up too.
	if uuids < 650 || integers < 150 || short == 0 {
		t.Fatalf("%d UUIDs, %d integers (%d of at most 6 digits) in 1000 ids", uuids, integers, short)
	}
	if Random(rand.New(rand.NewSource(1))) == Random(rand.New(rand.NewSource(2))) {
		t.Fatal("different seeds gave the same id")
	}
}

func TestRandomUUIDIsV4(t *testing.T) {
	rng := rand.New(rand.NewSource(7))
	for range 100 {
		if x := RandomUUID(rng); !v4.MatchString(x) {
			t.Fatalf("not a canonical v4 UUID: %s", x)
		}
	}
}

func TestNew(t *testing.T) {
	x, y := New(), New()
	if !v4.MatchString(x) || !v4.MatchString(y) || x == y {
		t.Fatalf("New() = %s, %s", x, y)
	}
}
