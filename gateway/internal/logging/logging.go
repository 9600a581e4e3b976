// Package logging makes the gateway's logger for --log-format: "text"
// (slog's key=value lines, the default) or "json" (one JSON object per line
// with time, level, msg and the line's fields as further keys).
package logging

import (
	"fmt"
	"io"
	"log/slog"
)

// Formats are the values of --log-format.
var Formats = []string{"text", "json"}

// TimeLayout is the time of a JSON line: RFC 3339 in UTC with milliseconds.
const TimeLayout = "2006-01-02T15:04:05.000Z07:00"

// New returns a logger writing to w in format ("" is "text").
func New(w io.Writer, format string) (*slog.Logger, error) {
	switch format {
	case "", "text":
		return slog.New(slog.NewTextHandler(w, nil)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{ReplaceAttr: utcMillis})), nil
	}
	return nil, fmt.Errorf("log format %q: want text or json", format)
}

// utcMillis writes the record's time as TimeLayout in UTC.
func utcMillis(groups []string, a slog.Attr) slog.Attr {
	if len(groups) == 0 && a.Key == slog.TimeKey && a.Value.Kind() == slog.KindTime {
		return slog.String(slog.TimeKey, a.Value.Time().UTC().Format(TimeLayout))
	}
	return a
}
