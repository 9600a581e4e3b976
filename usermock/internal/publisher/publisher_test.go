package publisher

import (
	"slices"
	"testing"
)

func TestValue(t *testing.T) {
	const id = "0b7f9f5e-1234-4abc-8def-0123456789ab"
	if got, want := string(Value(id)), `{"userID":"0b7f9f5e-1234-4abc-8def-0123456789ab"}`; got != want {
		t.Fatalf("Value = %s, want %s", got, want)
	}
}

func TestParseBrokers(t *testing.T) {
	if got := ParseBrokers(" a:1,b:2 ,, c:3,"); !slices.Equal(got, []string{"a:1", "b:2", "c:3"}) {
		t.Fatalf("ParseBrokers = %q", got)
	}
	if got := ParseBrokers(" , "); len(got) != 0 {
		t.Fatalf("ParseBrokers of blanks = %q", got)
	}
}
