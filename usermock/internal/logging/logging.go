// Package logging makes the mock's logger for --log-format. "text" (the
// default) is the log it always wrote: "usermock: <message>" lines. "json"
// is one JSON object per line, {"time":"2026-12-05T10:00:00.123Z",
// "level":"info","message":"serving gRPC on 127.0.0.1:50061"}, the shape of
// the server's and the gateway's JSON lines; a message starting "warning: "
// is level warn without the prefix. The rest of the mock logs through the
// *log.Logger either way.
package logging

import (
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"strings"
)

// TimeLayout is the time of a JSON line: RFC 3339 in UTC with milliseconds.
const TimeLayout = "2006-01-02T15:04:05.000Z07:00"

// Prefix starts every text line.
const Prefix = "usermock: "

// Logger logs ordinary lines through Log (a *log.Logger, as the mock's
// packages take) and failures through Errorf.
type Logger struct {
	Log *log.Logger
	// errorf logs at level error.
	errorf func(format string, args ...any)
}

// Errorf logs a failure: a text line like any other, level error in JSON.
func (l *Logger) Errorf(format string, args ...any) { l.errorf(format, args...) }

// New returns the logger writing to w in format ("" is "text").
func New(w io.Writer, format string) (*Logger, error) {
	switch format {
	case "", "text":
		l := log.New(w, Prefix, 0)
		return &Logger{Log: l, errorf: l.Printf}, nil
	case "json":
		h := levelFromPrefix{slog.NewJSONHandler(w, &slog.HandlerOptions{ReplaceAttr: jsonAttr})}
		logger := slog.New(h)
		return &Logger{
			Log:    slog.NewLogLogger(h, slog.LevelInfo),
			errorf: func(format string, args ...any) { logger.Error(fmt.Sprintf(format, args...)) },
		}, nil
	}
	return nil, fmt.Errorf("log format %q: want text or json", format)
}

// levelFromPrefix turns an info line "warning: x" into a warn line "x".
type levelFromPrefix struct{ slog.Handler }

func (h levelFromPrefix) Handle(ctx context.Context, r slog.Record) error {
	if rest, ok := strings.CutPrefix(r.Message, "warning: "); ok && r.Level == slog.LevelInfo {
		warn := slog.NewRecord(r.Time, slog.LevelWarn, rest, r.PC)
		r.Attrs(func(a slog.Attr) bool { warn.AddAttrs(a); return true })
		r = warn
	}
	return h.Handler.Handle(ctx, r)
}

func (h levelFromPrefix) WithAttrs(attrs []slog.Attr) slog.Handler {
	return levelFromPrefix{h.Handler.WithAttrs(attrs)}
}

func (h levelFromPrefix) WithGroup(name string) slog.Handler {
	return levelFromPrefix{h.Handler.WithGroup(name)}
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
