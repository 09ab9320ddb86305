//go:build e2e

package e2e

import (
	"flag"
	"fmt"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/strata-registry/strata/internal/procwatch"
)

// TestMain runs the tests, removes the binaries they built, and fails the
// package if a test left a goroutine behind (the clients', the log
// copiers', the process waiters').
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

// buildTimeout bounds the build; a warm cache (make build) takes seconds.
const buildTimeout = 5 * time.Minute

// binaries returns the directory holding meta, data and session, building
// them on the first call. It skips the test under -short.
func binaries(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("e2e: real processes; skipped under -short")
	}
	dir, err := bins.Dir(buildTimeout)
	if err != nil {
		t.Fatal(err)
	}
	return dir
}
