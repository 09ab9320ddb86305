// Package obs glues third-party logging into log/slog: hashicorp/raft
// (hclog) and memberlist (the standard log package) both write lines with a
// "[LEVEL]" tag, which Writer turns into slog records at the right level.
package obs

import (
	"bytes"
	"context"
	"io"
	"log"
	"log/slog"
	"strings"

	"github.com/hashicorp/go-hclog"
)

// Writer is an io.Writer that turns "[WARN] memberlist: ..." style lines into
// records on an slog.Logger. It is safe for concurrent use if the logger is.
type Writer struct {
	logger *slog.Logger
	// floor drops records below this level (libraries are chatty at DEBUG).
	floor slog.Level
}

// NewWriter returns a Writer logging to l; lines below floor are dropped.
func NewWriter(l *slog.Logger, floor slog.Level) *Writer {
	return &Writer{logger: l, floor: floor}
}

var tags = []struct {
	tag   string
	level slog.Level
}{
	{"[TRACE]", slog.LevelDebug - 4},
	{"[DEBUG]", slog.LevelDebug},
	{"[INFO]", slog.LevelInfo},
	{"[WARN]", slog.LevelWarn},
	{"[ERR]", slog.LevelError},
	{"[ERROR]", slog.LevelError},
}

// Write logs each line of p.
func (w *Writer) Write(p []byte) (int, error) {
	for line := range bytes.Lines(p) {
		w.line(strings.TrimSpace(string(line)))
	}
	return len(p), nil
}

func (w *Writer) line(s string) {
	if s == "" {
		return
	}
	level := slog.LevelInfo
	if i := strings.Index(s, "["); i >= 0 {
		rest := s[i:]
		for _, t := range tags {
			if strings.HasPrefix(rest, t.tag) {
				level = t.level
				s = strings.TrimSpace(rest[len(t.tag):])
				break
			}
		}
	}
	if level < w.floor {
		return
	}
	w.logger.Log(context.Background(), level, s)
}

// StdLogger returns a *log.Logger (memberlist's logger type) writing to l.
func StdLogger(l *slog.Logger, floor slog.Level) *log.Logger {
	return log.New(NewWriter(l, floor), "", 0)
}

// HCLogger returns an hclog.Logger (raft's logger type) writing to l.
func HCLogger(name string, l *slog.Logger, floor slog.Level) hclog.Logger {
	hl := hclog.LevelFromString("info")
	if floor <= slog.LevelDebug {
		hl = hclog.Debug
	}
	return hclog.New(&hclog.LoggerOptions{
		Name:            name,
		Level:           hl,
		Output:          NewWriter(l, floor),
		DisableTime:     true,
		IncludeLocation: false,
	})
}

var _ io.Writer = (*Writer)(nil)

// Or returns l, or a logger that discards when l is nil.
func Or(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l
}
