package logging

import (
	"bytes"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestJSONIsOneObjectPerLineWithTimeLevelMessageAndFields(t *testing.T) {
	var out bytes.Buffer
	logger, err := New(&out, "json")
	if err != nil {
		t.Fatal(err)
	}
	logger.Info("gateway serving", "addr", "127.0.0.1:8080", "n", 3)
	logger.Warn("second line\nwith a newline", "request_id", "abc")
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("want 2 lines, got %d: %q", len(lines), out.String())
	}
	var first, second map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &first); err != nil {
		t.Fatalf("line 1 is not JSON: %q", lines[0])
	}
	if err := json.Unmarshal([]byte(lines[1]), &second); err != nil {
		t.Fatalf("line 2 is not JSON: %q", lines[1])
	}
	if first["level"] != "info" || first["message"] != "gateway serving" || first["addr"] != "127.0.0.1:8080" || first["n"] != float64(3) {
		t.Errorf("line 1 = %v", first)
	}
	if _, ok := first["msg"]; ok {
		t.Errorf("line 1 has msg besides message: %v", first)
	}
	if second["level"] != "warn" || second["message"] != "second line\nwith a newline" || second["request_id"] != "abc" {
		t.Errorf("line 2 = %v", second)
	}
	ts, _ := first["time"].(string)
	if !regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$`).MatchString(ts) {
		t.Fatalf("time %q is not RFC 3339 UTC with milliseconds", ts)
	}
	parsed, err := time.Parse(time.RFC3339, ts)
	if err != nil || time.Since(parsed).Abs() > time.Minute {
		t.Errorf("time %q: %v (now %v)", ts, err, time.Now().UTC())
	}
}

func TestTextIsTheDefault(t *testing.T) {
	for _, format := range []string{"", "text"} {
		var out bytes.Buffer
		logger, err := New(&out, format)
		if err != nil {
			t.Fatal(err)
		}
		logger.Info("gateway serving", "addr", "x")
		if line := out.String(); !strings.Contains(line, `level=INFO msg="gateway serving" addr=x`) || strings.HasPrefix(line, "{") {
			t.Errorf("format %q wrote %q", format, line)
		}
	}
}

func TestUnknownFormatIsAnError(t *testing.T) {
	if _, err := New(&bytes.Buffer{}, "xml"); err == nil {
		t.Fatal("format xml accepted")
	}
}
