//go:build e2e

package e2e

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// TestMain runs the tests, removes the binaries they built, and fails the
// package if a test left a goroutine behind (the clients', the log
// copiers', the process waiters').
func TestMain(m *testing.M) {
	flag.Parse()
	code := m.Run()
	if bins.dir != "" {
		_ = os.RemoveAll(bins.dir)
	}
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// bins is the directory holding the server binaries, built on first use
// by binaries and removed by TestMain.
var bins struct {
	once sync.Once
	dir  string
	err  error
}

// buildTimeout bounds the build; a warm cache (make build) takes seconds.
const buildTimeout = 5 * time.Minute

// binaries returns the directory holding meta, data and session, building
// them on the first call. It skips the test under -short.
func binaries(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("e2e: real processes; skipped under -short")
	}
	bins.once.Do(func() { bins.dir, bins.err = build() })
	if bins.err != nil {
		t.Fatal(bins.err)
	}
	return bins.dir
}

// build compiles the server binaries into a new temp dir with the
// Makefile's flags (CGO_ENABLED=0, -trimpath), so `make build` and these
// tests share the build cache.
func build() (string, error) {
	goCmd, err := exec.LookPath("go")
	if err != nil {
		return "", errors.New("e2e: the go command is not on PATH; these tests build cmd/meta, cmd/data and cmd/session with it")
	}
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	root, err := moduleRoot(ctx, goCmd)
	if err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp("", "strata-e2e-bin-")
	if err != nil {
		return "", err
	}
	cmd := exec.CommandContext(ctx, goCmd, "build", "-trimpath", "-o", dir+string(filepath.Separator),
		"./cmd/meta", "./cmd/data", "./cmd/session")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		_ = os.RemoveAll(dir)
		return "", fmt.Errorf("e2e: build the server binaries in %s: %v\n%s", root, err, out)
	}
	return dir, nil
}

// moduleRoot returns the directory of this module's go.mod.
func moduleRoot(ctx context.Context, goCmd string) (string, error) {
	out, err := exec.CommandContext(ctx, goCmd, "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("e2e: go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("e2e: not inside the module (go env GOMOD is empty)")
	}
	return filepath.Dir(gomod), nil
}
