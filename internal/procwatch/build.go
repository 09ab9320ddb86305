package procwatch

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// BuildServers compiles cmd/meta, cmd/data and cmd/session into a new
// temporary directory (the caller removes it) with the Makefile's flags
// (CGO_ENABLED=0, -trimpath), so `make build` and the tests share the
// build cache. It needs the go command on PATH and a working directory
// inside this module; ctx bounds the build.
func BuildServers(ctx context.Context) (string, error) {
	goCmd, err := exec.LookPath("go")
	if err != nil {
		return "", errors.New("procwatch: the go command is not on PATH; it builds cmd/meta, cmd/data and cmd/session")
	}
	out, err := exec.CommandContext(ctx, goCmd, "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("procwatch: go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("procwatch: not inside the module (go env GOMOD is empty)")
	}
	root := filepath.Dir(gomod)
	dir, err := os.MkdirTemp("", "strata-bin-")
	if err != nil {
		return "", err
	}
	cmd := exec.CommandContext(ctx, goCmd, "build", "-trimpath", "-o", dir+string(filepath.Separator),
		"./cmd/meta", "./cmd/data", "./cmd/session")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		_ = os.RemoveAll(dir)
		return "", fmt.Errorf("procwatch: build the server binaries in %s: %v\n%s", root, err, out)
	}
	return dir, nil
}

// Binaries builds the servers once, on first use, for a test binary's
// tests to share; TestMain calls Remove at the end.
type Binaries struct {
	once sync.Once
	dir  string
	err  error
}

// Dir returns the directory holding meta, data and session, building
// them (bounded by timeout) on the first call.
func (b *Binaries) Dir(timeout time.Duration) (string, error) {
	b.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		b.dir, b.err = BuildServers(ctx)
	})
	return b.dir, b.err
}

// Remove deletes what Dir built.
func (b *Binaries) Remove() {
	if b.dir != "" {
		_ = os.RemoveAll(b.dir)
	}
}
