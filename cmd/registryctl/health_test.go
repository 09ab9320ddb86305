package main

import (
	"bytes"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/strata-registry/strata/internal/meta"
	"github.com/strata-registry/strata/internal/slot"
	"github.com/strata-registry/strata/internal/testcluster"
)

// signalWriter is a goroutine-safe buffer that closes wrote at its first
// write.
type signalWriter struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	once  sync.Once
	wrote chan struct{}
}

func (w *signalWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.once.Do(func() { close(w.wrote) })
	return w.buf.Write(p)
}

func (w *signalWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// A rolling restart script runs health --wait-settled between nodes. Here
// the only session answers no anti-entropy while a restarted data node
// gets its slots back, so no handover to it can finish (deterministically):
// the wait must time out with status 1 and say moving; then, with the
// session answering again, a wait started while they are held must return
// 0 only once the table is really settled.
func TestHealth_WaitSettled_WaitsForTheRestartedNodesSlots(t *testing.T) {
	c := testcluster.Start(t, testcluster.Spec{Meta: 3, Data: 3, MetaConfig: func(_ int, cfg *meta.Config) {
		cfg.Slots = 16
		cfg.MaxMoves = 1 // the slots come back over many tables
	}})
	sess := c.StartSession(t, "session-0")
	useCredentials(t, c)
	metaFlag := "--meta=" + strings.Join(c.MetaAddrs(), ",")
	c.WaitDataSettled(t)

	var v healthView
	if err := executeJSON(t, &v, metaFlag, "health", "--wait-settled="+testcluster.DefaultWait.String(), "--wait-interval=20ms"); err != nil {
		t.Fatalf("health --wait-settled on a settled cluster: %v (%+v)", err, v)
	}
	if !v.Healthy || !v.Slots.settled() || v.Slots.From != c.WaitLeader(t).ID {
		t.Fatalf("settled cluster: %+v, want healthy and settled by the leader", v)
	}

	c.StopData(t, 2, false)
	c.WaitDataSettled(t)
	sess.Mute(true)
	c.RestartData(t, 2)
	// Until meta has data-2 back and plans its slots, the table is at
	// rest: only then are handovers held.
	testcluster.Eventually(t, testcluster.DefaultWait, func() error {
		var now healthView
		_ = executeJSON(t, &now, metaFlag, "health")
		switch {
		case now.Slots.From == "":
			return errors.New("no health view read yet")
		case now.Healthy && now.Slots.settled():
			return errors.New("the table is still at rest: no move to the restarted data-2 planned yet")
		}
		return nil
	})

	// Held: the wait runs out.
	v = healthView{}
	err := executeJSON(t, &v, metaFlag, "health", "--wait-settled=300ms", "--wait-interval=20ms")
	if err == nil || !strings.Contains(err.Error(), "not settled after 300ms") {
		t.Fatalf("health --wait-settled=300ms while handovers are held: err %v, want not settled", err)
	}
	if v.Healthy && v.Slots.settled() {
		t.Fatalf("timed out, but the last view says settled: %+v", v)
	}

	// A wait started while held; the session answers once it is waiting.
	var out bytes.Buffer
	stderr := &signalWriter{wrote: make(chan struct{})}
	cmd := newRootCommand()
	cmd.SetOut(&out)
	cmd.SetErr(stderr)
	cmd.SetArgs([]string{metaFlag, "health", "--wait-settled=" + (3 * testcluster.DefaultWait).String(), "--wait-interval=20ms"})
	done := make(chan error, 1)
	go func() { done <- cmd.ExecuteContext(t.Context()) }()
	select {
	case <-stderr.wrote:
	case err := <-done:
		t.Fatalf("health --wait-settled returned while handovers were held: %v\n%s", err, out.String())
	case <-time.After(testcluster.DefaultWait):
		t.Fatal("health --wait-settled printed no reason to wait while handovers were held")
	}
	sess.Mute(false)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("health --wait-settled: %v\nstderr:\n%s", err, stderr)
		}
	case <-time.After(3*testcluster.DefaultWait + 5*time.Second):
		t.Fatalf("health --wait-settled did not return; stderr:\n%s", stderr)
	}
	t.Logf("stderr of the wait:\n%s", stderr)
	if !strings.Contains(stderr.String(), "waiting: ") || !strings.Contains(out.String(), "): settled\n") {
		t.Errorf("stderr:\n%s\nstdout:\n%s\nwant reasons to wait, then the settled table", stderr, out.String())
	}
	// It returned only once settled, so the table is at rest now: checked
	// once, not waited for.
	st := c.WaitLeader(t).Server().State()
	leads := 0
	for _, s := range st.Table.Slots {
		for _, f := range s.Followers {
			if !st.Sync.Synced(s.ID, f) {
				t.Errorf("returned with slot %d's follower %s not synced", s.ID, f)
			}
		}
		if s.Leader == slot.NodeID(c.Data(2).ID) {
			leads++
		}
	}
	settings := st.Settings
	settings.MaxMoves = 1
	if next, err := slot.Next(st.Table, st.DataNodes(), st.Sync, settings); err != nil || next.Epoch != st.Table.Epoch {
		t.Errorf("returned while the arranger would still move slots (err %v)", err)
	}
	if leads < 16/3 {
		t.Errorf("returned with data-2 leading %d slots, want its share", leads)
	}
	if ok, why := c.Data(2).Server().ReadyState(); !ok {
		t.Errorf("returned with data-2 not ready: %v", why)
	}
}
