//go:build linux

package strata_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// This file starts a real Strata cluster for the adapter's tests: one
// meta, one data and one session process of the repository's own
// binaries, on loopback, secure as `make run` runs it. It is the root
// module's internal/e2e harness made small: this module may not import
// the root module (adapter users must not pull server code), so it runs
// the binaries instead.

const (
	// anyPort is what every listener binds: the kernel picks the port,
	// and the node logs it in its "<role> node started" line.
	anyPort = "127.0.0.1:0"
	// buildWait bounds building the binaries (a cold cache takes minutes).
	buildWait = 5 * time.Minute
	// startWait bounds each node's start and readiness.
	startWait = 30 * time.Second
	// stopWait is how long the nodes get to stop on SIGTERM.
	stopWait = 10 * time.Second
)

// cluster is the processes and what a client needs to reach them.
type cluster struct {
	bin, dir string
	// creds is the credentials directory `registryctl certs init` wrote:
	// the CA, every node's certificate, the client "dev".
	creds string
	httpc *http.Client // reaches the nodes' admin HTTP, trusting the CA
	procs []*proc
	// metaGRPC is the meta node's gRPC address, for client.WithMeta.
	metaGRPC string
}

// proc is one node process; done is closed once it has exited and its
// output is in its log.
type proc struct {
	id, log string
	cmd     *exec.Cmd
	done    chan struct{}
	waitErr error
}

// started is a node's "<role> node started" log line.
type started struct {
	Msg    string `json:"msg"`
	GRPC   string `json:"grpc"`
	HTTP   string `json:"http"`
	Gossip string `json:"gossip"`
}

// startCluster builds the binaries from the repository root (../.. of
// this module), writes development credentials, starts meta, data and
// session in turn, each once the one before is ready, and returns when the
// session is ready. Cleanup stops them all and, if the test failed,
// prints the tail of each node's log.
func startCluster(t *testing.T) *cluster {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a Strata cluster of real processes; skipped under -short")
	}
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	gomod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if errors.Is(err, os.ErrNotExist) {
		t.Skipf("the module is not inside the Strata repository (no %s/go.mod): no servers to build", root)
	}
	if err != nil || !strings.HasPrefix(string(gomod), "module github.com/strata-registry/strata\n") {
		t.Fatalf("%s is not the Strata repository's root (go.mod: %v)", root, err)
	}
	c := &cluster{bin: t.TempDir(), dir: t.TempDir()}
	c.creds = filepath.Join(c.dir, "certs")
	c.run(t, root, buildWait, "go", "build", "-trimpath", "-o", c.bin+string(filepath.Separator),
		"./cmd/meta", "./cmd/data", "./cmd/session", "./cmd/registryctl")
	c.run(t, c.dir, startWait, filepath.Join(c.bin, "registryctl"), "certs", "init", c.creds,
		"--meta-nodes", "meta-0", "--data-nodes", "data-0", "--session-nodes", "session-0")
	ca, err := os.ReadFile(filepath.Join(c.creds, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		t.Fatal("ca.pem holds no certificate")
	}
	c.httpc = &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true,
		TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	// Registered first, so it runs last, after the nodes have stopped.
	t.Cleanup(func() {
		if t.Failed() {
			for _, p := range c.procs {
				t.Logf("---- %s: end of %s ----\n%s", p.id, p.log, tail(p.log, 40))
			}
		}
	})
	t.Cleanup(c.stop)

	// Short timings, as the root's end-to-end tests use: a leader and
	// the slot table in well under a second.
	meta := c.start(t, "meta", "meta-0", "--raft-addr", anyPort, "--data-dir", filepath.Join(c.dir, "meta-0"),
		"--bootstrap-expect", "1", "--arrange-interval", "100ms", "--reconcile-interval", "200ms",
		"--raft-heartbeat-timeout", "500ms", "--raft-election-timeout", "500ms", "--raft-leader-lease-timeout", "250ms")
	c.metaGRPC = meta.GRPC
	join := []string{"--meta", meta.GRPC, "--join", meta.Gossip}
	c.start(t, "data", "data-0", append(join, "--heartbeat-interval", "100ms")...)
	c.start(t, "session", "session-0", join...)
	return c
}

// run runs a command in dir to its end, bounded by wait, failing the
// test with its output if it fails.
func (c *cluster) run(t *testing.T, dir string, wait time.Duration, name string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), wait)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(environ(), "CGO_ENABLED=0") // as make build, to share its build cache
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// start starts node id of role with JSON logs, every listener on anyPort,
// the cluster's credentials and args; it returns the node's started line
// once the node's /readyz answers 200.
func (c *cluster) start(t *testing.T, role, id string, args ...string) started {
	t.Helper()
	p := &proc{id: id, log: filepath.Join(c.dir, id+".log"), done: make(chan struct{})}
	logf, err := os.Create(p.log)
	if err != nil {
		t.Fatal(err)
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	p.cmd = exec.Command(filepath.Join(c.bin, role), slices.Concat([]string{"--node-id", id, "--log-format", "json",
		"--grpc-addr", anyPort, "--http-addr", anyPort, "--gossip-addr", anyPort, "--credentials", c.creds}, args)...)
	p.cmd.Stdout, p.cmd.Stderr = pw, pw
	p.cmd.Env = environ()
	// The kernel kills the node if the test process dies without cleanup.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	err = p.cmd.Start()
	_ = pw.Close()
	if err != nil {
		_, _ = pr.Close(), logf.Close()
		t.Fatalf("start %s: %v", id, err)
	}
	c.procs = append(c.procs, p)
	found := make(chan started, 1)
	go func() {
		defer close(p.done)
		copyLog(logf, pr, role+" node started", found)
		_, _ = pr.Close(), logf.Close()
		p.waitErr = p.cmd.Wait()
	}()
	var s started
	timer := time.NewTimer(startWait)
	defer timer.Stop()
	select {
	case s = <-found:
	case <-p.done:
		t.Fatalf("%s exited while starting: %v", id, p.waitErr)
	case <-timer.C:
		t.Fatalf("%s: no %q log line after %v", id, role+" node started", startWait)
	}
	eventually(t, startWait, func() error {
		select {
		case <-p.done:
			t.Fatalf("%s exited: %v", id, p.waitErr)
		default:
		}
		resp, err := c.httpc.Get("https://" + s.HTTP + "/readyz")
		if err != nil {
			return err
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s /readyz: %s", id, resp.Status)
		}
		return nil
	})
	return s
}

// copyLog copies a node's output to its log, line by line, until the
// node closes it, and sends the first line whose msg is want on found.
func copyLog(log io.Writer, out io.Reader, want string, found chan<- started) {
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		_, _ = log.Write(append(sc.Bytes(), '\n'))
		var s started
		if found != nil && json.Unmarshal(sc.Bytes(), &s) == nil && s.Msg == want {
			found <- s
			found = nil
		}
	}
	_, _ = io.Copy(log, out) // past a line too long to scan
}

// stop sends SIGTERM to every node and SIGKILL to any still running
// stopWait later.
func (c *cluster) stop() {
	for _, p := range c.procs {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
	}
	deadline := time.NewTimer(stopWait)
	defer deadline.Stop()
	for _, p := range c.procs {
		select {
		case <-p.done:
		case <-deadline.C:
			for _, q := range c.procs {
				_ = q.cmd.Process.Kill()
			}
			<-p.done
		}
	}
}

// environ is the test's environment without STRATA_ variables, which
// would override the nodes' flags.
func environ() []string {
	return slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "STRATA_") })
}

// tail returns the last n lines of the file at path.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// eventually calls f every 50 ms until it returns nil, failing the test
// with f's last error after timeout.
func eventually(t *testing.T, timeout time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %v", timeout, err)
		}
		<-tick.C
	}
}
