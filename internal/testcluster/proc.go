package testcluster

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// server is what the harness runs: every role's *Server.
type server interface {
	Run(context.Context) error
	Ready() <-chan struct{}
	Kill()
}

// proc is one running server with its log file; the role types embed it.
type proc struct {
	mu      sync.Mutex
	srv     server
	cancel  context.CancelFunc
	done    chan error
	logFile *os.File
}

// openLog opens (appending) dir/node.log and returns it with a logger on it
// carrying the node attribute.
func openLog(t testing.TB, dir, id string) (*os.File, *slog.Logger) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	lf, err := os.OpenFile(filepath.Join(dir, "node.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		t.Fatal(err)
	}
	return lf, slog.New(slog.NewTextHandler(lf, &slog.HandlerOptions{Level: slog.LevelDebug})).With("node", id)
}

// start runs srv until stop and waits for it to be ready.
func (p *proc) start(t testing.TB, id string, srv server, lf *os.File) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	select {
	case <-srv.Ready():
	case err := <-done:
		cancel()
		_ = lf.Close()
		t.Fatalf("testcluster: %s exited while starting: %v", id, err)
	case <-time.After(DefaultWait):
		cancel()
		<-done
		_ = lf.Close()
		t.Fatalf("testcluster: %s not ready after %v", id, DefaultWait)
	}
	p.mu.Lock()
	p.srv, p.cancel, p.done, p.logFile = srv, cancel, done, lf
	p.mu.Unlock()
}

// stop stops the server, as a crash (no graceful leave) when crash is
// true, and waits for Run to return.
func (p *proc) stop(t testing.TB, id string, crash bool) {
	t.Helper()
	p.mu.Lock()
	srv, cancel, done := p.srv, p.cancel, p.done
	p.srv = nil
	p.mu.Unlock()
	if srv == nil {
		return
	}
	if crash {
		srv.Kill()
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("testcluster: %s exited with: %v", id, err)
	}
	_ = p.logFile.Close()
}

func (p *proc) running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.srv != nil
}

// LogOf returns what the node whose dir is dir has logged so far.
func LogOf(t testing.TB, dir string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "node.log"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
