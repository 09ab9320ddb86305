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

// Write logs p as records. A library writes one record per call; its
// first line carries the level tag, and any untagged lines after it (hclog
// prints multi-line values that way) belong to the same record.
func (w *Writer) Write(p []byte) (int, error) {
	var (
		level   slog.Level
		msg     []string
		pending bool
	)
	flush := func() {
		if pending && level >= w.floor {
			w.logger.Log(context.Background(), level, strings.Join(msg, "\n"))
		}
		pending, msg = false, nil
	}
	for line := range bytes.Lines(p) {
		s := strings.TrimSpace(string(line))
		if s == "" {
			continue
		}
		lv, rest, tagged := parseTag(s)
		if pending && !tagged {
			msg = append(msg, s)
			continue
		}
		flush()
		level, msg, pending = lv, []string{rest}, true
	}
	flush()
	return len(p), nil
}

// parseTag finds a "[LEVEL]" tag at the start of s, or after a timestamp
// (digits and "/:.-T " only), and returns the level and the text after it.
// Untagged lines are INFO.
func parseTag(s string) (slog.Level, string, bool) {
	i := strings.IndexByte(s, '[')
	if i < 0 || strings.TrimLeft(s[:i], "0123456789/:.-T ") != "" {
		return slog.LevelInfo, s, false
	}
	for _, t := range tags {
		if strings.HasPrefix(s[i:], t.tag) {
			return t.level, strings.TrimSpace(s[i+len(t.tag):]), true
		}
	}
	return slog.LevelInfo, s, false
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
