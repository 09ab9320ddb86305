package obs

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"strings"
	"sync"
	"testing"
)

// captured is one record as the handler saw it.
type captured struct {
	level slog.Level
	msg   string
}

// capture is a slog.Handler that keeps every record it is given. It
// enables all levels so that any filtering seen in a test is Writer's.
type capture struct {
	mu      sync.Mutex
	records []captured
}

func (*capture) Enabled(context.Context, slog.Level) bool { return true }

func (c *capture) Handle(_ context.Context, r slog.Record) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.records = append(c.records, captured{level: r.Level, msg: r.Message})
	return nil
}

func (c *capture) WithAttrs([]slog.Attr) slog.Handler { return c }
func (c *capture) WithGroup(string) slog.Handler      { return c }

func (c *capture) all() []captured {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]captured(nil), c.records...)
}

func newCapture() (*capture, *slog.Logger) {
	c := &capture{}
	return c, slog.New(c)
}

const levelTrace = slog.LevelDebug - 4

func TestWriter_MapsTagToLevelAndStripsTag(t *testing.T) {
	tests := []struct {
		name  string
		line  string
		level slog.Level
		msg   string
	}{
		{"trace", "[TRACE] raft: x", levelTrace, "raft: x"},
		{"debug", "[DEBUG] memberlist: probe", slog.LevelDebug, "memberlist: probe"},
		{"info", "[INFO] memberlist: joined", slog.LevelInfo, "memberlist: joined"},
		{"warn", "[WARN] memberlist: x", slog.LevelWarn, "memberlist: x"},
		{"err", "[ERR] memberlist: failed", slog.LevelError, "memberlist: failed"},
		{"error", "[ERROR] raft: failed", slog.LevelError, "raft: failed"},
		{"timestamp before tag", "2026/01/02 15:04:05 [WARN] memberlist: x", slog.LevelWarn, "memberlist: x"},
		{"hclog padding after tag", "[WARN]  raft: heartbeat: peer=a", slog.LevelWarn, "raft: heartbeat: peer=a"},
		{"trailing newline", "[ERR] memberlist: x\n", slog.LevelError, "memberlist: x"},
		{"untagged is info", "memberlist: hello", slog.LevelInfo, "memberlist: hello"},
		{"untagged with timestamp keeps it", "2026/01/02 15:04:05 memberlist: hello", slog.LevelInfo, "2026/01/02 15:04:05 memberlist: hello"},
		{"unknown bracket is info and kept", "memberlist: got [1 2]", slog.LevelInfo, "memberlist: got [1 2]"},
		{"lowercase tag is not a tag", "[warn] x", slog.LevelInfo, "[warn] x"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, l := newCapture()
			w := NewWriter(l, levelTrace)
			n, err := w.Write([]byte(tc.line))
			if err != nil || n != len(tc.line) {
				t.Fatalf("Write = %d, %v; want %d, nil", n, err, len(tc.line))
			}
			got := c.all()
			if len(got) != 1 {
				t.Fatalf("got %d records %v, want 1", len(got), got)
			}
			if got[0].level != tc.level || got[0].msg != tc.msg {
				t.Fatalf("record = {%v %q}, want {%v %q}", got[0].level, got[0].msg, tc.level, tc.msg)
			}
		})
	}
}

func TestWriter_DropsLinesBelowFloor(t *testing.T) {
	lines := []struct {
		line  string
		level slog.Level
	}{
		{"[TRACE] t", levelTrace},
		{"[DEBUG] d", slog.LevelDebug},
		{"[INFO] i", slog.LevelInfo},
		{"untagged", slog.LevelInfo},
		{"[WARN] w", slog.LevelWarn},
		{"[ERR] e", slog.LevelError},
		{"[ERROR] e2", slog.LevelError},
	}
	for _, floor := range []slog.Level{levelTrace, slog.LevelDebug, slog.LevelInfo, slog.LevelWarn, slog.LevelError} {
		t.Run(floor.String(), func(t *testing.T) {
			c, l := newCapture()
			w := NewWriter(l, floor)
			var want []slog.Level
			for _, ln := range lines {
				if _, err := w.Write([]byte(ln.line + "\n")); err != nil {
					t.Fatal(err)
				}
				if ln.level >= floor {
					want = append(want, ln.level)
				}
			}
			got := c.all()
			if len(got) != len(want) {
				t.Fatalf("floor %v: got %d records %v, want levels %v", floor, len(got), got, want)
			}
			for i := range got {
				if got[i].level != want[i] {
					t.Fatalf("floor %v: record %d level %v, want %v", floor, i, got[i].level, want[i])
				}
			}
		})
	}
}

func TestWriter_MultiLineWrite_UntaggedLinesJoinTheTaggedRecord(t *testing.T) {
	c, l := newCapture()
	w := NewWriter(l, slog.LevelDebug)
	p := "plain start\n[WARN] first\n\n   \n[ERR] second\r\nthird\n[DEBUG] fourth"
	n, err := w.Write([]byte(p))
	if err != nil || n != len(p) {
		t.Fatalf("Write = %d, %v; want %d, nil", n, err, len(p))
	}
	want := []captured{
		{slog.LevelInfo, "plain start"},
		{slog.LevelWarn, "first"},
		{slog.LevelError, "second\nthird"},
		{slog.LevelDebug, "fourth"},
	}
	got := c.all()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("records = %v, want %v", got, want)
	}
}

func TestHCLogger_MultiLineValueStaysInItsRecord(t *testing.T) {
	c, l := newCapture()
	hl := HCLogger("raft", l, slog.LevelWarn)
	hl.Error("failed to apply", "error", errors.New("line one\nline two"))
	got := c.all()
	if len(got) != 1 || got[0].level != slog.LevelError || !strings.Contains(got[0].msg, "line one") || !strings.Contains(got[0].msg, "line two") {
		t.Fatalf("records = %v, want one ERROR record carrying both lines", got)
	}
}

func TestWriter_TagOnlyAtStartOrAfterTimestamp(t *testing.T) {
	c, l := newCapture()
	w := NewWriter(l, slog.LevelDebug)
	_, _ = w.Write([]byte("memberlist: node said [ERR] hello\n"))
	_, _ = w.Write([]byte("2026/01/02 15:04:05 [ERR] real\n"))
	want := []captured{
		{slog.LevelInfo, "memberlist: node said [ERR] hello"},
		{slog.LevelError, "real"},
	}
	if got := c.all(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("records = %v, want %v", got, want)
	}
}

func TestStdLogger_RoutesThroughWriter(t *testing.T) {
	c, l := newCapture()
	// The std flags memberlist users often set put a timestamp before the
	// tag; the level must still be found.
	std := StdLogger(l, slog.LevelInfo)
	std.SetFlags(log.LstdFlags)
	std.Printf("[WARN] memberlist: suspect %s", "node-b")
	std.Printf("[DEBUG] memberlist: dropped below floor")
	std.Print("memberlist: plain")

	got := c.all()
	if len(got) != 2 {
		t.Fatalf("records = %v, want 2 (WARN then untagged INFO; DEBUG dropped)", got)
	}
	if want := (captured{slog.LevelWarn, "memberlist: suspect node-b"}); got[0] != want {
		t.Fatalf("record 0 = %v, want %v", got[0], want)
	}
	// An untagged line keeps its timestamp, so only its end is fixed.
	if got[1].level != slog.LevelInfo || !strings.HasSuffix(got[1].msg, "memberlist: plain") {
		t.Fatalf("record 1 = %v, want INFO ending in %q", got[1], "memberlist: plain")
	}
}

func TestHCLogger_WarnBecomesWarnRecordWithMessage(t *testing.T) {
	c, l := newCapture()
	hl := HCLogger("raft", l, slog.LevelInfo)
	hl.Warn("heartbeat timeout reached", "last-leader", "node-a")

	got := c.all()
	if len(got) != 1 {
		t.Fatalf("got %d records %v, want 1", len(got), got)
	}
	r := got[0]
	if r.level != slog.LevelWarn {
		t.Fatalf("level = %v, want WARN (record %q)", r.level, r.msg)
	}
	for _, want := range []string{"raft", "heartbeat timeout reached", "last-leader=node-a"} {
		if !strings.Contains(r.msg, want) {
			t.Errorf("message %q does not contain %q", r.msg, want)
		}
	}
	if strings.Contains(r.msg, "[WARN]") {
		t.Errorf("message %q still carries the tag", r.msg)
	}
}

func TestHCLogger_LevelsFollowFloor(t *testing.T) {
	tests := []struct {
		name  string
		floor slog.Level
		want  []slog.Level
	}{
		{"info floor drops debug", slog.LevelInfo, []slog.Level{slog.LevelInfo, slog.LevelWarn, slog.LevelError}},
		{"debug floor keeps debug", slog.LevelDebug, []slog.Level{slog.LevelDebug, slog.LevelInfo, slog.LevelWarn, slog.LevelError}},
		{"warn floor drops info", slog.LevelWarn, []slog.Level{slog.LevelWarn, slog.LevelError}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, l := newCapture()
			hl := HCLogger("raft", l, tc.floor)
			hl.Trace("t")
			hl.Debug("d")
			hl.Info("i")
			hl.Warn("w")
			hl.Error("e")
			got := c.all()
			if len(got) != len(tc.want) {
				t.Fatalf("got %d records %v, want levels %v", len(got), got, tc.want)
			}
			for i := range got {
				if got[i].level != tc.want[i] {
					t.Fatalf("record %d = %v, want level %v", i, got[i], tc.want[i])
				}
			}
		})
	}
}

func TestOr_NilDiscardsOtherwiseUnchanged(t *testing.T) {
	if Or(nil) == nil {
		t.Fatal("Or(nil) = nil, want a discarding logger")
	}
	if Or(nil).Enabled(context.Background(), slog.LevelError) {
		t.Fatal("Or(nil) is enabled at ERROR, want it to discard")
	}
	_, l := newCapture()
	if Or(l) != l {
		t.Fatal("Or(l) did not return l")
	}
}
