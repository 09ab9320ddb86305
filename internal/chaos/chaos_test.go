package chaos

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/strata-registry/strata/internal/procwatch"
)

// TestMain runs the tests, removes the binaries they built, and fails the
// package if a test left a goroutine behind.
func TestMain(m *testing.M) {
	flag.Parse()
	code := m.Run()
	bins.Remove()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// bins are the server binaries, built on first use by binaries and
// removed by TestMain.
var bins procwatch.Binaries

// binaries returns a directory holding meta, data and session, built
// with the Makefile's flags (so make build's cache serves); it skips the
// test under -short.
func binaries(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("chaos: real processes; skipped under -short")
	}
	dir, err := bins.Dir(5 * time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestChaos_FixedSeed_KillDataFreezeSessionKillMetaLeader_NoViolation is
// make chaos's short deterministic subset: a cluster of real processes
// (3 meta, 3 data, 3 session, TLS, loopback), steady load through
// pkg/client, and one fault of each: SIGKILL of a data node (restarted
// after the hold), SIGSTOP/SIGCONT of a session, SIGKILL of the meta
// leader. The checker must find no violation of properties 1-5; the
// convergence bound is generous (a loaded 2-core machine), and the
// measured figures are logged. On failure the logs are kept and their
// directory printed.
func TestChaos_FixedSeed_KillDataFreezeSessionKillMetaLeader_NoViolation(t *testing.T) {
	bin := binaries(t)
	out, err := os.MkdirTemp("", "strata-chaos-test-")
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Bin, cfg.Out, cfg.Seed, cfg.Net = bin, out, 1302, "loopback"
	cfg.Kinds, cfg.Ordered, cfg.MaxFaults = []Kind{KillData, StopSession, MetaLeader}, true, 3
	cfg.Duration = 90 * time.Second // MaxFaults ends it well before
	cfg.Load = LoadConfig{Publishers: 6, Subscribers: 3, Rate: 4, UpdateTimeout: 5 * time.Second}
	cfg.Timing = Timing{HoldMin: 2 * time.Second, HoldMax: 3 * time.Second, GapMin: 500 * time.Millisecond, GapMax: time.Second}
	cfg.Baseline = 2 * time.Second
	cfg.ConvergenceBound = 45 * time.Second
	cfg.Progress = testWriter{t}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	rep, err := Run(ctx, cfg)
	if err != nil {
		t.Fatalf("run: %v (logs kept in %s)", err, out)
	}
	t.Log("\n" + rep.Summary())
	switch {
	case !rep.Result.OK():
		t.Errorf("violations; logs and report kept in %s", out)
	case len(rep.Result.Faults) != 3 || rep.FaultErrors != 0:
		t.Errorf("%d faults, %d not injected or healed; want 3, 0; logs kept in %s", len(rep.Result.Faults), rep.FaultErrors, out)
	case rep.Result.Acked == 0 || rep.Result.Snapshots == 0:
		t.Errorf("no load: %d acked, %d snapshots; logs kept in %s", rep.Result.Acked, rep.Result.Snapshots, out)
	default:
		_ = os.RemoveAll(out)
	}
	for i, k := range []Kind{KillData, StopSession, MetaLeader} {
		if i < len(rep.Result.Faults) && rep.Result.Faults[i].Kind != k {
			t.Errorf("fault %d is %s, want %s (seeded, ordered)", i, rep.Result.Faults[i].Kind, k)
		}
	}
}

// testWriter sends progress lines to the test log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
