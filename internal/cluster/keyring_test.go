package cluster

import (
	"bytes"
	"context"
	"encoding/base64"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestParseKeys(t *testing.T) {
	k16 := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{1}, 16))
	k32 := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{2}, 32))
	tests := []struct {
		name    string
		in      string
		want    int
		wantErr string
	}{
		{"one", k32 + "\n", 1, ""},
		{"two with comments", "# c\n\n" + k32 + "\n  " + k16 + "  \n", 2, ""},
		{"none", "# only a comment\n", 0, "no key"},
		{"not base64", "!!!\n", 0, "line 1: not base64"},
		{"wrong size", base64.StdEncoding.EncodeToString([]byte("short")) + "\n", 0, "line 1"},
		{"twice", k32 + "\n" + k32 + "\n", 0, "line 2: a key listed twice"},
		{"too large", strings.Repeat("#", KeyFileMaxBytes+1), 0, "at most"},
	}
	for _, tc := range tests {
		keys, err := ParseKeys([]byte(tc.in))
		switch {
		case tc.wantErr == "" && (err != nil || len(keys) != tc.want):
			t.Errorf("%s: ParseKeys = %d keys, %v; want %d", tc.name, len(keys), err, tc.want)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("%s: ParseKeys error = %v, want one containing %q", tc.name, err, tc.wantErr)
		}
	}
	k, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseKeys(FormatKeys([][]byte{k}))
	if err != nil || len(back) != 1 || !bytes.Equal(back[0], k) {
		t.Errorf("FormatKeys/ParseKeys round trip = %v, %v", back, err)
	}
}

func startKeyed(t *testing.T, id string, keys [][]byte, join ...string) *Agent {
	t.Helper()
	return run(t, Config{NodeID: id, BindAddr: "127.0.0.1", Profile: "local", Join: join, RetryJoin: 20 * time.Millisecond,
		Keys: keys, Meta: Meta{Role: RoleData, GRPC: "127.0.0.1:1"}})
}

// failedJoins counts an agent's failed attempts to join, from its log.
type failedJoins struct{ n atomic.Int64 }

func (f *failedJoins) Enabled(context.Context, slog.Level) bool { return true }
func (f *failedJoins) Handle(_ context.Context, r slog.Record) error {
	if r.Message == "join gossip pool failed, retrying" {
		f.n.Add(1)
	}
	return nil
}
func (f *failedJoins) WithAttrs([]slog.Attr) slog.Handler { return f }
func (f *failedJoins) WithGroup(string) slog.Handler      { return f }

// startRefused starts an agent that should never get in, and returns the
// count of its failed joins.
func startRefused(t *testing.T, id string, keys [][]byte, join ...string) *failedJoins {
	t.Helper()
	f := &failedJoins{}
	runLogged(t, Config{NodeID: id, BindAddr: "127.0.0.1", Profile: "local", Join: join, RetryJoin: 20 * time.Millisecond,
		Keys: keys, Meta: Meta{Role: RoleData, GRPC: "127.0.0.1:1"}}, slog.New(f))
	return f
}

// TestAgent_SetKeys_RemovesEveryUnlistedKey: dropping several keys at once,
// none of them last, leaves exactly the listed ones.
func TestAgent_SetKeys_RemovesEveryUnlistedKey(t *testing.T) {
	keys := make([][]byte, 4)
	for i := range keys {
		k, err := NewKey()
		if err != nil {
			t.Fatal(err)
		}
		keys[i] = k
	}
	a := startKeyed(t, "a", keys)
	keep := [][]byte{keys[0], keys[3]}
	if err := a.SetKeys(keep); err != nil {
		t.Fatal(err)
	}
	got := a.Keyring()
	want := []string{Fingerprint(keys[0]), Fingerprint(keys[3])}
	slices.Sort(got.Keys)
	slices.Sort(want)
	if got.Primary != Fingerprint(keys[0]) || !slices.Equal(got.Keys, want) {
		t.Fatalf("keyring %+v after keeping keys 0 and 3 of 4, want primary %s and keys %v", got, Fingerprint(keys[0]), want)
	}
}

// TestAgent_KeyRotation_InstallUseRemove: the three rounds of a rotation
// (every node takes the new key, then encrypts with it, then drops the
// old) keep the pool whole; afterwards a node with only the old key cannot
// join, nor can one without keys.
func TestAgent_KeyRotation_InstallUseRemove(t *testing.T) {
	old, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	next, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	a := startKeyed(t, "a", [][]byte{old})
	b := startKeyed(t, "b", [][]byte{old}, a.Addr())
	waitState(t, a, "b", StateAlive)
	for _, round := range [][][]byte{{old, next}, {next, old}, {next}} {
		for _, n := range []*Agent{a, b} {
			if err := n.SetKeys(round); err != nil {
				t.Fatal(err)
			}
		}
		if got := a.Keyring(); got.Primary != Fingerprint(round[0]) || len(got.Keys) != len(round) {
			t.Fatalf("keyring %+v after SetKeys with %d keys, primary %s", got, len(round), Fingerprint(round[0]))
		}
	}
	// The pool still works: a third node with the new key joins through b.
	c := startKeyed(t, "c", [][]byte{next}, b.Addr())
	waitState(t, a, "c", StateAlive)
	// A node holding only the old key, or none, never joins: each has
	// tried and failed a few times, and the pool does not list it.
	stale := startRefused(t, "stale", [][]byte{old}, a.Addr())
	plain := startRefused(t, "plain", nil, a.Addr())
	deadline := time.Now().Add(10 * time.Second)
	for s, p := stale.n.Load(), plain.n.Load(); s < 3 || p < 3; s, p = stale.n.Load(), plain.n.Load() {
		if time.Now().After(deadline) {
			t.Fatalf("failed joins: stale %d, plain %d; want 3 each", s, p)
		}
		<-time.After(20 * time.Millisecond) // polling counters; bounded by the deadline
	}
	for _, m := range a.Members() {
		if m.ID == "stale" || m.ID == "plain" {
			t.Fatalf("%s joined the pool: %+v", m.ID, m)
		}
	}
	if err := c.SetKeys(nil); err == nil {
		t.Error("SetKeys with no key succeeded")
	}
	if err := start(t, "unencrypted").SetKeys([][]byte{next}); err == nil {
		t.Error("SetKeys on an agent started without encryption succeeded")
	}
}
