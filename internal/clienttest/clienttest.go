// Package clienttest holds what the tests and examples of pkg/client and its
// subpackages share: clients with test timings, and an in-process cluster
// for runnable examples (which get no *testing.T).
package clienttest

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/strata-registry/strata/internal/testcluster"
	"github.com/strata-registry/strata/pkg/client"
)

// Ctx returns a context that ends with the test, or after
// testcluster.DefaultWait.
func Ctx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testcluster.DefaultWait)
	t.Cleanup(cancel)
	return ctx
}

// New returns a client of cluster c with a short reconnect backoff, as the
// harness's test client, plus opts; closed when the test ends. Unless c is
// insecure (or nil), it dials as a real client does: WithCredentials with
// the test client's files (Credentials), so every server must be a session
// or meta node of c.
func New(t testing.TB, c *testcluster.Cluster, opts ...client.Option) *client.Client {
	t.Helper()
	base := []client.Option{client.WithBackoff(20*time.Millisecond, 200*time.Millisecond)}
	if c.Credentials() != "" {
		base = append(base, client.WithCredentials(Credentials(c)))
	}
	cl, err := client.New(context.Background(), append(base, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cl.Close() })
	return cl
}

// Credentials returns the test client's credentials in secure cluster c
// (testcluster.ClientName's certificate, key and the CA), found as a
// user's program finds its own: client.CredentialsDir on the cluster's
// credentials directory, for the cluster testcluster.Name.
func Credentials(c *testcluster.Cluster) client.Credentials {
	cr := client.CredentialsDir(string(c.Credentials()), testcluster.ClientName)
	cr.Cluster = testcluster.Name
	return cr
}

// Main is a TestMain: it runs the tests and examples, stops the examples'
// cluster, and fails the package if anything left a goroutine behind.
func Main(m *testing.M) {
	code := m.Run()
	stopExampleCluster()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

var example struct {
	once    sync.Once
	tb      *exampleTB
	cluster *testcluster.Cluster
}

// ExampleSession returns the client address of a session of an in-process
// cluster (3 meta, 3 data, 1 session on loopback) started on first use and
// stopped by Main. Examples print what they see; in real code the address
// is your cluster's.
func ExampleSession() string {
	example.once.Do(func() {
		example.tb = &exampleTB{}
		example.cluster = testcluster.Start(example.tb, testcluster.Spec{Meta: 3, Data: 3, Session: 1})
		example.cluster.WaitDataSettled(example.tb)
	})
	return example.cluster.Session(0).Server().GRPCAddr()
}

// ExampleCredentials returns the option that makes an example's client
// the example cluster's test client (its certificate and CA); call it
// after ExampleSession. A real client passes its own credentials the same
// way: client.WithCredentials(client.CredentialsDir(dir, name)).
func ExampleCredentials() client.Option {
	return client.WithCredentials(Credentials(example.cluster))
}

func stopExampleCluster() {
	if example.tb != nil {
		example.tb.cleanup()
	}
}

// exampleTB lets the examples use the test harness, which wants a
// testing.TB: failures panic, cleanups run when the package's tests end.
type exampleTB struct {
	testing.TB // unused methods panic (nil)
	mu         sync.Mutex
	cleanups   []func()
	dirs       []string
}

func (*exampleTB) Helper()                         {}
func (*exampleTB) Name() string                    { return "examples" }
func (*exampleTB) Failed() bool                    { return false }
func (*exampleTB) Log(args ...any)                 {}
func (*exampleTB) Logf(format string, args ...any) {}
func (*exampleTB) Fatal(args ...any)               { panic(fmt.Sprint(args...)) }
func (*exampleTB) Fatalf(f string, args ...any)    { panic(fmt.Sprintf(f, args...)) }
func (*exampleTB) Errorf(f string, args ...any)    { panic(fmt.Sprintf(f, args...)) }
func (e *exampleTB) Cleanup(f func()) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.cleanups = append(e.cleanups, f)
}
func (e *exampleTB) TempDir() string {
	d, err := os.MkdirTemp("", "strata-example-")
	if err != nil {
		panic(err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.dirs = append(e.dirs, d)
	return d
}
func (e *exampleTB) cleanup() {
	e.mu.Lock()
	fs, dirs := e.cleanups, e.dirs
	e.mu.Unlock()
	for i := len(fs) - 1; i >= 0; i-- {
		fs[i]()
	}
	for _, d := range dirs {
		_ = os.RemoveAll(d)
	}
}
