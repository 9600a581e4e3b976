// Package logging makes the gateway's logger for --log-format: "text"
// (slog's key=value lines, the default) or "json": one JSON object per line,
// {"time":"2026-12-05T10:00:00.123Z","level":"info","message":"http",...}
// with the line's fields as further keys, the same shape as the server's
// JSON lines (server/src/common/log.h).
package logging

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
)

// TimeLayout is the time of a JSON line: RFC 3339 in UTC with milliseconds.
const TimeLayout = "2006-01-02T15:04:05.000Z07:00"

// New returns a logger writing to w in format ("" is "text").
func New(w io.Writer, format string) (*slog.Logger, error) {
	h, err := NewHandler(w, format, nil)
	if err != nil {
		return nil, err
	}
	return slog.New(h), nil
}

// NewHandler is New's handler; opts may be nil (its ReplaceAttr is
// replaced for json).
func NewHandler(w io.Writer, format string, opts *slog.HandlerOptions) (slog.Handler, error) {
	if opts == nil {
		opts = &slog.HandlerOptions{}
	}
	switch format {
	case "", "text":
		return slog.NewTextHandler(w, opts), nil
	case "json":
		o := *opts
		o.ReplaceAttr = jsonAttr
		return slog.NewJSONHandler(w, &o), nil
	}
	return nil, fmt.Errorf("log format %q: want text or json", format)
}

// jsonAttr writes the time as TimeLayout in UTC, the level in lower case and
// the message under "message".
func jsonAttr(groups []string, a slog.Attr) slog.Attr {
	if len(groups) > 0 {
		return a
	}
	switch a.Key {
	case slog.TimeKey:
		if a.Value.Kind() == slog.KindTime {
			return slog.String(slog.TimeKey, a.Value.Time().UTC().Format(TimeLayout))
		}
	case slog.LevelKey:
		return slog.String(slog.LevelKey, strings.ToLower(a.Value.String()))
	case slog.MessageKey:
		return slog.Attr{Key: "message", Value: a.Value}
	}
	return a
}
