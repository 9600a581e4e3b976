package logging

import (
	"bytes"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
)

func TestTextIsTodaysLog(t *testing.T) {
	var out bytes.Buffer
	l, err := New(&out, "")
	if err != nil {
		t.Fatal(err)
	}
	l.Log.Printf("serving gRPC on %s", "127.0.0.1:1")
	l.Errorf("cannot start: %v", "boom")
	if got, want := out.String(), "usermock: serving gRPC on 127.0.0.1:1\nusermock: cannot start: boom\n"; got != want {
		t.Fatalf("text log %q, want %q", got, want)
	}
}

func TestJSONLines(t *testing.T) {
	var out bytes.Buffer
	l, err := New(&out, "json")
	if err != nil {
		t.Fatal(err)
	}
	l.Log.Printf("serving gRPC on %s", "127.0.0.1:1")
	l.Log.Printf("warning: Kafka %v: %v", []string{"b:1"}, "down")
	l.Errorf("cannot start: %q", "x\ny")
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("want 3 lines: %q", out.String())
	}
	want := []struct{ level, message string }{
		{"info", "serving gRPC on 127.0.0.1:1"},
		{"warn", "Kafka [b:1]: down"},
		{"error", `cannot start: "x\ny"`},
	}
	timeRE := regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$`)
	for i, line := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("line %d is not JSON: %q", i, line)
		}
		if m["level"] != want[i].level || m["message"] != want[i].message || !timeRE.MatchString(m["time"].(string)) || len(m) != 3 {
			t.Errorf("line %d = %v, want %+v", i, m, want[i])
		}
	}
}

func TestUnknownFormat(t *testing.T) {
	if _, err := New(&bytes.Buffer{}, "yaml"); err == nil {
		t.Fatal("yaml accepted")
	}
}
