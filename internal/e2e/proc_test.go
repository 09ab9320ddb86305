//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/strata-registry/strata/internal/procwatch"
)

const (
	// anyPort is what every listener binds: the kernel picks the port and
	// the node logs it.
	anyPort = "127.0.0.1:0"
	// startWait bounds the wait for a node's "node started" line.
	startWait = 15 * time.Second
	// stopWait is how long the nodes get to stop on SIGTERM at the end of
	// a test before they are killed.
	stopWait = 10 * time.Second
	// tailLines is how much of each node's log a failed test prints.
	tailLines = 60
)

// node is one server process.
type node struct {
	role, id string
	logPath  string
	cmd      *exec.Cmd
	// done is closed once the process has exited and its output is in the
	// log; waitErr is Wait's result, read only after done.
	done    chan struct{}
	waitErr error
	// killed is set by kill: the process died on purpose.
	killed bool
	// addrs is what the node's "node started" line says.
	addrs started
	// http reaches the node's admin HTTP (set by the cluster).
	http *http.Client
}

// started is the "<role> node started" log line: the addresses the node
// bound (port 0 resolved) and advertises.
type started struct {
	Msg    string `json:"msg"`
	GRPC   string `json:"grpc"`
	HTTP   string `json:"http"`
	Raft   string `json:"raft"`
	Gossip string `json:"gossip"`
	Proc   string `json:"proc"`
}

// startNode starts bin/role with the node's id, JSON logs, every listener
// on anyPort and args, and returns once the node has logged that it
// started. The node's output goes to dir/id.log. The caller owns the node
// from the moment it is returned or passed to track (which happens before
// the wait, so a node that fails to start is still stopped by cleanup).
func startNode(t *testing.T, bin, dir, role, id string, track func(*node), args ...string) *node {
	t.Helper()
	logPath := filepath.Join(dir, id+".log")
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	w := procwatch.New[started](f, role+" node started")
	full := append([]string{"--node-id", id, "--log-format", "json",
		"--grpc-addr", anyPort, "--http-addr", anyPort, "--gossip-addr", anyPort}, args...)
	if role == "session" {
		// Several sessions on one host: the HTTP API's default port would
		// collide.
		full = append(full, "--http-api-listen", anyPort)
	}
	cmd := exec.Command(filepath.Join(bin, role), full...)
	// One writer for both streams: exec then calls Write from one
	// goroutine at a time.
	cmd.Stdout, cmd.Stderr = w, w
	cmd.Env = environ()
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		_ = f.Close()
		t.Fatalf("start %s: %v", id, err)
	}
	n := &node{role: role, id: id, logPath: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		n.waitErr = cmd.Wait()
		_ = f.Close()
		close(n.done)
	}()
	track(n)
	timer := time.NewTimer(startWait)
	defer timer.Stop()
	select {
	case n.addrs = <-w.Found():
	case <-n.done:
		t.Fatalf("%s exited while starting (%v); log:\n%s", id, n.waitErr, tail(logPath, tailLines))
	case <-timer.C:
		t.Fatalf("%s: no %q line after %v; log:\n%s", id, w.Want(), startWait, tail(logPath, tailLines))
	}
	return n
}

// environ is the test's environment without STRATA_ variables, which
// would override the nodes' flags.
func environ() []string {
	return slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "STRATA_") })
}

// exited reports whether the process has exited.
func (n *node) exited() bool {
	select {
	case <-n.done:
		return true
	default:
		return false
	}
}

// logged reports whether the node's log has a JSON line whose msg is msg.
func (n *node) logged(msg string) bool {
	b, err := os.ReadFile(n.logPath)
	if err != nil {
		return false
	}
	for line := range bytes.Lines(b) {
		var l struct {
			Msg string `json:"msg"`
		}
		if json.Unmarshal(line, &l) == nil && l.Msg == msg {
			return true
		}
	}
	return false
}

// kill sends SIGKILL (a crash: no leave, no flush) and waits for the exit.
func (n *node) kill(t *testing.T) {
	t.Helper()
	n.killed = true
	if err := n.cmd.Process.Kill(); err != nil {
		t.Fatalf("kill %s: %v", n.id, err)
	}
	<-n.done
}

// tail returns the last n lines of the file at path.
func tail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	return strings.Join(lines, "\n")
}

// stopAll stops every node still running: SIGTERM to all at once, SIGKILL
// to any still running stopWait later. A node that does not stop on
// SIGTERM in time, or exits with an error, fails the test: a graceful
// stop is part of what these tests check.
func stopAll(t *testing.T, nodes []*node) {
	var live []*node
	for _, n := range nodes {
		if !n.exited() {
			_ = n.cmd.Process.Signal(syscall.SIGTERM)
			live = append(live, n)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), stopWait)
	defer cancel()
	for _, n := range live {
		select {
		case <-n.done:
		case <-ctx.Done():
			if !n.exited() {
				t.Errorf("%s still running %v after SIGTERM; killing it", n.id, stopWait)
				_ = n.cmd.Process.Kill()
				<-n.done
				continue
			}
		}
		if n.waitErr != nil {
			t.Errorf("%s exited with %v after SIGTERM", n.id, n.waitErr)
		}
	}
}
