package session_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/strata-registry/strata/internal/testcluster"
	"github.com/strata-registry/strata/pkg/client/identity"
	"github.com/strata-registry/strata/pkg/client/tlsconf"
	"github.com/strata-registry/strata/pkg/client/wire"
	registryv1 "github.com/strata-registry/strata/pkg/proto/registry/v1"
)

// BenchmarkSession_IdleConnMemory measures what an idle client connection
// costs a session: its heap and goroutine stacks after a collection, per
// connection. The clients (one gRPC connection each, with no subscription
// or with ten, heartbeats as the session asks) run in a child process
// (this test binary, as TestIdleClientsProcess), so only the cluster's side
// is counted; kernel socket buffers are not:
//
//	go test -run '^$' -bench IdleConnMemory -benchtime 1x ./internal/session/
//
// Target (docs/architecture.md): at most 20 KiB (etcd here: ~17 KB).
func BenchmarkSession_IdleConnMemory(b *testing.B) {
	const conns = 1000
	c := benchCluster(b)
	sess := c.Session(0)
	_, _, quiet := liveMemory()
	for _, subs := range []int{0, 10} {
		b.Run(fmt.Sprintf("subs=%d", subs), func(b *testing.B) {
			for range b.N {
				// The last run's connections must be gone from the baseline.
				testcluster.Eventually(b, testcluster.DefaultWait, func() error {
					if n := runtime.NumGoroutine(); n > quiet+idleSlack {
						return fmt.Errorf("%d goroutines, %d before any client", n, quiet)
					}
					return nil
				})
				heap0, stack0, g0 := liveMemory()
				child := startIdleClients(b, c, sess.Server().GRPCAddr(), conns, subs)
				heap1, stack1, g1 := liveMemory()
				child.stop(b)
				b.ReportMetric(float64(heap1-heap0)/conns, "heap-B/conn")
				b.ReportMetric(float64(stack1-stack0)/conns, "stack-B/conn")
				b.ReportMetric(float64(heap1+stack1-heap0-stack0)/conns, "B/conn")
				b.ReportMetric(float64(g1-g0)/conns, "goroutines/conn")
				b.ReportMetric(0, "ns/op")
			}
		})
	}
}

// idleSlack is how many more goroutines than before any client count as
// the cluster at rest (its own work comes and goes).
const idleSlack = 100

// liveMemory collects garbage (twice: sync.Pools keep their contents
// through one collection) and reports the live heap, the goroutine
// stacks in use and the goroutine count.
func liveMemory() (heap, stack uint64, goroutines int) {
	var ms runtime.MemStats
	runtime.GC() // HeapAlloc then counts what this collection found live
	runtime.GC() // and sync.Pools have let go what they kept through the first
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc, ms.StackInuse, runtime.NumGoroutine()
}

type idleChild struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
}

// startIdleClients runs n idle clients of addr in a child process and
// returns once every one is connected, subscribed and has acked its
// subscriptions' first pushes.
//
// The clients hold the test client's certificate (STRATA_IDLE_TLS names
// its files) unless the cluster runs without TLS.
func startIdleClients(b *testing.B, c *testcluster.Cluster, addr string, n, subs int) *idleChild {
	b.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestIdleClientsProcess$")
	cmd.Env = append(os.Environ(), fmt.Sprintf("STRATA_IDLE_CLIENTS=%s,%d,%d", addr, n, subs))
	if tc := c.TLS(b, identity.RoleClient, testcluster.ClientName); tc.Enabled() {
		cmd.Env = append(cmd.Env, fmt.Sprintf("STRATA_IDLE_TLS=%s,%s,%s", tc.CertFile, tc.KeyFile, tc.CAFile))
	}
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	child := &idleChild{cmd: cmd, stdin: stdin}
	ready := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if line := sc.Text(); line == "ready" {
				ready <- nil
				_, _ = io.Copy(io.Discard, stdout)
				return
			} else if strings.HasPrefix(line, "error: ") {
				ready <- errors.New(line)
				return
			}
		}
		ready <- errors.New("idle clients exited before they were ready")
	}()
	select {
	case err = <-ready:
	case <-time.After(2 * time.Minute):
		err = errors.New("idle clients not ready after 2m")
	}
	if err != nil {
		child.stop(b)
		b.Fatal(err)
	}
	return child
}

func (c *idleChild) stop(b *testing.B) {
	_ = c.stdin.Close() // the child ends at EOF
	done := make(chan error, 1)
	go func() { done <- c.cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = c.cmd.Process.Kill()
		<-done
		b.Error("idle clients did not exit within 30s of EOF")
	}
}

// TestIdleClientsProcess is BenchmarkSession_IdleConnMemory's child: it
// runs only when STRATA_IDLE_CLIENTS is "addr,clients,subscriptions", prints "ready" once its
// clients are settled, and ends when its stdin closes.
func TestIdleClientsProcess(t *testing.T) {
	spec := os.Getenv("STRATA_IDLE_CLIENTS")
	if spec == "" {
		t.Skip("the child of BenchmarkSession_IdleConnMemory")
	}
	parts := strings.Split(spec, ",")
	if len(parts) != 3 {
		fmt.Printf("error: bad STRATA_IDLE_CLIENTS %q\n", spec)
		t.Fatal("bad STRATA_IDLE_CLIENTS")
	}
	addr := parts[0]
	n, err := strconv.Atoi(parts[1])
	subs, err2 := strconv.Atoi(parts[2])
	if err != nil || err2 != nil || n < 1 || subs < 0 {
		fmt.Printf("error: bad STRATA_IDLE_CLIENTS %q\n", spec)
		t.Fatal("bad STRATA_IDLE_CLIENTS")
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var conns []*grpc.ClientConn
	defer func() {
		cancel()
		wg.Wait()
		for _, cc := range conns {
			_ = cc.Close()
		}
	}()
	creds := insecure.NewCredentials()
	if files := strings.Split(os.Getenv("STRATA_IDLE_TLS"), ","); len(files) == 3 {
		tc, err := tlsconf.Load(tlsconf.Config{CertFile: files[0], KeyFile: files[1], CAFile: files[2]}, testcluster.Name)
		if err != nil {
			fmt.Printf("error: %v\n", err)
			t.Fatal(err)
		}
		creds = credentials.NewTLS(tc.Client(identity.Peer{Role: identity.RoleSession}))
	}
	settled := make(chan error, n)
	for i := range n {
		cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
		if err != nil {
			fmt.Printf("error: %v\n", err)
			t.Fatal(err)
		}
		conns = append(conns, cc)
		wg.Add(1)
		go func() {
			defer wg.Done()
			idleClient(ctx, cc, fmt.Sprintf("idle%d-%d", subs, i), subs, settled)
		}()
	}
	for range n {
		if err := <-settled; err != nil {
			fmt.Printf("error: %v\n", err)
			t.Fatal(err)
		}
	}
	fmt.Println("ready")
	_, _ = io.Copy(io.Discard, os.Stdin)
}

// idleClient connects, subscribes subs keys, acks their pushes, reports
// to settled once every subscription has had one, and then only
// heartbeats (and acks) until ctx ends.
func idleClient(ctx context.Context, cc *grpc.ClientConn, id string, subs int, settled chan<- error) {
	var once sync.Once
	report := func(err error) { once.Do(func() { settled <- err }) }
	stream, err := registryv1.NewSessionServiceClient(cc).Connect(ctx)
	if err != nil {
		report(err)
		return
	}
	var mu sync.Mutex // one sender at a time
	send := func(f *registryv1.ClientFrame) error {
		mu.Lock()
		defer mu.Unlock()
		return stream.Send(f)
	}
	if err := send(&registryv1.ClientFrame{Body: &registryv1.ClientFrame_Hello{Hello: &registryv1.Hello{ClientId: id, Zone: "z1"}}}); err != nil {
		report(err)
		return
	}
	f, err := stream.Recv()
	if err != nil || f.GetWelcome() == nil {
		report(fmt.Errorf("%s: no welcome: %v %v", id, f, err))
		return
	}
	every := time.Duration(f.GetWelcome().GetHeartbeatMs()) * time.Millisecond
	for j := range subs {
		if err := send(&registryv1.ClientFrame{Id: uint64(j + 1), Body: &registryv1.ClientFrame_RegisterSubscriber{RegisterSubscriber: &registryv1.RegisterSubscriber{
			RegisterId: fmt.Sprintf("s%d", j), DataId: fmt.Sprintf("idle.key.%d", j), Scope: registryv1.Scope_SCOPE_GLOBAL}}}); err != nil {
			report(err)
			return
		}
	}
	hb := make(chan struct{})
	defer func() { <-hb }()
	go func() {
		defer close(hb)
		testcluster.Heartbeat(ctx, every, send)
	}()
	if subs == 0 {
		report(nil)
	}
	acked, pushed := 0, map[string]bool{}
	for {
		f, err := stream.Recv()
		if err != nil {
			if acked < subs || len(pushed) < subs {
				report(fmt.Errorf("%s: stream ended: %v", id, err))
			}
			return
		}
		var pushes []*registryv1.Push
		switch b := f.GetBody().(type) {
		case *registryv1.ServerFrame_Ack:
			if b.Ack.GetCode() != 0 {
				report(fmt.Errorf("%s: registration refused: %v", id, b.Ack))
				return
			}
			acked++
		case *registryv1.ServerFrame_Push:
			pushes = []*registryv1.Push{b.Push}
		case *registryv1.ServerFrame_PushBatch:
			pushes = b.PushBatch.GetPushes()
		}
		var acks []*registryv1.PushAck
		for _, p := range pushes {
			for r := range wire.RegisterIDs(p) {
				pushed[r] = true
			}
			acks = append(acks, wire.AckAll(p))
		}
		if len(acks) > 0 {
			_ = send(&registryv1.ClientFrame{Body: &registryv1.ClientFrame_PushAcks{PushAcks: &registryv1.PushAcks{Acks: acks}}})
		}
		if acked == subs && len(pushed) == subs {
			report(nil)
		}
	}
}
